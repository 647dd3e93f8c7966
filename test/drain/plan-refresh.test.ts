import { Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DrainStatus } from '../../app/gateway/drain.ts';
import { drainPlanKey } from '../../app/protocol/drain-plan.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';

// A draining gateway reads its drain plan again about once a second (docs/drain.md): a controller that
// re-divides the fleet's reconnect budget rewrites the plan, and the new rate applies mid-drain. A plan
// that disappears or turns malformed changes nothing. Real gateway process, real redis-server, stock
// clients with reconnection off (so every close is the gateway's, counted where it happens).

const ADMIN_TOKEN = 'plan-refresh-admin-token-0123';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface Watched {
  readonly socket: Socket;
  hints: number;
  closedAt: number | null;
}

async function watch(url: string): Promise<Watched> {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const watched: Watched = { socket, hints: 0, closedAt: null };
  socket.on('server:draining', () => (watched.hints += 1));
  socket.on('disconnect', () => (watched.closedAt = Date.now()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return watched;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const closedBetween = (clients: Watched[], from: number, to: number): number => clients.filter((c) => c.closedAt !== null && c.closedAt >= from && c.closedAt < to).length;

describe('the drain plan, re-read while draining', () => {
  const cleanups: (() => unknown)[] = [];
  let redis: Redis;
  let redisUrl: string;

  beforeAll(async () => {
    const [server, stop] = await startRedis();
    redisUrl = server.url;
    cleanups.push(stop);
    redis = new Redis(server.url);
    cleanups.push(() => redis.disconnect());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function drainingGateway(sockets: number): Promise<[GatewayProcess, Watched[]]> {
    // The local pace is slow (a 60 s window): whatever runs faster, runs on the plan.
    const env = {
      ADAPTER: 'redis',
      REDIS_URL: redisUrl,
      ADMIN_TOKEN,
      LOG_LEVEL: 'info',
      DRAIN_NOTICE_DELAY_MS: '0',
      DRAIN_WINDOW_MS: '60000',
      DRAIN_JITTER_MS: '60000',
      SHUTDOWN_DEADLINE_MS: '70000',
    };
    const [gateway, stop] = await startGateway({ env });
    cleanups.push(stop);
    const clients = await Promise.all(Array.from({ length: sockets }, () => watch(gateway.url)));
    cleanups.push(() => clients.forEach((c) => c.socket.disconnect()));
    return [gateway, clients];
  }

  const status = async (gateway: GatewayProcess): Promise<DrainStatus> =>
    ((await (await fetch(`${gateway.internalUrl}/admin/drain`, { headers: admin })).json()) as { drain: DrainStatus }).drain;
  const writePlan = (gateway: GatewayProcess, plan: unknown): Promise<unknown> => redis.set(drainPlanKey('rt', gateway.pod), JSON.stringify(plan), 'EX', 60);

  it('a plan that appears, then a re-divided rate, take effect mid-drain, with fresh hints', async () => {
    const [gateway, clients] = await drainingGateway(30);
    expect((await fetch(`${gateway.internalUrl}/admin/drain`, { method: 'POST', headers: admin })).status).toBe(202);
    await waitFor('the hints', () => clients.every((c) => c.hints === 1), 5_000);
    const started = Date.now();

    // Local settings: 30 sockets over 60 s, one close every 2 s.
    await sleep(2_000);
    expect(closedBetween(clients, started, Date.now())).toBeLessThanOrEqual(2);
    expect(await status(gateway)).toMatchObject({ phase: 'closing', schedule: { source: 'config' } });

    // The controller writes a plan: 4 closes per second.
    const slowAt = Date.now();
    await writePlan(gateway, { v: 1, ratePerSecond: 4, issuedBy: 'test' });
    await waitFor('the plan to be applied', async () => (await status(gateway)).schedule?.ratePerSecond === 4, 3_000);
    const slowAppliedAt = Date.now();
    expect(slowAppliedAt - slowAt).toBeLessThan(2_500); // read about once a second
    await sleep(3_000);
    const atFour = closedBetween(clients, slowAppliedAt, Date.now());
    expect(atFour).toBeGreaterThanOrEqual(7); // 4/s over 3 s is 12; the local pace would give 1 or 2
    expect(atFour).toBeLessThanOrEqual(17);

    // Re-divided: 20 per second for what is left.
    const leftBefore = clients.filter((c) => c.closedAt === null).length;
    expect(leftBefore).toBeGreaterThan(5);
    const fastAt = Date.now();
    await writePlan(gateway, { v: 1, ratePerSecond: 20, issuedBy: 'test' });
    await waitFor('the new rate to be applied', async () => (await status(gateway)).schedule?.ratePerSecond === 20, 3_000, 20);
    const fastAppliedAt = Date.now();
    await waitFor('every socket closed at the new rate', () => clients.every((c) => c.closedAt !== null), 6_000);
    const tookMs = Date.now() - fastAt;
    // At 4/s what was left would take leftBefore / 4 s; at 20/s it is done within the read interval plus leftBefore / 20 s.
    expect(tookMs).toBeLessThan(1_500 + (leftBefore / 20) * 1_000 + 1_000);
    expect(tookMs).toBeLessThan((leftBefore / 4) * 1_000);

    const final = await status(gateway);
    expect(final).toMatchObject({ phase: 'drained', closed: 30, forced: 0, schedule: { source: 'plan', ratePerSecond: 20 } });
    // Every re-plan hinted what was left again, so hint-honouring clients move at the new pace too.
    const lastClosers = clients.filter((c) => c.closedAt! > fastAppliedAt);
    expect(lastClosers.length).toBeGreaterThan(0);
    for (const c of lastClosers) expect(c.hints).toBe(3);
    expect(gateway.output().match(/the drain plan changed/g)?.length).toBe(2);
  });

  it('a plan that turns malformed or disappears mid-drain keeps the current pace', async () => {
    const [gateway, clients] = await drainingGateway(16);
    await writePlan(gateway, { v: 1, ratePerSecond: 4, issuedBy: 'test' });
    expect((await fetch(`${gateway.internalUrl}/admin/drain`, { method: 'POST', headers: admin })).status).toBe(202);
    await waitFor('the hints', () => clients.every((c) => c.hints === 1), 5_000);
    const started = Date.now();
    expect(await status(gateway)).toMatchObject({ schedule: { source: 'plan', ratePerSecond: 4, sockets: 16 } });

    await sleep(1_200);
    await redis.set(drainPlanKey('rt', gateway.pod), JSON.stringify({ v: 1, ratePerSecond: 'fast' }), 'EX', 60);
    await sleep(1_200);
    await redis.del(drainPlanKey('rt', gateway.pod));
    await waitFor('every socket closed', () => clients.every((c) => c.closedAt !== null), 8_000);
    const tookMs = Date.now() - started;

    // 16 sockets at 4/s: about 4 s — not the local 60 s window, and not any faster.
    expect(tookMs).toBeGreaterThan(3_000);
    expect(tookMs).toBeLessThan(6_500);
    for (let t = started; t < started + 4_000; t += 500) expect(closedBetween(clients, t, t + 1_000)).toBeLessThanOrEqual(6);
    expect(await status(gateway)).toMatchObject({ phase: 'drained', schedule: { source: 'plan', ratePerSecond: 4 } });
    expect(clients.every((c) => c.hints === 1)).toBe(true);
    // The malformed plan is reported once, not at every read.
    expect(gateway.output().match(/does not match the contract in docs\/drain\.md/g)?.length).toBe(1);
    expect(gateway.output()).toContain('keeping the current pace');
    expect(gateway.output()).not.toContain('the drain plan changed');
  });
});
