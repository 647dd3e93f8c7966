import type { Server, Socket } from 'socket.io';
import { controlEnvelope, type DurableEnvelope, type Envelope, MAX_PAGE_ENVELOPES, MAX_REPLAY, ProtocolError } from '../protocol/index.ts';
import type { Backplane } from './backplane/backplane.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { OffsetSource } from './recovery.ts';

const RESYNC_SECOND_PASS_MS = 1_000;

/** Something that receives a room's envelopes: a Socket.IO socket or an SSE stream. */
export interface RoomMember {
  readonly id: string;
  send(envelope: Envelope): void;
  /** Socket members are reached by one Socket.IO room broadcast; others one by one. Their `id` is the socket's. */
  readonly socket?: Socket;
}

export interface JoinResult {
  readonly seq: number;
  readonly resume: 'fresh' | 'replay' | 'reset';
  readonly replayed: number;
  /** The replay was cut at `pageBytes`: the rest (after the last replayed seq) is for `history:fetch`. */
  readonly more: boolean;
}

export interface JoinOptions {
  /** Most bytes of envelopes the replay (or the snapshot's `recent`) carries. @default Infinity */
  readonly pageBytes?: number;
  /**
   * What a member that cannot fetch pages (SSE) does when the replay does not fit: true stops after
   * the page, out of the room (the caller ends the stream, the client resumes from its last id).
   */
  readonly stopAfterPage?: boolean;
}

/** Bytes an envelope takes on the wire (its JSON), for page bounds. */
export function envelopeBytes(envelope: Envelope): number {
  return Buffer.byteLength(JSON.stringify(envelope));
}

/**
 * The longest prefix of a replay within `pageBytes` (at least one envelope, so a page always moves
 * on); `more` when it stops short of `latestSeq`, the room's latest (the backplane already read at most
 * `MAX_PAGE_ENVELOPES`).
 */
export function pageOf<T extends DurableEnvelope>(envelopes: readonly T[], pageBytes: number, latestSeq: number): { page: readonly T[]; more: boolean } {
  let page = envelopes;
  if (pageBytes !== Infinity) {
    let bytes = 0;
    let count = 0;
    for (const envelope of envelopes) {
      bytes += envelopeBytes(envelope);
      if (count > 0 && bytes > pageBytes) break;
      count += 1;
    }
    if (count < envelopes.length) page = envelopes.slice(0, count);
  }
  const last = page.at(-1);
  return { page, more: last !== undefined && last.seq < latestSeq };
}

/** The newest suffix of `envelopes` within `pageBytes` (a snapshot's `recent` keeps the latest). */
export function newestWithin<T extends Envelope>(envelopes: readonly T[], pageBytes: number): readonly T[] {
  if (pageBytes === Infinity) return envelopes;
  let bytes = 0;
  let start = envelopes.length;
  while (start > 0) {
    bytes += envelopeBytes(envelopes[start - 1]!);
    if (bytes > pageBytes) break;
    start -= 1;
  }
  return envelopes.slice(start);
}

/** Consulted before each live fan-out to a watched socket member (backpressure); true: skip it, handled. */
export interface OutboundGate {
  /** The only sockets `divert` can skip: the hub asks for these and sends to every other without asking. */
  readonly watched: ReadonlySet<Socket>;
  divert(member: RoomMember, envelope: DurableEnvelope): boolean;
}

export interface RoomHubOptions {
  readonly io: Server;
  readonly backplane: Backplane;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Newest envelopes a reset snapshot carries. @default 50 */
  readonly snapshotRecent?: number;
  readonly outbound?: OutboundGate;
  /** Connection state recovery (recovery.ts): each socket's copy carries its offset. */
  readonly offsets?: OffsetSource | null;
}

interface RoomState {
  readonly members: Map<string, RoomMember>;
  /**
   * Members kept out of live fan-out: while their replay is in flight (`held` collects what they
   * will get after it), then until the instance's stream passes what the replay already gave them.
   */
  readonly excluded: Map<string, { held: DurableEnvelope[] | null; through: number }>;
  subscription: Promise<void> | null;
  /** Last seq fanned out in this room on this instance. */
  lastSeq: number | null;
  /** While non-null, the instance is filling its own gap from history; live envelopes wait here. */
  catchUp: DurableEnvelope[] | null;
}

/**
 * Delivers a room's envelopes to this instance's members, in seq order, each exactly once: a
 * joining member gets its replay (or reset) before any live envelope, and a gap on the instance's
 * own subscription (a Redis restart, a lost message) is filled from history before fan-out goes on.
 */
export class RoomHub {
  readonly #rooms = new Map<string, RoomState>();
  readonly #opts: RoomHubOptions;

  constructor(opts: RoomHubOptions) {
    this.#opts = opts;
    opts.backplane.onEnvelope((envelope) => this.#receive(envelope));
    opts.backplane.onReadyChange((ready) => {
      if (!ready) return;
      this.#resyncAll();
      setTimeout(() => this.#resyncAll(), RESYNC_SECOND_PASS_MS).unref();
    });
  }

  /** Rooms with members on this instance. */
  get rooms(): readonly string[] {
    return [...this.#rooms.keys()];
  }

  memberCount(room: string): number {
    return this.#rooms.get(room)?.members.size ?? 0;
  }

  /** Adds `member` to `room` and sends what it missed since `lastSeq` (or a snapshot), then live. */
  async join(member: RoomMember, room: string, lastSeq: number | null, opts: JoinOptions = {}): Promise<JoinResult> {
    const pageBytes = opts.pageBytes ?? Infinity;
    const state = this.#state(room);
    if (state.excluded.get(member.id)?.held) throw new ProtocolError('bad_request', `a join of ${room} is already in progress on this connection`);
    const held: DurableEnvelope[] = [];
    state.excluded.set(member.id, { held, through: Infinity });
    state.members.set(member.id, member);
    void member.socket?.join(room);
    // Still this join's turn: the member has not left (room:leave, disconnect, SSE close) or rejoined meanwhile.
    const current = (): boolean => this.#rooms.get(room) === state && state.excluded.get(member.id)?.held === held;
    let history;
    try {
      state.subscription ??= this.#subscribe(room, state);
      await state.subscription;
      history = await this.#opts.backplane.history(room, lastSeq, this.#opts.snapshotRecent ?? 50, pageBytes === Infinity ? MAX_REPLAY : MAX_PAGE_ENVELOPES);
    } catch (err) {
      if (current()) this.leave(member, room);
      throw err;
    }
    if (!current()) throw new ProtocolError('not_joined', `left ${room} while joining it; join again to follow it`);
    // From here to the end nothing awaits, so no live envelope can slip between replay and release.
    let last = history.seq;
    let replayed = 0;
    let more = false;
    if (history.mode === 'replay') {
      const page = pageOf(history.envelopes, pageBytes, history.seq);
      for (const envelope of page.page) member.send(envelope);
      replayed = page.page.length;
      more = page.more;
      this.#opts.metrics.replayedEnvelopes.inc(replayed);
      if (more && opts.stopAfterPage) {
        this.leave(member, room);
        return { seq: page.page.at(-1)?.seq ?? history.seq, resume: 'replay', replayed, more };
      }
    } else {
      const snapshot = { ...history.snapshot, recent: newestWithin(history.snapshot.recent, pageBytes) };
      member.send(controlEnvelope('room:reset', room, { snapshot }, history.seq));
      if (lastSeq !== null) this.#opts.metrics.historyMisses.inc();
    }
    for (const envelope of held) {
      if (envelope.seq > last) {
        member.send(envelope);
        last = envelope.seq;
      }
    }
    state.lastSeq ??= last;
    if (state.lastSeq < last) state.excluded.set(member.id, { held: null, through: last });
    else state.excluded.delete(member.id);
    const resume = history.mode === 'reset' && lastSeq === null ? 'fresh' : history.mode;
    this.#opts.metrics.resumes.inc({ mode: resume });
    return { seq: last, resume, replayed, more };
  }

  leave(member: RoomMember, room: string): void {
    const state = this.#rooms.get(room);
    if (!state) return;
    state.members.delete(member.id);
    state.excluded.delete(member.id);
    void member.socket?.leave(room);
    if (state.members.size === 0) {
      this.#rooms.delete(room);
      if (state.subscription) {
        this.#opts.backplane.unsubscribe(room).catch((err: unknown) => this.#opts.log.warn({ err, room }, 'unsubscribe failed'));
      }
    }
  }

  /** Removes `member` from every room; for disconnects. */
  leaveAll(member: RoomMember): void {
    for (const [room, state] of this.#rooms) if (state.members.has(member.id)) this.leave(member, room);
  }

  /** Subscribes once per room; only a failed subscribe is forgotten, so `leave` unsubscribes every other. */
  #subscribe(room: string, state: RoomState): Promise<void> {
    const subscription: Promise<void> = this.#opts.backplane.subscribe(room).catch((err: unknown) => {
      if (state.subscription === subscription) state.subscription = null;
      throw err;
    });
    return subscription;
  }

  /**
   * After the backplane reconnects, envelopes published while this instance was unsubscribed are only
   * in history; a quiet room would never show the gap, so every room checks. The second pass covers
   * publishes that landed while ioredis was still restoring the subscriptions.
   */
  #resyncAll(): void {
    for (const [room, state] of this.#rooms) {
      if (state.lastSeq === null || state.catchUp) continue;
      state.catchUp = [];
      void this.#catchUp(room, state);
    }
  }

  #state(room: string): RoomState {
    let state = this.#rooms.get(room);
    if (!state) {
      state = { members: new Map(), excluded: new Map(), subscription: null, lastSeq: null, catchUp: null };
      this.#rooms.set(room, state);
    }
    return state;
  }

  #receive(envelope: DurableEnvelope): void {
    const state = this.#rooms.get(envelope.room);
    if (!state) return;
    if (state.catchUp) {
      state.catchUp.push(envelope);
      return;
    }
    if (state.lastSeq !== null && envelope.seq <= state.lastSeq) return;
    if (state.lastSeq !== null && envelope.seq > state.lastSeq + 1) {
      state.catchUp = [envelope];
      void this.#catchUp(envelope.room, state);
      return;
    }
    this.#fanOut(state, envelope);
  }

  /**
   * The per-delivery path (docs/decisions/0017-fan-out-cpu-per-delivery.md): one pass over the
   * members, asking backpressure only about the sockets it watches, and one room broadcast, encoded
   * once, whenever every socket recipient shares one offset.
   */
  #fanOut(state: RoomState, envelope: DurableEnvelope): void {
    state.lastSeq = envelope.seq;
    const { io, metrics, outbound, offsets } = this.#opts;
    let skipped: Set<string> | null = null;
    if (state.excluded.size > 0) {
      skipped = new Set<string>();
      for (const [id, exclusion] of state.excluded) {
        if (exclusion.held) {
          exclusion.held.push(envelope);
          skipped.add(id);
        } else if (envelope.seq <= exclusion.through) {
          skipped.add(id);
          if (envelope.seq === exclusion.through) state.excluded.delete(id);
        } else {
          state.excluded.delete(id);
        }
      }
    }
    const watched = outbound?.watched;
    if (outbound && watched && watched.size > 0) {
      const divert = (member: RoomMember): void => {
        if (skipped?.has(member.id) || !outbound.divert(member, envelope)) return;
        (skipped ??= new Set<string>()).add(member.id);
      };
      if (watched.size < state.members.size) {
        for (const socket of watched) {
          const member = state.members.get(socket.id);
          if (member?.socket === socket) divert(member);
        }
      } else {
        for (const member of state.members.values()) if (member.socket && watched.has(member.socket)) divert(member);
      }
    }
    let recipients = 0;
    let socketRecipients = 0;
    // With recovery on, a copy carries its recipient's offset: `shared` is the one every socket so far has.
    let shared: string | null | undefined;
    let uniform = true;
    for (const member of state.members.values()) {
      if (skipped?.has(member.id)) continue;
      recipients += 1;
      const socket = member.socket;
      if (!socket) {
        member.send(envelope);
        continue;
      }
      socketRecipients += 1;
      if (offsets && uniform) {
        const offset = offsets.deliver(socket, envelope);
        if (shared === undefined) shared = offset;
        else if (offset !== shared) uniform = false;
      }
    }
    if (socketRecipients > 0) {
      if (uniform) {
        // The common case, one offset (or none) for every recipient: the plain room broadcast plus that offset.
        let broadcast = io.local.to(envelope.room);
        if (skipped && skipped.size > 0) broadcast = broadcast.except([...skipped]);
        if (shared === null || shared === undefined) broadcast.emit(envelope.type, envelope);
        else broadcast.emit(envelope.type, envelope, shared);
      } else if (offsets) this.#emitGrouped(state, envelope, skipped, offsets);
    }
    metrics.messagesOut.inc({ type: envelope.type }, recipients);
  }

  /**
   * Recipients with different offsets (sockets following several rooms): those sharing one share a
   * broadcast, encoded once. A socket alone with its offset gets the packet spliced from the envelope's
   * JSON, encoded once for all of them, and its offset: Socket.IO's text encoding of an event in the
   * main namespace (the gateway's only one) is `2` + the JSON array of its arguments.
   */
  #emitGrouped(state: RoomState, envelope: DurableEnvelope, skipped: ReadonlySet<string> | null, offsets: OffsetSource): void {
    // `deliver` is idempotent for an envelope it has already recorded.
    const groups = new Map<string | null, Socket[]>();
    for (const member of state.members.values()) {
      if (!member.socket || skipped?.has(member.id)) continue;
      const offset = offsets.deliver(member.socket, envelope);
      const group = groups.get(offset);
      if (group) group.push(member.socket);
      else groups.set(offset, [member.socket]);
    }
    let prefix: string | null = null;
    for (const [offset, sockets] of groups) {
      if (offset !== null && sockets.length === 1) {
        const socket = sockets[0]!;
        if (!socket.connected) continue;
        prefix ??= `2[${JSON.stringify(envelope.type)},${JSON.stringify(envelope)},`;
        // Offsets are [0-9a-z.] only (recovery.ts), so they need no escaping inside the quotes.
        socket.conn.write(`${prefix}"${offset}"]`);
        continue;
      }
      const broadcast = this.#opts.io.local.to(sockets.map((socket) => socket.id));
      if (offset === null) broadcast.emit(envelope.type, envelope);
      else broadcast.emit(envelope.type, envelope, offset);
    }
  }

  /** Fills this instance's gap in `room` from history, then releases what arrived meanwhile. */
  async #catchUp(room: string, state: RoomState): Promise<void> {
    for (let attempt = 0; this.#rooms.get(room) === state; attempt += 1) {
      try {
        const history = await this.#opts.backplane.history(room, state.lastSeq, this.#opts.snapshotRecent ?? 50);
        const waiting = state.catchUp ?? [];
        state.catchUp = null;
        if (history.mode === 'reset') {
          this.#opts.log.warn({ room, lastSeq: state.lastSeq, seq: history.seq }, 'instance gap older than history; resetting room members');
          state.lastSeq = history.seq;
          const reset = controlEnvelope('room:reset', room, { snapshot: history.snapshot }, history.seq);
          // Members still joining get their own replay or reset from their own history read.
          for (const member of state.members.values()) if (!state.excluded.get(member.id)?.held) member.send(reset);
        } else {
          for (const envelope of history.envelopes) if (envelope.seq > (state.lastSeq ?? 0)) this.#fanOut(state, envelope);
        }
        for (const envelope of waiting.sort((a, b) => a.seq - b.seq)) this.#receive(envelope);
        return;
      } catch (err) {
        this.#opts.log.warn({ err, room, attempt }, 'catch-up from history failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 2_000)));
      }
    }
  }
}
