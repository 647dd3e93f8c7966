import { ApiObject, Chart, type ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import type { IParentReference } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/ParentReference';
import { Gateway as GatewayResource } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import type { IListener } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Listener';
import { addObject } from './api-object.ts';
import { objectLabels, type AppIdentity } from './labels.ts';
import { COOKIE_NAME_PATTERN, LIMITS } from './limits.ts';
import { isSet } from './pod-extensions.ts';

/** The Gateway API version whose experimental channel the entry needs (`sessionPersistence`, GEP-1619). */
export const GATEWAY_API_VERSION = 'v1.6.1';
/** Envoy Gateway release that bundles it (its Helm chart installs the experimental-channel CRDs). */
export const ENVOY_GATEWAY_VERSION = 'v1.9.1';

/** Envoy's `override_host_status` default plus DRAINING: a cookie may name a draining host. */
export const ENVOY_OVERRIDE_HOST_STATUSES = ['UNKNOWN', 'HEALTHY', 'DEGRADED', 'DRAINING'] as const;

/** The Envoy proxy fleet of the entry's own Gateway (Envoy Gateway's EnvoyProxy resource). */
export interface EnvoyProxyProps {
  /**
   * Type of the proxy's Service. `NodePort` reaches the proxy through any node (`externalTrafficPolicy: Cluster`).
   * @default 'LoadBalancer'
   */
  readonly serviceType?: 'LoadBalancer' | 'NodePort' | 'ClusterIP';
  /**
   * With `serviceType: NodePort`: a fixed node port (30000-32767), e.g. one kind maps to the host.
   * @default - assigned by the cluster
   */
  readonly nodePort?: number;
  /**
   * Envoy Gateway's `envoyService` as its API writes it (type, annotations, patch, ...), instead of
   * `serviceType` and `nodePort`; `envoyServiceOf` builds it from those two.
   * @default - from serviceType and nodePort
   */
  readonly service?: Readonly<Record<string, unknown>>;
  /**
   * Proxy replicas (Envoy Gateway's Deployment).
   * @default 2
   */
  readonly replicas?: number;
  /**
   * `minAvailable` of the proxy pods' PodDisruptionBudget (Envoy Gateway creates it); below `replicas`.
   * @default 1
   */
  readonly minAvailable?: number;
  /**
   * The Envoy container's resources.
   * @default - 100m CPU and 256Mi requested, 1Gi limit
   */
  readonly resources?: IResourceRequirements;
  /**
   * `shutdown.drainTimeout`: a terminating proxy keeps its connections this long before it exits.
   * @default 60 (Envoy Gateway's default)
   */
  readonly drainTimeoutSeconds?: number;
  /**
   * `shutdown.minDrainDuration`: the proxy drains at least this long, while load balancers deprogram it.
   * @default 10 (Envoy Gateway's default)
   */
  readonly minDrainDurationSeconds?: number;
}

export interface EntryBackend {
  readonly serviceName: string;
  readonly port: number;
}

export interface GatewayApiEntryProps {
  readonly app: AppIdentity;
  readonly backend: EntryBackend;
  /**
   * Name of the Gateway and HTTPRoute.
   * @default app.instance
   */
  readonly name?: string;
  /**
   * GatewayClass of an implementation that supports cookie session persistence (Envoy Gateway does).
   * @default 'eg'
   */
  readonly gatewayClassName?: string;
  /**
   * Host name clients use; unset matches any host.
   * @default - any host
   */
  readonly hostname?: string;
  /**
   * Terminate TLS with the certificate in this Secret (listener protocol HTTPS).
   * @default - plain HTTP
   */
  readonly tlsSecretName?: string;
  /**
   * Listener port.
   * @default 443 with TLS, else 8080 (no port translation on the proxy pods; see docs/infrastructure.md)
   */
  readonly listenerPort?: number;
  /**
   * Name of the affinity cookie that pins a browser to one gateway pod (needed by HTTP long-polling).
   * @default 'rtgw-affinity'
   */
  readonly cookieName?: string;
  /**
   * Attach the HTTPRoute to these existing (shared) Gateways instead of creating one: no Gateway object, no
   * proxy or load balancer of its own. The Gateway's listener must allow routes from this namespace;
   * `gatewayClassName`, `tlsSecretName` and `listenerPort` are the shared Gateway's business then.
   * @default - a Gateway of its own
   */
  readonly parentRefs?: readonly IParentReference[];
  /**
   * Envoy Gateway's circuit breaker for the route's backend (a BackendTrafficPolicy). Its default is 1024
   * connections, pending and parallel requests per proxy, and every WebSocket and held long-poll holds one
   * upstream connection: the limits become `connections` instead.
   * @default - no BackendTrafficPolicy (another Gateway API implementation)
   */
  readonly envoyCircuitBreaker?: { readonly connections: number };
  /**
   * An EnvoyProxy for the entry's own Gateway (`infrastructure.parametersRef`): replicas, a PDB, resources,
   * a shutdown drain and the Service type. Needs a Gateway of its own (no `parentRefs`).
   * @default - none: Envoy Gateway's defaults (one replica, no PDB, a LoadBalancer Service, a 60 s drain)
   */
  readonly envoyProxy?: EnvoyProxyProps;
  /**
   * An EnvoyPatchPolicy that adds DRAINING to the route cluster's `override_host_status`, so the session
   * cookie keeps naming a draining pod until its drain closes the session (Envoy's default skips DRAINING
   * hosts). Needs a Gateway of its own and Envoy Gateway with `extensionApis.enableEnvoyPatchPolicy: true`.
   * @default false
   */
  readonly envoyKeepSessionsOnDrainingPods?: boolean;
}

/**
 * The entry point with session affinity, Gateway API flavour: a Gateway and an HTTPRoute with cookie
 * `sessionPersistence` (experimental channel, Gateway API v1.6.1) and no request timeout, so 25 s
 * long-polls and hour-long WebSockets are not cut by a default route timeout.
 */
export class GatewayApiEntry extends Construct {
  readonly name: string;
  readonly listenerPort: number;
  /** The Gateway; undefined when the route attaches to shared `parentRefs`. */
  readonly gateway?: ApiObject;
  readonly route: ApiObject;
  /** Envoy Gateway's BackendTrafficPolicy; undefined without `envoyCircuitBreaker`. */
  readonly backendTrafficPolicy?: ApiObject;
  /** Envoy Gateway's EnvoyProxy; undefined without `envoyProxy`. */
  readonly envoyProxy?: ApiObject;
  /** The EnvoyPatchPolicy keeping sessions on draining pods; undefined without `envoyKeepSessionsOnDrainingPods`. */
  readonly envoyPatchPolicy?: ApiObject;

  constructor(scope: Construct, id: string, props: GatewayApiEntryProps) {
    super(scope, id);
    this.name = props.name ?? props.app.instance;
    const tls = props.tlsSecretName !== undefined;
    this.listenerPort = props.listenerPort ?? (tls ? 443 : 8080);
    const cookieName = props.cookieName ?? 'rtgw-affinity';
    if (!new RegExp(COOKIE_NAME_PATTERN).test(cookieName)) {
      throw new Error(`cookieName=${JSON.stringify(cookieName)} is not a valid cookie name (1-128 token characters)`);
    }
    const shared = isSet(props.parentRefs);
    if (shared) {
      for (const prop of ['gatewayClassName', 'tlsSecretName', 'listenerPort', 'envoyProxy'] as const) {
        if (props[prop] !== undefined) {
          throw new Error(`${prop}=${JSON.stringify(props[prop])} belongs to the shared Gateway in parentRefs; this entry creates no Gateway (drop one of them)`);
        }
      }
      if (props.envoyKeepSessionsOnDrainingPods) {
        throw new Error('envoyKeepSessionsOnDrainingPods=true patches the Gateway\'s proxy, which belongs to the shared Gateway in parentRefs: its owner applies the EnvoyPatchPolicy (docs/infrastructure.md)');
      }
    }
    const envoyProxySpec = props.envoyProxy && envoyProxySpecOf(props.envoyProxy, this.listenerPort);
    const metadata = { name: this.name, labels: objectLabels(props.app, 'entry') };
    const listener: IListener = {
      name: tls ? 'https' : 'http',
      protocol: tls ? 'HTTPS' : 'HTTP',
      port: this.listenerPort,
      ...(props.hostname === undefined ? {} : { hostname: props.hostname }),
      ...(tls ? { tls: { mode: 'Terminate', certificateRefs: [{ kind: 'Secret', name: props.tlsSecretName }] } } : {}),
      allowedRoutes: { namespaces: { from: 'Same' } },
    };
    if (!shared) {
      this.gateway = addObject(
        this,
        'Gateway',
        new GatewayResource({
          metadata,
          spec: {
            gatewayClassName: props.gatewayClassName ?? 'eg',
            ...(envoyProxySpec ? { infrastructure: { parametersRef: { group: 'gateway.envoyproxy.io', kind: 'EnvoyProxy', name: this.name } } } : {}),
            listeners: [listener],
          },
        }),
      );
    }
    if (envoyProxySpec) {
      this.envoyProxy = new ApiObject(this, 'EnvoyProxy', { apiVersion: 'gateway.envoyproxy.io/v1alpha1', kind: 'EnvoyProxy', metadata, spec: envoyProxySpec } as ApiObjectProps);
    }
    if (props.envoyKeepSessionsOnDrainingPods) {
      const namespace = Chart.of(this).namespace ?? 'default';
      this.envoyPatchPolicy = new ApiObject(this, 'EnvoyPatchPolicy', {
        apiVersion: 'gateway.envoyproxy.io/v1alpha1',
        kind: 'EnvoyPatchPolicy',
        metadata,
        spec: {
          targetRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: this.name },
          type: 'JSONPatch',
          jsonPatches: [
            {
              type: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
              // Envoy Gateway names a route rule's cluster httproute/<namespace>/<name>/rule/<index>.
              name: `httproute/${namespace}/${this.name}/rule/0`,
              operation: { op: 'add', path: '/common_lb_config/override_host_status', value: { statuses: [...ENVOY_OVERRIDE_HOST_STATUSES] } },
            },
          ],
        },
      } as ApiObjectProps);
    }
    this.route = addObject(
      this,
      'HTTPRoute',
      new HTTPRoute({
        metadata,
        spec: {
          parentRefs: shared ? (structuredClone(props.parentRefs) as IParentReference[]) : [{ name: this.name, sectionName: listener.name }],
          ...(props.hostname === undefined ? {} : { hostnames: [props.hostname] }),
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: '/' } }],
              backendRefs: [{ name: props.backend.serviceName, port: props.backend.port }],
              sessionPersistence: { sessionName: cookieName, type: 'Cookie', cookieConfig: { lifetimeType: 'Session' } },
              timeouts: { request: '0s' },
            },
          ],
        },
      }),
    );
    if (props.envoyCircuitBreaker) {
      const connections = props.envoyCircuitBreaker.connections;
      // Lower bound only: the chart generator passes a product of sentinels; the CRD caps it at 2^32-1.
      if (!Number.isInteger(connections) || connections < 1) throw new Error(`envoyCircuitBreaker.connections=${connections} must be an integer >= 1`);
      this.backendTrafficPolicy = new ApiObject(this, 'BackendTrafficPolicy', {
        apiVersion: 'gateway.envoyproxy.io/v1alpha1',
        kind: 'BackendTrafficPolicy',
        metadata,
        spec: {
          targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: this.name }],
          circuitBreaker: { maxConnections: connections, maxPendingRequests: connections, maxParallelRequests: connections },
        },
      } as ApiObjectProps);
    }
  }
}

function positiveInteger(prop: string, value: number, minimum = 1): number {
  if (!Number.isInteger(value) || value < minimum) throw new Error(`envoyProxy.${prop}=${value} must be an integer >= ${minimum}`);
  return value;
}

/** The EnvoyProxy's spec, its props checked. */
/**
 * Envoy Gateway's `envoyService` for a Service type and node port: what `EnvoyProxyProps.service` would be
 * written as (the chart takes it in that form: chart values carry no construct logic).
 */
export function envoyServiceOf(serviceType: 'LoadBalancer' | 'NodePort' | 'ClusterIP', nodePort: number | undefined, listenerPort: number): Record<string, unknown> {
  if (!['LoadBalancer', 'NodePort', 'ClusterIP'].includes(serviceType)) {
    throw new Error(`envoyProxy.serviceType=${JSON.stringify(serviceType)} must be LoadBalancer, NodePort or ClusterIP`);
  }
  if (nodePort !== undefined) {
    if (serviceType !== 'NodePort') throw new Error(`envoyProxy.nodePort=${nodePort} needs envoyProxy.serviceType=NodePort (it is ${serviceType})`);
    const { minimum, maximum } = LIMITS.nodePort;
    if (!Number.isInteger(nodePort) || nodePort < minimum || nodePort > maximum) {
      throw new Error(`envoyProxy.nodePort=${nodePort} is outside the default NodePort range ${minimum}-${maximum}`);
    }
  }
  return {
    type: serviceType,
    // A node port is reached through whichever node the client picked, not only the proxy pods' nodes.
    ...(serviceType === 'NodePort' ? { externalTrafficPolicy: 'Cluster' } : {}),
    // The Service's port is the listener's: a strategic merge keyed by port sets its node port.
    ...(nodePort === undefined ? {} : { patch: { type: 'StrategicMerge', value: { spec: { ports: [{ port: listenerPort, nodePort }] } } } }),
  };
}

/** The EnvoyProxy's spec, its props checked. */
function envoyProxySpecOf(p: EnvoyProxyProps, listenerPort: number): Record<string, unknown> {
  if (p.service !== undefined && (p.serviceType !== undefined || p.nodePort !== undefined)) {
    throw new Error(`envoyProxy.service=${JSON.stringify(p.service)} replaces envoyProxy.serviceType and nodePort: set one or the other`);
  }
  const envoyService = p.service === undefined ? envoyServiceOf(p.serviceType ?? 'LoadBalancer', p.nodePort, listenerPort) : structuredClone(p.service);
  const replicas = positiveInteger('replicas', p.replicas ?? 2);
  const minAvailable = positiveInteger('minAvailable', p.minAvailable ?? 1, 0);
  if (minAvailable >= replicas) {
    throw new Error(`envoyProxy.minAvailable=${minAvailable} must be below envoyProxy.replicas=${replicas}, or no proxy pod could ever be evicted (a node drain would hang)`);
  }
  const drainTimeout = positiveInteger('drainTimeoutSeconds', p.drainTimeoutSeconds ?? 60);
  const minDrain = positiveInteger('minDrainDurationSeconds', p.minDrainDurationSeconds ?? 10, 0);
  if (minDrain > drainTimeout) {
    throw new Error(`envoyProxy.minDrainDurationSeconds=${minDrain} must not exceed envoyProxy.drainTimeoutSeconds=${drainTimeout}`);
  }
  return {
    provider: {
      type: 'Kubernetes',
      kubernetes: {
        envoyDeployment: {
          replicas,
          container: { resources: structuredClone(p.resources ?? { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } }) },
        },
        envoyPDB: { minAvailable },
        envoyService,
      },
    },
    shutdown: { drainTimeout: `${drainTimeout}s`, minDrainDuration: `${minDrain}s` },
  };
}
