// A platform team's cdk8s app using the blueprint as a library: the package export, not paths into the
// repository. It runs the gateway on a dedicated, tainted node pool, reads a namespace config file from a
// ConfigMap, and pins the entry to the team's shared Gateway. `node examples/platform-app/main.ts [outdir]`.
import { App, Chart, JsonPatch } from 'cdk8s';
import { RealtimeGateway, RestrictedNamespace, type RealtimeGatewayProps } from 'realtime-gateway-blueprint/infra';

export const NAMESPACE = 'chat';

export const PROPS: RealtimeGatewayProps = {
  app: { name: 'chat-gateway', instance: 'chat', version: '1.4.0', managedBy: 'cdk8s' },
  image: 'registry.example.com/chat/realtime-gateway:1.4.0',
  autoscaling: { mode: 'hpa', minReplicas: 3, maxReplicas: 12 },
  entry: { kind: 'gatewayApi', host: 'chat.example.com', parentRefs: [{ name: 'shared-edge', namespace: 'gateways', sectionName: 'https' }] },
  pod: {
    nodeSelector: { 'example.com/pool': 'realtime' },
    tolerations: [{ key: 'example.com/dedicated', operator: 'Equal', value: 'realtime', effect: 'NoSchedule' }],
    env: [{ name: 'NAMESPACE_CONFIG_FILE', value: '/etc/chat/namespaces.yaml' }],
    volumes: [{ name: 'namespaces', configMap: { name: 'chat-namespaces' } }],
    volumeMounts: [{ name: 'namespaces', mountPath: '/etc/chat', readOnly: true }],
  },
};

export function platformChart(app: App): Chart {
  const chart = new Chart(app, 'chat', { namespace: NAMESPACE, disableResourceNameHashes: true });
  new RestrictedNamespace(chart, 'Namespace', { name: NAMESPACE, app: PROPS.app });
  const gateway = new RealtimeGateway(chart, 'Realtime', PROPS);
  // Handles for what the props do not cover: the team's own scale-up policy.
  gateway.autoscaler?.addJsonPatch(JsonPatch.replace('/spec/behavior/scaleUp/policies/0/value', 6));
  return chart;
}

if (import.meta.main) {
  const app = new App({ outdir: process.argv[2] ?? 'dist/examples/platform-app' });
  platformChart(app);
  app.synth();
  console.log(`synthesized into ${app.outdir}`);
}
