import { createHash } from 'node:crypto';
import { Construct } from 'constructs';
import { stringify as toYaml } from 'yaml';
import { JsonPatch, type ApiObject } from 'cdk8s';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import { GATEWAY_SETTING_NAMES, type SettingName } from './generated/gateway-settings.ts';
import { addObject, HARDENED_CONTAINER_SECURITY_CONTEXT } from './api-object.ts';
import { resolveDrainTiming, type DrainProps, type DrainTiming } from './drain-timing.ts';
import { checkExtraEnv, isSet, listOf, mergeExtra, schedulingFields, type PodExtensions } from './pod-extensions.ts';
import { objectLabels, selectorLabels, type AppIdentity } from './labels.ts';

/** Where the gateway finds Redis: always a Secret, so in-cluster and external Redis look the same to it. */
export interface RedisConnection {
  /** `ADAPTER`: `redis` for one Redis, `redis-cluster` for Redis Cluster (sharded pub/sub). */
  readonly adapter: 'redis' | 'redis-cluster';
  /** Secret holding the URL (and the password, if any). */
  readonly secretName: string;
  /** Key of `REDIS_URL` in the Secret (unless `url` is set). */
  readonly urlKey: string;
  /**
   * `REDIS_URL` itself, when it is not secret (the in-cluster Redis): the Secret then needs only the password.
   * @default - read from the Secret's `urlKey`
   */
  readonly url?: string;
  /** Key of `REDIS_PASSWORD` in the Secret; optional in the Secret (a password may be part of the URL). */
  readonly passwordKey: string;
}

/** `REDIS_URL` and `REDIS_PASSWORD` of a pod that talks to this Redis (the gateway, the controller). */
export function redisConnectionEnv(redis: RedisConnection): IEnvVar[] {
  return [
    redis.url === undefined
      ? { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: redis.secretName, key: redis.urlKey } } }
      : { name: 'REDIS_URL', value: redis.url },
    { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: redis.secretName, key: redis.passwordKey, optional: true } } },
  ];
}

/**
 * Public keys for RS256/ES256 tokens, mounted from a ConfigMap (public keys are not secret): a JWKS
 * (`JWT_JWKS_FILE`) or one PEM SPKI key (`JWT_PUBLIC_KEY_FILE`).
 */
export interface JwtPublicKeySource {
  /** `RS256` or `ES256` (`JWT_ALGORITHMS`). */
  readonly algorithm: 'RS256' | 'ES256';
  /** ConfigMap holding the keys. */
  readonly configMapName: string;
  /**
   * Key of the file in the ConfigMap.
   * @default 'jwks.json'
   */
  readonly key?: string;
  /**
   * @default 'jwks'
   */
  readonly format?: 'jwks' | 'pem';
}

/** Where the gateway mounts `JwtPublicKeySource` (read-only). */
export const JWT_KEYS_MOUNT_PATH = '/etc/realtime-gateway/jwt';

/** Where the gateway mounts the channel namespaces ConfigMap (a directory mount: `NAMESPACES_FILE` is in it). */
export const NAMESPACES_MOUNT_PATH = '/etc/realtime-gateway/namespaces';
/** Key of the namespaces file in that ConfigMap. */
export const NAMESPACES_FILE_KEY = 'namespaces.yaml';
/** Where the gateway mounts the server API keys Secret (a directory mount, never subPath, so rotated keys reach the pod). */
export const API_KEYS_MOUNT_PATH = '/etc/realtime-gateway/api-keys';

/** The server API (docs/server-api.md): keys from a Secret you create, one key per line, each >= 32 characters. */
export interface ServerApiOptions {
  /** Secret holding the keys file. */
  readonly existingSecret: string;
  /**
   * Key of the keys file in the Secret.
   * @default 'api-keys'
   */
  readonly key?: string;
}

// Loose on purpose (the chart generator passes `__HV_*__` sentinels); the API server checks the rest.
const OBJECT_NAME = /^[-._a-zA-Z0-9]{1,253}$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

/** YAML text of the `namespaces` prop; refuses what the gateway would refuse at start-up only by shape (it validates the rest). */
function namespacesText(namespaces: string | Readonly<Record<string, unknown>>): string {
  if (typeof namespaces === 'string') {
    if (namespaces.trim() === '') throw new Error(`namespaces=${JSON.stringify(namespaces)} is empty: leave it unset for the demo namespaces, or pass the YAML/JSON of your namespaces (docs/namespaces.md)`);
    return namespaces;
  }
  if (namespaces === null || typeof namespaces !== 'object' || Array.isArray(namespaces)) {
    throw new Error(`namespaces=${JSON.stringify(namespaces)} must be YAML text or an object (docs/namespaces.md)`);
  }
  return toYaml(namespaces);
}

/** Where the gateway finds its secrets. */
export interface GatewayAuthSecret {
  /** Secret name. */
  readonly secretName: string;
  /**
   * Verify RS256/ES256 tokens with these public keys; `JWT_SECRET` is then not injected (it would win:
   * the gateway verifies HS256 whenever it is set).
   * @default - HS256 with `jwtSecretKey` of the Secret
   */
  readonly publicKey?: JwtPublicKeySource;
  /**
   * Key of `JWT_SECRET` (HS256 shared secret).
   * @default 'jwt-secret'
   */
  readonly jwtSecretKey?: string;
  /**
   * Key of `ADMIN_TOKEN` (bearer token of `POST /admin/drain`, used by the drain controller).
   * @default 'admin-token'
   */
  readonly adminTokenKey?: string;
}

export interface GatewayProps {
  readonly app: AppIdentity;
  /** Container image, `repository:tag` or `repository@digest`. */
  readonly image: string;
  readonly redis: RedisConnection;
  readonly auth: GatewayAuthSecret;
  /**
   * Name of every gateway object.
   * @default app.instance
   */
  readonly name?: string;
  /**
   * @default 'IfNotPresent'
   */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * Fixed replica count. Leave unset when an autoscaler owns the count (`autoscaled: true`).
   * @default 2, or unset when autoscaled
   */
  readonly replicas?: number;
  /**
   * An HPA or KEDA scales this Deployment: the manifest then leaves `replicas` alone so applying it again
   * does not reset what the autoscaler chose.
   * @default false
   */
  readonly autoscaled?: boolean;
  /**
   * `PORT` of the public HTTP server (Socket.IO, SSE, the demo page, `/healthz`, `/readyz`) and of the
   * Service's `http` port: what the entry routes to.
   * @default 3000
   */
  readonly port?: number;
  /**
   * `INTERNAL_PORT` of the internal HTTP server (`/metrics`, `/fleet`, `/admin/drain`, probes) and of the
   * Service's `internal` port. No entry routes to it; the NetworkPolicy admits only `allowInternalFrom` peers.
   * @default 9090
   */
  readonly internalPort?: number;
  /**
   * Peers allowed to reach the internal port, besides those added later with `allowInternalFrom`
   * (the drain controller, KEDA's operator, your Prometheus).
   * @default - none: only the kubelet's probes (and `kubectl port-forward`) reach it
   */
  readonly internalPeers?: readonly INetworkPolicyPeer[];
  /**
   * `prometheus.io/scrape`, `/port` and `/path` annotations on the pods, pointing at the internal port's `/metrics`.
   * @default true
   */
  readonly scrapeAnnotations?: boolean;
  /**
   * @default - requests 100m CPU / 128Mi, limit 512Mi memory (no CPU limit: throttling stalls heartbeats)
   */
  readonly resources?: IResourceRequirements;
  /**
   * Drain timings; the grace period and `SHUTDOWN_DEADLINE_MS` are derived from them.
   * @default - see DrainProps
   */
  readonly drain?: DrainProps;
  /**
   * More gateway settings (names from app/gateway/config.ts), e.g. `{LOG_LEVEL: 'debug'}`.
   * @default - none
   */
  readonly settings?: Readonly<Partial<Record<SettingName, string>>>;
  /**
   * PodDisruptionBudget `maxUnavailable`: voluntary evictions (node drains) take at most this many pods at once.
   * @default 1
   */
  readonly maxUnavailableDuringEviction?: number;
  /**
   * What a platform team adds to the pods: scheduling, annotations, labels, extra env, envFrom, volumes and mounts.
   * @default - none
   */
  readonly pod?: PodExtensions;
  /**
   * Annotations of the ServiceAccount (e.g. a cloud IAM role binding).
   * @default - none
   */
  readonly serviceAccountAnnotations?: Readonly<Record<string, string>>;
  /**
   * Channel namespaces (docs/namespaces.md): the YAML/JSON text of the file, or an object serialized to
   * YAML. Rendered into the ConfigMap `<name>-namespaces`, mounted at `/etc/realtime-gateway/namespaces`
   * with `NAMESPACES_FILE` pointing at it; pods roll when it changes (the gateway reads it at start-up only).
   * @default - the demo namespaces built into the gateway
   */
  readonly namespaces?: string | Readonly<Record<string, unknown>>;
  /**
   * The server API's keys (docs/server-api.md): the Secret is mounted as a directory at
   * `/etc/realtime-gateway/api-keys` and `API_KEYS_FILE` points at it; the gateway re-reads the file when the
   * kubelet updates it, so keys rotate without a restart. Admit your backends to the internal port with
   * `internalPeers` or `allowInternalFrom`.
   * @default - the server API is off (`/api/*` answers 404)
   */
  readonly serverApi?: ServerApiOptions;
}

/** Settings the construct owns; passing them in `settings` would be ambiguous. */
export const OWNED_SETTINGS: readonly SettingName[] = [
  'PORT', 'INTERNAL_PORT', 'HOST', 'POD_NAME', 'ADAPTER', 'REDIS_URL', 'REDIS_PASSWORD', 'AUTH_MODE', 'JWT_SECRET', 'ADMIN_TOKEN',
  'JWT_ALGORITHMS', 'JWT_JWKS_FILE', 'JWT_PUBLIC_KEY_FILE',
  'DRAIN_NOTICE_DELAY_MS', 'DRAIN_WINDOW_MS', 'DRAIN_RATE_PER_SECOND', 'DRAIN_JITTER_MS', 'SHUTDOWN_DEADLINE_MS',
  'NAMESPACES_FILE', 'API_KEYS_FILE',
];

export const GATEWAY_COMPONENT = 'gateway';
/** Component label of the channel namespaces ConfigMap (its own, so the chart has a template per object). */
const NAMESPACES_COMPONENT = 'namespaces';
/** Name of the container port and Service port of the internal server (the controller finds pods' admin endpoint by it). */
export const INTERNAL_PORT_NAME = 'internal';
export const GATEWAY_CONTAINER_UID = 1000; // the `node` user of the node:*-bookworm-slim images

/**
 * The Socket.IO gateway: Deployment, Service, ServiceAccount (no API token), ConfigMap,
 * PodDisruptionBudget and a NetworkPolicy guarding the internal port. Drains itself on SIGTERM; the
 * pod's grace period is derived from the drain timings.
 *
 * Two ports (docs/decisions/0005-two-ports.md): `http` (PORT) is what the entry routes to; `internal`
 * (INTERNAL_PORT) serves metrics, fleet stats and the admin endpoint, and only the peers passed to
 * `allowInternalFrom` reach it.
 */
export class Gateway extends Construct {
  readonly name: string;
  /** The public port (Service port `http`). */
  readonly port: number;
  /** The internal port (Service port `internal`). */
  readonly internalPort: number;
  readonly internalPortName = INTERNAL_PORT_NAME;
  readonly drain: DrainTiming;
  /** Labels selecting the gateway pods (for NetworkPolicies, Services and autoscalers). */
  readonly podSelector: Record<string, string>;
  readonly deployment: ApiObject;
  readonly service: ApiObject;
  readonly networkPolicy: ApiObject;
  readonly serviceAccount: ApiObject;
  readonly configMap: ApiObject;
  /** The channel namespaces ConfigMap, when `namespaces` is set. */
  readonly namespacesConfigMap?: ApiObject;
  readonly podDisruptionBudget: ApiObject;
  private internalPeerCount = 0;

  constructor(scope: Construct, id: string, props: GatewayProps) {
    super(scope, id);
    const app = props.app;
    this.name = props.name ?? app.instance;
    this.port = props.port ?? 3000;
    this.internalPort = props.internalPort ?? 9090;
    if (!Number.isInteger(this.port) || this.port < 1 || this.port > 65_535) {
      throw new Error(`port=${this.port} must be an integer in 1-65535`);
    }
    // Lower bound only: the chart generator passes out-of-range sentinels; the API server checks the rest.
    if (!Number.isInteger(this.internalPort) || this.internalPort < 1) throw new Error(`internalPort=${this.internalPort} must be an integer in 1-65535`);
    if (this.internalPort === this.port) {
      throw new Error(`internalPort=${this.internalPort} must differ from port=${this.port}: the entry routes to the public port, nothing to the internal one`);
    }
    if (props.autoscaled && props.replicas !== undefined) {
      throw new Error(`replicas=${props.replicas} conflicts with autoscaled=true: the autoscaler owns the replica count; drop one`);
    }
    const replicas = props.autoscaled ? undefined : (props.replicas ?? 2);
    if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1)) {
      throw new Error(`replicas=${replicas} must be an integer >= 1`);
    }
    for (const name of Object.keys(props.settings ?? {})) {
      if (!(GATEWAY_SETTING_NAMES as readonly string[]).includes(name)) throw new Error(`settings.${name} is not a gateway setting (see app/gateway/config.ts)`);
      if ((OWNED_SETTINGS as readonly string[]).includes(name)) {
        throw new Error(`settings.${name} is set by the Gateway construct itself; use its prop instead`);
      }
    }
    const namespaces = props.namespaces === undefined ? undefined : namespacesText(props.namespaces);
    const serverApi = props.serverApi;
    if (serverApi) {
      if (!OBJECT_NAME.test(serverApi.existingSecret ?? '')) {
        throw new Error(`serverApi.existingSecret=${JSON.stringify(serverApi.existingSecret)} must be the name of the Secret holding the API keys`);
      }
      if (serverApi.key !== undefined && !CONFIG_KEY.test(serverApi.key)) {
        throw new Error(`serverApi.key=${JSON.stringify(serverApi.key)} must be a Secret key (letters, digits, '-', '_', '.')`);
      }
    }
    this.drain = resolveDrainTiming(props.drain);
    this.podSelector = selectorLabels(app, GATEWAY_COMPONENT);
    const labels = objectLabels(app, GATEWAY_COMPONENT);
    const metadata = { name: this.name, labels };

    const config: Record<string, string> = {
      HOST: '0.0.0.0',
      PORT: String(this.port),
      INTERNAL_PORT: String(this.internalPort),
      ADAPTER: props.redis.adapter,
      AUTH_MODE: 'jwt',
      DRAIN_NOTICE_DELAY_MS: String(this.drain.noticeDelayMs),
      DRAIN_WINDOW_MS: String(this.drain.windowMs),
      DRAIN_RATE_PER_SECOND: String(this.drain.ratePerSecond),
      DRAIN_JITTER_MS: String(this.drain.jitterMs),
      SHUTDOWN_DEADLINE_MS: String(this.drain.shutdownDeadlineMs),
      ...(namespaces !== undefined ? { NAMESPACES_FILE: `${NAMESPACES_MOUNT_PATH}/${NAMESPACES_FILE_KEY}` } : {}),
      ...(serverApi ? { API_KEYS_FILE: `${API_KEYS_MOUNT_PATH}/${serverApi.key ?? 'api-keys'}` } : {}),
      ...props.settings,
    };
    const publicKey = props.auth.publicKey;
    const secretEnv: IEnvVar[] = [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      ...redisConnectionEnv(props.redis),
      ...(publicKey
        ? [
            { name: 'JWT_ALGORITHMS', value: publicKey.algorithm },
            { name: publicKey.format === 'pem' ? 'JWT_PUBLIC_KEY_FILE' : 'JWT_JWKS_FILE', value: `${JWT_KEYS_MOUNT_PATH}/${publicKey.key ?? 'jwks.json'}` },
          ]
        : [{ name: 'JWT_SECRET', valueFrom: { secretKeyRef: { name: props.auth.secretName, key: props.auth.jwtSecretKey ?? 'jwt-secret' } } }]),
      { name: 'ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: props.auth.secretName, key: props.auth.adminTokenKey ?? 'admin-token' } } },
    ];

    const pod = props.pod ?? {};
    checkExtraEnv(pod.env, [...OWNED_SETTINGS, ...secretEnv.map((e) => e.name)]);
    this.serviceAccount = addObject(
      this,
      'ServiceAccount',
      new ServiceAccount({
        metadata: { ...metadata, ...(isSet(props.serviceAccountAnnotations) ? { annotations: { ...props.serviceAccountAnnotations } } : {}) },
        automountServiceAccountToken: false,
      }),
    );
    this.configMap = addObject(this, 'ConfigMap', new ConfigMap({ metadata, data: config }));
    const namespacesConfigMapName = `${this.name}-namespaces`;
    if (namespaces !== undefined) {
      this.namespacesConfigMap = addObject(
        this,
        'NamespacesConfigMap',
        new ConfigMap({ metadata: { name: namespacesConfigMapName, labels: objectLabels(app, NAMESPACES_COMPONENT) }, data: { [NAMESPACES_FILE_KEY]: namespaces } }),
      );
    }

    const http = 'http';
    // The kubelet asks the internal port: probes are cluster traffic, and edge checks keep the public one.
    const probe = (path: string) => ({ httpGet: { path, port: INTERNAL_PORT_NAME } });
    const scrape = props.scrapeAnnotations ?? true;
    this.deployment = addObject(
      this,
      'Deployment',
      new Deployment({
        metadata,
        spec: {
          replicas,
          revisionHistoryLimit: 5,
          // A new pod counts as available only after one drain's time, so a rollout drains one old pod at a time.
          minReadySeconds: this.drain.minReadySeconds,
          selector: { matchLabels: this.podSelector },
          // Never drop below the wanted capacity during a rollout: every replaced pod moves its sockets.
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
          template: {
            metadata: {
              labels: mergeExtra(labels, pod.labels, 'pod.labels'),
              // Pods roll when the configuration changes (envFrom alone would not restart them).
              annotations: mergeExtra(
                {
                  'checksum/config': createHash('sha256').update(JSON.stringify(config)).digest('hex'),
                  // The gateway reads its namespaces at start-up only: a change must roll the pods.
                  ...(namespaces !== undefined ? { 'checksum/namespaces': createHash('sha256').update(namespaces).digest('hex') } : {}),
                  ...(scrape ? { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(this.internalPort), 'prometheus.io/path': '/metrics' } : {}),
                },
                pod.annotations,
                'pod.annotations',
              ),
            },
            spec: {
              ...schedulingFields(pod),
              ...(isSet(pod.affinity) ? { affinity: structuredClone(pod.affinity) } : {}),
              serviceAccountName: this.name,
              automountServiceAccountToken: false,
              terminationGracePeriodSeconds: this.drain.terminationGracePeriodSeconds,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: GATEWAY_CONTAINER_UID,
                runAsGroup: GATEWAY_CONTAINER_UID,
                fsGroup: GATEWAY_CONTAINER_UID,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              topologySpreadConstraints: [
                {
                  maxSkew: 1,
                  topologyKey: 'kubernetes.io/hostname',
                  whenUnsatisfiable: 'ScheduleAnyway',
                  labelSelector: { matchLabels: this.podSelector },
                  matchLabelKeys: ['pod-template-hash'],
                },
              ],
              containers: [
                {
                  name: GATEWAY_COMPONENT,
                  image: props.image,
                  imagePullPolicy: props.imagePullPolicy ?? 'IfNotPresent',
                  command: ['node', 'app/gateway/main.ts'],
                  ports: [
                    { name: http, containerPort: this.port, protocol: 'TCP' },
                    { name: INTERNAL_PORT_NAME, containerPort: this.internalPort, protocol: 'TCP' },
                  ],
                  envFrom: [{ configMapRef: { name: this.name } }, ...listOf(pod.envFrom)],
                  env: [...secretEnv, ...listOf(pod.env)],
                  startupProbe: { ...probe('/healthz'), periodSeconds: 1, failureThreshold: 30 },
                  livenessProbe: { ...probe('/healthz'), periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
                  // /readyz answers 503 at once when a drain starts: two probes a second apart take the endpoint away in
                  // about 2 s (the notice delay), while one probe slowed by event-loop lag does not flap it.
                  readinessProbe: { ...probe('/readyz'), periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 2 },
                  lifecycle: { preStop: { sleep: { seconds: this.drain.preStopSeconds } } },
                  resources: props.resources ?? {
                    requests: { cpu: '100m', memory: '128Mi' },
                    limits: { memory: '512Mi' },
                  },
                  securityContext: HARDENED_CONTAINER_SECURITY_CONTEXT,
                  volumeMounts: [
                    { name: 'tmp', mountPath: '/tmp' },
                    ...(publicKey ? [{ name: 'jwt-keys', mountPath: JWT_KEYS_MOUNT_PATH, readOnly: true }] : []),
                    ...(namespaces !== undefined ? [{ name: 'namespaces', mountPath: NAMESPACES_MOUNT_PATH, readOnly: true }] : []),
                    ...(serverApi ? [{ name: 'api-keys', mountPath: API_KEYS_MOUNT_PATH, readOnly: true }] : []),
                    ...listOf(pod.volumeMounts),
                  ],
                },
              ],
              volumes: [
                { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
                ...(publicKey ? [{ name: 'jwt-keys', configMap: { name: publicKey.configMapName } }] : []),
                ...(namespaces !== undefined ? [{ name: 'namespaces', configMap: { name: namespacesConfigMapName } }] : []),
                ...(serverApi ? [{ name: 'api-keys', secret: { secretName: serverApi.existingSecret, defaultMode: 0o440 } }] : []),
                ...listOf(pod.volumes),
              ],
            },
          },
        },
      }),
    );

    this.service = addObject(
      this,
      'Service',
      new Service({
        metadata,
        spec: {
          type: 'ClusterIP',
          selector: this.podSelector,
          ports: [
            { name: http, port: this.port, targetPort: http, protocol: 'TCP' },
            // In-cluster callers (KEDA's metrics-api scaler, Prometheus via the Service) find it by name.
            { name: INTERNAL_PORT_NAME, port: this.internalPort, targetPort: INTERNAL_PORT_NAME, protocol: 'TCP' },
          ],
        },
      }),
    );

    this.podDisruptionBudget = addObject(
      this,
      'PodDisruptionBudget',
      new PodDisruptionBudget({
        metadata,
        spec: { maxUnavailable: props.maxUnavailableDuringEviction ?? 1, selector: { matchLabels: this.podSelector } },
      }),
    );

    // Selecting the gateway pods for Ingress denies every source a rule does not name: the public port
    // is open to all (the entry, and clients through it); the internal port only to the peers added below.
    // The kubelet's probes come from the node, which NetworkPolicies never block.
    this.networkPolicy = addObject(
      this,
      'NetworkPolicy',
      new NetworkPolicy({
        metadata,
        spec: {
          podSelector: { matchLabels: this.podSelector },
          policyTypes: ['Ingress'],
          ingress: [{ ports: [{ port: this.port, protocol: 'TCP' }] }],
        },
      }),
    );
    for (const peer of props.internalPeers ?? []) this.allowInternalFrom(peer);
  }

  /**
   * Lets `peer` reach the internal port (metrics, fleet stats, admin): the drain controller's pods, KEDA's
   * operator, a Prometheus namespace. The rule appears with its first peer — an ingress rule with an
   * empty `from` would admit everyone.
   */
  allowInternalFrom(peer: INetworkPolicyPeer): void {
    if (!peer.podSelector && !peer.namespaceSelector && !peer.ipBlock) {
      throw new Error(`allowInternalFrom(${JSON.stringify(peer)}): a peer needs a podSelector, namespaceSelector or ipBlock; an empty one would admit every pod`);
    }
    const copy = structuredClone(peer) as INetworkPolicyPeer;
    if (this.internalPeerCount === 0) {
      this.networkPolicy.addJsonPatch(JsonPatch.add('/spec/ingress/-', { from: [copy], ports: [{ port: this.internalPort, protocol: 'TCP' }] }));
    } else {
      this.networkPolicy.addJsonPatch(JsonPatch.add('/spec/ingress/1/from/-', copy));
    }
    this.internalPeerCount += 1;
  }
}

/** A NetworkPolicy peer: every pod of one namespace (by the label the API server puts on each namespace). */
export function namespacePeer(namespace: string, podLabels?: Readonly<Record<string, string>>): INetworkPolicyPeer {
  return {
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
    ...(podLabels ? { podSelector: { matchLabels: { ...podLabels } } } : {}),
  };
}
