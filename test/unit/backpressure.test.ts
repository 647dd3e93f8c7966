import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Socket } from 'socket.io';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Backpressure } from '../../app/gateway/backpressure.ts';
import type { RoomMember } from '../../app/gateway/room-hub.ts';
import { type DurableEnvelope, type Envelope, PROTOCOL_VERSION } from '../../app/protocol/index.ts';

const HIGH_WATER = 1_000;
const LIMIT = 5_000;

interface FakePacket {
  readonly data?: string | Buffer;
  readonly options?: { wsPreEncodedFrame?: Buffer[] };
}

/**
 * Just enough of an Engine.IO connection: `write` emits packetCreate and queues the packet in its write
 * buffer, as Engine.IO does; `flush` hands queued packets to the ws transport (its bufferedAmount, plus
 * a frame header per packet that was not pre-encoded); the test lowers bufferedAmount as the peer reads.
 */
class FakeConnection extends EventEmitter {
  readonly transport = {
    name: 'websocket',
    socket: {
      buffered: 0,
      /** How often the gateway read bufferedAmount. */
      reads: 0,
      get bufferedAmount(): number {
        this.reads += 1;
        return this.buffered;
      },
      set bufferedAmount(bytes: number) {
        this.buffered = bytes;
      },
    },
  };
  writeBuffer: FakePacket[] = [];
  closed = false;
  write(packet: FakePacket): void {
    if (this.closed) return; // Engine.IO queues nothing once closing
    this.emit('packetCreate', packet);
    this.writeBuffer.push(packet);
  }
  flush(count = this.writeBuffer.length): void {
    for (const packet of this.writeBuffer.splice(0, count)) {
      const frame = packet.options?.wsPreEncodedFrame;
      this.transport.socket.buffered += frame ? frame.reduce((n, part) => n + part.byteLength, 0) : Buffer.byteLength(packet.data ?? '') + 1 + 10;
    }
  }
  close(): void {
    this.closed = true;
  }
}

function fakeSocket(id: string, rooms: string[]) {
  const conn = new FakeConnection();
  const sent: Envelope[] = [];
  const socket = {
    id,
    conn,
    connected: true,
    rooms: new Set([id, ...rooms]),
    data: {},
    on: () => socket,
    emit(_type: string, envelope: Envelope) {
      sent.push(envelope);
      conn.write({ data: `42${JSON.stringify(['x', envelope])}` });
      return true;
    },
  };
  return { socket: socket as unknown as Socket, conn, sent, member: { id, socket: socket as unknown as Socket, send: () => {} } as RoomMember };
}

let seq = 100;
const counterChanged = (room: string, value: number): DurableEnvelope => ({
  v: PROTOCOL_VERSION, type: 'counter:changed', room, seq: ++seq, payload: { value, by: 1, from: 'u' }, ts: 0,
});
const chatMessage = (room: string): DurableEnvelope => ({ v: PROTOCOL_VERSION, type: 'chat:message', room, seq: ++seq, payload: { from: 'u', text: 'hi' }, ts: 0 });

describe('Backpressure', () => {
  let registry: Registry;
  let backpressure: Backpressure;
  const metric = async (name: string): Promise<number> => (await registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0;

  beforeEach(() => {
    vi.useFakeTimers();
    registry = new Registry();
    backpressure = new Backpressure({ highWaterBytes: HIGH_WATER, limitBytes: LIMIT, registry, log: pino({ level: 'silent' }), drainCheckMs: 10 });
  });
  afterEach(() => {
    backpressure.stop();
    vi.useRealTimers();
  });

  it('counts unsent bytes from the Engine.IO write buffer and the WebSocket transport', () => {
    const { socket, conn } = fakeSocket('s1', []);
    backpressure.track(socket);
    conn.write({ data: 'x'.repeat(99) });
    conn.write({ data: Buffer.alloc(49) });
    expect(backpressure.unsentBytes(socket)).toBe(150);
    conn.flush(1); // 100 bytes and a frame header now in ws
    expect(backpressure.unsentBytes(socket)).toBe(160);
    conn.transport.socket.buffered -= 80; // the kernel took 80
    expect(backpressure.unsentBytes(socket)).toBe(80);
  });

  it('lets everything through below the high-water mark', () => {
    const { socket, member } = fakeSocket('s1', ['counter:c']);
    backpressure.track(socket);
    expect(backpressure.divert(member, counterChanged('counter:c', 1))).toBe(false);
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(false);
  });

  it('withholds counter updates past the high-water mark and sends the latest as a room:reset once drained', async () => {
    const { socket, conn, sent, member } = fakeSocket('s1', ['counter:c', 'chat:a']);
    backpressure.track(socket);
    conn.transport.socket.bufferedAmount = HIGH_WATER + 1;
    const updates = [1, 2, 3].map((value) => counterChanged('counter:c', value));
    expect(updates.map((u) => backpressure.divert(member, u))).toEqual([true, true, true]);
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(false); // not coalescible
    expect(await metric('rt_coalesced_updates_total')).toBe(3);
    vi.advanceTimersByTime(50);
    expect(sent).toEqual([]); // still congested

    conn.transport.socket.bufferedAmount = 0;
    vi.advanceTimersByTime(10);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ type: 'room:reset', room: 'counter:c', seq: updates[2]!.seq, payload: { snapshot: { state: { value: 3 }, recent: [] } } });
  });

  it('sends the next update as the reset when it comes before the drain check', () => {
    const { socket, conn, sent, member } = fakeSocket('s1', ['counter:c']);
    backpressure.track(socket);
    conn.transport.socket.bufferedAmount = HIGH_WATER + 1;
    backpressure.divert(member, counterChanged('counter:c', 1));
    conn.transport.socket.bufferedAmount = 0;
    const next = counterChanged('counter:c', 2);
    expect(backpressure.divert(member, next)).toBe(true);
    expect(sent).toEqual([expect.objectContaining({ type: 'room:reset', seq: next.seq })]);
    vi.advanceTimersByTime(100);
    expect(sent).toHaveLength(1);
    expect(backpressure.divert(member, counterChanged('counter:c', 3))).toBe(false);
  });

  it('drops what it withheld for a room the socket has left', () => {
    const { socket, conn, sent, member } = fakeSocket('s1', ['counter:c']);
    backpressure.track(socket);
    conn.transport.socket.bufferedAmount = HIGH_WATER + 1;
    backpressure.divert(member, counterChanged('counter:c', 1));
    socket.rooms.delete('counter:c');
    conn.transport.socket.bufferedAmount = 0;
    vi.advanceTimersByTime(20);
    expect(sent).toEqual([]);
  });

  it('past the limit sends connection:closing slow_consumer, closes the transport gracefully, and skips the socket after', async () => {
    const { socket, conn, sent, member } = fakeSocket('s1', ['chat:a']);
    backpressure.track(socket);
    conn.transport.socket.bufferedAmount = LIMIT + 1;
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(true);
    expect(sent).toEqual([expect.objectContaining({ type: 'connection:closing', payload: expect.objectContaining({ reason: 'slow_consumer', reconnect: true }) })]);
    expect(conn.closed).toBe(true);
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(true);
    expect(sent).toHaveLength(1);
    expect(await metric('rt_slow_consumer_disconnections_total')).toBe(1);
  });

  it('cuts a connection that any write pushes past the limit (acks, replies, control messages), right after that write', async () => {
    const { socket, conn, sent } = fakeSocket('s1', ['chat:a']);
    backpressure.track(socket);
    const reply: Envelope = { ...chatMessage('chat:a'), payload: { from: 'u', text: 'r'.repeat(LIMIT * 2) } };
    backpressure.sendDirect(socket, reply);
    expect(conn.closed).toBe(false); // the write in progress goes out first, in order
    await Promise.resolve();
    expect(conn.closed).toBe(true);
    expect(sent.map((e) => e.type)).toEqual(['chat:message', 'connection:closing']);
    backpressure.sendDirect(socket, chatMessage('chat:a'));
    expect(sent).toHaveLength(2); // nothing more is queued for it
    expect(await metric('rt_slow_consumer_disconnections_total')).toBe(1);
  });

  it('refuses requests over the high-water mark with the retryable send_backlog, never below it', async () => {
    const { socket, conn } = fakeSocket('s1', []);
    backpressure.track(socket);
    expect(() => backpressure.admit(socket)).not.toThrow();
    conn.transport.socket.bufferedAmount = HIGH_WATER + 1;
    expect(() => backpressure.admit(socket)).toThrow(expect.objectContaining({ code: 'send_backlog', retryAfterMs: expect.any(Number) }));
    expect(await metric('rt_send_backlog_refusals_total')).toBe(1);
  });

  it('drops a connection whose unsent bytes the peer has not touched for stallMs, heartbeats or not', async () => {
    backpressure.stop();
    backpressure = new Backpressure({ highWaterBytes: HIGH_WATER, limitBytes: LIMIT, stallMs: 2_000, registry: new Registry(), log: pino({ level: 'silent' }) });
    const stalled = fakeSocket('stalled', []);
    const reading = fakeSocket('reading', []);
    let terminated = 0;
    Object.assign(stalled.conn.transport.socket, { terminate: () => (terminated += 1) });
    Object.assign(reading.conn.transport.socket, { terminate: () => (terminated += 100) });
    backpressure.track(stalled.socket);
    backpressure.track(reading.socket);
    for (const { conn } of [stalled, reading]) {
      conn.write({ data: 'x'.repeat(800) });
      conn.flush();
    }
    // The reader takes a little every second (while more keeps coming); the stalled peer takes nothing.
    for (let second = 0; second < 4; second += 1) {
      reading.conn.write({ data: 'y'.repeat(99) });
      reading.conn.flush();
      reading.conn.transport.socket.buffered -= 50;
      vi.advanceTimersByTime(1_000);
    }
    expect(terminated).toBe(1);
  });

  it('skips idle connections in the stall check yet still cuts one that stalls after a long idle spell, stallMs after it stalled', () => {
    backpressure.stop();
    backpressure = new Backpressure({ highWaterBytes: HIGH_WATER, limitBytes: LIMIT, stallMs: 2_000, registry: new Registry(), log: pino({ level: 'silent' }) });
    const { socket, conn } = fakeSocket('idle-then-stalled', []);
    let terminated = 0;
    Object.assign(conn.transport.socket, { terminate: () => (terminated += 1) });
    backpressure.track(socket);
    vi.advanceTimersByTime(1_000);
    const readsWhenIdle = conn.transport.socket.reads;
    vi.advanceTimersByTime(10_000); // idle: nothing queued, nothing to look at
    expect(conn.transport.socket.reads).toBe(readsWhenIdle);
    conn.write({ data: 'x'.repeat(800) });
    conn.flush();
    vi.advanceTimersByTime(1_500);
    expect(terminated).toBe(0); // the idle spell did not count towards the stall
    vi.advanceTimersByTime(2_000);
    expect(terminated).toBe(1);
  });

  it('watches a socket exactly when its unsent bytes pass the high-water mark, measuring them rarely', () => {
    const { socket, conn, member } = fakeSocket('s1', ['chat:a']);
    backpressure.track(socket);
    // The peer reads nothing: every packet grows its backlog (half queued in Engine.IO, half in ws).
    for (let i = 0; i < 60; i += 1) {
      conn.write({ data: 'x'.repeat(19 + (i % 7)) });
      if (i % 2 === 1) conn.flush();
      expect(backpressure.watched.has(socket)).toBe(backpressure.unsentBytes(socket) > HIGH_WATER);
    }
    expect(backpressure.watched.has(socket)).toBe(true);
    const looks = conn.transport.socket.reads - 60 * 2; // minus the test's own two unsentBytes calls per packet
    expect(looks).toBeLessThan(10);
    // Read everything: the next look (divert, or the stall check) stops watching it.
    conn.flush();
    conn.transport.socket.bufferedAmount = 0;
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(false);
    expect(backpressure.watched.has(socket)).toBe(false);
  });

  it('cuts a socket that never reads on broadcast packets alone, without anyone asking (no divert, no admit)', async () => {
    const { socket, conn, sent } = fakeSocket('s1', ['chat:a']);
    backpressure.track(socket);
    // A room broadcast: one pre-encoded frame shared by every recipient's packet.
    const options = { wsPreEncodedFrame: [Buffer.alloc(2), Buffer.alloc(98)] };
    let packets = 0;
    while (!conn.closed && packets < 1_000) {
      conn.write({ data: 'x'.repeat(97), options });
      conn.flush();
      packets += 1;
      await Promise.resolve();
    }
    expect(conn.closed).toBe(true);
    expect(packets).toBe(Math.floor(LIMIT / 100) + 1); // the first packet past the limit is the last
    expect(sent).toEqual([expect.objectContaining({ type: 'connection:closing', payload: expect.objectContaining({ reason: 'slow_consumer' }) })]);
    expect(await metric('rt_slow_consumer_disconnections_total')).toBe(1);
    expect(backpressure.watched.has(socket)).toBe(true); // until it disconnects
  });

  it('bounds an SSE stream by the same budget: past the limit it is destroyed and counted', async () => {
    const res = Object.assign(new EventEmitter(), {
      writableLength: 0,
      writableEnded: false,
      destroyed: false,
      written: [] as string[],
      write(text: string) {
        this.written.push(text);
        this.writableLength += text.length;
        return true;
      },
      destroy() {
        this.destroyed = true;
      },
    });
    const budget = backpressure.trackStream(res as never, 'sse-1', 'u1');
    expect(budget.write('a'.repeat(LIMIT - 10))).toBe(true);
    expect(budget.write('b'.repeat(20))).toBe(false);
    expect(res.destroyed).toBe(true);
    expect(budget.write('c')).toBe(false);
    expect(res.written).toHaveLength(1);
    expect(await metric('rt_slow_consumer_disconnections_total')).toBe(1);
  });
});
