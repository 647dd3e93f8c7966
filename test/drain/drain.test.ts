import { refusalOfTransportError } from '../../app/client/index.ts';
import { RETRYABLE_CODES } from '../../app/protocol/index.ts';
import { Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainPlanKey } from '../../app/protocol/drain-plan.ts';
import type { DrainStatus } from '../../app/gateway/drain.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { type RedisServer, startRedis } from '../../scripts/fleet/redis.ts';

// The drain sequence on real gateway processes over a real redis-server, observed with the stock
// socket.io-client (reconnection off, so each socket's fate is visible on its own).

interface Observed {
  readonly socket: Socket;
  hint: { reconnectAfterMs: number; pod: string; at: number } | null;
  disconnect: { reason: string; at: number } | null;
}

async function connectObserved(url: string, transport: 'websocket' | 'polling' = 'websocket'): Promise<Observed> {
  const socket = io(url, { transports: [transport], reconnection: false, forceNew: true });
  const observed: Observed = { socket, hint: null, disconnect: null };
  socket.on('server:draining', (e: { payload: { reconnectAfterMs: number; pod: string } }) => (observed.hint = { ...e.payload, at: Date.now() }));
  socket.on('disconnect', (reason) => (observed.disconnect = { reason, at: Date.now() }));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return observed;
}

/**
 * A handshake's outcome: 'connected', or the refusal — read, as the SDK does, from the HTTP 503 the
 * draining gateway answers the transport with (long-polling exposes its body).
 */
async function tryHandshake(url: string): Promise<'connected' | { code?: string; retryable?: boolean; status?: unknown }> {
  const socket = io(url, { transports: ['polling'], reconnection: false, forceNew: true });
  try {
    return await new Promise((resolve) => {
      socket.once('connect', () => resolve('connected'));
      socket.once('connect_error', (err: Error & { description?: unknown; data?: { code?: string; retryable?: boolean } }) => {
        const refusal = refusalOfTransportError(err);
        resolve(refusal ? { code: refusal.code, retryable: RETRYABLE_CODES.has(refusal.code), status: err.description } : (err.data ?? { code: `no data: ${err.message}` }));
      });
    });
  } finally {
    socket.disconnect();
  }
}

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

async function drainStatus(gateway: GatewayProcess): Promise<DrainStatus> {
  const res = await fetch(`${gateway.internalUrl}/admin/drain`, { headers: auth });
  return ((await res.json()) as { drain: DrainStatus }).drain;
}

describe('graceful drain of a gateway process', () => {
  const cleanups: (() => unknown)[] = [];
  let redis: RedisServer;
  let redisClient: Redis;
  const base = (): Record<string, string> => ({ ADAPTER: 'redis', REDIS_URL: redis.url, LOG_LEVEL: 'info', FLEET_STATS_INTERVAL_MS: '5000' });

  beforeAll(async () => {
    const [server, stop] = await startRedis();
    redis = server;
    cleanups.push(stop);
    redisClient = new Redis(redis.url);
    cleanups.push(() => redisClient.disconnect());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('on SIGTERM: readiness fails first, serves through the notice, refuses handshakes, hints, closes at a paced rate, exits 0 before the deadline', async () => {
    const NOTICE = 1_200;
    const WINDOW = 3_000;
    const DEADLINE = 8_000;
    const [gateway, stop] = await startGateway({
      env: { ...base(), DRAIN_NOTICE_DELAY_MS: String(NOTICE), DRAIN_WINDOW_MS: String(WINDOW), DRAIN_JITTER_MS: String(WINDOW), SHUTDOWN_DEADLINE_MS: String(DEADLINE) },
    });
    cleanups.push(stop);
    const clients = await Promise.all(Array.from({ length: 24 }, (_, i) => connectObserved(gateway.url, i % 3 === 0 ? 'polling' : 'websocket')));
    cleanups.push(() => clients.forEach((c) => c.socket.disconnect()));

    const sigtermAt = Date.now();
    gateway.child.kill('SIGTERM');

    // 1. Readiness fails at once, while every socket is still connected, and the fleet entry says draining.
    await waitFor('/readyz to fail', async () => (await fetch(`${gateway.url}/readyz`)).status === 503, 1_000, 20);
    expect(Date.now() - sigtermAt).toBeLessThan(NOTICE);
    expect(await (await fetch(`${gateway.url}/readyz`)).json()).toMatchObject({ ready: false, draining: true });
    expect(clients.every((c) => c.socket.connected && c.hint === null)).toBe(true);
    // Fleet stats are written every 5 s here: seeing "draining" this soon means the drain wrote it itself.
    await waitFor('fleet entry draining', async () => JSON.parse((await redisClient.get(`rt:{fleet}:pod:${gateway.pod}`)) ?? 'null')?.draining === true, 1_000, 20);
    const metrics = await (await fetch(`${gateway.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^rt_drain_in_progress 1$/m);
    expect(metrics).toMatch(/^rt_ready 0$/m);

    // 2. During the notice delay it still serves: a late handshake (the edge has not noticed yet) is accepted.
    expect(await tryHandshake(gateway.url)).toBe('connected');

    // 3. After it, handshakes are refused with the retryable `draining` code.
    await waitFor('hints to arrive', () => clients.every((c) => c.hint !== null), NOTICE + 2_000, 20);
    expect(await tryHandshake(gateway.url)).toEqual(expect.objectContaining({ code: 'draining', retryable: true, status: 503 }));

    // 4. Every socket got the hint, on the even grid over [0, jitter), each value once.
    const hints = clients.map((c) => c.hint!.reconnectAfterMs).sort((a, b) => a - b);
    for (const h of hints) expect(h >= 0 && h < WINDOW).toBe(true);
    expect(new Set(hints).size).toBe(hints.length);
    const firstHintAt = Math.min(...clients.map((c) => c.hint!.at));
    expect(firstHintAt - sigtermAt).toBeGreaterThanOrEqual(NOTICE - 50);

    // 5. Closes: transport closes (so the stock client would reconnect), paced across the window, in hint order.
    const exit = await gateway.exited;
    const exitedAfter = Date.now() - sigtermAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(exitedAfter).toBeLessThan(DEADLINE);
    expect(clients.every((c) => c.disconnect !== null)).toBe(true);
    expect(new Set(clients.map((c) => c.disconnect!.reason))).toEqual(new Set(['transport close']));
    const closes = clients.map((c) => c.disconnect!.at - firstHintAt).sort((a, b) => a - b);
    expect(closes[0]!).toBeGreaterThanOrEqual(0);
    expect(closes.at(-1)!).toBeLessThan(WINDOW + 1_000);
    // Paced, not all at once: the closes span most of the window, and no second holds much more than its share.
    expect(closes.at(-1)! - closes[0]!).toBeGreaterThan(WINDOW * 0.6);
    const share = (clients.length / WINDOW) * 1_000;
    for (const t of closes) expect(closes.filter((u) => u >= t && u < t + 1_000).length).toBeLessThanOrEqual(Math.ceil(share) + 3);
    const byHint = [...clients].sort((a, b) => a.hint!.reconnectAfterMs - b.hint!.reconnectAfterMs);
    byHint.forEach((c) => expect(c.disconnect!.at - firstHintAt).toBeGreaterThanOrEqual(c.hint!.reconnectAfterMs - 100));
    const output = gateway.output();
    expect(output).toContain('drain: closing sockets at a paced rate');
    expect(output).not.toContain('deadline reached');
    // The fleet entry is gone with the pod.
    expect(await redisClient.exists(`rt:{fleet}:pod:${gateway.pod}`)).toBe(0);
  });

  it('POST /admin/drain: 404 without ADMIN_TOKEN, 401 with a bad token, 202 drains and stays up until SIGTERM', async () => {
    const [plain, stopPlain] = await startGateway({ env: base() });
    cleanups.push(stopPlain);
    expect((await fetch(`${plain.internalUrl}/admin/drain`, { method: 'POST', headers: auth })).status).toBe(404);

    const [gateway, stop] = await startGateway({ env: { ...base(), ADMIN_TOKEN, DRAIN_NOTICE_DELAY_MS: '300', DRAIN_WINDOW_MS: '1000', DRAIN_JITTER_MS: '1000' } });
    cleanups.push(stop);
    const clients = await Promise.all(Array.from({ length: 6 }, () => connectObserved(gateway.url)));
    cleanups.push(() => clients.forEach((c) => c.socket.disconnect()));
    for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: ADMIN_TOKEN }] as Record<string, string>[]) {
      const res = await fetch(`${gateway.internalUrl}/admin/drain`, { method: 'POST', headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect((await drainStatus(gateway)).phase).toBe('serving');

    // Never on the public port, whatever the token.
    expect((await fetch(`${gateway.url}/admin/drain`, { method: 'POST', headers: auth })).status).toBe(404);
    const res = await fetch(`${gateway.internalUrl}/admin/drain`, { method: 'POST', headers: auth });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ ok: true, drain: { phase: 'notice', trigger: 'admin' } });
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(503);
    await waitFor('the admin drain to empty the pod', async () => (await drainStatus(gateway)).phase === 'drained', 5_000);
    // The drain counts a socket closed when it closes it; the client hears of it a moment later.
    await waitFor('every client to see its transport closed', async () => clients.every((c) => c.disconnect?.reason === 'transport close'), 5_000);
    // Drained but alive: not ready, refusing, until the pod is deleted (a restart would make it ready again).
    await new Promise((r) => setTimeout(r, 300));
    expect(gateway.child.exitCode).toBeNull();
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    expect(await tryHandshake(gateway.url)).toEqual(expect.objectContaining({ code: 'draining' }));
    // A second POST is harmless; SIGTERM then exits at once.
    expect((await fetch(`${gateway.internalUrl}/admin/drain`, { method: 'POST', headers: auth })).status).toBe(202);
    const sigtermAt = Date.now();
    expect(await gateway.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(Date.now() - sigtermAt).toBeLessThan(2_000);
  });

  it("paces by the controller's drain plan in Redis when one is there, and ignores a malformed one", async () => {
    const env = { ...base(), ADMIN_TOKEN, DRAIN_NOTICE_DELAY_MS: '0', DRAIN_WINDOW_MS: '20000', DRAIN_JITTER_MS: '20000', SHUTDOWN_DEADLINE_MS: '25000' };
    const [planned, stopPlanned] = await startGateway({ env });
    const [bad, stopBad] = await startGateway({ env });
    cleanups.push(stopPlanned, stopBad);
    const clients = await Promise.all([...Array.from({ length: 8 }, () => connectObserved(planned.url)), ...Array.from({ length: 4 }, () => connectObserved(bad.url))]);
    cleanups.push(() => clients.forEach((c) => c.socket.disconnect()));
    await redisClient.set(drainPlanKey('rt', planned.pod), JSON.stringify({ v: 1, ratePerSecond: 8, jitterMs: 500, issuedBy: 'test' }), 'EX', 60);
    await redisClient.set(drainPlanKey('rt', bad.pod), JSON.stringify({ v: 1, ratePerSecond: 'fast' }), 'EX', 60);

    const started = Date.now();
    for (const gw of [planned, bad]) await fetch(`${gw.internalUrl}/admin/drain`, { method: 'POST', headers: auth });
    await waitFor('the planned drain to finish', async () => (await drainStatus(planned)).phase === 'drained', 5_000);
    expect(Date.now() - started).toBeLessThan(3_000); // 8 sockets at 8/s, not the local 20 s window
    expect((await drainStatus(planned)).schedule).toMatchObject({ source: 'plan', sockets: 8, windowMs: 1_000, jitterMs: 500, ratePerSecond: 8 });
    // Clients hear the hint a moment after the gateway sent it.
    await waitFor('every planned client to get its hint', async () => clients.slice(0, 8).every((c) => c.hint !== null), 5_000);
    for (const c of clients.slice(0, 8)) expect(c.hint!.reconnectAfterMs).toBeLessThan(500);

    const badStatus = await drainStatus(bad);
    // The config's 20 s window, less the few ms between the notice and the schedule (more on a busy machine).
    expect(badStatus.schedule).toMatchObject({ source: 'config', sockets: 4 });
    expect(badStatus.schedule?.windowMs).toBeGreaterThan(19_000);
    expect(badStatus.schedule?.windowMs).toBeLessThanOrEqual(20_000);
    await waitFor('the malformed plan to be logged', async () => bad.output().includes('does not match the contract in docs/drain.md'), 5_000);
  });

  it('always exits before SHUTDOWN_DEADLINE_MS, squeezing a drain whose rate would take longer', async () => {
    const DEADLINE = 4_000;
    // One close per second for 12 sockets would take 12 s; the deadline allows 4.
    const [gateway, stop] = await startGateway({
      env: { ...base(), DRAIN_NOTICE_DELAY_MS: '500', DRAIN_RATE_PER_SECOND: '1', DRAIN_WINDOW_MS: '3000', SHUTDOWN_DEADLINE_MS: String(DEADLINE) },
    });
    cleanups.push(stop);
    const clients = await Promise.all(Array.from({ length: 12 }, () => connectObserved(gateway.url)));
    cleanups.push(() => clients.forEach((c) => c.socket.disconnect()));
    const sigtermAt = Date.now();
    const exit = await gateway.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - sigtermAt).toBeLessThan(DEADLINE);
    // The drain counts a socket closed when it closes it; the client hears of it a moment later.
    await waitFor('every client to see its transport closed', async () => clients.every((c) => c.disconnect?.reason === 'transport close'), 5_000);
    // Still paced inside the shortened window (deadline − notice − reserve), not dumped at the end.
    const closes = clients.map((c) => c.disconnect!.at - sigtermAt).sort((a, b) => a - b);
    expect(closes.at(-1)! - closes[0]!).toBeGreaterThan(1_500);
  });
});
