import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { type DrainPlan, DRAIN_PLAN_TTL_SECONDS, drainPlanKey } from '../../app/protocol/drain-plan.ts';
import { type FleetOperations, type PodExit, type PodInfo, startLocalFleet } from '../fleet/fleet.ts';

const run = promisify(execFile);

/**
 * What the chaos driver needs from a fleet: the kubelet's two ways of ending a pod (via
 * FleetOperations) plus a way to hand a pod a drain plan, as the controller would.
 */
export interface ChaosTarget extends FleetOperations {
  readonly description: string;
  /** Writes (or with null, deletes) the controller's drain plan for `pod` (docs/drain.md). */
  setDrainPlan(pod: string, plan: DrainPlan | null): Promise<void>;
  close(): Promise<void>;
}

/** The drain settings the chaos fleet runs with; the budget the graceful run is held to is the rate. */
export interface ChaosDrainSettings {
  readonly ratePerSecond: number;
  readonly noticeMs: number;
  readonly shutdownDeadlineMs: number;
  readonly graceMs: number;
}

/** The local fleet of scripts/fleet/fleet.ts: redis-server, gateway processes, HAProxy. */
export async function localTarget(opts: { replicas: number; drain: ChaosDrainSettings; onPodOutput?: (pod: string, line: string) => void }): Promise<ChaosTarget> {
  const [fleet, stopFleet] = await startLocalFleet({
    replicas: opts.replicas,
    graceMs: opts.drain.graceMs,
    balance: 'leastconn',
    env: {
      LOG_LEVEL: opts.onPodOutput ? 'info' : 'warn',
      FLEET_STATS_INTERVAL_MS: '1000',
      // Longer than HAProxy needs to mark a pod DOWN (2 checks × 500 ms), so no handshake lands on it after.
      DRAIN_NOTICE_DELAY_MS: String(opts.drain.noticeMs),
      DRAIN_RATE_PER_SECOND: String(opts.drain.ratePerSecond),
      DRAIN_WINDOW_MS: String(Math.min(20_000, opts.drain.shutdownDeadlineMs - opts.drain.noticeMs - 1_000)),
      // The hint spans the whole paced window (it is capped at the window), so hinted clients move at the rate.
      DRAIN_JITTER_MS: '600000',
      SHUTDOWN_DEADLINE_MS: String(opts.drain.shutdownDeadlineMs),
      // The load generator opens hundreds of connections from one address in a few seconds.
      MAX_CONNECTIONS_PER_SECOND: '2000',
      RATE_LIMIT_PER_SECOND: '50',
      RATE_LIMIT_BURST: '100',
    },
    ...(opts.onPodOutput ? { onPodOutput: opts.onPodOutput } : {}),
  });
  const redis = new Redis(fleet.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  return {
    description: `local fleet: ${opts.replicas} gateway processes, redis-server, HAProxy (cookie stickiness, leastconn) at ${fleet.url}`,
    url: fleet.url,
    pods: () => fleet.pods(),
    terminate: (pod, o) => fleet.terminate(pod, o),
    kill: (pod) => fleet.kill(pod),
    waitForReady: (t) => fleet.waitForReady(t),
    async setDrainPlan(pod, plan) {
      if (plan === null) await redis.del(drainPlanKey('rt', pod));
      else await redis.set(drainPlanKey('rt', pod), JSON.stringify(plan), 'EX', DRAIN_PLAN_TTL_SECONDS);
    },
    async close() {
      redis.disconnect();
      await stopFleet();
    },
  };
}

/**
 * A kind (or any) cluster through kubectl: `kubectl delete pod` (graceful, the pod's own
 * terminationGracePeriodSeconds) and `--grace-period=0 --force`; the Deployment's ReplicaSet starts
 * the replacement. Settings come from the environment (defaults fit `make up`):
 * CHAOS_URL, CHAOS_NAMESPACE, CHAOS_GATEWAY_SELECTOR, CHAOS_REDIS_SELECTOR, CHAOS_KEY_PREFIX.
 */
export async function kindTarget(): Promise<ChaosTarget> {
  const namespace = process.env.CHAOS_NAMESPACE ?? 'realtime-gateway';
  const selector = process.env.CHAOS_GATEWAY_SELECTOR ?? 'app.kubernetes.io/component=gateway';
  const redisSelector = process.env.CHAOS_REDIS_SELECTOR ?? 'app.kubernetes.io/component=redis';
  const keyPrefix = process.env.CHAOS_KEY_PREFIX ?? 'rt';
  const url = process.env.CHAOS_URL ?? 'http://127.0.0.1:8080';
  const kubectl = async (...args: string[]): Promise<string> => {
    try {
      return (await run('kubectl', ['-n', namespace, ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (err) {
      const e = err as { code?: string; stderr?: string; message: string };
      if (e.code === 'ENOENT') throw new Error('kubectl is not installed or not on PATH; `make up` creates the kind cluster and needs it too');
      throw new Error(`kubectl ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
    }
  };
  interface K8sPod { metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string }; status: { conditions?: { type: string; status: string }[] } }
  const list = async (sel: string): Promise<K8sPod[]> => (JSON.parse(await kubectl('get', 'pods', '-l', sel, '-o', 'json')) as { items: K8sPod[] }).items;
  const ready = (p: K8sPod): boolean => !p.metadata.deletionTimestamp && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  await list(selector); // fail early with kubectl's own message when the cluster is not there
  const replicas = (await list(selector)).filter(ready).length;

  const remove = async (pod: string, force: boolean): Promise<PodExit> => {
    const began = Date.now();
    const args = ['delete', 'pod', pod, '--wait=true', ...(force ? ['--grace-period=0', '--force'] : [])];
    await kubectl(...args);
    return { pod, code: null, signal: null, killedAfterGrace: false, durationMs: Date.now() - began };
  };

  return {
    description: `kubectl: namespace ${namespace}, pods ${selector}, entry ${url}`,
    url,
    async pods(): Promise<PodInfo[]> {
      return (await list(selector)).map((p) => ({
        name: p.metadata.name,
        phase: p.metadata.deletionTimestamp ? 'Terminating' : 'Running',
        startedAt: Date.parse(p.metadata.creationTimestamp),
      }));
    },
    terminate: (pod) => remove(pod, false),
    kill: (pod) => remove(pod, true),
    async waitForReady(timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while ((await list(selector)).filter(ready).length < replicas) {
        if (Date.now() > deadline) throw new Error(`fewer than ${replicas} gateway pods Ready after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    },
    async setDrainPlan(pod, plan) {
      const [redisPod] = await list(redisSelector);
      if (!redisPod) throw new Error(`no Redis pod matches ${redisSelector} in ${namespace}; set CHAOS_REDIS_SELECTOR`);
      const key = drainPlanKey(keyPrefix, pod);
      const command = plan === null ? ['DEL', key] : ['SET', key, JSON.stringify(plan), 'EX', String(DRAIN_PLAN_TTL_SECONDS)];
      await kubectl('exec', redisPod.metadata.name, '--', 'redis-cli', ...command);
    },
    async close() {},
  };
}
