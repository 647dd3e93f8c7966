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

/** Just enough of a Socket.IO socket: an Engine.IO connection that emits packetCreate/flush, a ws transport. */
class FakeConnection extends EventEmitter {
  readonly transport = { name: 'websocket', socket: { bufferedAmount: 0 } };
  closed = false;
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
    once: () => socket,
    emit(_type: string, envelope: Envelope) {
      sent.push(envelope);
      conn.emit('packetCreate', { data: `42${JSON.stringify(['x', envelope])}` });
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
    conn.emit('packetCreate', { data: 'x'.repeat(99) });
    conn.emit('packetCreate', { data: Buffer.alloc(49) });
    expect(backpressure.unsentBytes(socket)).toBe(150);
    conn.emit('flush', [{ data: 'x'.repeat(99) }]);
    conn.transport.socket.bufferedAmount = 100;
    expect(backpressure.unsentBytes(socket)).toBe(150);
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

  it('does not count a replay the client asked for as slowness, until the socket has drained', () => {
    const { socket, conn, member } = fakeSocket('s1', ['chat:a']);
    backpressure.track(socket);
    const replay: Envelope = { ...chatMessage('chat:a'), payload: { from: 'u', text: 'r'.repeat(LIMIT * 2) } };
    backpressure.sendDirect(socket, replay);
    expect(backpressure.unsentBytes(socket)).toBeGreaterThan(LIMIT * 2);
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(false);
    expect(conn.closed).toBe(false);

    // Once drained below the high-water mark the allowance is spent: a real backlog is cut again.
    conn.emit('flush', [{ data: `42${JSON.stringify(['x', replay])}` }]);
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(false);
    conn.transport.socket.bufferedAmount = LIMIT + 1;
    expect(backpressure.divert(member, chatMessage('chat:a'))).toBe(true);
    expect(conn.closed).toBe(true);
  });
});
