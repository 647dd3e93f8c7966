import type { App } from 'cdk8s';
import { Chart } from 'cdk8s';
import { EnvoyGatewayKind } from '../envoy-gateway-kind.ts';
import { envoyServiceOf } from '../gateway-api-entry.ts';
import { RealtimeGateway, type RealtimeGatewayProps } from '../realtime-gateway.ts';
import { RestrictedNamespace } from '../restricted-namespace.ts';
import { SocketGatewayCrd } from '../scale-down-controller.ts';
import { defaultApp, type ProfileOptions } from './common.ts';

export const KIND_NAMESPACE = 'realtime-gateway';
/** NodePort of the Envoy proxy's Service (the entry's EnvoyProxy); kind-config.yaml maps it to localhost:8080. */
export const KIND_NODE_PORT = 30080;

/**
 * Props of the kind profile's RealtimeGateway; the Helm chart's defaults are these same values but for the
 * proxy's Service (KIND_VALUES).
 */
export function kindProps(options: ProfileOptions = {}): RealtimeGatewayProps {
  return {
    app: defaultApp(),
    image: options.image ?? 'realtime-gateway:dev',
    // The Helm chart's defaults leave the proxy's Service a LoadBalancer; on kind: KIND_VALUES.
    entry: { kind: 'gatewayApi', className: 'eg', listenerPort: 8080, envoyProxy: { serviceType: 'NodePort', nodePort: KIND_NODE_PORT } },
    autoscaling: { mode: 'hpa', minReplicas: 2, maxReplicas: 6 },
    auth: options.generatedSecrets ? { generatedValues: options.generatedSecrets.auth } : undefined,
    redis: {
      ...(options.generatedSecrets ? { password: options.generatedSecrets.redisPassword } : {}),
      ...(options.redisImage ? { image: options.redisImage } : {}),
    },
    // The CRD goes to dist/kind/crds/ (cluster-scoped, applied first); the chart ships it in crds/.
    controller: { includeCrd: false, minReadyPods: 1, drain: { reconnectBudgetPerSecond: 60, windowSeconds: 120, marginSeconds: 15 } },
  };
}

/** kind: in-cluster Redis, Envoy Gateway entry on localhost:8080, HPA 2-6 replicas on the SocketGateway, the scale-down controller. */
export function kindProfile(app: App, options: ProfileOptions = {}): void {
  const props = kindProps(options);
  new SocketGatewayCrd(new Chart(app, 'crds', { disableResourceNameHashes: true }), 'SocketGatewayCrd', { app: props.app });
  const chart = new Chart(app, 'app', { namespace: KIND_NAMESPACE, disableResourceNameHashes: true });
  new RestrictedNamespace(chart, 'Namespace', { app: props.app, name: KIND_NAMESPACE });
  new RealtimeGateway(chart, 'RealtimeGateway', props);
  new EnvoyGatewayKind(new Chart(app, 'platform', { disableResourceNameHashes: true }), 'EnvoyGateway');
}

/** Chart values that make the chart render the kind profile: the proxy's Service on the fixed NodePort. */
export const KIND_VALUES = { entry: { gatewayApi: { envoyProxy: { service: envoyServiceOf('NodePort', KIND_NODE_PORT, 8080) } } } };
