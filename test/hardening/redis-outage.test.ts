import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { type RedisServer, startRedis } from '../../scripts/fleet/redis.ts';

type Outcome = { ok: true; seq: number; afterRestart: boolean } | { ok: false; code: string; retryAfterMs?: number };

// Two gateways on one real redis-server, which is SIGKILLed under traffic and started again (empty:
// no persistence, the harshest case — the rooms start a new seq epoch and clients get a reset).
describe('Redis going away under traffic', () => {
  const cleanups: (() => unknown)[] = [];
  let redis: RedisServer;
  let a: GatewayProcess, b: GatewayProcess;

  const client = async (gateway: GatewayProcess, userId: string): Promise<TestClient> => {
    const [c, close] = await connectClient(gateway.url, { userId });
    cleanups.push(close);
    return c;
  };
  const readyz = async (gateway: GatewayProcess): Promise<number> => (await fetch(`${gateway.url}/readyz`)).status;

  beforeAll(async () => {
    const [server, stopRedis] = await startRedis();
    redis = server;
    cleanups.push(stopRedis);
    const env = { ADAPTER: 'redis', REDIS_URL: redis.url };
    const started = await Promise.all(['a', 'b'].map((name) => startGateway({ env, pod: `outage-${name}` })));
    [a, b] = started.map(([gw]) => gw) as [GatewayProcess, GatewayProcess];
    cleanups.push(...started.map(([, stop]) => stop));
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('keeps gateways up, reports not ready, refuses publishes clearly, then restores subscriptions and resumes clients', async () => {
    const room = 'counter:outage';
    const chat = 'chat:outage';
    const publisher = await client(a, 'publisher');
    const watcher = await client(b, 'watcher');
    expect(await watcher.request('room:join', { room })).toMatchObject({ ok: true });
    const [reader, closeReader] = await connectClient(a.url, { userId: 'reader' });
    expect(await reader.request('room:join', { room: chat })).toMatchObject({ ok: true });
    expect(await publisher.request('chat:send', { room: chat, text: 'before the outage' })).toMatchObject({ ok: true });
    await waitFor('the chat message before the outage', () => reader.received.length === 1);
    const readerLastSeq = reader.received[0]!.seq;
    closeReader();

    const outcomes: Outcome[] = [];
    let traffic = true;
    let restarted = false;
    const loop = (async () => {
      while (traffic) {
        try {
          const ack = (await publisher.request('counter:increment', { room })) as { ok: boolean; seq?: number; error?: { code: string; retryAfterMs?: number } };
          outcomes.push(ack.ok ? { ok: true, seq: ack.seq!, afterRestart: restarted } : { ok: false, code: ack.error!.code, retryAfterMs: ack.error!.retryAfterMs });
        } catch (err) {
          outcomes.push({ ok: false, code: `no ack: ${(err as Error).message}` });
        }
        await new Promise((r) => setTimeout(r, 60)); // under the default 20 events/s per socket
      }
    })();
    const oks = (): number => outcomes.filter((o) => o.ok).length;
    await waitFor('traffic flowing', () => oks() >= 10);

    await redis.kill();
    await waitFor('both gateways not ready', async () => (await readyz(a)) === 503 && (await readyz(b)) === 503);
    expect(await (await fetch(`${a.url}/readyz`)).json()).toMatchObject({ ready: false, backplane: false });
    await waitFor('refused publishes during the outage', () => outcomes.filter((o) => !o.ok).length >= 5);
    for (const gateway of [a, b]) expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    expect(await watcher.request('room:join', { room: 'counter:during-outage' })).toMatchObject({ ok: false, error: { code: 'backplane_unavailable' } });
    expect(await publisher.request('chat:send', { room: chat, text: 'lost?' })).toMatchObject({ ok: false, error: { code: 'backplane_unavailable' } });

    // Stay down a while: long enough for the clients' reconnect backoff to reach its 2 s ceiling.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await readyz(a)).toBe(503);
    await redis.restart();
    restarted = true;
    await waitFor('both gateways ready again', async () => (await readyz(a)) === 200 && (await readyz(b)) === 200, 20_000);
    const oksAtRecovery = oks();
    await waitFor('traffic flowing again', () => oks() >= oksAtRecovery + 20, 20_000);
    traffic = false;
    await loop;

    // Every publish got an answer: ok, or a clear retryable refusal — never silence, never another error.
    const refused = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok);
    expect(refused.length).toBeGreaterThanOrEqual(5);
    expect(refused.filter((o) => o.code !== 'backplane_unavailable')).toEqual([]);
    expect(refused.every((o) => (o.retryAfterMs ?? 0) > 0)).toBe(true);

    // The watcher on the other gateway never rejoined: its subscription was restored. It saw every
    // acknowledged increment exactly once, either as an envelope or folded into a room:reset.
    const acked = outcomes.filter((o): o is Extract<Outcome, { ok: true }> => o.ok);
    const lastAcked = acked.at(-1)!.seq;
    await waitFor('the last increment on the watcher', () => watcher.received.some((e) => e.seq === lastAcked));
    const seen = watcher.received.filter((e) => e.room === room).map((e) => e.seq);
    expect(new Set(seen).size).toBe(seen.length);
    const resets = watcher.control.filter((e) => e.type === 'room:reset' && e.room === room).map((e) => e.seq!);
    expect(resets.length).toBeGreaterThanOrEqual(1);
    const newEpoch = (seq: number): boolean => acked.some((o) => o.afterRestart && o.seq <= seq);
    const covered = (o: Extract<Outcome, { ok: true }>): boolean => seen.includes(o.seq) || (o.afterRestart && resets.some((r) => r >= o.seq && newEpoch(r)));
    expect(acked.filter((o) => !covered(o))).toEqual([]);
    expect(acked.filter((o) => !o.afterRestart).every((o) => seen.includes(o.seq))).toBe(true);
    const afterReset = watcher.received.filter((e) => e.seq > Math.max(...resets)).map((e) => e.seq);
    expect(afterReset).toEqual(afterReset.map((_, i) => afterReset[0]! + i));

    // A client that left before the outage resumes on the other gateway: Redis lost the history, so
    // it is told to reset rather than being handed a silent gap, and then follows live traffic.
    const [resumed, closeResumed] = await connectClient(b.url, { userId: 'reader' });
    cleanups.push(closeResumed);
    expect(await resumed.request('room:join', { room: chat, lastSeq: readerLastSeq })).toMatchObject({ ok: true, resume: 'reset' });
    expect(await publisher.request('chat:send', { room: chat, text: 'after the outage' })).toMatchObject({ ok: true });
    await waitFor('the chat message after the outage', () => resumed.received.some((e: DurableEnvelope) => (e.payload as { text: string }).text === 'after the outage'));

    for (const gateway of [a, b]) {
      expect(gateway.child.exitCode, gateway.output()).toBeNull();
      expect(gateway.output()).not.toMatch(/uncaught|unhandled|FATAL/i);
    }
  });
});
