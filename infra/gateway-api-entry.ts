import { ApiObject, type ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import type { IParentReference } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/ParentReference';
import { Gateway as GatewayResource } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import type { IListener } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Listener';
import { addObject } from './api-object.ts';
import { objectLabels, type AppIdentity } from './labels.ts';
import { COOKIE_NAME_PATTERN } from './limits.ts';
import { isSet } from './pod-extensions.ts';

/** The Gateway API version whose experimental channel the entry needs (`sessionPersistence`, GEP-1619). */
export const GATEWAY_API_VERSION = 'v1.6.1';
/** Envoy Gateway release that bundles it (its Helm chart installs the experimental-channel CRDs). */
export const ENVOY_GATEWAY_VERSION = 'v1.9.1';

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
      for (const prop of ['gatewayClassName', 'tlsSecretName', 'listenerPort'] as const) {
        if (props[prop] !== undefined) {
          throw new Error(`${prop}=${JSON.stringify(props[prop])} belongs to the shared Gateway in parentRefs; this entry creates no Gateway (drop one of them)`);
        }
      }
    }
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
        new GatewayResource({ metadata, spec: { gatewayClassName: props.gatewayClassName ?? 'eg', listeners: [listener] } }),
      );
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
