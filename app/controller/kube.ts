import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  V1MicroTime,
  makeInformer,
  setHeaderOptions,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
  type V1Deployment,
  type V1LabelSelector,
  type V1Pod,
  type V1PodDisruptionBudget,
} from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { API_GROUP, API_VERSION, KIND, PLURAL, type SocketGateway } from './socket-gateway.ts';

/** The API clients the controller uses, all from one kubeconfig (KUBECONFIG, else in-cluster). */
export interface KubeClients {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly coordination: CoordinationV1Api;
  readonly events: EventsV1Api;
  readonly policy: PolicyV1Api;
}

export function kubeClients(config: KubeConfig = defaultKubeConfig()): KubeClients {
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    apps: config.makeApiClient(AppsV1Api),
    custom: config.makeApiClient(CustomObjectsApi),
    coordination: config.makeApiClient(CoordinationV1Api),
    events: config.makeApiClient(EventsV1Api),
    policy: config.makeApiClient(PolicyV1Api),
  };
}

function defaultKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** The HTTP status of an API error, if it is one. */
export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  return typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
}

// ---- label selectors ----

export function matchesSelector(selector: V1LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(l[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && values.includes(l[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** A selector in the string form the /scale subresource reports (`a=b,c in (d,e)`). */
export function selectorString(selector: V1LabelSelector | undefined): string {
  if (!selector) return '';
  const parts = Object.entries(selector.matchLabels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    const values = `(${[...(e.values ?? [])].sort().join(',')})`;
    if (e.operator === 'In') parts.push(`${e.key} in ${values}`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin ${values}`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

// ---- informers ----

export interface Caches {
  readonly socketGateways: ObjectCache<SocketGateway & KubernetesObject>;
  readonly deployments: ObjectCache<V1Deployment>;
  readonly pods: ObjectCache<V1Pod>;
  readonly pdbs: ObjectCache<V1PodDisruptionBudget>;
}

export interface RunningInformers {
  readonly caches: Caches;
  /** Every informer has listed once. */
  synced(): boolean;
  stop(): Promise<void>;
}

export type InformerKind = 'SocketGateway' | 'Deployment' | 'Pod' | 'PodDisruptionBudget';

/**
 * Watches the four kinds the controller reads, in one namespace. client-node's informer relists after
 * `410 Gone` by itself; after any other error it stops, so each one is restarted here with backoff
 * (1 s doubling to 30 s).
 */
export async function startInformers(
  clients: KubeClients,
  namespace: string,
  onChange: (kind: InformerKind, object: KubernetesObject) => void,
  onError: (kind: InformerKind, err: unknown, retryInMs: number) => void,
): Promise<RunningInformers> {
  const { config, core, apps, custom, policy } = clients;
  const specs = [
    {
      kind: 'SocketGateway' as const,
      path: `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/${PLURAL}`,
      list: async () => {
        const list = (await custom.listNamespacedCustomObject({ group: API_GROUP, version: API_VERSION, namespace, plural: PLURAL })) as {
          items: (SocketGateway & KubernetesObject)[];
          metadata?: { resourceVersion?: string };
        };
        for (const item of list.items) item.kind ??= KIND;
        return list;
      },
    },
    { kind: 'Deployment' as const, path: `/apis/apps/v1/namespaces/${namespace}/deployments`, list: () => apps.listNamespacedDeployment({ namespace }) },
    { kind: 'Pod' as const, path: `/api/v1/namespaces/${namespace}/pods`, list: () => core.listNamespacedPod({ namespace }) },
    {
      kind: 'PodDisruptionBudget' as const,
      path: `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets`,
      list: () => policy.listNamespacedPodDisruptionBudget({ namespace }),
    },
  ];
  let stopped = false;
  const listed = new Set<InformerKind>();
  const informers: (Informer<KubernetesObject> & ObjectCache<KubernetesObject>)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const errorCounts = new Map<InformerKind, number>();
  /** Starts (or restarts) an informer; it counts as listed only if no error came while it started. */
  const startOne = async (kind: InformerKind, informer: Informer<KubernetesObject>) => {
    const errorsBefore = errorCounts.get(kind) ?? 0;
    await informer.start();
    if ((errorCounts.get(kind) ?? 0) === errorsBefore) listed.add(kind);
  };
  for (const spec of specs) {
    const informer = makeInformer<KubernetesObject>(config, spec.path, spec.list as () => Promise<{ items: KubernetesObject[] }>);
    let backoffMs = 0;
    let errorAt = 0;
    for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, (obj) => onChange(spec.kind, obj));
    informer.on('error', (err: unknown) => {
      if (stopped) return;
      errorCounts.set(spec.kind, (errorCounts.get(spec.kind) ?? 0) + 1);
      const now = Date.now();
      backoffMs = now - errorAt > 60_000 ? 1_000 : Math.min(30_000, backoffMs * 2);
      errorAt = now;
      onError(spec.kind, err, backoffMs);
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!stopped) void startOne(spec.kind, informer);
      }, backoffMs);
      timers.add(timer);
    });
    informers.push(informer);
  }
  await Promise.all(informers.map((informer, i) => startOne(specs[i]!.kind, informer)));
  const [socketGateways, deployments, pods, pdbs] = informers;
  return {
    caches: {
      socketGateways: socketGateways as unknown as Caches['socketGateways'],
      deployments: deployments as unknown as Caches['deployments'],
      pods: pods as unknown as Caches['pods'],
      pdbs: pdbs as unknown as Caches['pdbs'],
    },
    synced: () => listed.size === specs.length,
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      await Promise.all(informers.map((i) => i.stop()));
    },
  };
}

// ---- events ----

export interface EventTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly uid?: string | undefined;
}

export type EventReason = 'DrainStarted' | 'DrainCompleted' | 'DrainTimedOut' | 'DrainCancelled' | 'ScaledDown' | 'ScaledUp';

export const REPORTING_CONTROLLER = `${API_GROUP}/scale-down-controller`;

/** Records events.k8s.io/v1 Events; a failure is logged, never fatal (Events are best effort). */
export function eventRecorder(clients: KubeClients, identity: string, log: Logger) {
  return async (target: EventTarget, type: 'Normal' | 'Warning', reason: EventReason, action: string, note: string): Promise<void> => {
    try {
      await clients.events.createNamespacedEvent({
        namespace: target.namespace,
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name: `${target.name}.${randomBytes(8).toString('hex')}`, namespace: target.namespace },
          eventTime: new V1MicroTime(),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: identity.slice(0, 128),
          action,
          reason,
          type,
          note: note.slice(0, 1_000),
          regarding: { apiVersion: target.apiVersion, kind: target.kind, name: target.name, namespace: target.namespace, uid: target.uid },
        },
      });
    } catch (err) {
      log.warn({ err: String(err), reason, target: target.name }, 'could not record an Event');
    }
  };
}

export type RecordEvent = ReturnType<typeof eventRecorder>;
