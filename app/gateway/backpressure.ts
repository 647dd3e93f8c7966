import type { ServerResponse } from 'node:http';
import type { Socket } from 'socket.io';
import { Counter, Gauge, type Registry } from 'prom-client';
import { controlEnvelope, type DurableEnvelope, type Envelope, ProtocolError } from '../protocol/index.ts';
import type { Logger } from './logger.ts';
import type { OffsetSource } from './recovery.ts';
import type { OutboundGate, RoomMember } from './room-hub.ts';

/** Durable types for which only the latest value matters, so a congested socket may skip ahead. */
const COALESCIBLE_TYPES: ReadonlySet<string> = new Set(['counter:changed']);

/** What `send_backlog` asks a client to wait, when nothing better is known. */
const BACKLOG_RETRY_MS = 500;

export interface BackpressureOptions {
  /** Unsent bytes past which coalescible updates are coalesced and requests refused with `send_backlog`. */
  readonly highWaterBytes: number;
  /** Unsent bytes past which a connection is closed with `slow_consumer`. */
  readonly limitBytes: number;
  /** A connection with unsent bytes of which the peer took none for this long is closed. @default 30000 */
  readonly stallMs?: number;
  readonly registry: Registry;
  readonly log: Logger;
  /** How often sockets holding coalesced updates are checked for having drained. @default 50 */
  readonly drainCheckMs?: number;
  /** Connection state recovery (recovery.ts): each envelope sent here carries the socket's offset. */
  readonly offsets?: OffsetSource | null;
}

type EngineConnection = Socket['conn'];
interface EnginePacket {
  readonly data?: unknown;
  readonly options?: { readonly wsPreEncodedFrame?: readonly Uint8Array[] };
}

/** Engine.IO's own view of a connection: the packets it holds until the transport can take them. */
interface EngineInternals {
  readonly writeBuffer?: readonly EnginePacket[];
  readonly transport: { readonly name: string; readonly socket?: { readonly bufferedAmount?: number } };
}

/**
 * Bytes a packet may add to what `ws` buffers beyond `packetBytes`: the WebSocket frame header (at most
 * 10 bytes from a server) on packets that are not pre-encoded. The cheap bound below must never be low.
 */
const FRAME_OVERHEAD = 10;

/** Bytes one Engine.IO packet puts on the wire (approximately: framing is a few bytes more). */
function packetBytes(packet: EnginePacket): number {
  const frame = packet.options?.wsPreEncodedFrame;
  if (frame) {
    // Broadcasts carry their WebSocket frame encoded once for all recipients: its length is free.
    let bytes = 0;
    for (const part of frame) bytes += part.byteLength;
    return bytes;
  }
  const { data } = packet;
  if (typeof data === 'string') return Buffer.byteLength(data) + 1;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength + 1;
  return 1;
}

/** Bytes queued for the peer of `conn` and not taken yet: Engine.IO's write buffer plus what `ws` holds. */
function unsentOf(conn: EngineConnection): number {
  const engine = conn as unknown as EngineInternals;
  let bytes = 0;
  const queued = engine.writeBuffer;
  if (queued) for (const packet of queued) bytes += packetBytes(packet);
  const transport = engine.transport;
  if (transport.name === 'websocket') bytes += transport.socket?.bufferedAmount ?? 0;
  return bytes;
}

/** One connection's outbound account: what was queued for it, and when the peer last took any. */
interface AccountBase {
  readonly id: string;
  readonly userId: string | undefined;
  /** Bytes queued for the peer since the connection opened. */
  enqueued: number;
  /** `enqueued - unsent` at the last time the peer was seen taking bytes. */
  consumedMark: number;
  /** `enqueued` when the stall check last found nothing unsent: until it moves, there is nothing to look at. */
  emptyAt: number;
  progressAt: number;
  closing: boolean;
}

interface SocketAccount extends AccountBase {
  readonly kind: 'socket';
  readonly socket: Socket;
  /**
   * Bytes that may still be queued before unsent bytes could cross the next mark (the high-water mark,
   * or the limit once past it): while it stays positive nothing needs a look, so a healthy socket costs
   * one subtraction per packet and `unsentOf` runs about once per high-water mark's worth of bytes.
   */
  headroom: number;
  /** The socket is in `watched`. */
  watched: boolean;
}

interface StreamAccount extends AccountBase {
  readonly kind: 'sse';
  readonly res: ServerResponse;
}

type Account = SocketAccount | StreamAccount;

/** Where a socket's account lives: on its Engine.IO connection, so no lookup table sits on the hot path. */
const ACCOUNT = Symbol('outbound account');
type AccountedConnection = EngineConnection & { [ACCOUNT]?: SocketAccount };

function accountOf(socket: Socket): SocketAccount | undefined {
  return (socket.conn as AccountedConnection)[ACCOUNT];
}

/** A stream's side of the budget: every SSE write goes through `write`. */
export interface StreamBudget {
  /** Writes `text` unless that would pass the hard limit (then the stream is cut); false when not written. */
  write(text: string): boolean;
}

/**
 * The outbound budget of every connection — Socket.IO sockets and SSE streams. Engine.IO's write
 * buffer is unbounded (socketio/engine.io#420), and a reply is as big as what the client asks for, so
 * every byte queued for a peer is counted and bounded here:
 *
 * - unsent bytes = Engine.IO's write buffer (every packet, whoever writes it: live fan-out, acks,
 *   replays, control messages, heartbeats) plus what the WebSocket transport handed to `ws` that the
 *   kernel has not taken; for SSE, the response's buffer;
 * - past the high-water mark, coalescible updates (the counter) are withheld from the socket, and
 *   once it drains it gets one `room:reset` carrying the latest value and its seq; requests are
 *   refused with `send_backlog` (`admit`), so a client cannot grow its own backlog by asking;
 * - past the hard limit, the socket gets `connection:closing {reason: slow_consumer, reconnect:
 *   true}` and its transport is closed after what is already queued (nothing more is queued), so
 *   the client receives a contiguous prefix, reconnects and resumes from its last seq; an SSE stream
 *   is destroyed (the browser resumes with `Last-Event-ID`);
 * - a connection holding unsent bytes of which the peer has taken none for `stallMs` is cut at once,
 *   whatever its heartbeats say (a peer can answer pings, or send unsolicited pongs, and never read).
 *
 * Cheap on the fan-out path (docs/decisions/0017-fan-out-cpu-per-delivery.md): every packet entering
 * Engine.IO only lowers its socket's `headroom` by its size (the size of a broadcast's shared frame is
 * computed once for all its recipients); the unsent bytes are measured only when the headroom runs out,
 * and a socket found over the high-water mark joins `watched`. Unsent bytes only grow through packets,
 * so a socket outside `watched` is below the high-water mark and the hub skips `divert` for it.
 *
 * Replies are bounded by pages (`HISTORY_PAGE_BYTES` ≤ limit − high-water), so a request admitted
 * below the high-water mark never pushes its connection past the limit by itself.
 */
export class Backpressure implements OutboundGate {
  readonly #opts: BackpressureOptions;
  readonly #accounts = new Set<Account>();
  readonly #watched = new Set<Socket>();
  /** Sockets holding withheld updates: the latest envelope per room. */
  readonly #withheld = new Map<Socket, Map<string, DurableEnvelope>>();
  #drainTimer: NodeJS.Timeout | null = null;
  readonly #stallTimer: NodeJS.Timeout;
  readonly #coalesced: Counter;
  readonly #slowConsumers: Counter;
  readonly #backlogRefusals: Counter;
  /** The `packetCreate` listener every tracked connection shares (`this` is the connection). */
  readonly #onPacket: (this: AccountedConnection, packet: EnginePacket) => void;
  /** Shared by every socket (`this` is the socket), so a connection costs no closure here. */
  readonly #onDisconnect: (this: Socket) => void;
  /** A broadcast's packets to all its recipients share one options object: its size is counted once. */
  #lastOptions: object | undefined;
  #lastBytes = 0;

  constructor(opts: BackpressureOptions) {
    if (opts.limitBytes <= opts.highWaterBytes) throw new RangeError('the slow-consumer limit must be above the high-water mark');
    this.#opts = opts;
    const registers = [opts.registry];
    this.#coalesced = new Counter({
      name: 'rt_coalesced_updates_total',
      help: 'Counter updates withheld from sockets over the high-water mark (they get the latest value once drained).',
      registers,
    });
    this.#slowConsumers = new Counter({
      name: 'rt_slow_consumer_disconnections_total',
      help: 'Connections closed as slow consumers: unsent bytes past the hard limit (`limit`) or not falling for SLOW_CONSUMER_STALL_MS (`stalled`), by kind (socket, sse).',
      labelNames: ['kind', 'why'],
      registers,
    });
    this.#backlogRefusals = new Counter({
      name: 'rt_send_backlog_refusals_total',
      help: 'Requests refused with send_backlog because their connection was over the high-water mark.',
      registers,
    });
    const withheld = this.#withheld;
    new Gauge({
      name: 'rt_congested_sockets',
      help: 'Sockets currently holding coalesced (withheld) updates.',
      registers,
      collect() {
        this.set(withheld.size);
      },
    });
    const accounts = this.#accounts;
    new Gauge({
      name: 'rt_outbound_unsent_bytes',
      help: 'Bytes queued for all connections of this instance that their peers have not taken yet.',
      registers,
      collect() {
        let total = 0;
        for (const account of accounts) total += unsentOfAccount(account);
        this.set(total);
      },
    });
    const onPacket = (account: SocketAccount, packet: EnginePacket): void => {
      const options = packet.options;
      let bytes: number;
      if (options !== undefined && options === this.#lastOptions) bytes = this.#lastBytes;
      else {
        bytes = packetBytes(packet);
        if (options?.wsPreEncodedFrame) {
          this.#lastOptions = options;
          this.#lastBytes = bytes;
        }
      }
      account.enqueued += bytes;
      account.headroom -= bytes + FRAME_OVERHEAD;
      // Engine.IO queues the packet right after this event: it is counted as unsent already.
      if (account.headroom < 0) this.#look(account, bytes);
    };
    this.#onPacket = function (packet) {
      const account = this[ACCOUNT];
      if (account) onPacket(account, packet);
    };
    const watched = this.#watched;
    this.#onDisconnect = function () {
      withheld.delete(this);
      watched.delete(this);
      const account = accountOf(this);
      if (account) accounts.delete(account);
    };
    const stallMs = opts.stallMs ?? 30_000;
    this.#stallTimer = setInterval(() => this.#checkStalls(stallMs), Math.min(1_000, Math.max(100, stallMs / 4))).unref();
  }

  /**
   * Sockets the hub must pass to `divert` before a fan-out: over the high-water mark when last
   * measured, holding withheld updates, or being cut. Every other socket is below the high-water mark.
   */
  get watched(): ReadonlySet<Socket> {
    return this.#watched;
  }

  /** Starts counting a socket's outbound bytes; call once, right after it connects. */
  track(socket: Socket): void {
    const conn = socket.conn as AccountedConnection;
    const account: SocketAccount = {
      kind: 'socket',
      socket,
      id: socket.id,
      userId: (socket.data.identity as { userId?: string } | undefined)?.userId,
      enqueued: 0,
      consumedMark: 0,
      emptyAt: -1,
      progressAt: performance.now(),
      closing: false,
      headroom: 0,
      watched: false,
    };
    conn[ACCOUNT] = account;
    this.#accounts.add(account);
    this.#look(account, 0);
    conn.on('packetCreate', this.#onPacket);
    // `on`, not `once`: a socket disconnects once, and `once` would wrap the shared listener in a closure.
    socket.on('disconnect', this.#onDisconnect);
  }

  /** Starts the account of an SSE stream; every write to it goes through the returned budget. */
  trackStream(res: ServerResponse, id: string, userId: string): StreamBudget {
    const account: StreamAccount = {
      kind: 'sse',
      res,
      id,
      userId,
      enqueued: 0,
      consumedMark: 0,
      emptyAt: -1,
      progressAt: performance.now(),
      closing: false,
    };
    this.#accounts.add(account);
    res.once('close', () => this.#accounts.delete(account));
    return {
      write: (text) => {
        if (account.closing || res.writableEnded || res.destroyed) return false;
        const bytes = Buffer.byteLength(text);
        if (res.writableLength + bytes > this.#opts.limitBytes) {
          this.#cutStream(account, false);
          return false;
        }
        account.enqueued += bytes;
        res.write(text);
        return true;
      },
    };
  }

  /** Bytes queued for `socket` that the peer has not taken yet. */
  unsentBytes(socket: Socket): number {
    return unsentOf(socket.conn);
  }

  /**
   * Asked before a request is served: over the high-water mark it is refused with the retryable
   * `send_backlog`, so what a client asks for cannot grow a backlog it is not reading.
   */
  admit(socket: Socket): void {
    const unsent = this.unsentBytes(socket);
    if (unsent <= this.#opts.highWaterBytes) return;
    this.#backlogRefusals.inc();
    throw new ProtocolError(
      'send_backlog',
      `${unsent} bytes are waiting to be sent to this connection (high-water mark ${this.#opts.highWaterBytes}); read them, then retry after ${BACKLOG_RETRY_MS} ms`,
      BACKLOG_RETRY_MS,
    );
  }

  /** Sends something the client asked for (replay page, snapshot) — unless the socket is being cut. */
  sendDirect(socket: Socket, envelope: Envelope): void {
    if (accountOf(socket)?.closing) return;
    const offset = this.#opts.offsets?.deliver(socket, envelope) ?? null;
    if (offset === null) socket.emit(envelope.type, envelope);
    else socket.emit(envelope.type, envelope, offset);
  }

  /** The hub asks before each live fan-out to a watched socket; true means "skip this socket, handled here". */
  divert(member: RoomMember, envelope: DurableEnvelope): boolean {
    const socket = member.socket;
    if (!socket) return false;
    const account = accountOf(socket);
    if (account?.closing) return true;
    const unsent = this.unsentBytes(socket);
    if (unsent > this.#opts.limitBytes) {
      if (account) this.#closeSlowConsumer(account, false);
      return true;
    }
    const withheld = this.#withheld.get(socket);
    if (COALESCIBLE_TYPES.has(envelope.type)) {
      if (unsent > this.#opts.highWaterBytes) {
        if (withheld) withheld.set(envelope.room, envelope);
        else this.#withheld.set(socket, new Map([[envelope.room, envelope]]));
        if (account) this.#watch(account);
        this.#coalesced.inc();
        this.#drainTimer ??= setInterval(() => this.#releaseDrained(), this.#opts.drainCheckMs ?? 50).unref();
        return true;
      }
      if (withheld?.delete(envelope.room)) {
        // Drained with updates still withheld: this envelope is newer than them, so it goes as the reset.
        if (withheld.size === 0) this.#withheld.delete(socket);
        this.#sendLatest(socket, envelope);
        if (account) this.#settle(account);
        return true;
      }
    }
    if (account) this.#settle(account);
    return false;
  }

  stop(): void {
    if (this.#drainTimer) clearInterval(this.#drainTimer);
    this.#drainTimer = null;
    clearInterval(this.#stallTimer);
    this.#withheld.clear();
  }

  /**
   * Measures a socket's unsent bytes, `pending` being the packet about to be queued (its headroom ran
   * out): past the high-water mark it is watched, past the limit cut.
   */
  #look(account: SocketAccount, pending: number): void {
    const { highWaterBytes, limitBytes } = this.#opts;
    const unsent = unsentOf(account.socket.conn) + pending;
    if (unsent > highWaterBytes) {
      this.#watch(account);
      account.headroom = limitBytes - unsent;
      // The backstop for every writer that does not ask first (acks, broadcasts, control messages):
      // the packet being created still goes out, the cut follows right after it, in order.
      if (unsent > limitBytes && !account.closing) {
        account.closing = true;
        queueMicrotask(() => this.#closeSlowConsumer(account, false));
      }
    } else account.headroom = highWaterBytes - unsent;
  }

  #watch(account: SocketAccount): void {
    if (account.watched) return;
    account.watched = true;
    this.#watched.add(account.socket);
  }

  /** Stops watching a socket back under the high-water mark with nothing withheld. */
  #settle(account: SocketAccount): void {
    if (!account.watched || account.closing || this.#withheld.has(account.socket)) return;
    const unsent = unsentOf(account.socket.conn);
    if (unsent > this.#opts.highWaterBytes) return;
    account.watched = false;
    this.#watched.delete(account.socket);
    account.headroom = this.#opts.highWaterBytes - unsent;
  }

  #sendLatest(socket: Socket, latest: DurableEnvelope): void {
    // Withheld while the socket was in the room; it may have left since.
    if (!socket.rooms.has(latest.room)) return;
    const { value } = latest.payload as { value: number };
    this.sendDirect(socket, controlEnvelope('room:reset', latest.room, { snapshot: { state: { value }, recent: [] } }, latest.seq));
  }

  #releaseDrained(): void {
    for (const [socket, withheld] of this.#withheld) {
      const account = accountOf(socket);
      if (!socket.connected || account?.closing) {
        this.#withheld.delete(socket);
      } else if (this.unsentBytes(socket) <= this.#opts.highWaterBytes) {
        this.#withheld.delete(socket);
        for (const latest of withheld.values()) this.#sendLatest(socket, latest);
        if (account) this.#settle(account);
      }
    }
    if (this.#withheld.size === 0 && this.#drainTimer) {
      clearInterval(this.#drainTimer);
      this.#drainTimer = null;
    }
  }

  /** The peer took bytes since the last look (or has nothing waiting): progress; else, past `stallMs`, cut. */
  #checkStalls(stallMs: number): void {
    const now = performance.now();
    for (const account of this.#accounts) {
      // Most connections are idle: skip them without touching their transport.
      if (account.enqueued === account.emptyAt) {
        account.progressAt = now;
        continue;
      }
      const unsent = unsentOfAccount(account);
      const consumed = account.enqueued - unsent;
      if (unsent === 0 || consumed > account.consumedMark) {
        account.consumedMark = consumed;
        account.emptyAt = unsent === 0 ? account.enqueued : -1;
        account.progressAt = now;
        if (account.kind === 'socket') this.#settle(account);
      } else if (now - account.progressAt > stallMs) {
        account.progressAt = now;
        if (account.kind === 'socket') this.#closeSlowConsumer(account, true);
        else this.#cutStream(account, true);
      }
    }
  }

  #cutStream(account: StreamAccount, stalled: boolean): void {
    if (account.closing && !stalled) return;
    account.closing = true;
    const { res } = account;
    this.#slowConsumers.inc({ kind: 'sse', why: stalled ? 'stalled' : 'limit' });
    this.#opts.log.warn({ stream: account.id, userId: account.userId, unsent: res.writableLength, limit: this.#opts.limitBytes, stalled }, 'slow consumer: ending the SSE stream; the browser resumes with Last-Event-ID');
    // end() would wait for a reader that stopped reading; destroy frees the buffer now.
    res.destroy();
  }

  #closeSlowConsumer(account: SocketAccount, stalled: boolean): void {
    const { socket } = account;
    const alreadyClosing = account.closing;
    account.closing = true;
    this.#watch(account);
    this.#withheld.delete(socket);
    const unsent = this.unsentBytes(socket);
    if (stalled) {
      this.#slowConsumers.inc({ kind: 'socket', why: 'stalled' });
      this.#opts.log.warn({ socket: socket.id, userId: account.userId, unsent }, 'slow consumer: the peer took nothing for SLOW_CONSUMER_STALL_MS; dropping the connection');
      forceClose(socket.conn);
      return;
    }
    // The backstop in #look marks the account first and cuts a moment later.
    if (alreadyClosing && this.#cutSockets.has(socket)) return;
    this.#cutSockets.add(socket);
    this.#slowConsumers.inc({ kind: 'socket', why: 'limit' });
    this.#opts.log.warn({ socket: socket.id, userId: account.userId, unsent, limit: this.#opts.limitBytes }, 'slow consumer: closing the connection; the client resumes by seq');
    // Engine.IO still accepts this one packet: the account is closing, nothing else is queued.
    socket.emit(
      'connection:closing',
      controlEnvelope('connection:closing', null, {
        reason: 'slow_consumer',
        message: `more than ${this.#opts.limitBytes} bytes were waiting to be sent to this connection; reconnect and resume from your last seq`,
        reconnect: true,
      }),
    );
    // Not discarded: what is queued (a contiguous prefix of every room) still goes out, then the
    // transport closes; Engine.IO queues nothing more meanwhile, so memory stays at the limit. A peer
    // that never reads again is dropped by the stall check (SLOW_CONSUMER_STALL_MS).
    socket.conn.close();
  }

  readonly #cutSockets = new WeakSet<Socket>();
}

function unsentOfAccount(account: Account): number {
  return account.kind === 'socket' ? unsentOf(account.socket.conn) : account.res.writableLength;
}

/** Drops a connection now, buffers and all (a stalled peer would never let a graceful close finish). */
function forceClose(conn: EngineConnection): void {
  const transport = conn.transport as unknown as { name: string; socket?: { terminate?: () => void } };
  if (transport.name === 'websocket' && transport.socket?.terminate) {
    transport.socket.terminate();
    return;
  }
  // Engine.IO's own "transport is gone" path: clears the write buffer and closes the socket.
  (conn as unknown as { onClose(reason: string): void }).onClose('forced close');
}
