import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import { createRedisBackplane } from '../../app/gateway/backplane/redis.ts';
import type { Logger } from '../../app/gateway/logger.ts';
import { createMetrics } from '../../app/gateway/metrics.ts';
import { RoomHub, type RoomMember } from '../../app/gateway/room-hub.ts';
import { connectClient } from '../helpers/clients.ts';
import { startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';
import { hs256Token, TEST_SECRET } from '../helpers/tokens.ts';

// The room hub on the real Redis backplane when connections drop, joins fail and members come and go.
const silent = { warn() {}, info() {}, debug() {}, error() {} } as unknown as Logger;
const broadcast = { except: () => broadcast, emit: () => true };
const io = { local: { to: () => broadcast } } as never;

describe('room hub recovery on real Redis', () => {
  const cleanups: (() => unknown)[] = [];
  let redisUrl: string;
  let admin: Redis;

  beforeAll(async () => {
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    redisUrl = redis.url;
    admin = new Redis(redisUrl);
    cleanups.push(() => admin.disconnect());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function hubOn(name: string, wrap: (b: Backplane) => Backplane = (b) => b): Promise<[RoomHub, Backplane]> {
    const backplane = createRedisBackplane({ url: redisUrl, name });
    cleanups.push(() => backplane.close());
    await waitFor(`${name} backplane ready`, () => backplane.isReady());
    return [new RoomHub({ io, backplane: wrap(backplane), metrics: createMetrics(), log: silent }), backplane];
  }
  const killConnection = async (name: string) => {
    const list = (await admin.client('LIST')) as string;
    for (const line of list.split('\n').filter((l) => l.includes(`name=${name} `))) await admin.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!);
  };
  const member = (id: string, seqs: number[]): RoomMember => ({ id, send: (e) => void (e.type === 'chat:message' && seqs.push(e.seq!)) });

  it('delivers what was published while its subscriber reconnected, without waiting for the next message', async () => {
    const [publisher, stopPublisher] = await startPublisher(redisUrl);
    cleanups.push(stopPublisher);
    const [hub, backplane] = await hubOn('quiet');
    const seqs: number[] = [];
    await hub.join(member('sse-quiet', seqs), 'chat:quiet', null);
    const first = await publisher.publish({ room: 'chat:quiet', type: 'chat:message', payload: { text: '1' }, from: 'x' });
    await waitFor('the first message', () => seqs.includes(first.seq));
    await killConnection('quiet-backplane-sub');
    const missed = await publisher.publish({ room: 'chat:quiet', type: 'chat:message', payload: { text: '2' }, from: 'x' });
    await waitFor('the backplane to reconnect', () => backplane.isReady());
    await waitFor('the message published during the reconnect', () => seqs.includes(missed.seq), 5_000);
    expect(seqs).toEqual([first.seq, missed.seq]);
  });

  it('leaves no Redis subscription behind after a failed join or a leave during a reconnect', async () => {
    let failHistory = true;
    const [hub, backplane] = await hubOn('leaky', (b) => ({
      ...b,
      history: (...args: Parameters<Backplane['history']>) => (failHistory ? Promise.reject(new Error('history timed out')) : b.history(...args)),
    }));
    const m = member('sse-leaky', []);
    await expect(hub.join(m, 'chat:failed-join', null)).rejects.toThrow('history timed out');
    failHistory = false;
    await hub.join(m, 'chat:left-offline', null);
    await killConnection('leaky-backplane-sub');
    hub.leave(m, 'chat:left-offline');
    await waitFor('the backplane to reconnect', () => backplane.isReady());
    // ioredis restores its subscriptions just after reconnecting; give it that moment, then look.
    await new Promise((r) => setTimeout(r, 500));
    const channels = (await admin.pubsub('CHANNELS', '*')) as string[];
    expect(channels.filter((c) => c.includes('failed-join') || c.includes('left-offline'))).toEqual([]);
    expect(hub.rooms).toEqual([]);
  });

  it('recounts room members after a client disconnects', async () => {
    const [gateway, stop] = await startGateway({ env: { ADAPTER: 'memory' } });
    cleanups.push(stop);
    const [a, closeA] = await connectClient(gateway.url, { userId: 'a' });
    const [b, closeB] = await connectClient(gateway.url, { userId: 'b' });
    cleanups.push(closeA, closeB);
    const counts = () => a.control.filter((e) => e.type === 'room:members').map((e) => (e.payload as { count: number }).count);
    await a.request('room:join', { room: 'chat:count' });
    await b.request('room:join', { room: 'chat:count' });
    await waitFor('a count of 2', () => counts().at(-1) === 2);
    closeB();
    await waitFor('a count of 1 after the disconnect', () => counts().at(-1) === 1, 5_000);
  });

  it('keeps an SSE stream open for a token that expires in 30 days', async () => {
    const [gateway, stop] = await startGateway({ env: { ADAPTER: 'memory', AUTH_MODE: 'jwt', JWT_SECRET: TEST_SECRET } });
    cleanups.push(stop);
    const token = await hs256Token({ sub: 'long', expiresIn: 30 * 86_400 });
    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/sse?room=chat:long`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const ended = (async () => {
      for (;;) if ((await reader.read()).done) return true;
    })().catch(() => false);
    expect(await Promise.race([ended, new Promise((r) => setTimeout(() => r('open'), 1_500))])).toBe('open');
    controller.abort();
  });
});
