import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backplane } from '../../app/gateway/backplane/backplane.ts';
import { createRedisBackplane } from '../../app/gateway/backplane/redis.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

// The publish script on a real redis-server: what each publish leaves in Redis (seq, bounded history,
// TTLs, counter state) — the contract the trimmed command list (docs/benchmarks.md) must keep.
describe('Redis publish script', () => {
  let backplane: Backplane;
  let redis: Redis;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    const [server, stop] = await startRedis();
    cleanups.push(stop);
    backplane = createRedisBackplane({ url: server.url, keyPrefix: 'ps', historySize: 20, historyTtlSeconds: 600, name: 'publish-script' });
    cleanups.push(() => backplane.close());
    redis = new Redis(server.url);
    cleanups.push(async () => void redis.disconnect());
    await waitFor('backplane ready', () => backplane.isReady());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('starts a room at a clock-derived seq, keeps seqs contiguous and the history at historySize, with TTLs', async () => {
    const room = 'chat:script';
    const before = Date.now() * 1000;
    const seqs: number[] = [];
    for (let i = 0; i < 25; i += 1) seqs.push((await backplane.publish({ room, type: 'chat:message', payload: { text: `m${i}` }, from: 'u' })).seq);
    expect(seqs[0]).toBeGreaterThan(before);
    expect(seqs.every((seq, i) => i === 0 || seq === seqs[i - 1]! + 1)).toBe(true);
    expect(await redis.llen(`ps:{${room}}:hist`)).toBe(20);
    const newest = JSON.parse((await redis.lindex(`ps:{${room}}:hist`, 0))!) as { seq: number; payload: { text: string } };
    expect(newest).toMatchObject({ seq: seqs[24], payload: { text: 'm24' } });
    for (const key of [`ps:{${room}}:seq`, `ps:{${room}}:hist`]) expect(await redis.ttl(key), key).toBeGreaterThan(590);
    // A chat room has no state key.
    expect(await redis.exists(`ps:{${room}}:state`)).toBe(0);
    const history = await backplane.history(room, seqs[19]!, 50);
    expect(history).toMatchObject({ mode: 'replay', seq: seqs[24] });
  });

  it('keeps a counter room\'s state with the same TTL', async () => {
    const room = 'counter:script';
    await backplane.publish({ room, type: 'counter:changed', counterBy: 2, from: 'u' });
    const second = await backplane.publish({ room, type: 'counter:changed', counterBy: 3, from: 'u' });
    expect(second.payload).toMatchObject({ value: 5, by: 3 });
    expect(await redis.ttl(`ps:{${room}}:state`)).toBeGreaterThan(590);
    expect(await backplane.readCounter(room)).toEqual({ value: 5, seq: second.seq });
  });
});
