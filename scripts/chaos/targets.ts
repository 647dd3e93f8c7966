import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { type DrainPlan, DRAIN_PLAN_TTL_SECONDS, drainPlanKey } from '../../app/protocol/drain-plan.ts';
import { type FleetOperations, type PodExit, type PodInfo, startLocalFleet } from '../fleet/fleet.ts';
import { mintToken } from '../tokens.ts';

/**
 * What the chaos driver needs from a fleet: the kubelet's two ways of ending a pod (via
 * FleetOperations) plus a way to hand a pod a drain plan, as the controller would.
 */
export interface ChaosTarget extends FleetOperations {
  readonly description: string;
  /** A token for each client when the gateways require one (AUTH_MODE=jwt); unset: clients pick a user id. */
  readonly getToken?: (userId: string) => Promise<string>;
  /** Writes (or with null, deletes) the controller's drain plan for `pod` (docs/drain.md). */
  setDrainPlan(pod: string, plan: DrainPlan | null): Promise<void>;
  /** A rolling update of every gateway pod (`kubectl rollout restart`); resolves when it has rolled out. Kubernetes targets only. */
  rolloutRestart?(): Promise<void>;
  /** Deletes the Redis pod mid-stream (its StatefulSet starts it again); resolves when it is Ready. Kubernetes targets only. */
  restartBackplane?(): Promise<void>;
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

/** Where a Kubernetes chaos target finds the blueprint, and how kubectl reaches the cluster. */
export interface KubectlTargetOptions {
  /** Short name for the report, e.g. `kind` or `node`. */
  readonly name: string;
  /** kubectl's `--kubeconfig`; unset: kubectl's own default. */
  readonly kubeconfig?: string;
  /** kubectl's `--context`; unset: the kubeconfig's current context. */
  readonly context?: string;
  /** @default kubectl (on PATH; the Makefile puts ./bin first) */
  readonly kubectl?: string;
  readonly namespace: string;
  readonly gatewaySelector: string;
  readonly redisSelector: string;
  /** The entry clients connect to. */
  readonly url: string;
  /** Key prefix of the drain plans; unset: the gateway pods' KEY_PREFIX (default `rt`). */
  readonly keyPrefix?: string;
}

interface K8sEnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}
interface K8sPod {
  metadata: { name: string; uid: string; creationTimestamp: string; deletionTimestamp?: string };
  spec: { containers: { name: string; env?: K8sEnvVar[]; envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string }; prefix?: string }[] }[] };
  status: { conditions?: { type: string; status: string }[] };
}

/**
 * A cluster through kubectl — kind (`make up`), the real node, any cluster: `kubectl delete pod` (graceful,
 * the pod's own terminationGracePeriodSeconds) and `--grace-period=0 --force`; the Deployment's
 * ReplicaSet starts the replacement. What the clients need is read from the gateway pods' own
 * environment, so a `helm install` with another release name works as well as the kind profile:
 * with AUTH_MODE=jwt every client gets an HS256 token minted from the Secret behind JWT_SECRET (as
 * scripts/mint-token.ts does), and drain plans are written with `redis-cli` in the Redis pod, authenticated
 * with the Secret behind REDIS_PASSWORD (sent on stdin, never on a command line).
 */
export async function kubectlTarget(opts: KubectlTargetOptions): Promise<ChaosTarget> {
  const { namespace, gatewaySelector: selector, redisSelector, url } = opts;
  const global = [...(opts.kubeconfig ? ['--kubeconfig', opts.kubeconfig] : []), ...(opts.context ? ['--context', opts.context] : [])];
  const where = `${opts.context ? `context ${opts.context}` : 'the current context'}${opts.kubeconfig ? ` of ${opts.kubeconfig}` : ''}`;
  const kubectl = (args: string[], input?: string): Promise<string> =>
    new Promise((resolveRun, reject) => {
      const child = spawn(opts.kubectl ?? 'kubectl', [...global, '-n', namespace, ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new Error(`${opts.kubectl ?? 'kubectl'} is not installed or not on PATH (make tools builds it into ./bin)`) : err),
      );
      child.on('close', (code) => (code === 0 ? resolveRun(stdout) : reject(new Error(`kubectl ${args.join(' ')} (${where}) failed: ${stderr.trim() || `exit ${code}`}`))));
      if (input !== undefined) child.stdin!.end(input);
    });
  const list = async (sel: string): Promise<K8sPod[]> => (JSON.parse(await kubectl(['get', 'pods', '-l', sel, '-o', 'json'])) as { items: K8sPod[] }).items;
  const ready = (p: K8sPod): boolean => !p.metadata.deletionTimestamp && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  const decode = (b64: string | undefined, what: string): string => {
    if (!b64) throw new Error(`${what} is empty or missing in namespace ${namespace} (${where})`);
    return Buffer.from(b64, 'base64').toString('utf8');
  };
  const secretValue = async (name: string, key: string): Promise<string> =>
    decode((JSON.parse(await kubectl(['get', 'secret', name, '-o', 'json'])) as { data?: Record<string, string> }).data?.[key], `key ${key} of Secret ${name}`);

  const pods = await list(selector); // fails early with kubectl's own message when the cluster is not there
  const replicas = pods.filter(ready).length;
  const sample = pods.find(ready) ?? pods[0];
  if (!sample) throw new Error(`no gateway pod matches ${selector} in namespace ${namespace} (${where}); is the blueprint deployed?`);

  // The gateway container's environment, resolved the way the kubelet resolves it.
  const container = sample.spec.containers[0]!;
  const env = new Map<string, () => Promise<string>>();
  for (const from of container.envFrom ?? []) {
    const source = from.configMapRef
      ? (JSON.parse(await kubectl(['get', 'configmap', from.configMapRef.name, '-o', 'json'])) as { data?: Record<string, string> }).data ?? {}
      : from.secretRef
        ? Object.fromEntries(Object.entries((JSON.parse(await kubectl(['get', 'secret', from.secretRef.name, '-o', 'json'])) as { data?: Record<string, string> }).data ?? {}).map(([k, v]) => [k, decode(v, k)]))
        : {};
    for (const [k, v] of Object.entries(source)) env.set(`${from.prefix ?? ''}${k}`, async () => v);
  }
  for (const v of container.env ?? []) {
    if (v.value !== undefined) env.set(v.name, async () => v.value!);
    else if (v.valueFrom?.secretKeyRef) {
      const ref = v.valueFrom.secretKeyRef;
      env.set(v.name, () => secretValue(ref.name, ref.key));
    } else if (v.valueFrom?.configMapKeyRef) {
      const ref = v.valueFrom.configMapKeyRef;
      env.set(v.name, async () => (JSON.parse(await kubectl(['get', 'configmap', ref.name, '-o', 'json'])) as { data?: Record<string, string> }).data?.[ref.key] ?? '');
    }
  }
  const envValue = async (name: string): Promise<string | undefined> => env.get(name)?.();
  const keyPrefix = opts.keyPrefix ?? (await envValue('KEY_PREFIX')) ?? 'rt';

  let getToken: ((userId: string) => Promise<string>) | undefined;
  if (((await envValue('AUTH_MODE')) ?? 'jwt') === 'jwt') {
    const algorithms = (await envValue('JWT_ALGORITHMS'))?.split(',').map((a) => a.trim());
    if (!env.has('JWT_SECRET') || (algorithms && !algorithms.includes('HS256'))) {
      throw new Error(`the gateway pods verify JWTs without an HS256 JWT_SECRET (JWT_ALGORITHMS=${algorithms?.join(',') ?? 'default'}); the chaos clients can only mint HS256 tokens`);
    }
    const secret = (await envValue('JWT_SECRET'))!;
    const audience = await envValue('JWT_AUDIENCE');
    const issuer = await envValue('JWT_ISSUER');
    getToken = (userId) => mintToken({ secret, sub: userId, ttlSeconds: 3_600, ...(audience ? { audience } : {}), ...(issuer ? { issuer } : {}) });
  }
  const redisPassword = env.has('REDIS_PASSWORD') ? await envValue('REDIS_PASSWORD').catch(() => undefined) : undefined;

  const remove = async (pod: string, force: boolean): Promise<PodExit> => {
    const began = Date.now();
    await kubectl(['delete', 'pod', pod, '--wait=true', ...(force ? ['--grace-period=0', '--force'] : [])]);
    return { pod, code: null, signal: null, killedAfterGrace: false, durationMs: Date.now() - began };
  };

  return {
    description: `${opts.name} via kubectl (${where}): namespace ${namespace}, pods ${selector}, entry ${url}${getToken ? ', JWT clients' : ''}`,
    url,
    ...(getToken ? { getToken } : {}),
    async pods(): Promise<PodInfo[]> {
      return (await list(selector)).map((p) => ({
        name: p.metadata.name,
        phase: p.metadata.deletionTimestamp ? 'Terminating' : 'Running',
        startedAt: Date.parse(p.metadata.creationTimestamp),
      }));
    },
    terminate: (pod) => remove(pod, false),
    kill: (pod) => remove(pod, true),
    async rolloutRestart() {
      const owners = (await kubectl(['get', 'deployments', '-l', selector, '-o', 'name'])).trim().split('\n').filter(Boolean);
      if (owners.length !== 1) throw new Error(`expected one gateway Deployment matching ${selector}, found ${owners.length}`);
      await kubectl(['rollout', 'restart', owners[0]!]);
      await kubectl(['rollout', 'status', owners[0]!, '--timeout=300s']);
    },
    async restartBackplane() {
      const before = await list(redisSelector);
      if (before.length !== 1) throw new Error(`expected one Redis pod matching ${redisSelector}, found ${before.length} (an external Redis cannot be restarted from here)`);
      const old = before[0]!.metadata.uid;
      await kubectl(['delete', 'pod', '-l', redisSelector, '--wait=true']);
      // The StatefulSet recreates the pod under the same name: wait for a Ready one with another UID.
      const deadline = Date.now() + 180_000;
      while (!(await list(redisSelector)).some((p) => p.metadata.uid !== old && ready(p))) {
        if (Date.now() > deadline) throw new Error(`the Redis pod (${redisSelector}) was not Ready again within 180 s`);
        await new Promise((r) => setTimeout(r, 500));
      }
    },
    async waitForReady(timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while ((await list(selector)).filter(ready).length < replicas) {
        if (Date.now() > deadline) throw new Error(`fewer than ${replicas} gateway pods Ready after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    },
    async setDrainPlan(pod, plan) {
      const [redisPod] = (await list(redisSelector)).filter(ready);
      if (!redisPod) throw new Error(`no ready Redis pod matches ${redisSelector} in ${namespace}; set CHAOS_REDIS_SELECTOR`);
      const key = drainPlanKey(keyPrefix, pod);
      const command = plan === null ? ['DEL', key] : ['SET', key, JSON.stringify(plan), 'EX', String(DRAIN_PLAN_TTL_SECONDS)];
      const lines = [...(redisPassword ? [['AUTH', redisPassword]] : []), command].map((words) => words.map(redisCliQuote).join(' '));
      const replies = (await kubectl(['exec', '-i', redisPod.metadata.name, '--', 'redis-cli'], `${lines.join('\n')}\n`)).trim().split('\n');
      const last = replies.at(-1) ?? '';
      if (replies.length !== lines.length || replies.some((r) => /^(ERR|WRONGPASS|NOAUTH|\(error\))/.test(r)) || !(last === 'OK' || /^\d+$/.test(last))) {
        throw new Error(`redis-cli in ${redisPod.metadata.name} did not accept the drain plan: ${replies.join(' | ').replaceAll(redisPassword ?? '\0', '***')}`);
      }
    },
    async close() {},
  };
}

/** A word of a redis-cli stdin line: double-quoted, with backslash escapes (redis-cli's own quoting). */
function redisCliQuote(word: string): string {
  return `"${word.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;
}

/**
 * `make up`'s kind cluster through kubectl. Settings come from the environment (defaults fit `make up`):
 * CHAOS_KUBE_CONTEXT (default kind-$CLUSTER_NAME, kind-realtime-gateway), KUBECONFIG, CHAOS_URL,
 * CHAOS_NAMESPACE, CHAOS_GATEWAY_SELECTOR, CHAOS_REDIS_SELECTOR, CHAOS_KEY_PREFIX.
 */
export function kindTarget(): Promise<ChaosTarget> {
  return kubectlTarget({
    name: 'kind',
    context: process.env.CHAOS_KUBE_CONTEXT ?? `kind-${process.env.CLUSTER_NAME ?? 'realtime-gateway'}`,
    namespace: process.env.CHAOS_NAMESPACE ?? 'realtime-gateway',
    gatewaySelector: process.env.CHAOS_GATEWAY_SELECTOR ?? 'app.kubernetes.io/component=gateway',
    redisSelector: process.env.CHAOS_REDIS_SELECTOR ?? 'app.kubernetes.io/component=redis',
    url: process.env.CHAOS_URL ?? 'http://127.0.0.1:8080',
    ...(process.env.CHAOS_KEY_PREFIX ? { keyPrefix: process.env.CHAOS_KEY_PREFIX } : {}),
  });
}
