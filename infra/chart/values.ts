import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import type { IAffinity } from 'kubernetes-models/v1/Affinity';
import type { IEnvFromSource } from 'kubernetes-models/v1/EnvFromSource';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { ILocalObjectReference } from 'kubernetes-models/v1/LocalObjectReference';
import type { IToleration } from 'kubernetes-models/v1/Toleration';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { IParentReference } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/ParentReference';
import { isSet } from '../pod-extensions.ts';
import type { SettingName } from '../generated/gateway-settings.ts';
import { DRAIN_DEFAULTS } from '../drain-timing.ts';
import type { AuthOptions, GatewayApiEntryOptions, HaproxyEntryOptions, RealtimeGatewayProps } from '../realtime-gateway.ts';
import { APP_VERSION } from '../profiles/common.ts';
import type { CookieSameSite } from '../limits.ts';

export const CHART_NAME = 'realtime-gateway';
export const CHART_VERSION = APP_VERSION;

/** The chart's values. Defaults equal the kind profile but for `image.tag` (tested), documented in VALUE_DOCS. */
export interface ChartValues {
  nameOverride: string;
  fullnameOverride: string;
  image: { repository: string; tag: string; pullPolicy: 'Always' | 'IfNotPresent' | 'Never' };
  replicaCount: number;
  autoscaling: {
    mode: 'hpa' | 'keda' | 'none';
    minReplicas: number;
    maxReplicas: number;
    targetCPUUtilizationPercentage: number;
    targetMemoryUtilizationPercentage: number;
    scaleUpPods: number;
    scaleDownStabilizationSeconds: number;
    scaleDownPeriodSeconds: number;
    keda: { socketsPerPod: number; socketsPath: string; operatorNamespace: string };
  };
  resources: IResourceRequirements;
  imagePullSecrets: ILocalObjectReference[];
  podAnnotations: Record<string, string>;
  podLabels: Record<string, string>;
  nodeSelector: Record<string, string>;
  tolerations: IToleration[];
  affinity: IAffinity;
  priorityClassName: string;
  extraEnv: IEnvVar[];
  extraEnvFrom: IEnvFromSource[];
  extraVolumes: IVolume[];
  extraVolumeMounts: IVolumeMount[];
  serviceAccount: { annotations: Record<string, string> };
  namespaces: string | Record<string, unknown>;
  serverApi: { existingSecret: string; key: string };
  internal: { port: number; metricsNamespace: string; backendNamespace: string };
  entry: {
    kind: 'gatewayApi' | 'ingress' | 'haproxy';
    className: string;
    host: string;
    cookieName: string;
    cookieSecure: boolean;
    cookieSameSite: CookieSameSite;
    tls: { enabled: boolean; secretName: string };
    gatewayApi: {
      listenerPort: number;
      parentRefs: IParentReference[];
      envoyPolicies: boolean;
      envoyProxy: {
        /** Envoy Gateway's `envoyService`, passed whole (Service type, node port patch, annotations). */
        service: Record<string, unknown>;
        // Before replicas: the generator's number stand-ins grow in this order, and minAvailable < replicas.
        minAvailable: number;
        replicas: number;
        resources: IResourceRequirements;
      };
    };
    ingress: { controller: 'nginx' | 'traefik'; timeoutSeconds: number; annotations: Record<string, string> };
    haproxy: {
      image: { repository: string; tag: string; pullPolicy: 'Always' | 'IfNotPresent' | 'Never' };
      replicas: number;
      serviceType: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
      /** Empty: assigned by the cluster. */
      nodePort: number | '';
      port: number;
      maxServers: number;
      maxConnections: number;
      clusterDomain: string;
      resources: IResourceRequirements;
    };
  };
  redis: {
    mode: 'internal' | 'external';
    internal: {
      image: string;
      storageSize: string;
      storageClass: string;
      maxMemory: string;
      password: string;
      existingSecret: string;
      existingSecretPasswordKey: string;
      resources: IResourceRequirements;
    };
    external: { secretName: string; urlKey: string; passwordKey: string; cluster: boolean };
  };
  drain: {
    preStopSeconds: number;
    noticeDelayMs: number;
    windowMs: number;
    ratePerSecond: number;
    jitterMs: number;
    marginSeconds: number;
    terminationGracePeriodSeconds: number | null;
  };
  generateSecrets: boolean;
  auth: {
    mode: 'HS256' | 'RS256' | 'ES256';
    existingSecret: string;
    jwtSecret: string;
    adminToken: string;
    publicKey: { configMapName: string; key: string; format: 'jwks' | 'pem' };
  };
  settings: Partial<Record<SettingName, string>>;
  metrics: {
    serviceMonitor: { enabled: boolean; interval: string; labels: Record<string, string> };
    prometheusRule: { enabled: boolean; labels: Record<string, string> };
  };
  controller: {
    enabled: boolean;
    replicas: number;
    resources: IResourceRequirements;
    minReadyPods: number;
    leaseDurationSeconds: number;
    drain: { reconnectBudgetPerSecond: number; windowSeconds: number; marginSeconds: number };
  };
}

export const DEFAULT_VALUES: ChartValues = {
  nameOverride: '',
  fullnameOverride: '',
  image: { repository: 'realtime-gateway', tag: '', pullPolicy: 'IfNotPresent' },
  replicaCount: 2,
  autoscaling: {
    mode: 'hpa',
    minReplicas: 2,
    maxReplicas: 6,
    targetCPUUtilizationPercentage: 70,
    targetMemoryUtilizationPercentage: 80,
    scaleUpPods: 4,
    scaleDownStabilizationSeconds: 600,
    scaleDownPeriodSeconds: 120,
    keda: { socketsPerPod: 1000, socketsPath: '/fleet', operatorNamespace: 'keda' },
  },
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
  imagePullSecrets: [],
  podAnnotations: {},
  podLabels: {},
  nodeSelector: {},
  tolerations: [],
  affinity: {},
  priorityClassName: '',
  extraEnv: [],
  extraEnvFrom: [],
  extraVolumes: [],
  extraVolumeMounts: [],
  serviceAccount: { annotations: {} },
  namespaces: '',
  serverApi: { existingSecret: '', key: 'api-keys' },
  internal: { port: 9090, metricsNamespace: '', backendNamespace: '' },
  entry: {
    kind: 'gatewayApi',
    className: 'eg',
    host: '',
    cookieName: 'rtgw-affinity',
    cookieSecure: false,
    cookieSameSite: 'Lax',
    tls: { enabled: false, secretName: '' },
    gatewayApi: {
      listenerPort: 8080,
      parentRefs: [],
      envoyPolicies: true,
      envoyProxy: {
        service: { type: 'LoadBalancer' },
        minAvailable: 1,
        replicas: 2,
        resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
      },
    },
    ingress: { controller: 'nginx', timeoutSeconds: 3600, annotations: {} },
    haproxy: {
      image: { repository: 'haproxy', tag: '3.2', pullPolicy: 'IfNotPresent' },
      replicas: 1,
      serviceType: 'ClusterIP',
      nodePort: '',
      port: 8080,
      maxServers: 32,
      maxConnections: 8000,
      clusterDomain: 'cluster.local',
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    },
  },
  redis: {
    mode: 'internal',
    internal: {
      image: 'redis:8.2.1-alpine',
      storageSize: '1Gi',
      storageClass: '',
      maxMemory: '192mb',
      password: '',
      existingSecret: '',
      existingSecretPasswordKey: 'password',
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    },
    external: { secretName: '', urlKey: 'url', passwordKey: 'password', cluster: false },
  },
  drain: { ...DRAIN_DEFAULTS, terminationGracePeriodSeconds: null },
  generateSecrets: true,
  auth: {
    mode: 'HS256',
    existingSecret: '',
    jwtSecret: '',
    adminToken: '',
    publicKey: { configMapName: '', key: 'jwks.json', format: 'jwks' },
  },
  settings: {},
  metrics: {
    serviceMonitor: { enabled: false, interval: '30s', labels: {} },
    prometheusRule: { enabled: false, labels: {} },
  },
  controller: {
    enabled: true,
    replicas: 2,
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    minReadyPods: 1,
    leaseDurationSeconds: 15,
    drain: { reconnectBudgetPerSecond: 60, windowSeconds: 120, marginSeconds: 15 },
  },
};

/** values.yaml comments, by dotted path. Every leaf and section is documented (a test checks). */
export const VALUE_DOCS: Record<string, string> = {
  nameOverride: 'Replaces the chart name in object names and the `app.kubernetes.io/name` label.',
  fullnameOverride: 'Replaces the whole base name of every object (default: the release name, or `<release>-realtime-gateway`).',
  image: 'The image of the gateway and of the scale-down controller (one image, two entry points).',
  'image.repository': 'Image repository. `make up` builds and loads `realtime-gateway:dev` into kind.',
  'image.tag': 'Image tag (a string: quote tags like 1.10). Empty: the chart\'s `appVersion`. For the image `make up` builds, `--set image.tag=dev`.',
  'image.pullPolicy': 'Image pull policy.',
  replicaCount: 'Gateway replicas when `autoscaling.mode` is `none`; ignored otherwise (the autoscaler owns the count).',
  autoscaling: 'Autoscaling: up fast, down one pod at a time (each removed pod makes its clients reconnect).',
  'autoscaling.mode': '`hpa`: HorizontalPodAutoscaler on CPU and memory (needs metrics-server). `keda`: KEDA ScaledObject on connected sockets per pod. `none`: fixed `replicaCount`.',
  'autoscaling.minReplicas': 'Fewest replicas.',
  'autoscaling.maxReplicas': 'Most replicas.',
  'autoscaling.targetCPUUtilizationPercentage': '`hpa`: average CPU utilisation (% of requests) to keep.',
  'autoscaling.targetMemoryUtilizationPercentage': '`hpa`: average memory utilisation (% of requests) to keep.',
  'autoscaling.scaleUpPods': 'Most pods added per 15 s (or 100 %, whichever is more).',
  'autoscaling.scaleDownStabilizationSeconds': 'Look-back window before removing pods (the highest recommendation in it wins). At least 60.',
  'autoscaling.scaleDownPeriodSeconds': 'At most one pod is removed per this many seconds. At least 15.',
  'autoscaling.keda': 'KEDA `metrics-api` trigger settings (`autoscaling.mode=keda`).',
  'autoscaling.keda.socketsPerPod': 'Connected sockets per pod to aim for.',
  'autoscaling.keda.socketsPath': "Path of the gateway's JSON fleet endpoint KEDA polls on the internal port (total sockets at `sockets`; 503 when Redis cannot be read, never an empty fleet).",
  'autoscaling.keda.operatorNamespace': "Namespace of KEDA's operator (pods labelled `app: keda-operator`); the gateway's NetworkPolicy lets it reach the internal port.",
  resources: 'Gateway container resources. No CPU limit by default: throttling delays heartbeats and drains.',
  imagePullSecrets: 'Secrets for pulling images from a private registry (`[{name: regcred}]`): every pod of the release (gateway, controller, Redis, HAProxy).',
  podAnnotations: 'More annotations of the gateway pods (besides `checksum/config` and `prometheus.io/*`).',
  podLabels: 'More labels of the gateway pods (never part of the selector).',
  nodeSelector: 'Node selector of every pod of the release.',
  tolerations: 'Tolerations of every pod of the release.',
  affinity: 'Affinity of the gateway pods (they already spread over nodes with a topology spread constraint).',
  priorityClassName: 'PriorityClass of every pod of the release. Empty: none.',
  extraEnv: 'More environment variables of the gateway container (Kubernetes `env` items: `value` or `valueFrom`). Names the chart sets are refused; prefer `settings` for gateway settings.',
  extraEnvFrom: 'More `envFrom` sources of the gateway container (ConfigMaps or Secrets), after the chart\'s ConfigMap.',
  extraVolumes: 'More volumes of the gateway pods (e.g. a ConfigMap with a config file, a Secret with a JWKS).',
  extraVolumeMounts: 'More volume mounts of the gateway container (read-only root: mount what the gateway reads).',
  serviceAccount: "The gateway pods' ServiceAccount (`<fullname>`; no API token is mounted).",
  'serviceAccount.annotations': 'Annotations of that ServiceAccount, e.g. a cloud IAM role (`eks.amazonaws.com/role-arn`, `iam.gke.io/gcp-service-account`).',
  internal: "The gateway's internal port: `/metrics`, `/fleet`, `/admin/drain`, probes. No route or Ingress exposes it; a NetworkPolicy admits only the drain controller, KEDA's operator (`autoscaling.mode=keda`) and `metricsNamespace`. The public port serves only what clients use.",
  'internal.port': '`INTERNAL_PORT`: container port and Service port named `internal` (the kubelet probes it; pods carry `prometheus.io/*` annotations for it).',
  'internal.metricsNamespace': "A namespace whose pods may reach the internal port — your Prometheus'. Empty: none besides the controller and KEDA.",
  'internal.backendNamespace': 'A namespace whose pods (your backends) may reach the internal port to call the server API (`serverApi`, docs/server-api.md). Empty: none.',
  namespaces:
    'Channel namespaces (docs/namespaces.md): the YAML text of the file (`namespaces: |`) or the same as a map. Rendered into the ConfigMap `<fullname>-namespaces`, mounted at `/etc/realtime-gateway/namespaces` with `NAMESPACES_FILE` pointing at it; pods roll when it changes (`checksum/namespaces`). Empty: the demo namespaces built into the gateway.',
  serverApi: 'The server API for backends (docs/server-api.md), on the internal port: admit your backends with `internal.backendNamespace`.',
  'serverApi.existingSecret':
    'A Secret you create with the API keys (one per line, each >= 32 characters), mounted as a directory at `/etc/realtime-gateway/api-keys` (not `subPath`: rotated keys reach the pods, which re-read the file) with `API_KEYS_FILE` pointing at it. Empty: the server API is off (`/api/*` answers 404).',
  'serverApi.key': 'Key of the keys file in that Secret.',
  entry: 'The entry point with session affinity (a cookie pins each browser to one pod; long-polling needs it).',
  'entry.kind': '`gatewayApi`: Gateway + HTTPRoute with cookie `sessionPersistence` (Gateway API v1.6.1 **experimental** channel; Envoy Gateway implements it). `ingress`: an Ingress with cookie-affinity annotations. `haproxy`: HAProxy in the release, no controller needed (`entry.haproxy`): it finds the gateway pods through a headless Service, sends new sessions only to pods whose `/readyz` passes, and keeps a draining pod\'s live sessions on it.',
  'entry.className': 'GatewayClass (`gatewayApi`) or IngressClass (`ingress`) name; `haproxy` does not use it.',
  'entry.host': 'Host name clients use; empty matches any host. `haproxy` serves any host and does not use it.',
  'entry.cookieName': 'Name of the affinity cookie (every entry kind).',
  'entry.cookieSecure':
    '`ingress` and `haproxy`: mark the affinity cookie `Secure` even though this entry serves plain HTTP, because TLS is terminated in front of it (a cloud load balancer): the browser sees https. With `entry.tls.enabled` the cookie is always `Secure`. The cookie is `HttpOnly` anyway.',
  'entry.cookieSameSite':
    '`ingress` and `haproxy`: the affinity cookie\'s `SameSite`: `Lax` (page and gateway on the same site), `Strict`, or `None` for a page on another site that calls the gateway with credentials (needs `Secure`: `entry.tls.enabled` or `entry.cookieSecure`).',
  'entry.tls': 'TLS termination at the entry (`gatewayApi` and `ingress`; `haproxy` serves plain HTTP and refuses `enabled: true`: terminate TLS in front of it).',
  'entry.tls.enabled': 'Terminate TLS (HTTPS listener / Ingress TLS). `ingress` also needs `entry.host`.',
  'entry.tls.secretName': 'Secret (type kubernetes.io/tls) with the certificate.',
  'entry.gatewayApi': 'Gateway API settings.',
  'entry.gatewayApi.listenerPort': 'Listener port of the Gateway (use 443 with TLS in production).',
  'entry.gatewayApi.parentRefs': 'Attach the HTTPRoute to existing shared Gateways (`[{name: shared, namespace: gateways, sectionName: https}]`) instead of creating a Gateway (and with Envoy Gateway, a proxy and load balancer) per release. Their listeners must allow routes from this namespace; `className`, `listenerPort` and TLS are then theirs (`entry.tls.enabled` must be false).',
  'entry.ingress': 'Ingress settings.',
  'entry.ingress.controller': '`nginx` (nginx-compatible annotations: persistent cookie affinity, long proxy timeouts) or `traefik` (sticky cookie on the Service; set long timeouts on the entryPoint).',
  'entry.ingress.timeoutSeconds': '`nginx`: proxy read/send timeout, long enough for WebSockets and 25 s long-polls.',
  'entry.gatewayApi.envoyPolicies': "The GatewayClass is Envoy Gateway's. Adds a BackendTrafficPolicy raising Envoy's circuit breaker (1024 connections, pending and parallel requests per proxy by default; each WebSocket and held long-poll holds one) to `MAX_CONNECTIONS` × (`autoscaling.maxReplicas` + 1); and, with a Gateway of its own (no `parentRefs`), an EnvoyProxy (`envoyProxy`) and an EnvoyPatchPolicy that keeps sessions on draining pods until their drain closes them (needs Envoy Gateway's `config.envoyGateway.extensionApis.enableEnvoyPatchPolicy=true`). `false` for another implementation.",
  'entry.gatewayApi.envoyProxy': "The Envoy proxy fleet of the release's Gateway (an EnvoyProxy in `infrastructure.parametersRef`; with `envoyPolicies` and no `parentRefs`). Its shutdown drain is derived from `drain.*`: `drainTimeout` is the gateway pods' grace period, `minDrainDuration` preStop + notice.",
  'entry.gatewayApi.envoyProxy.service': "Envoy Gateway's `envoyService` for the proxy's Service, as its EnvoyProxy API writes it: `type` (`LoadBalancer`, `NodePort`, `ClusterIP`), `externalTrafficPolicy`, `annotations`, `patch`. On kind (`make up`'s kind-config.yaml maps node port 30080): `{type: NodePort, externalTrafficPolicy: Cluster, patch: {type: StrategicMerge, value: {spec: {ports: [{port: 8080, nodePort: 30080}]}}}}`.",
  'entry.gatewayApi.envoyProxy.service.type': '`LoadBalancer`, `NodePort` or `ClusterIP`.',
  'entry.gatewayApi.envoyProxy.minAvailable': '`minAvailable` of the proxy pods\' PodDisruptionBudget; below `replicas`, so a node drain can evict one.',
  'entry.gatewayApi.envoyProxy.replicas': 'Proxy replicas.',
  'entry.gatewayApi.envoyProxy.resources': 'The Envoy container\'s resources. Each proxied socket is two connections in Envoy: size memory for your sockets per proxy.',
  'entry.ingress.annotations': 'More Ingress annotations (cert-manager issuer, auth, ...). The chart\'s own nginx affinity and timeout annotations are refused here: use `entry.cookieName` and `entry.ingress.timeoutSeconds`.',
  'entry.haproxy': 'HAProxy entry (`entry.kind=haproxy`): a Deployment `<fullname>-entry` and its Service, a ConfigMap with haproxy.cfg, and the headless Service `<fullname>-entry-pods` over the gateway pods (it keeps not-ready pods, so draining pods stay reachable for their sessions).',
  'entry.haproxy.image': 'HAProxy image, 2.6 or newer. The pod runs it as UID 99, the official image\'s `haproxy` user.',
  'entry.haproxy.image.repository': 'Image repository.',
  'entry.haproxy.image.tag': 'Image tag (a string: `--set-string` for tags like 3.10).',
  'entry.haproxy.image.pullPolicy': 'Image pull policy.',
  'entry.haproxy.replicas': 'HAProxy replicas. Any replica serves any client: the cookie names a gateway pod by its address, the same in every replica.',
  'entry.haproxy.serviceType': 'Service type: `ClusterIP` (put your own edge in front, or port-forward), `NodePort` (every node, at `nodePort`) or `LoadBalancer`.',
  'entry.haproxy.nodePort': 'With `serviceType=NodePort`: the node port, 30000-32767. Empty: assigned by the cluster.',
  'entry.haproxy.port': 'Port HAProxy listens on and the Service exposes. Use 1024 or above: the pod runs without capabilities.',
  'entry.haproxy.maxServers': 'Most gateway pods HAProxy routes to (`server-template` slots), draining ones included: keep it above the most replicas the autoscaler may reach plus the pods a rollout or drain adds. 1-1000.',
  'entry.haproxy.maxConnections': 'HAProxy `maxconn`: connections it holds at once. Each proxied socket uses two file descriptors; keep it well under the pod\'s open-file limit.',
  'entry.haproxy.clusterDomain': 'Cluster DNS domain: HAProxy resolves `<fullname>-entry-pods.<namespace>.svc.<clusterDomain>`.',
  'entry.haproxy.resources': 'HAProxy container resources.',
  redis: 'The Redis backplane (pub/sub, per-room sequence numbers and history, fleet stats).',
  'redis.mode': '`internal`: one Redis in the release (StatefulSet, generated password, NetworkPolicy admitting only the gateway). `external`: your Redis or Redis Cluster.',
  'redis.internal': 'In-release Redis (`redis.mode=internal`).',
  'redis.internal.image': 'Redis image.',
  'redis.internal.storageSize': 'Size of the Redis data volume (append-only file).',
  'redis.internal.storageClass': 'StorageClass of the Redis data volume. Empty: the cluster\'s default.',
  'redis.internal.maxMemory': 'Redis `maxmemory`: keep it about 75 % of the memory limit (an AOF rewrite forks; client buffers count outside it). Past it Redis evicts with `volatile-lru`: every key the gateway writes has a TTL, idle rooms\' history goes first (their clients get `room:reset` on resume), fleet stats (written every 2 s) stay.',
  'redis.internal.password': 'Redis password for the generated Secret `<fullname>-redis`. Empty: the existing value (upgrade) or a random one (`generateSecrets`).',
  'redis.internal.existingSecret':
    'A Secret you create with the Redis password (e.g. one External Secrets writes, docs/infrastructure.md): nothing is generated. Redis\' `auth.conf` is written from it at pod start (an init container; the password is on no command line), its probe and the gateway and controller read it too. Works with `generateSecrets=false`. Empty: the generated `<fullname>-redis`.',
  'redis.internal.existingSecretPasswordKey': 'Key of the password in `redis.internal.existingSecret`.',
  'redis.internal.resources': 'Redis container resources.',
  'redis.external': 'External Redis (`redis.mode=external`): a Secret you create, holding the URL and optionally the password.',
  'redis.external.secretName': 'Name of that Secret (required with `redis.mode=external`).',
  'redis.external.urlKey': 'Key of the URL (`rediss://host:6379`; Redis Cluster: comma-separated seed URLs).',
  'redis.external.passwordKey': 'Key of the password (may be absent when the URL carries it).',
  'redis.external.cluster': 'It is a Redis Cluster: the gateway uses the sharded adapter (`ADAPTER=redis-cluster`).',
  drain: 'Graceful drain. The pod grace period is derived: preStopSeconds + ceil((noticeDelayMs + windowMs) / 1000) + marginSeconds.',
  'drain.preStopSeconds': 'preStop sleep before SIGTERM, so endpoints and the proxy stop routing here first.',
  'drain.noticeDelayMs': 'After SIGTERM: not ready but still serving for this long (`DRAIN_NOTICE_DELAY_MS`).',
  'drain.windowMs': 'Paced socket closes are spread over this window (`DRAIN_WINDOW_MS`).',
  'drain.ratePerSecond': 'Socket closes per second; 0 spreads them evenly over the window (`DRAIN_RATE_PER_SECOND`).',
  'drain.jitterMs': 'Clients reconnect after a delay in [0, this], capped at the window (`DRAIN_JITTER_MS`); it sets the reconnect rate the other pods see.',
  'drain.marginSeconds': 'Slack before SIGKILL; the gateway exits by itself one second before it. At least 2.',
  'drain.terminationGracePeriodSeconds': 'Override the derived grace period (longer only; shorter fails the render).',
  generateSecrets: 'Generate the secret values nobody set (Redis password, JWT secret, admin token) with `randAlphaNum`, keeping existing ones (`lookup`) on upgrade; generated Secrets carry `helm.sh/resource-policy: keep`. `false` for GitOps (Argo CD, Flux, `helm template`: `lookup` sees nothing there, so every render would invent new values): each value must then come from an `existingSecret` or an explicit value, and the render fails naming the one missing.',
  auth: 'Client tokens (JWT, `AUTH_MODE=jwt`) and the drain admin token. Secret keys: `jwt-secret` (HS256 only) and `admin-token`.',
  'auth.mode': '`HS256`: a shared secret (`jwt-secret`). `RS256` / `ES256`: public keys from `auth.publicKey` (a JWKS or a PEM); no shared secret is injected.',
  'auth.existingSecret': 'Use this Secret (keys `admin-token`, and with HS256 `jwt-secret`) instead of generating `<fullname>-auth`, e.g. one External Secrets writes (docs/infrastructure.md).',
  'auth.jwtSecret': 'HS256 shared secret (32+ characters) for the generated Secret. Empty: the existing value (upgrade) or a random one (`generateSecrets`).',
  'auth.adminToken': 'Admin token (16+ characters) for the generated Secret. Empty: the existing value or a random one.',
  'auth.publicKey': '`RS256`/`ES256`: public keys in a ConfigMap you create, mounted read-only at `/etc/realtime-gateway/jwt`.',
  'auth.publicKey.configMapName': 'Name of that ConfigMap (required unless `auth.mode=HS256`).',
  'auth.publicKey.key': 'Key of the file in it.',
  'auth.publicKey.format': '`jwks`: a JWKS (`JWT_JWKS_FILE`, key rotation by `kid`). `pem`: one SPKI public key (`JWT_PUBLIC_KEY_FILE`).',
  settings: 'More gateway settings as environment variables, e.g. `LOG_LEVEL: debug` (names: the configuration table in README.md). Settings the chart sets itself are refused.',
  metrics: 'Prometheus Operator objects (need its CRDs). Prometheus scrapes the internal port: admit its namespace with `internal.metricsNamespace`.',
  'metrics.serviceMonitor': 'A ServiceMonitor for the gateway Service\'s `internal` port (`/metrics`).',
  'metrics.serviceMonitor.enabled': 'Create it.',
  'metrics.serviceMonitor.interval': 'Scrape interval.',
  'metrics.serviceMonitor.labels': 'Labels your Prometheus selects ServiceMonitors by (e.g. `release: kube-prometheus-stack`).',
  'metrics.prometheusRule': 'A PrometheusRule with the alerts of docs/operations.md: backplane down, over capacity, ping timeouts, rate limiting, slow consumers, a drain outliving the grace period, event-loop lag.',
  'metrics.prometheusRule.enabled': 'Create it.',
  'metrics.prometheusRule.labels': 'Labels your Prometheus selects PrometheusRules by.',
  controller: 'The scale-down controller (docs/controller.md): the autoscaler scales a SocketGateway; the controller drains the emptiest pod before the ReplicaSet deletes it, and paces every draining pod within one fleet reconnect budget. Its CRD is in the chart\'s crds/.',
  'controller.enabled': 'Run it. `false`: the autoscaler scales the gateway Deployment directly and pods drain on SIGTERM with their local `drain.*` settings.',
  'controller.replicas': 'Controller replicas: one leads (a coordination.k8s.io Lease), the others stand by.',
  'controller.resources': 'Controller container resources.',
  'controller.minReadyPods': 'A drain never starts when fewer ready serving gateway pods than this would remain (the PodDisruptionBudget floor applies too).',
  'controller.leaseDurationSeconds': 'A standby takes over this long after the leader\'s last renewal (renew deadline and retry period are derived).',
  'controller.drain': 'The SocketGateway\'s drain policy.',
  'controller.drain.reconnectBudgetPerSecond': 'Reconnects per second the surviving pods absorb, for the whole fleet; every draining pod gets an equal share as its close rate.',
  'controller.drain.windowSeconds': 'Longest a controller-started drain may take (its rate is raised when its share of the budget would need longer).',
  'controller.drain.marginSeconds': 'Wait this long past the window before a drain counts as timed out; the pod is removed anyway.',
};

/** What Helm itself provides: release and chart identity. */
export interface HelmContext {
  readonly release: string;
  readonly namespace: string;
}

/** `realtime-gateway.name` / `.fullname` / `.chart` helpers, in TypeScript (for tests that map values to props). */
export function helmNames(values: ChartValues, release: string): { name: string; fullname: string; chartLabel: string } {
  const trim = (s: string) => s.slice(0, 63).replace(/-+$/, '');
  const name = trim(values.nameOverride || CHART_NAME);
  const fullname = values.fullnameOverride
    ? trim(values.fullnameOverride)
    : release.includes(name)
      ? trim(release)
      : trim(`${release}-${name}`);
  return { name, fullname, chartLabel: `${CHART_NAME}-${CHART_VERSION}` };
}

/** Identity and names as the chart computes them; the generator passes sentinels instead. */
export interface ChartIdentity {
  readonly name: string;
  readonly fullname: string;
  readonly instance: string;
  readonly version: string;
  readonly managedBy: string;
  readonly chartLabel: string;
}

export function identityFor(values: ChartValues, context: HelmContext): ChartIdentity {
  const names = helmNames(values, context.release);
  return { ...names, instance: context.release, version: APP_VERSION, managedBy: 'Helm' };
}

/**
 * Chart values → RealtimeGateway props: the one mapping the chart generator (with sentinel values) and
 * the equivalence tests (with real values) share.
 */
export function propsFromValues(
  v: ChartValues,
  id: ChartIdentity,
  generated?: { redisPassword: string; auth: { 'jwt-secret': string; 'admin-token': string } },
): RealtimeGatewayProps {
  const tlsSecretName = v.entry.tls.enabled ? v.entry.tls.secretName : undefined;
  const host = v.entry.host || undefined;
  return {
    app: {
      name: id.name,
      instance: id.instance,
      version: id.version,
      managedBy: id.managedBy,
      extraLabels: { 'helm.sh/chart': id.chartLabel },
    },
    name: id.fullname,
    image: `${v.image.repository}:${v.image.tag || id.version}`,
    imagePullPolicy: v.image.pullPolicy,
    replicas: v.autoscaling.mode === 'none' ? v.replicaCount : undefined,
    autoscaling: {
      mode: v.autoscaling.mode,
      minReplicas: v.autoscaling.minReplicas,
      maxReplicas: v.autoscaling.maxReplicas,
      targetCpuUtilization: v.autoscaling.targetCPUUtilizationPercentage,
      targetMemoryUtilization: v.autoscaling.targetMemoryUtilizationPercentage,
      scaleUpPods: v.autoscaling.scaleUpPods,
      scaleDownStabilizationSeconds: v.autoscaling.scaleDownStabilizationSeconds,
      scaleDownPeriodSeconds: v.autoscaling.scaleDownPeriodSeconds,
      socketsPerPod: v.autoscaling.keda.socketsPerPod,
      socketsPath: v.autoscaling.keda.socketsPath,
    },
    internal: {
      port: v.internal.port,
      metricsNamespace: v.internal.metricsNamespace || undefined,
      backendNamespace: v.internal.backendNamespace || undefined,
      kedaNamespace: v.autoscaling.keda.operatorNamespace,
    },
    namespaces: v.namespaces || undefined,
    serverApi: v.serverApi.existingSecret ? { existingSecret: v.serverApi.existingSecret, key: v.serverApi.key } : undefined,
    resources: v.resources,
    pod: {
      nodeSelector: v.nodeSelector,
      tolerations: v.tolerations,
      affinity: v.affinity,
      priorityClassName: v.priorityClassName || undefined,
      imagePullSecrets: v.imagePullSecrets,
      annotations: v.podAnnotations,
      labels: v.podLabels,
      env: v.extraEnv,
      envFrom: v.extraEnvFrom,
      volumes: v.extraVolumes,
      volumeMounts: v.extraVolumeMounts,
    },
    serviceAccountAnnotations: v.serviceAccount.annotations,
    drain: {
      preStopSeconds: v.drain.preStopSeconds,
      noticeDelayMs: v.drain.noticeDelayMs,
      windowMs: v.drain.windowMs,
      ratePerSecond: v.drain.ratePerSecond,
      jitterMs: v.drain.jitterMs,
      marginSeconds: v.drain.marginSeconds,
      terminationGracePeriodSeconds: v.drain.terminationGracePeriodSeconds ?? undefined,
    },
    entry:
      v.entry.kind === 'haproxy'
        ? haproxyEntryOptions(v)
        : v.entry.kind === 'gatewayApi'
        ? gatewayApiEntryOptions(v, host, tlsSecretName)
        : {
            kind: 'ingress',
            controller: v.entry.ingress.controller,
            className: v.entry.className,
            host,
            tlsSecretName,
            cookieName: v.entry.cookieName,
            // false: the construct's default, Secure exactly when the Ingress terminates TLS.
            cookieSecure: v.entry.cookieSecure || undefined,
            cookieSameSite: v.entry.cookieSameSite,
            timeoutSeconds: v.entry.ingress.timeoutSeconds,
            annotations: v.entry.ingress.annotations,
          },
    redis:
      v.redis.mode === 'internal'
        ? {
            image: v.redis.internal.image,
            storageSize: v.redis.internal.storageSize,
            storageClass: v.redis.internal.storageClass || undefined,
            maxMemory: v.redis.internal.maxMemory,
            resources: v.redis.internal.resources,
            ...(v.redis.internal.existingSecret
              ? { existingSecret: v.redis.internal.existingSecret, existingSecretPasswordKey: v.redis.internal.existingSecretPasswordKey }
              : { password: generated?.redisPassword, secretAnnotations: KEEP_ON_UNINSTALL }),
          }
        : {
            external: {
              secretName: v.redis.external.secretName,
              urlKey: v.redis.external.urlKey,
              passwordKey: v.redis.external.passwordKey,
              cluster: v.redis.external.cluster,
            },
          },
    auth: authOptions(v, generated?.auth),
    settings: v.settings,
    monitoring: {
      serviceMonitor: v.metrics.serviceMonitor.enabled,
      interval: v.metrics.serviceMonitor.interval,
      serviceMonitorLabels: v.metrics.serviceMonitor.labels,
      prometheusRule: v.metrics.prometheusRule.enabled,
      prometheusRuleLabels: v.metrics.prometheusRule.labels,
    },
    controller: v.controller.enabled
      ? {
          replicas: v.controller.replicas,
          resources: v.controller.resources,
          minReadyPods: v.controller.minReadyPods,
          leaseDurationSeconds: v.controller.leaseDurationSeconds,
          drain: { ...v.controller.drain },
          // The chart ships the CRD in crds/ (Helm installs it first and never deletes it).
          includeCrd: false,
        }
      : { enabled: false },
  };
}

/** Helm never deletes a generated Secret: a reinstall finds (`lookup`) and keeps its values. */
const KEEP_ON_UNINSTALL = { 'helm.sh/resource-policy': 'keep' };

function authOptions(v: ChartValues, generated: { 'jwt-secret': string; 'admin-token': string } | undefined): AuthOptions {
  const publicKey =
    v.auth.mode === 'HS256'
      ? undefined
      : { algorithm: v.auth.mode, configMapName: v.auth.publicKey.configMapName, key: v.auth.publicKey.key, format: v.auth.publicKey.format };
  if (v.auth.existingSecret) return { existingSecret: v.auth.existingSecret, publicKey };
  const generatedValues = generated && (publicKey ? { 'admin-token': generated['admin-token'] } : generated);
  return { generatedValues, publicKey, generatedSecretAnnotations: KEEP_ON_UNINSTALL };
}

function gatewayApiEntryOptions(v: ChartValues, host: string | undefined, tlsSecretName: string | undefined): GatewayApiEntryOptions {
  const cookieName = v.entry.cookieName;
  if (isSet(v.entry.gatewayApi.parentRefs)) {
    if (v.entry.tls.enabled) {
      throw new Error('entry.tls.enabled=true does not apply with entry.gatewayApi.parentRefs: the shared Gateway terminates TLS; set entry.tls.enabled=false');
    }
    return { kind: 'gatewayApi', host, cookieName, parentRefs: v.entry.gatewayApi.parentRefs, envoyPolicies: v.entry.gatewayApi.envoyPolicies };
  }
  const p = v.entry.gatewayApi.envoyProxy;
  return {
    kind: 'gatewayApi',
    className: v.entry.className,
    host,
    tlsSecretName,
    listenerPort: v.entry.gatewayApi.listenerPort,
    cookieName,
    envoyPolicies: v.entry.gatewayApi.envoyPolicies,
    envoyProxy: v.entry.gatewayApi.envoyPolicies
      ? {
          service: p.service,
          replicas: p.replicas,
          minAvailable: p.minAvailable,
          resources: p.resources,
        }
      : undefined,
  };
}

function haproxyEntryOptions(v: ChartValues): HaproxyEntryOptions {
  const h = v.entry.haproxy;
  if (v.entry.tls.enabled) {
    throw new Error('entry.tls.enabled=true does not apply to entry.kind=haproxy (it serves plain HTTP): terminate TLS in front of it, or use entry.kind=gatewayApi or ingress');
  }
  // As in the template: empty (or 0) is unset.
  const nodePort = Number(h.nodePort) || undefined;
  if (nodePort !== undefined && h.serviceType !== 'NodePort') {
    throw new Error(`entry.haproxy.nodePort is set, which needs entry.haproxy.serviceType=NodePort (it is ${h.serviceType}): set serviceType=NodePort, or leave nodePort empty`);
  }
  return {
    kind: 'haproxy',
    image: `${h.image.repository}:${h.image.tag}`,
    imagePullPolicy: h.image.pullPolicy,
    replicas: h.replicas,
    serviceType: h.serviceType,
    nodePort,
    port: h.port,
    cookieName: v.entry.cookieName,
    cookieSecure: v.entry.cookieSecure,
    cookieSameSite: v.entry.cookieSameSite,
    maxServers: h.maxServers,
    maxConnections: h.maxConnections,
    clusterDomain: h.clusterDomain,
    resources: h.resources,
  };
}
