import { Chart } from 'cdk8s';
import { Construct } from 'constructs';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import { GATEWAY_SETTING_DEFAULTS, type SettingName } from './generated/gateway-settings.ts';
import type { DrainProps } from './drain-timing.ts';
import { Gateway, namespacePeer, type JwtPublicKeySource, type ServerApiOptions } from './gateway.ts';
import { GatewayApiEntry, type EnvoyProxyProps } from './gateway-api-entry.ts';
import { GeneratedSecret } from './generated-secret.ts';
import { HaproxyEntry } from './haproxy-entry.ts';
import { HorizontalAutoscaler, type ReplicaRange, type ScalingBehaviorProps } from './horizontal-autoscaler.ts';
import { IngressEntry } from './ingress-entry.ts';
import { KedaAutoscaler } from './keda-autoscaler.ts';
import { GatewayMonitoring } from './monitoring.ts';
import type { AppIdentity } from './labels.ts';
import type { CookieSameSite } from './limits.ts';
import { isSet, type PodExtensions, type PodScheduling } from './pod-extensions.ts';
import type { IParentReference } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/ParentReference';
import type { ApiObject } from 'cdk8s';
import { Redis, type ExternalRedis } from './redis.ts';
import { ScaleDownController, type DrainPolicyProps } from './scale-down-controller.ts';

export interface GatewayApiEntryOptions {
  readonly kind: 'gatewayApi';
  /** @default 'eg' */
  readonly className?: string;
  /** @default - any host */
  readonly host?: string;
  /** @default - plain HTTP */
  readonly tlsSecretName?: string;
  /** @default 443 with TLS, else 8080 */
  readonly listenerPort?: number;
  /** @default 'rtgw-affinity' */
  readonly cookieName?: string;
  /**
   * Attach the route to existing shared Gateways (no Gateway of its own); see GatewayApiEntryProps.
   * @default - a Gateway of its own
   */
  readonly parentRefs?: readonly IParentReference[];
  /**
   * The class is Envoy Gateway's: add a BackendTrafficPolicy whose circuit breaker admits
   * `MAX_CONNECTIONS` × (the most replicas + 1 for a rollout's surge pod) connections, instead of Envoy's 1024;
   * and, with a Gateway of its own, an EnvoyProxy (`envoyProxy`) and an EnvoyPatchPolicy that keeps
   * sessions on draining pods (Envoy Gateway needs `extensionApis.enableEnvoyPatchPolicy: true`).
   * @default true
   */
  readonly envoyPolicies?: boolean;
  /**
   * The Envoy proxy fleet (with `envoyPolicies` and a Gateway of its own). Its shutdown drain is derived
   * from `drain`: `drainTimeout` is the gateway pods' grace period, so a terminating proxy never cuts
   * sockets before a draining gateway pod would have closed them; `minDrainDuration` is preStop + notice.
   * @default - 2 replicas, PDB minAvailable 1, a LoadBalancer Service, 100m/256Mi requested, 1Gi limit
   */
  readonly envoyProxy?: Omit<EnvoyProxyProps, 'drainTimeoutSeconds' | 'minDrainDurationSeconds'>;
}

export interface IngressEntryOptions {
  readonly kind: 'ingress';
  /** @default 'nginx' */
  readonly controller?: 'nginx' | 'traefik';
  /** @default - same as controller */
  readonly className?: string;
  /** @default - any host */
  readonly host?: string;
  /** @default - plain HTTP */
  readonly tlsSecretName?: string;
  /** @default 'rtgw-affinity' */
  readonly cookieName?: string;
  /** Mark the affinity cookie `Secure` (see IngressEntryProps). @default true with `tlsSecretName`, else false */
  readonly cookieSecure?: boolean;
  /** @default 'Lax' */
  readonly cookieSameSite?: CookieSameSite;
  /** @default 3600 */
  readonly timeoutSeconds?: number;
  /** More Ingress annotations (not the construct's own). @default - none */
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface HaproxyEntryOptions {
  /** HAProxy in the cluster, following the gateway pods through DNS: no controller needed. */
  readonly kind: 'haproxy';
  /** @default 'haproxy:3.2' */
  readonly image?: string;
  /** @default 'IfNotPresent' */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** @default 'ClusterIP' */
  readonly serviceType?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  /** @default - assigned by the cluster */
  readonly nodePort?: number;
  /** @default 'rtgw-affinity' */
  readonly cookieName?: string;
  /** Mark the affinity cookie `Secure`: HAProxy serves plain HTTP, set it when TLS is terminated in front. @default false */
  readonly cookieSecure?: boolean;
  /** @default 'Lax' */
  readonly cookieSameSite?: CookieSameSite;
  /** @default 1 */
  readonly replicas?: number;
  /**
   * HAProxy's listening port, and the Service's.
   * @default 8080
   */
  readonly port?: number;
  /**
   * Most gateway pods HAProxy keeps a server slot for, draining ones included.
   * @default 32
   */
  readonly maxServers?: number;
  /** @default 8000 */
  readonly maxConnections?: number;
  /** @default 'cluster.local' */
  readonly clusterDomain?: string;
  /** @default - 50m CPU and 64Mi requested, 256Mi limit */
  readonly resources?: IResourceRequirements;
}

export interface AutoscalingOptions extends ReplicaRange, ScalingBehaviorProps {
  /** `hpa`: CPU and memory. `keda`: connected sockets per pod. `none`: fixed `replicas`. */
  readonly mode: 'hpa' | 'keda' | 'none';
  /** @default 70 */
  readonly targetCpuUtilization?: number;
  /** @default 80 */
  readonly targetMemoryUtilization?: number;
  /** @default 1000 */
  readonly socketsPerPod?: number;
  /**
   * Path of the gateway's JSON fleet endpoint that KEDA polls.
   * @default '/fleet'
   */
  readonly socketsPath?: string;
}

/** The gateway's internal port: metrics, fleet stats, admin (docs/security.md). */
export interface InternalPortOptions {
  /**
   * `INTERNAL_PORT`, and the Service's `internal` port.
   * @default 9090
   */
  readonly port?: number;
  /**
   * A namespace whose pods may reach the internal port, e.g. your Prometheus'. The drain controller and
   * (with `autoscaling.mode=keda`) KEDA's operator are admitted anyway; more peers:
   * `realtimeGateway.gateway.allowInternalFrom(peer)`.
   * @default - none
   */
  readonly metricsNamespace?: string;
  /**
   * A namespace whose pods (your backends) may reach the internal port to call the server API
   * (`serverApi`, docs/server-api.md). Narrower peers: `realtimeGateway.gateway.allowInternalFrom(peer)`.
   * @default - none
   */
  readonly backendNamespace?: string;
  /**
   * Namespace of KEDA's operator, admitted with `autoscaling.mode=keda` (its metrics-api scaler polls `/fleet`).
   * @default 'keda'
   */
  readonly kedaNamespace?: string;
}

/** The scale-down controller: drain before delete, a fleet reconnect budget (docs/controller.md). */
export interface ControllerOptions {
  /**
   * Off: the autoscaler scales the gateway Deployment directly and pods drain on SIGTERM with their
   * local settings.
   * @default true
   */
  readonly enabled?: boolean;
  /** @default 2 */
  readonly replicas?: number;
  /** @default - requests 50m CPU / 64Mi, limit 256Mi memory */
  readonly resources?: IResourceRequirements;
  /** @default 1 */
  readonly minReadyPods?: number;
  /** @default - the CRD's defaults */
  readonly drain?: DrainPolicyProps;
  /** @default 15 */
  readonly leaseDurationSeconds?: number;
  /**
   * Ship the SocketGateway CRD with the other objects; profiles and the chart put it apart (it is cluster-scoped).
   * @default true
   */
  readonly includeCrd?: boolean;
}

export interface AuthOptions {
  /**
   * Secret with `admin-token` (and with HS256, `jwt-secret`) keys, managed outside these manifests.
   * @default - a generated Secret `<name>-auth`
   */
  readonly existingSecret?: string;
  /**
   * Verify RS256/ES256 tokens with public keys from a ConfigMap instead of an HS256 shared secret.
   * @default - HS256
   */
  readonly publicKey?: JwtPublicKeySource;
  /**
   * Fixed values for the generated Secret (tests and the chart generator); no `jwt-secret` with `publicKey`.
   * @default - random
   */
  readonly generatedValues?: { readonly 'jwt-secret'?: string; readonly 'admin-token': string };
  /**
   * Annotations of the generated Secrets (the chart adds `helm.sh/resource-policy: keep`).
   * @default - none
   */
  readonly generatedSecretAnnotations?: Readonly<Record<string, string>>;
}

export interface RealtimeGatewayProps {
  readonly app: AppIdentity;
  readonly image: string;
  /**
   * Base name of every object.
   * @default app.instance
   */
  readonly name?: string;
  /** @default 'IfNotPresent' */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * Replicas when `autoscaling.mode` is `none`.
   * @default 2
   */
  readonly replicas?: number;
  /** @default - HPA, 2-6 replicas */
  readonly autoscaling?: AutoscalingOptions;
  /** @default - see Gateway */
  readonly resources?: IResourceRequirements;
  /** @default - see DrainProps */
  readonly drain?: DrainProps;
  /** @default - none */
  readonly settings?: Readonly<Partial<Record<SettingName, string>>>;
  /** @default - Gateway API entry for Envoy Gateway */
  readonly entry?: GatewayApiEntryOptions | IngressEntryOptions | HaproxyEntryOptions;
  /**
   * The backplane.
   * @default - in-cluster Redis
   */
  readonly redis?: {
    /** @default - in-cluster */
    readonly external?: ExternalRedis;
    /** @default '1Gi' */
    readonly storageSize?: string;
    /** @default - the cluster's default StorageClass */
    readonly storageClass?: string;
    /** Redis `maxmemory`. @default '192mb' */
    readonly maxMemory?: string;
    /** @default - generated */
    readonly password?: string;
    /** A Secret you manage with the in-cluster Redis' password (see RedisProps). @default - generated */
    readonly existingSecret?: string;
    /** Key of the password in `existingSecret`. @default 'password' */
    readonly existingSecretPasswordKey?: string;
    /** @default 'redis:8.2.1-alpine' */
    readonly image?: string;
    /** @default - see Redis */
    readonly resources?: IResourceRequirements;
    /** Annotations of the generated password Secret. @default - none */
    readonly secretAnnotations?: Readonly<Record<string, string>>;
  };
  /** @default - generated auth Secret */
  readonly auth?: AuthOptions;
  /** @default - on, with the CRD's drain defaults */
  readonly controller?: ControllerOptions;
  /** @default - port 9090, reachable by the controller (and KEDA) only */
  readonly internal?: InternalPortOptions;
  /**
   * Platform extension points. `nodeSelector`, `tolerations`, `priorityClassName` and `imagePullSecrets`
   * apply to every pod (gateway, controller, Redis, HAProxy); `affinity`, `annotations`, `labels`, `env`,
   * `envFrom`, `volumes` and `volumeMounts` to the gateway pods.
   * @default - none
   */
  readonly pod?: PodExtensions;
  /** Annotations of the gateway's ServiceAccount (e.g. a cloud IAM role). @default - none */
  readonly serviceAccountAnnotations?: Readonly<Record<string, string>>;
  /**
   * Channel namespaces (docs/namespaces.md), YAML text or an object: see `GatewayProps.namespaces`.
   * @default - the demo namespaces built into the gateway
   */
  readonly namespaces?: string | Readonly<Record<string, unknown>>;
  /**
   * The server API's keys Secret (docs/server-api.md); admit your backends with `internal.backendNamespace`.
   * @default - the server API is off
   */
  readonly serverApi?: ServerApiOptions;
  /**
   * Prometheus Operator objects (needs its CRDs): a ServiceMonitor and a PrometheusRule with the alerts of
   * docs/operations.md. Admit Prometheus to the internal port with `internal.metricsNamespace`.
   * @default - none
   */
  readonly monitoring?: MonitoringOptions;
}

export interface MonitoringOptions {
  /** @default false */
  readonly serviceMonitor?: boolean;
  /** @default '30s' */
  readonly interval?: string;
  /** Labels your Prometheus selects ServiceMonitors by. @default - none */
  readonly serviceMonitorLabels?: Readonly<Record<string, string>>;
  /** @default false */
  readonly prometheusRule?: boolean;
  /** Labels your Prometheus selects PrometheusRules by. @default - none */
  readonly prometheusRuleLabels?: Readonly<Record<string, string>>;
}

/**
 * The whole blueprint in one construct: gateway, backplane, entry with session affinity and an
 * autoscaler. Profiles are props for this; platform teams with other needs compose the parts instead.
 */
export class RealtimeGateway extends Construct {
  readonly gateway: Gateway;
  readonly redis: Redis;
  readonly entry: GatewayApiEntry | IngressEntry | HaproxyEntry;
  /** Undefined when `controller.enabled` is false. */
  readonly controller?: ScaleDownController;
  /** The HorizontalPodAutoscaler or ScaledObject; undefined with `autoscaling.mode=none`. */
  readonly autoscaler?: ApiObject;
  /** ServiceMonitor and PrometheusRule; undefined unless `monitoring` asks for one. */
  readonly monitoring?: GatewayMonitoring;

  constructor(scope: Construct, id: string, props: RealtimeGatewayProps) {
    super(scope, id);
    const app = props.app;
    const name = props.name ?? app.instance;
    const autoscaling = props.autoscaling ?? { mode: 'hpa' };
    const controllerOn = props.controller?.enabled ?? true;
    if (!controllerOn) {
      for (const key of ['replicas', 'resources', 'minReadyPods', 'drain', 'leaseDurationSeconds', 'includeCrd'] as const) {
        if (props.controller?.[key] !== undefined) {
          throw new Error(`controller.${key}=${JSON.stringify(props.controller[key])} has no effect with controller.enabled=false`);
        }
      }
    }
    if (autoscaling.mode !== 'none' && props.replicas !== undefined) {
      throw new Error(`replicas=${props.replicas} conflicts with autoscaling.mode=${autoscaling.mode}; set autoscaling.mode=none for a fixed count`);
    }

    const authSecretName = props.auth?.existingSecret ?? `${name}-auth`;
    if (props.auth?.existingSecret === undefined) {
      new GeneratedSecret(this, 'AuthSecret', {
        app,
        component: 'gateway',
        name: authSecretName,
        randomKeys: props.auth?.publicKey ? ['admin-token'] : ['jwt-secret', 'admin-token'],
        values: props.auth?.generatedValues,
        annotations: props.auth?.generatedSecretAnnotations,
      });
    } else if (props.auth.generatedValues !== undefined) {
      throw new Error(`auth.generatedValues conflicts with auth.existingSecret=${props.auth.existingSecret}: nothing is generated`);
    }

    const scheduling: PodScheduling = {
      nodeSelector: props.pod?.nodeSelector,
      tolerations: props.pod?.tolerations,
      priorityClassName: props.pod?.priorityClassName,
      imagePullSecrets: props.pod?.imagePullSecrets,
    };
    this.redis = new Redis(this, 'Redis', {
      app,
      name: props.redis?.external ? undefined : `${name}-redis`,
      ...props.redis,
      scheduling: props.redis?.external ? undefined : scheduling,
    });
    this.gateway = new Gateway(this, 'Gateway', {
      app,
      name,
      image: props.image,
      imagePullPolicy: props.imagePullPolicy,
      // With the controller on, it owns the Deployment's replica count (the SocketGateway carries the wish).
      replicas: controllerOn ? undefined : props.replicas,
      autoscaled: controllerOn || autoscaling.mode !== 'none',
      resources: props.resources,
      drain: props.drain,
      settings: props.settings,
      redis: this.redis.connection,
      auth: { secretName: authSecretName, publicKey: props.auth?.publicKey },
      internalPort: props.internal?.port,
      pod: props.pod,
      serviceAccountAnnotations: props.serviceAccountAnnotations,
      namespaces: props.namespaces,
      serverApi: props.serverApi,
    });
    this.redis.allowFrom(this.gateway.podSelector);

    const backend = { serviceName: this.gateway.name, port: this.gateway.port };
    const maxConnectionsPerPod = Number(props.settings?.MAX_CONNECTIONS ?? GATEWAY_SETTING_DEFAULTS.MAX_CONNECTIONS);
    const mostReplicas = autoscaling.mode === 'none' ? (props.replicas ?? 2) : (autoscaling.maxReplicas ?? 6);
    const entry = props.entry ?? { kind: 'gatewayApi' };
    const envoyPolicies = entry.kind === 'gatewayApi' && (entry.envoyPolicies ?? true);
    if (entry.kind === 'gatewayApi' && entry.envoyProxy !== undefined && !envoyPolicies) {
      throw new Error(`entry.envoyProxy=${JSON.stringify(entry.envoyProxy)} has no effect with entry.envoyPolicies=false (another Gateway API implementation)`);
    }
    const ownGateway = entry.kind === 'gatewayApi' && !isSet(entry.parentRefs);
    if (entry.kind === 'gatewayApi' && entry.envoyProxy !== undefined && !ownGateway) {
      throw new Error('entry.envoyProxy belongs to the shared Gateway in entry.parentRefs (its proxy is not this release\'s): drop one of them');
    }
    const drain = this.gateway.drain;
    this.entry =
      entry.kind === 'gatewayApi'
        ? new GatewayApiEntry(this, 'Entry', {
            app,
            name,
            backend,
            gatewayClassName: entry.className,
            hostname: entry.host,
            tlsSecretName: entry.tlsSecretName,
            listenerPort: entry.listenerPort,
            cookieName: entry.cookieName,
            parentRefs: entry.parentRefs,
            envoyCircuitBreaker: envoyPolicies ? { connections: maxConnectionsPerPod * (mostReplicas + 1) } : undefined,
            envoyProxy:
              envoyPolicies && ownGateway
                ? {
                    ...entry.envoyProxy,
                    drainTimeoutSeconds: drain.terminationGracePeriodSeconds,
                    minDrainDurationSeconds: drain.preStopSeconds + Math.ceil(drain.noticeDelayMs / 1000),
                  }
                : undefined,
            envoyKeepSessionsOnDrainingPods: envoyPolicies && ownGateway,
          })
        : entry.kind === 'haproxy'
          ? new HaproxyEntry(this, 'Entry', {
              app,
              name: `${name}-entry`,
              backend,
              backendPodSelector: this.gateway.podSelector,
              image: entry.image,
              imagePullPolicy: entry.imagePullPolicy,
              serviceType: entry.serviceType,
              nodePort: entry.nodePort,
              cookieName: entry.cookieName,
              cookieSecure: entry.cookieSecure,
              cookieSameSite: entry.cookieSameSite,
              replicas: entry.replicas,
              port: entry.port,
              maxServers: entry.maxServers,
              maxConnections: entry.maxConnections,
              clusterDomain: entry.clusterDomain,
              resources: entry.resources,
              scheduling,
            })
          : new IngressEntry(this, 'Entry', {
            app,
            name,
            backend,
            backendService: this.gateway.service,
            controller: entry.controller,
            className: entry.className,
            host: entry.host,
            tlsSecretName: entry.tlsSecretName,
            cookieName: entry.cookieName,
            cookieSecure: entry.cookieSecure,
            cookieSameSite: entry.cookieSameSite,
            timeoutSeconds: entry.timeoutSeconds,
            annotations: entry.annotations,
          });

    if (controllerOn) {
      const c = props.controller ?? {};
      this.controller = new ScaleDownController(this, 'Controller', {
        app,
        image: props.image,
        imagePullPolicy: props.imagePullPolicy,
        deploymentName: this.gateway.name,
        redis: this.redis.connection,
        adminToken: { secretName: authSecretName, key: 'admin-token' },
        name: `${name}-controller`,
        replicas: c.replicas,
        resources: c.resources,
        gatewayReplicas: autoscaling.mode === 'none' ? (props.replicas ?? 2) : undefined,
        minReadyPods: c.minReadyPods,
        drain: c.drain,
        leaseDurationSeconds: c.leaseDurationSeconds,
        includeCrd: c.includeCrd,
        internalPortName: this.gateway.internalPortName,
        scheduling,
      });
      this.redis.allowFrom(this.controller.podSelector);
      this.gateway.allowInternalFrom({ podSelector: { matchLabels: { ...this.controller.podSelector } } });
    }

    // The autoscaler scales the SocketGateway when the controller is on, else the Deployment.
    const target = this.controller?.scaleTarget ?? { apiVersion: 'apps/v1', kind: 'Deployment', name: this.gateway.name };
    if (autoscaling.mode === 'hpa') {
      this.autoscaler = new HorizontalAutoscaler(this, 'Autoscaler', { app, target, ...autoscaling }).resource;
    } else if (autoscaling.mode === 'keda') {
      const namespace = Chart.of(this).namespace ?? 'default';
      // /fleet is on the internal port only: KEDA's operator polls it there, and is let in.
      const socketsUrl = `http://${this.gateway.name}.${namespace}.svc:${this.gateway.internalPort}${autoscaling.socketsPath ?? '/fleet'}`;
      this.autoscaler = new KedaAutoscaler(this, 'Autoscaler', { app, target, socketsUrl, ...autoscaling }).resource;
      this.gateway.allowInternalFrom(namespacePeer(props.internal?.kedaNamespace ?? 'keda', { app: 'keda-operator' }));
    }
    if (props.internal?.metricsNamespace) this.gateway.allowInternalFrom(namespacePeer(props.internal.metricsNamespace));
    if (props.internal?.backendNamespace) this.gateway.allowInternalFrom(namespacePeer(props.internal.backendNamespace));

    const monitoring = props.monitoring ?? {};
    if (monitoring.serviceMonitor || monitoring.prometheusRule) {
      this.monitoring = new GatewayMonitoring(this, 'Monitoring', {
        app,
        name: this.gateway.name,
        serviceSelector: this.gateway.podSelector,
        metricsPortName: this.gateway.internalPortName,
        namespace: Chart.of(this).namespace ?? 'default',
        terminationGracePeriodSeconds: this.gateway.drain.terminationGracePeriodSeconds,
        serviceMonitor: monitoring.serviceMonitor ?? false,
        interval: monitoring.interval,
        serviceMonitorLabels: monitoring.serviceMonitorLabels,
        prometheusRule: monitoring.prometheusRule ?? false,
        prometheusRuleLabels: monitoring.prometheusRuleLabels,
      });
    }
  }
}
