import { createInterface } from 'node:readline';
import { type GatewayProcess, startGateway } from './gateway.ts';
import { type Haproxy, HAPROXY_DEFAULTS, type HaproxySlot, startHaproxy } from './haproxy.ts';
import { freePort, waitFor } from './ports.ts';
import { startRedis } from './redis.ts';

export interface PodInfo {
  readonly name: string;
  /** `Terminating` from the signal until the process is gone, as `kubectl get pods` shows it. */
  readonly phase: 'Running' | 'Terminating';
  readonly startedAt: number;
}

export interface PodExit {
  readonly pod: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when the grace period ran out and SIGKILL ended it. */
  readonly killedAfterGrace: boolean;
  /** From the first signal to the exit. */
  readonly durationMs: number;
}

/**
 * What a chaos driver does to a fleet, and nothing more — the local fleet implements it with
 * processes and HAProxy; a Kubernetes implementation does the same with `kubectl delete pod`
 * (`--grace-period=0 --force` for `kill`), and the Deployment's ReplicaSet starts replacements.
 */
export interface FleetOperations {
  /** The edge URL clients connect to. */
  readonly url: string;
  pods(): Promise<PodInfo[]>;
  /** What the kubelet does on pod deletion: SIGTERM, then SIGKILL after the grace period. Resolves when the pod is gone. */
  terminate(pod: string, opts?: { graceMs?: number }): Promise<PodExit>;
  /** SIGKILL at once (a node loss, `--grace-period=0`). Resolves when the pod is gone. */
  kill(pod: string): Promise<PodExit>;
  /** Waits until the desired number of pods run and take traffic at the edge. */
  waitForReady(timeoutMs?: number): Promise<void>;
}

export interface FleetEvent {
  readonly at: number;
  readonly kind: 'started' | 'terminating' | 'killed' | 'exited' | 'start-failed';
  readonly pod: string;
  readonly detail?: string;
}

export interface LocalFleetOptions {
  /** Gateway processes to keep running, like a ReplicaSet's `replicas`. @default 3 */
  readonly replicas?: number;
  /** HAProxy port; free one when unset. */
  readonly port?: number;
  /** Extra gateway environment (see app/gateway/config.ts); the fleet sets ADAPTER, REDIS_URL, POD_NAME, PORT. */
  readonly env?: Record<string, string>;
  /** `terminationGracePeriodSeconds` in ms: SIGKILL follows SIGTERM after it. Keep SHUTDOWN_DEADLINE_MS below it. @default 30000 */
  readonly graceMs?: number;
  /** Start a replacement as soon as a pod starts terminating or dies, like a ReplicaSet. @default true */
  readonly autoReplace?: boolean;
  /** Cookie stickiness at HAProxy; `false` is the negative control. @default true */
  readonly sticky?: boolean;
  readonly balance?: 'roundrobin' | 'leastconn';
  readonly maxconn?: number;
  /** HAProxy stats page on a free port. @default false */
  readonly statsPage?: boolean;
  /** Use this Redis instead of starting one. */
  readonly redisUrl?: string;
  /**
   * `redis`: every gateway on one shared redis-server (the blueprint). `none`: each gateway on its own
   * in-memory backplane and no Redis at all — the demo of what breaks without a shared backplane: a
   * message published on one pod never reaches clients on another. @default 'redis'
   */
  readonly backplane?: 'redis' | 'none';
  /** What each pod runs instead of the gateway (see StartGatewayOptions.main). */
  readonly main?: string;
  /** Prefix of pod names. @default 'gw' */
  readonly podPrefix?: string;
  /** Each line a pod writes (pino JSON), e.g. to print it. */
  readonly onPodOutput?: (pod: string, line: string) => void;
  readonly onEvent?: (event: FleetEvent) => void;
}

interface LocalPod {
  readonly name: string;
  readonly slot: string;
  readonly gateway: GatewayProcess;
  readonly startedAt: number;
  phase: PodInfo['phase'];
}

export interface LocalFleet extends FleetOperations {
  readonly haproxy: Haproxy;
  readonly backplane: 'redis' | 'none';
  /** The shared Redis; throws for a fleet started with `backplane: 'none'`. */
  readonly redisUrl: string;
  readonly events: readonly FleetEvent[];
  /**
   * The fleet's internal port behind HAProxy (any live pod): `/fleet`, `/metrics`, the fleet view at `/`.
   * The local stand-in for the gateway Service's `internal` port.
   */
  readonly internalUrl: string;
  /** Direct URL of one pod, bypassing HAProxy. */
  podUrl(pod: string): string;
  /** Direct URL of one pod's internal port (`/admin/drain`, `/metrics`, `/fleet`). */
  podInternalUrl(pod: string): string;
  /** Changes the desired replicas; scaling down terminates the newest pods. */
  scale(replicas: number): Promise<void>;
}

/**
 * A local fleet: a real redis-server, N gateway processes (ADAPTER=redis) and a real HAProxy in
 * front (or, with `backplane: 'none'`, no Redis and each gateway on its own memory backplane). HAProxy has twice as many server slots as replicas (plus two), so replacements start
 * while terminating pods still drain — as Kubernetes runs them side by side.
 */
export async function startLocalFleet(opts: LocalFleetOptions = {}): Promise<[LocalFleet, () => Promise<void>]> {
  const cleanups: (() => Promise<void>)[] = [];
  const cleanupAll = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((err: unknown) => console.error('fleet cleanup:', err));
  };
  try {
    return await build(opts, cleanups, cleanupAll);
  } catch (err) {
    await cleanupAll();
    throw err;
  }
}

async function build(
  opts: LocalFleetOptions,
  cleanups: (() => Promise<void>)[],
  cleanupAll: () => Promise<void>,
): Promise<[LocalFleet, () => Promise<void>]> {
  let desired = opts.replicas ?? 3;
  if (!Number.isInteger(desired) || desired < 1) throw new Error(`replicas must be a positive integer, got ${opts.replicas}`);
  const graceMs = opts.graceMs ?? 30_000;
  const autoReplace = opts.autoReplace ?? true;
  const prefix = opts.podPrefix ?? 'gw';

  const backplane = opts.backplane ?? 'redis';
  let redisUrl = opts.redisUrl;
  if (!redisUrl && backplane === 'redis') {
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    redisUrl = redis.url;
  }

  const slotNames = Array.from({ length: desired * 2 + 2 }, (_, i) => `slot${i + 1}`);
  const slots: HaproxySlot[] = slotNames.map((name) => ({ name, port: null }));
  const [haproxy, stopHaproxy] = await startHaproxy({
    ...(opts.port === undefined ? {} : { port: opts.port }),
    slots,
    sticky: opts.sticky ?? HAPROXY_DEFAULTS.sticky,
    balance: opts.balance ?? HAPROXY_DEFAULTS.balance,
    maxconn: opts.maxconn ?? HAPROXY_DEFAULTS.maxconn,
    statsPage: opts.statsPage ?? false,
    internalFrontend: true,
  });
  cleanups.push(stopHaproxy);

  const pods = new Map<string, LocalPod>();
  const events: FleetEvent[] = [];
  /** Slots free for a new pod, least recently used first (old sticky cookies then rarely hit a new pod). */
  const freeSlots = [...slotNames];
  let podCounter = 0;
  let starting = 0;
  let closing = false;

  const record = (kind: FleetEvent['kind'], pod: string, detail?: string): void => {
    const event: FleetEvent = detail === undefined ? { at: Date.now(), kind, pod } : { at: Date.now(), kind, pod, detail };
    events.push(event);
    opts.onEvent?.(event);
  };

  async function startPod(): Promise<void> {
    const slot = freeSlots.shift();
    if (!slot) throw new Error('no free HAProxy slot: more pods are terminating at once than the fleet has room for');
    podCounter += 1;
    const name = `${prefix}-${podCounter}`;
    starting += 1;
    let gateway: GatewayProcess;
    try {
      const port = await freePort();
      [gateway] = await startGateway({
        pod: name,
        port,
        ...(opts.main ? { main: opts.main } : {}),
        env: { ...(backplane === 'redis' ? { ADAPTER: 'redis', REDIS_URL: redisUrl! } : { ADAPTER: 'memory' }), AUTH_MODE: 'none', ...opts.env },
      });
    } catch (err) {
      freeSlots.push(slot);
      record('start-failed', name, (err as Error).message);
      throw err;
    } finally {
      starting -= 1;
    }
    const pod: LocalPod = { name, slot, gateway, startedAt: Date.now(), phase: 'Running' };
    pods.set(name, pod);
    if (opts.onPodOutput) {
      for (const stream of [gateway.child.stdout!, gateway.child.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => opts.onPodOutput!(name, line));
      }
    }
    void gateway.exited.then(async ({ code, signal }) => {
      pods.delete(name);
      record('exited', name, `code=${code} signal=${signal}`);
      // Like an endpoint leaving the EndpointSlice: nothing is routed to the slot any more.
      await haproxy.setSlot(slot, null).catch(() => {});
      freeSlots.push(slot);
      if (pod.phase === 'Running' && autoReplace && !closing) void reconcile(); // a crash, not a deletion
    });
    if (closing) {
      gateway.child.kill('SIGKILL');
      return;
    }
    await haproxy.setSlot(slot, gateway.port, gateway.internalPort);
    record('started', name, `port=${gateway.port} internal=${gateway.internalPort} ${slot}`);
  }

  /** Starts pods until `desired` are running or starting, one at a time (serialised). */
  let reconciling: Promise<void> = Promise.resolve();
  function reconcile(): Promise<void> {
    reconciling = reconciling.then(async () => {
      while (!closing && running().length + starting < desired) {
        try {
          await startPod();
        } catch (err) {
          console.error(`fleet: could not start a gateway: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 1_000));
        }
      }
    });
    return reconciling;
  }

  const running = (): LocalPod[] => [...pods.values()].filter((p) => p.phase === 'Running');

  function find(name: string): LocalPod {
    const pod = pods.get(name);
    if (!pod) throw new Error(`no pod ${name}; pods: ${[...pods.keys()].join(', ') || '(none)'}`);
    return pod;
  }

  async function end(name: string, first: NodeJS.Signals, gracefulMs: number): Promise<PodExit> {
    const pod = find(name);
    const began = Date.now();
    const wasRunning = pod.phase === 'Running';
    pod.phase = 'Terminating';
    record(first === 'SIGKILL' ? 'killed' : 'terminating', name);
    if (wasRunning && autoReplace) void reconcile();
    let killedAfterGrace = false;
    const timer =
      first === 'SIGKILL'
        ? null
        : setTimeout(() => {
            killedAfterGrace = true;
            pod.gateway.child.kill('SIGKILL');
          }, gracefulMs);
    pod.gateway.child.kill(first);
    const { code, signal } = await pod.gateway.exited;
    if (timer) clearTimeout(timer);
    return { pod: name, code, signal, killedAfterGrace, durationMs: Date.now() - began };
  }

  const fleet: LocalFleet = {
    url: haproxy.url,
    haproxy,
    backplane,
    get redisUrl(): string {
      if (!redisUrl) throw new Error('this fleet runs without a shared backplane (backplane: none): there is no Redis');
      return redisUrl;
    },
    events,
    async pods() {
      return [...pods.values()].map(({ name, phase, startedAt }) => ({ name, phase, startedAt }));
    },
    internalUrl: haproxy.internalUrl!,
    podUrl: (name) => find(name).gateway.url,
    podInternalUrl: (name) => find(name).gateway.internalUrl,
    terminate: (name, o) => end(name, 'SIGTERM', o?.graceMs ?? graceMs),
    kill: (name) => end(name, 'SIGKILL', 0),
    async waitForReady(timeoutMs = 30_000) {
      await reconcile();
      await waitFor(
        `${desired} running gateways UP at HAProxy`,
        async () => {
          const up = new Set((await haproxy.servers()).filter((s) => s.state === 'UP').map((s) => s.name));
          const ready = running().filter((p) => up.has(p.slot));
          return ready.length >= desired;
        },
        timeoutMs,
      );
    },
    async scale(replicas) {
      if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be a positive integer, got ${replicas}`);
      desired = replicas;
      const surplus = running()
        .sort((a, b) => b.startedAt - a.startedAt)
        .slice(0, Math.max(0, running().length - desired));
      await Promise.all([reconcile(), ...surplus.map((p) => end(p.name, 'SIGTERM', graceMs))]);
    },
  };

  await fleet.waitForReady();

  const cleanup = async (): Promise<void> => {
    closing = true;
    await reconciling.catch(() => {});
    await Promise.all(
      [...pods.values()].map(async (pod) => {
        pod.gateway.child.kill('SIGKILL');
        await pod.gateway.exited;
      }),
    );
    await cleanupAll();
  };
  return [fleet, cleanup];
}
