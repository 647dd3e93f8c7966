import type { App } from 'cdk8s';
import { Chart } from 'cdk8s';
import { RealtimeGateway } from '../realtime-gateway.ts';
import { RestrictedNamespace } from '../restricted-namespace.ts';
import { SocketGatewayCrd } from '../scale-down-controller.ts';
import { defaultApp, type ProfileOptions } from './common.ts';

export const PRODUCTION_NAMESPACE = 'realtime-gateway';

/**
 * production: an external Redis Cluster and the auth Secret come from the platform (e.g. External
 * Secrets), TLS on the entry, more replicas and room to grow. Copy and adapt: host, image, secret names.
 */
export function productionProfile(app: App, options: ProfileOptions = {}): void {
  new SocketGatewayCrd(new Chart(app, 'crds', { disableResourceNameHashes: true }), 'SocketGatewayCrd', { app: defaultApp() });
  const chart = new Chart(app, 'app', { namespace: PRODUCTION_NAMESPACE, disableResourceNameHashes: true });
  new RestrictedNamespace(chart, 'Namespace', { app: defaultApp(), name: PRODUCTION_NAMESPACE });
  new RealtimeGateway(chart, 'RealtimeGateway', {
    app: defaultApp(),
    image: options.image ?? 'registry.example.com/realtime-gateway:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    entry: {
      kind: 'gatewayApi',
      className: 'eg',
      host: 'realtime.example.com',
      tlsSecretName: 'realtime-gateway-tls',
      // Up to 30 × 20,000 sockets: each is two connections in Envoy. An estimate, not a measurement: watch
      // the proxies' memory and add replicas before raising limits. One proxy at a time may be evicted.
      envoyProxy: { replicas: 4, minAvailable: 3, resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '6Gi' } } },
    },
    autoscaling: { mode: 'hpa', minReplicas: 3, maxReplicas: 30, scaleUpPods: 6 },
    resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
    redis: { external: { secretName: 'realtime-gateway-redis-cluster', cluster: true } },
    auth: { existingSecret: 'realtime-gateway-auth' },
    settings: { LOG_LEVEL: 'info', MAX_CONNECTIONS: '20000' },
    // A bigger fleet absorbs more reconnects; the CRD goes to dist/production/crds/.
    controller: { includeCrd: false, drain: { reconnectBudgetPerSecond: 200 } },
  });
}
