import type { Socket } from 'socket.io';
import { Counter, Gauge, type Registry } from 'prom-client';
import { controlEnvelope, type DurableEnvelope, type Envelope } from '../protocol/index.ts';
import type { Logger } from './logger.ts';
import type { OffsetSource } from './recovery.ts';
import type { OutboundGate, RoomMember } from './room-hub.ts';

/** Durable types for which only the latest value matters, so a congested socket may skip ahead. */
const COALESCIBLE_TYPES: ReadonlySet<string> = new Set(['counter:changed']);

export interface BackpressureOptions {
  /** Unsent bytes past which coalescible updates are coalesced for a socket. */
  readonly highWaterBytes: number;
  /** Unsent bytes past which a socket is closed with `slow_consumer`. */
  readonly limitBytes: number;
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

/**
 * Outbound backpressure. Engine.IO's write buffer is unbounded (socketio/engine.io#420), so a socket
 * that stops reading would grow the process until it dies. This bounds it:
 *
 * - unsent bytes = Engine.IO's write buffer (counted as packets enter and leave it) plus what the
 *   WebSocket transport has handed to `ws` but the kernel has not taken (`ws.bufferedAmount`);
 * - past the high-water mark, coalescible updates (the counter) are withheld from the socket, and
 *   once it drains it gets one `room:reset` carrying the latest value and its seq — the protocol's
 *   way of saying "continue from here", so the client's seq bookkeeping has no gap to fetch;
 * - past the hard limit, the socket gets `connection:closing {reason: slow_consumer, reconnect:
 *   true}` and its transport is closed after what is already queued (nothing more is queued), so
 *   the client receives a contiguous prefix, reconnects and resumes from its last seq.
 *
 * Replays and snapshots a client asked for (`sendDirect`) raise that socket's limit by their size
 * until it drains below the high-water mark, so a large resume is not mistaken for a slow consumer.
 */
export class Backpressure implements OutboundGate {
  readonly #opts: BackpressureOptions;
  readonly #engineBytes = new WeakMap<EngineConnection, number>();
  readonly #allowance = new WeakMap<Socket, number>();
  readonly #closing = new WeakSet<Socket>();
  /** Sockets holding withheld updates: the latest envelope per room. */
  readonly #withheld = new Map<Socket, Map<string, DurableEnvelope>>();
  #drainTimer: NodeJS.Timeout | null = null;
  readonly #coalesced: Counter;
  readonly #slowConsumers: Counter;

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
      help: 'Sockets closed with slow_consumer because their unsent bytes passed the hard limit.',
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
  }

  /** Starts counting a socket's Engine.IO write buffer; call once, right after it connects. */
  track(socket: Socket): void {
    const conn = socket.conn;
    this.#engineBytes.set(conn, 0);
    conn.on('packetCreate', (packet: EnginePacket) => {
      this.#engineBytes.set(conn, (this.#engineBytes.get(conn) ?? 0) + packetBytes(packet));
    });
    conn.on('flush', (flushed: readonly EnginePacket[]) => {
      let bytes = 0;
      for (const packet of flushed) bytes += packetBytes(packet);
      this.#engineBytes.set(conn, Math.max(0, (this.#engineBytes.get(conn) ?? 0) - bytes));
    });
    socket.once('disconnect', () => this.#withheld.delete(socket));
  }

  /** Bytes queued for `socket` that the peer has not taken yet. */
  unsentBytes(socket: Socket): number {
    const conn = socket.conn;
    const transport = conn.transport as unknown as { name: string; socket?: { bufferedAmount?: number } };
    const inTransport = transport.name === 'websocket' ? (transport.socket?.bufferedAmount ?? 0) : 0;
    return (this.#engineBytes.get(conn) ?? 0) + inTransport;
  }

  /** Sends something the client asked for (replay, snapshot): its size raises the socket's limit. */
  sendDirect(socket: Socket, envelope: Envelope): void {
    const before = this.unsentBytes(socket);
    const offset = this.#opts.offsets?.deliver(socket, envelope) ?? null;
    if (offset === null) socket.emit(envelope.type, envelope);
    else socket.emit(envelope.type, envelope, offset);
    const added = this.unsentBytes(socket) - before;
    if (added > 0) this.#allowance.set(socket, (this.#allowance.get(socket) ?? 0) + added);
  }

  /** The hub asks before each live fan-out; true means "skip this socket, handled here". */
  divert(member: RoomMember, envelope: DurableEnvelope): boolean {
    const socket = member.socket;
    if (!socket) return false;
    if (this.#closing.has(socket)) return true;
    const unsent = this.unsentBytes(socket);
    if (unsent <= this.#opts.highWaterBytes) this.#allowance.delete(socket);
    if (unsent > this.#opts.limitBytes + (this.#allowance.get(socket) ?? 0)) {
      this.#closeSlowConsumer(socket, unsent);
      return true;
    }
    if (!COALESCIBLE_TYPES.has(envelope.type)) return false;
    const withheld = this.#withheld.get(socket);
    if (unsent > this.#opts.highWaterBytes) {
      if (withheld) withheld.set(envelope.room, envelope);
      else this.#withheld.set(socket, new Map([[envelope.room, envelope]]));
      this.#coalesced.inc();
      this.#drainTimer ??= setInterval(() => this.#releaseDrained(), this.#opts.drainCheckMs ?? 50).unref();
      return true;
    }
    if (withheld?.delete(envelope.room)) {
      // Drained with updates still withheld: this envelope is newer than them, so it goes as the reset.
      if (withheld.size === 0) this.#withheld.delete(socket);
      this.#sendLatest(socket, envelope);
      return true;
    }
    return false;
  }

  stop(): void {
    if (this.#drainTimer) clearInterval(this.#drainTimer);
    this.#drainTimer = null;
    this.#withheld.clear();
  }

  #sendLatest(socket: Socket, latest: DurableEnvelope): void {
    // Withheld while the socket was in the room; it may have left since.
    if (!socket.rooms.has(latest.room)) return;
    const { value } = latest.payload as { value: number };
    this.sendDirect(socket, controlEnvelope('room:reset', latest.room, { snapshot: { state: { value }, recent: [] } }, latest.seq));
  }

  #releaseDrained(): void {
    for (const [socket, withheld] of this.#withheld) {
      if (!socket.connected || this.#closing.has(socket)) {
        this.#withheld.delete(socket);
      } else if (this.unsentBytes(socket) <= this.#opts.highWaterBytes) {
        this.#withheld.delete(socket);
        for (const latest of withheld.values()) this.#sendLatest(socket, latest);
      }
    }
    if (this.#withheld.size === 0 && this.#drainTimer) {
      clearInterval(this.#drainTimer);
      this.#drainTimer = null;
    }
  }

  #closeSlowConsumer(socket: Socket, unsent: number): void {
    this.#closing.add(socket);
    this.#withheld.delete(socket);
    this.#slowConsumers.inc();
    this.#opts.log.warn({ socket: socket.id, userId: (socket.data.identity as { userId?: string } | undefined)?.userId, unsent, limit: this.#opts.limitBytes }, 'slow consumer: closing the connection; the client resumes by seq');
    socket.emit(
      'connection:closing',
      controlEnvelope('connection:closing', null, {
        reason: 'slow_consumer',
        message: `more than ${this.#opts.limitBytes} bytes were waiting to be sent to this connection; reconnect and resume from your last seq`,
        reconnect: true,
      }),
    );
    // Not discarded: what is queued (a contiguous prefix of every room) still goes out, then the
    // transport closes; Engine.IO queues nothing more meanwhile, so memory stays at the limit.
    // A peer that never reads again is dropped by the heartbeat (pingInterval + pingTimeout).
    socket.conn.close();
  }
}
