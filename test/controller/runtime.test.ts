// The operator runtime's small hand-written parts, with fake collaborators: the work queue and the leader
// election loop. (Against a real API server: test/controller/controller.test.ts.)
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LeaderElector } from '../../app/controller/leader.ts';
import { WorkQueue } from '../../app/controller/queue.ts';
import { loadControllerConfig, ConfigError } from '../../app/controller/config.ts';
import { matchesSelector, selectorString } from '../../app/controller/kube.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('work queue', () => {
  it('runs one reconcile per key at a time; an add during a run runs it once more afterwards', async () => {
    let running = 0;
    let maxRunning = 0;
    const runs: string[] = [];
    const queue = new WorkQueue(async (key) => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      runs.push(key);
      await sleep(30);
      running -= 1;
      return {};
    });
    queue.add('a');
    queue.add('a');
    queue.add('a');
    queue.add('b');
    await sleep(150);
    expect(runs.filter((k) => k === 'a')).toHaveLength(2);
    expect(runs.filter((k) => k === 'b')).toHaveLength(1);
    expect(maxRunning).toBe(2); // a and b concurrently, never two a's
    await queue.shutdown(100);
  });

  it('requeues failures with exponential backoff per key, and after requeueAfterMs on success', async () => {
    const times: number[] = [];
    const errors: number[] = [];
    let calls = 0;
    const queue = new WorkQueue(
      async () => {
        times.push(Date.now());
        calls += 1;
        if (calls <= 3) throw new Error('api down');
        return calls === 4 ? { requeueAfterMs: 40 } : {};
      },
      { baseBackoffMs: 20, onError: (_k, _e, retryInMs) => errors.push(retryInMs) },
    );
    queue.add('x');
    await sleep(400);
    expect(errors).toEqual([20, 40, 80]);
    expect(calls).toBe(5);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(15);
    expect(gaps[2]).toBeGreaterThanOrEqual(70);
    await queue.shutdown(100);
  });

  it('shutdown waits for the reconcile in flight and takes no more work', async () => {
    let finished = false;
    const queue = new WorkQueue(async () => {
      await sleep(50);
      finished = true;
      return { requeueAfterMs: 1 };
    });
    queue.add('k');
    await sleep(5);
    await queue.shutdown(1_000);
    expect(finished).toBe(true);
    expect(queue.inFlight).toBe(0);
  });
});

/** A Lease store with the API server's optimistic concurrency (resourceVersion) and 404/409 errors. */
function fakeLeaseApi() {
  let lease: V1Lease | null = null;
  let version = 0;
  const error = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code });
  const api = {
    async readNamespacedLease() {
      if (!lease) throw error(404);
      return structuredClone(lease);
    },
    async createNamespacedLease({ body }: { body: V1Lease }) {
      if (lease) throw error(409);
      lease = { ...JSON.parse(JSON.stringify(body)), metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return structuredClone(lease!);
    },
    async replaceNamespacedLease({ body }: { body: V1Lease }) {
      if (!lease) throw error(404);
      if (body.metadata?.resourceVersion !== lease.metadata?.resourceVersion) throw error(409);
      lease = { ...JSON.parse(JSON.stringify(body)), metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return structuredClone(lease!);
    },
  };
  return { api: api as unknown as CoordinationV1Api, holder: () => lease?.spec?.holderIdentity, transitions: () => lease?.spec?.leaseTransitions };
}

describe('leader election on a Lease', () => {
  const log = pino({ level: 'silent' });
  const elector = (api: CoordinationV1Api, identity: string) =>
    new LeaderElector({ api, namespace: 'ns', name: 'lease', identity, leaseDurationMs: 1_000, renewDeadlineMs: 600, retryPeriodMs: 50, log });
  /** `api` as one replica sees it: cut() makes every call fail, as in a network partition. */
  const partitionable = (api: CoordinationV1Api) => {
    let cut = false;
    const wrapped = new Proxy(api, {
      get: (target, prop) => async (...args: unknown[]) => {
        if (cut) throw Object.assign(new Error('connection refused'), { code: 503 });
        return (target as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[prop]!(...args);
      },
    });
    return { api: wrapped, cut: () => (cut = true) };
  };

  it('one replica leads; on SIGTERM it releases the Lease and the standby takes over at its next retry', async () => {
    const store = fakeLeaseApi();
    const events: string[] = [];
    const a = elector(store.api, 'a');
    const b = elector(store.api, 'b');
    a.start({ onStartedLeading: () => events.push('a leads'), onStoppedLeading: () => events.push('a lost') });
    await sleep(100);
    b.start({ onStartedLeading: () => events.push('b leads'), onStoppedLeading: () => events.push('b lost') });
    await sleep(500);
    expect(events).toEqual(['a leads']);
    expect(store.holder()).toBe('a');
    const stoppedAt = Date.now();
    await a.stop();
    expect(store.holder()).toBeFalsy();
    await waitUntil(() => store.holder() === 'b', 1_000);
    expect(Date.now() - stoppedAt, 'a released Lease needs no lease duration (1 s)').toBeLessThan(700);
    expect(events).toEqual(['a leads', 'b leads']);
    expect(store.transitions()).toBe(1);
    await b.stop();
  });

  it('a leader cut off gives up after the renew deadline, before the standby can take over after the lease duration', async () => {
    const store = fakeLeaseApi();
    const events: { what: string; at: number }[] = [];
    const partition = partitionable(store.api);
    const a = elector(partition.api, 'a');
    const b = elector(store.api, 'b');
    a.start({ onStartedLeading: () => events.push({ what: 'a leads', at: Date.now() }), onStoppedLeading: () => events.push({ what: 'a lost', at: Date.now() }) });
    await sleep(100);
    b.start({ onStartedLeading: () => events.push({ what: 'b leads', at: Date.now() }), onStoppedLeading: () => {} });
    await sleep(200);
    const cutAt = Date.now();
    partition.cut();
    await waitUntil(() => store.holder() === 'b', 4_000);
    expect(events.map((e) => e.what)).toEqual(['a leads', 'a lost', 'b leads']);
    const lost = events[1]!.at - cutAt;
    const taken = events[2]!.at - cutAt;
    expect(lost).toBeLessThan(taken);
    expect(taken, 'the standby waits a lease duration from its own last observation').toBeGreaterThanOrEqual(900);
    expect(taken).toBeLessThan(3_000);
    await b.stop();
    await a.stop();
  });
});

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}

describe('configuration and selectors', () => {
  it('refuses a bad environment naming the variable; derives renew deadline and retry period from the lease', () => {
    expect(() => loadControllerConfig({})).toThrow(ConfigError);
    expect(() => loadControllerConfig({})).toThrow(/ADMIN_TOKEN=\(unset\)/);
    expect(() => loadControllerConfig({ ADMIN_TOKEN: 'x'.repeat(16), REDIS_URL: 'http://x' })).toThrow(/REDIS_URL="http:\/\/x"/);
    const config = loadControllerConfig({ ADMIN_TOKEN: 'x'.repeat(16), POD_NAMESPACE: 'rt', LEASE_DURATION_SECONDS: '15' });
    expect(config).toMatchObject({ WATCH_NAMESPACE: 'rt', LEASE_RENEW_DEADLINE_SECONDS: 10, LEASE_RETRY_PERIOD_SECONDS: 2 });
    expect(() => loadControllerConfig({ ADMIN_TOKEN: 'x'.repeat(16), LEASE_DURATION_SECONDS: '5', LEASE_RENEW_DEADLINE_SECONDS: '6' })).toThrow(/must be below/);
  });

  it('matches label selectors like the API server and prints them for the /scale status', () => {
    const selector = { matchLabels: { app: 'gw' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['b', 'a'] }, { key: 'canary', operator: 'DoesNotExist' }] };
    expect(matchesSelector(selector, { app: 'gw', tier: 'a' })).toBe(true);
    expect(matchesSelector(selector, { app: 'gw', tier: 'c' })).toBe(false);
    expect(matchesSelector(selector, { app: 'gw', tier: 'a', canary: 'y' })).toBe(false);
    expect(matchesSelector(undefined, { app: 'gw' })).toBe(false);
    expect(selectorString(selector)).toBe('app=gw,tier in (a,b),!canary');
  });
});
