import { randomBytes } from 'node:crypto';
import type { Namespace, Socket } from 'socket.io';
import { type Envelope, isDurableType } from '../protocol/index.ts';
import type { Backplane, SessionRecord } from './backplane/backplane.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';

/**
 * Socket.IO connection state recovery for stock clients, across pods, on the Redis history
 * (docs/stock-clients.md). Socket.IO's own adapters keep the session in the memory of the pod that
 * held it (lost with it) and offsets in one global packet log we do not have: our order is per room.
 *
 * - The session record (`Backplane.writeSession`, keyed by the client's `pid`) holds the user and the
 *   socket's rooms, append-only so an index keeps naming one room. It is written at connect and at each
 *   join or leave — never only at disconnect — so a SIGKILLed pod has nothing left to persist.
 * - The offset the stock client echoes back (the last string argument of the last event it handled,
 *   `auth.offset`) is the socket's position in every room, by index: `r1.<seq>.<seq>...` (base 36,
 *   empty where it has none). Each packet carries the vector as of its own send, and a connection
 *   delivers in order, so the last one the client handled says exactly what it has in every room.
 * - On a reconnect to any pod, `restoreSession` reads the record, checks the disconnection duration
 *   and that each room's history still holds what was missed, and the `connection` handler rejoins
 *   each room at its position: the room hub replays the gap from history, then live, once and in order.
 */

/** Bounds on what a client sends back (hostile input; docs/security.md). */
export const MAX_PID_LENGTH = 64;
export const MAX_OFFSET_LENGTH = 1024;
/** Rooms one recoverable session may name; a socket past it is no longer recovered (it resyncs). */
export const MAX_SESSION_ROOMS = 64;
const PID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
const OFFSET_VERSION = 'r1';
const POSITION_PATTERN = /^[0-9a-z]{1,11}$/;

/** What every session that has named no room yet shares, instead of two arrays and a map per socket. */
const NO_ROOMS: ReadonlyMap<string, number> = new Map();
const NO_ROOMS_YET: (string | null)[] & (number | null)[] = Object.freeze([]) as unknown as (string | null)[] & (number | null)[];

/** Socket.IO's own list (socket.io/dist/socket.js): disconnections it treats as temporary. */
const RECOVERABLE_REASONS: ReadonlySet<string> = new Set(['transport error', 'transport close', 'forced close', 'ping timeout', 'server shutting down', 'forced server close']);

/** What `restoreSession` hands the new socket as `socket.data.recovery`. */
export interface RestoredSession {
  readonly userId: string;
  readonly rooms: readonly (string | null)[];
  readonly positions: readonly (number | null)[];
}

/** Gives a socket's outgoing room envelopes their offset; null: this socket takes none. */
export interface OffsetSource {
  deliver(socket: Socket, envelope: Envelope): string | null;
}

interface SessionState {
  readonly pid: string;
  readonly userId: string;
  /** The shared empty NO_ROOMS_YET until the session names a room (as positions and index). */
  rooms: (string | null)[];
  positions: (number | null)[];
  /** room → its index. */
  index: ReadonlyMap<string, number>;
  offset: string | null;
  /** Past MAX_SESSION_ROOMS: the record is deleted and no offsets are sent any more. */
  unrecoverable: boolean;
}

const SESSION = Symbol('recovery session');
type SessionHolder = Socket & { [SESSION]?: SessionState | undefined };

export interface RecoveryOptions {
  readonly backplane: Backplane;
  readonly pod: string;
  readonly maxDisconnectionMs: number;
  readonly log: Logger;
  readonly metrics: Metrics;
}

export function encodeOffset(positions: readonly (number | null)[]): string {
  let out = OFFSET_VERSION;
  for (const seq of positions) out += `.${seq === null ? '' : seq.toString(36)}`;
  return out;
}

/** Parses a client-sent offset; null when it is not one this gateway could have written. */
export function parseOffset(offset: unknown): (number | null)[] | null {
  if (typeof offset !== 'string' || offset.length > MAX_OFFSET_LENGTH) return null;
  const [version, ...entries] = offset.split('.');
  if (version !== OFFSET_VERSION || entries.length > MAX_SESSION_ROOMS) return null;
  const positions: (number | null)[] = [];
  for (const entry of entries) {
    if (entry === '') positions.push(null);
    else if (!POSITION_PATTERN.test(entry)) return null;
    else {
      const seq = parseInt(entry, 36);
      if (!Number.isSafeInteger(seq)) return null;
      positions.push(seq);
    }
  }
  return positions;
}

export function isRecoverableReason(reason: string): boolean {
  return RECOVERABLE_REASONS.has(reason);
}

/** Socket.IO's own per-socket writers (private in its types), as its `emit` calls them without recovery. */
interface OwnPacketWriter {
  notifyOutgoingListeners(packet: unknown): void;
  packet(packet: unknown, opts: { volatile?: unknown; compress?: unknown }): void;
}

export class Recovery implements OffsetSource {
  readonly #opts: RecoveryOptions;
  readonly #ttlSeconds: number;
  /** Each socket's session lives on the socket (`SESSION`): `deliver` runs once per delivery. */
  /** One handler for every failed write at connect, not a closure per handshake. */
  readonly #connectWriteFailed = (err: unknown): void => this.#opts.log.debug({ err }, 'session write at connect failed');
  /** The namespace whose sockets' records the expiry refresh keeps alive (set by install). */
  #nsp: Namespace | null = null;
  readonly #timer: NodeJS.Timeout;
  #soleSeq: number | null = null;
  #soleOffset = '';

  constructor(opts: RecoveryOptions) {
    this.#opts = opts;
    this.#ttlSeconds = Math.max(1, Math.ceil(opts.maxDisconnectionMs / 1000));
    // A connected socket's record is kept alive by this refresh; after a SIGKILL it stops, so the
    // session outlives its pod by at least two thirds of the maximum and never by more than it.
    this.#timer = setInterval(() => this.#touch(), Math.max(1_000, (this.#ttlSeconds * 1000) / 3)).unref();
  }

  /** Patches the namespace's adapter: sessions come from the backplane, a socket's own emits stay local. */
  install(nsp: Namespace): void {
    this.#nsp = nsp;
    const adapter = nsp.adapter as unknown as {
      restoreSession(pid: string, offset: string): Promise<unknown>;
      persistSession(session: unknown): void;
      broadcast(packet: unknown, opts: { rooms: Set<string>; except?: Set<string>; flags?: Record<string, unknown> }): void;
    };
    adapter.restoreSession = (pid, offset) => this.#restore(pid, offset);
    // Nothing to persist at disconnect: the record was written at connect and join (see disconnected()).
    adapter.persistSession = () => {};
    const broadcast = adapter.broadcast.bind(adapter);
    adapter.broadcast = (packet, opts) => {
      // With recovery on, Socket.IO routes socket.emit through the adapter as a broadcast to the
      // socket's own room; the Redis adapter would publish each one to every pod. It is local.
      if (opts.rooms.size === 1 && !opts.except?.size) {
        const [room] = opts.rooms;
        const socket = room === undefined ? undefined : (nsp.sockets.get(room) as unknown as OwnPacketWriter | undefined);
        if (socket) {
          // What socket.emit does without recovery: one packet, no frame pre-built for a broadcast.
          socket.notifyOutgoingListeners(packet);
          socket.packet(packet, { volatile: opts.flags?.volatile, compress: opts.flags?.compress });
          return;
        }
      }
      broadcast(packet, opts);
    };
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #refuse(why: string, detail?: unknown): null {
    this.#opts.metrics.recoveries.inc({ outcome: why });
    // Redis failing a recovery is worth a warning; the other outcomes are the client's doing.
    if (why === 'unavailable') this.#opts.log.warn({ err: detail }, 'connection state recovery: Redis failed; the client connects without recovery');
    else this.#opts.log.debug({ why }, 'connection state recovery refused');
    return null;
  }

  async #restore(pid: unknown, offset: unknown): Promise<unknown> {
    if (typeof pid !== 'string' || !PID_PATTERN.test(pid)) return this.#refuse('malformed');
    const positions = parseOffset(offset);
    if (!positions) return this.#refuse('malformed');
    let record: SessionRecord | null;
    try {
      record = await this.#opts.backplane.readSession(pid);
    } catch (err) {
      return this.#refuse('unavailable', err);
    }
    if (!record) return this.#refuse('unknown');
    if (record.disconnectedAt !== undefined && Date.now() - record.disconnectedAt > this.#opts.maxDisconnectionMs) return this.#refuse('expired');
    if (positions.length > record.rooms.length) return this.#refuse('mismatch');
    const rooms: (string | null)[] = [...record.rooms];
    const restored: (number | null)[] = rooms.map(() => null);
    const checks: Promise<'replay' | 'gone' | Error>[] = [];
    for (const [i, room] of rooms.entries()) {
      if (room === null) continue;
      const seq = positions[i];
      // A room the client joined but never heard from: what it has there is unknown.
      if (seq === null || seq === undefined) return this.#refuse('mismatch');
      restored[i] = seq;
      checks.push(
        this.#opts.backplane.history(room, seq, 0).then(
          (history) => (history.mode === 'replay' ? 'replay' : 'gone'),
          (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
        ),
      );
    }
    const outcomes = await Promise.all(checks);
    const failed = outcomes.find((outcome) => outcome instanceof Error);
    if (failed) return this.#refuse('unavailable', failed);
    if (outcomes.includes('gone')) return this.#refuse('history');
    this.#opts.metrics.recoveries.inc({ outcome: 'restored' });
    const session: RestoredSession = { userId: record.userId, rooms, positions: restored };
    // A new sid: the old socket may still be open on its pod (a blip it has not noticed yet).
    return { sid: randomBytes(15).toString('base64url'), pid, rooms: [], data: { recovery: session }, missedPackets: [] };
  }

  /**
   * After authentication: a recovered session belongs to the same user or it is not recovered (a pid
   * is a bearer secret of that user's session, never a way into another's rooms).
   */
  confirm(socket: Socket, userId: string): boolean {
    const restored = (socket.data as { recovery?: RestoredSession }).recovery;
    if (!socket.recovered || !restored) return true;
    if (restored.userId === userId) return true;
    this.#refuse('other_user');
    const s = socket as unknown as { recovered: boolean; pid: string };
    s.recovered = false;
    s.pid = randomBytes(15).toString('base64url');
    delete (socket.data as { recovery?: RestoredSession }).recovery;
    return false;
  }

  /**
   * A connected socket's session, written to the backplane: for a recovered socket, its restored rooms
   * and positions once the record is written; null for a new one (nothing waits for its write).
   */
  attach(socket: Socket, userId: string): Promise<RestoredSession> | null {
    const pid = (socket as unknown as { pid?: string }).pid;
    if (!pid) return null;
    const restored = socket.recovered ? ((socket.data as { recovery?: RestoredSession }).recovery ?? null) : null;
    const state: SessionState = restored
      ? {
          pid,
          userId,
          rooms: [...restored.rooms],
          positions: [...restored.positions],
          index: new Map(restored.rooms.flatMap((room, i) => (room === null ? [] : [[room, i] as const]))),
          offset: null,
          unrecoverable: false,
        }
      : { pid, userId, rooms: NO_ROOMS_YET, positions: NO_ROOMS_YET, index: NO_ROOMS, offset: null, unrecoverable: false };
    (socket as SessionHolder)[SESSION] = state;
    // Redis away: the connection goes on; without its record the session is simply not recoverable
    // (a later reconnect finds none, or the previous one, which the offsets still match).
    const written = this.#write(socket, state).catch(this.#connectWriteFailed);
    return restored ? written.then(() => restored) : null;
  }

  /** Before a join: the record names the room before any packet's offset does. */
  async beforeJoin(socket: Socket, room: string): Promise<void> {
    const state = (socket as SessionHolder)[SESSION];
    if (!state || state.unrecoverable) return;
    const i = state.index.get(room);
    if (i !== undefined && state.rooms[i] === room) return;
    if (i !== undefined) state.rooms[i] = room;
    else if (state.rooms.length >= MAX_SESSION_ROOMS) {
      state.unrecoverable = true;
      await this.#opts.backplane.deleteSession(state.pid, socket.id).catch(() => {});
      return;
    } else {
      if (state.index === NO_ROOMS) {
        state.index = new Map();
        state.rooms = [];
        state.positions = [];
      }
      (state.index as Map<string, number>).set(room, state.rooms.length);
      state.rooms.push(room);
      state.positions.push(null);
    }
    state.offset = null;
    await this.#write(socket, state);
  }

  left(socket: Socket, room: string): void {
    const state = (socket as SessionHolder)[SESSION];
    const i = state?.index.get(room);
    if (!state || i === undefined || state.unrecoverable) return;
    state.rooms[i] = null;
    state.positions[i] = null;
    state.offset = null;
    void this.#write(socket, state).catch((err: unknown) => this.#opts.log.debug({ err }, 'session write after leave failed'));
  }

  /**
   * Records that `envelope` goes to `socket` now, and returns the offset it carries. Every session
   * that has only ever followed one room gets the same string instance for the same seq, encoded once
   * per message, so the room hub can tell cheaply that a whole room shares one offset.
   */
  deliver(socket: Socket, envelope: Envelope): string | null {
    const state = (socket as SessionHolder)[SESSION];
    if (!state || state.unrecoverable) return null;
    if (envelope.room !== null && envelope.seq !== null && (isDurableType(envelope.type) || envelope.type === 'room:reset')) {
      const i = state.index.get(envelope.room);
      if (i !== undefined && state.rooms[i] !== null && state.positions[i] !== envelope.seq) {
        state.positions[i] = envelope.seq;
        state.offset = state.positions.length === 1 ? this.#soleRoomOffset(envelope.seq) : null;
      }
    }
    return (state.offset ??= encodeOffset(state.positions));
  }

  /** `encodeOffset([seq])`, kept for the seq being fanned out (at most one string per message). */
  #soleRoomOffset(seq: number): string {
    if (this.#soleSeq !== seq) {
      this.#soleSeq = seq;
      this.#soleOffset = encodeOffset([seq]);
    }
    return this.#soleOffset;
  }

  /** The socket's current offset (for connection-scoped messages such as `server:hello`). */
  offsetOf(socket: Socket): string | null {
    const state = (socket as SessionHolder)[SESSION];
    if (!state || state.unrecoverable) return null;
    return (state.offset ??= encodeOffset(state.positions));
  }

  disconnected(socket: Socket, reason: string): void {
    const state = (socket as SessionHolder)[SESSION];
    if (!state) return;
    (socket as SessionHolder)[SESSION] = undefined;
    if (state.unrecoverable) return;
    const { backplane, log } = this.#opts;
    const done = isRecoverableReason(reason)
      ? backplane.markSessionDisconnected(state.pid, socket.id, Date.now(), this.#ttlSeconds)
      : backplane.deleteSession(state.pid, socket.id);
    // Lost with Redis away: the record then expires on its own within the maximum duration.
    done.catch((err: unknown) => log.debug({ err, reason }, 'session update at disconnect failed'));
  }

  #write(socket: Socket, state: SessionState): Promise<void> {
    return this.#opts.backplane.writeSession(state.pid, { sid: socket.id, userId: state.userId, pod: this.#opts.pod, rooms: state.rooms }, this.#ttlSeconds);
  }

  /** Refreshes the expiry of every connected socket's record (read off the namespace: no pid map to keep). */
  #touch(): void {
    const pids = new Set<string>();
    for (const socket of this.#nsp?.sockets.values() ?? []) {
      const state = (socket as SessionHolder)[SESSION];
      if (state && !state.unrecoverable) pids.add(state.pid);
    }
    if (pids.size === 0) return;
    this.#opts.backplane.touchSessions([...pids], this.#ttlSeconds).catch((err: unknown) => this.#opts.log.debug({ err }, 'session expiry refresh failed'));
  }
}
