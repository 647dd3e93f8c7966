import { describe, expect, it } from 'vitest';
import { createMemoryBackplane } from '../../app/gateway/backplane/memory.ts';
import type { Socket } from 'socket.io';
import type { Logger } from '../../app/gateway/logger.ts';
import { createMetrics } from '../../app/gateway/metrics.ts';
import { encodeOffset, MAX_OFFSET_LENGTH, MAX_SESSION_ROOMS, parseOffset, Recovery } from '../../app/gateway/recovery.ts';
import { type DurableEnvelope, PROTOCOL_VERSION } from '../../app/protocol/index.ts';

describe('recovery offsets', () => {
  it('round-trips positions, with gaps for rooms left or not yet heard from', () => {
    const positions = [1_764_500_000_000_123, null, 42, Number.MAX_SAFE_INTEGER];
    expect(parseOffset(encodeOffset(positions))).toEqual(positions);
    expect(parseOffset(encodeOffset([]))).toEqual([]);
  });

  it('refuses anything this gateway could not have written', () => {
    for (const hostile of [
      undefined,
      42,
      {},
      '',
      'r2.1',
      'r1.-1',
      'r1.1_9',
      'r1.1 ',
      'r1.ABC',
      'r1.zzzzzzzzzzzz', // 12 base-36 digits: past MAX_SAFE_INTEGER
      'r1.zzzzzzzzzzz', // 11 digits, still past it
      `r1${'.1'.repeat(MAX_SESSION_ROOMS + 1)}`,
      `r1.${'1'.repeat(MAX_OFFSET_LENGTH)}`,
      'r1.1\u0000',
    ]) {
      expect(parseOffset(hostile), JSON.stringify(hostile)?.slice(0, 40)).toBeNull();
    }
  });
});

describe('session records (memory backplane)', () => {
  it('only the socket that wrote a session marks or deletes it; a mark keeps it for the TTL', async () => {
    const backplane = createMemoryBackplane();
    await backplane.writeSession('pid-12345678', { sid: 'old', userId: 'u', pod: 'a', rooms: ['chat:x'] }, 60);
    await backplane.writeSession('pid-12345678', { sid: 'new', userId: 'u', pod: 'b', rooms: ['chat:x', 'chat:y'] }, 60);
    await backplane.markSessionDisconnected('pid-12345678', 'old', 1, 60);
    await backplane.deleteSession('pid-12345678', 'old');
    expect(await backplane.readSession('pid-12345678')).toEqual({ sid: 'new', userId: 'u', pod: 'b', rooms: ['chat:x', 'chat:y'] });
    await backplane.markSessionDisconnected('pid-12345678', 'new', 1234, 60);
    expect((await backplane.readSession('pid-12345678'))?.disconnectedAt).toBe(1234);
    await backplane.deleteSession('pid-12345678', 'new');
    expect(await backplane.readSession('pid-12345678')).toBeNull();
  });
});

describe('offsets per delivery', () => {
  const silent = { warn() {}, info() {}, debug() {}, error() {} } as unknown as Logger;
  const envelope = (room: string, seq: number): DurableEnvelope => ({ v: PROTOCOL_VERSION, type: 'chat:message', room, seq, payload: {}, ts: 0 });
  const socket = (n: number) => ({ id: `sid-${n}`, pid: `pid-0000000${n}`, recovered: false, data: {} }) as unknown as Socket;

  it('each socket carries its own position in each of its rooms; sockets in one room only share one string per message', async () => {
    const recovery = new Recovery({ backplane: createMemoryBackplane(), pod: 'p', maxDisconnectionMs: 60_000, log: silent, metrics: createMetrics() });
    const [a, b, c] = [socket(1), socket(2), socket(3)];
    for (const s of [a, b, c]) {
      await recovery.attach(s, 'u');
      await recovery.beforeJoin(s, 'chat:a');
    }
    await recovery.beforeJoin(c, 'chat:b');
    expect(recovery.deliver(a, envelope('chat:a', 5))).toBe(encodeOffset([5]));
    expect(recovery.deliver(b, envelope('chat:a', 5))).toBe(recovery.deliver(a, envelope('chat:a', 5)));
    expect(recovery.deliver(c, envelope('chat:a', 5))).toBe(encodeOffset([5, null]));
    expect(recovery.deliver(c, envelope('chat:b', 9))).toBe(encodeOffset([5, 9]));
    expect(recovery.deliver(a, envelope('chat:b', 9))).toBe(encodeOffset([5]));
    recovery.left(a, 'chat:a');
    expect(recovery.offsetOf(a)).toBe(encodeOffset([null]));
    await recovery.beforeJoin(a, 'chat:a');
    expect(recovery.deliver(a, envelope('chat:a', 7))).toBe(encodeOffset([7]));
    expect(recovery.deliver(b, envelope('chat:a', 6))).toBe(encodeOffset([6]));
    expect(recovery.deliver(a, envelope('chat:a', 7))).toBe(encodeOffset([7]));
    recovery.stop();
  });
});
