// The generated Helm chart: up to date, lint-clean, and semantically the constructs' output for any values.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthChartObjects } from '../../infra/chart/chart-generator.ts';
import { writeChart } from '../../infra/chart/generate.ts';
import { DEFAULT_VALUES, identityFor, propsFromValues, VALUE_DOCS, type ChartValues } from '../../infra/chart/values.ts';
import { GENERATED_SECRET_ANNOTATION } from '../../infra/generated-secret.ts';
import { synthProfile } from '../../infra/synth.ts';
import { KIND_VALUES } from '../../infra/profiles/kind.ts';
import { App, Chart } from 'cdk8s';
import { RealtimeGateway, type RealtimeGatewayProps } from '../../infra/realtime-gateway.ts';
import { CHART, helm, helmTemplate, mergeValues, NAMESPACE, RELEASE, requireHelm } from './helm.ts';
import { PLATFORM_VALUES } from './platform-values.ts';
import { validateManifest } from './validate-models.ts';
import { parseAllDocuments } from 'yaml';
import { CRD_NAME, socketGatewayCrd } from '../../app/controller/socket-gateway.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are compared as plain JSON */
type Obj = Record<string, any>;

/** Objects keyed by kind/name, with what legitimately differs between two renderings blanked. */
function normalize(objects: readonly Obj[], { dropToolLabels = false } = {}): Record<string, Obj> {
  const out: Record<string, Obj> = {};
  for (const original of objects) {
    const o = structuredClone(original);
    const scrubLabels = (labels?: Record<string, string>) => {
      if (labels && dropToolLabels) {
        delete labels['helm.sh/chart'];
        delete labels['app.kubernetes.io/managed-by'];
      }
    };
    scrubLabels(o.metadata.labels);
    scrubLabels(o.spec?.template?.metadata?.labels);
    // Random per render (Helm: randAlphaNum or lookup; cdk8s: crypto.randomBytes).
    if (o.kind === 'Secret' && o.metadata.annotations?.[GENERATED_SECRET_ANNOTATION] === 'true') {
      // Helm's own: the chart keeps generated Secrets on uninstall (chart-secrets.test.ts).
      if (dropToolLabels) delete o.metadata.annotations['helm.sh/resource-policy'];
      for (const key of ['password', 'jwt-secret', 'admin-token', 'auth.conf']) if (key in o.stringData) o.stringData[key] = '<generated>';
    }
    // Helm hashes the rendered ConfigMap file, cdk8s its data: both change exactly when the config does.
    if (o.spec?.template?.metadata?.annotations?.['checksum/config']) {
      expect(o.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
      o.spec.template.metadata.annotations['checksum/config'] = '<sha256>';
    }
    const key = `${o.kind}/${o.metadata.name}`;
    expect(out[key], `duplicate ${key}`).toBeUndefined();
    out[key] = o;
  }
  return out;
}

const context = { release: RELEASE, namespace: NAMESPACE };


describe('the generated chart', () => {
  beforeAll(() => {
    requireHelm();
  });

  it('is up to date with the constructs (run `make charts` after changing infra/)', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'rg-chart-'));
    const files = await writeChart(fresh);
    for (const file of files) {
      expect(readFileSync(join(CHART, file), 'utf8'), `charts/realtime-gateway/${file} is stale: run make charts`).toBe(
        readFileSync(join(fresh, file), 'utf8'),
      );
    }
    expect(readdirSync(join(CHART, 'templates')).sort()).toEqual(readdirSync(join(fresh, 'templates')).sort());
    // Generation synthesizes every variant (~120 thousand): ~75 s of CPU, on worker threads; 46 s of wall time
    // on the two cores, 80 s with a second generation running beside it (decision 0020). 300 s: a margin for busier CI.
  }, 300_000);

  it('passes helm lint with no warnings', () => {
    const result = helm(['lint', CHART, '--strict']);
    expect(result.output).toContain('0 chart(s) failed');
    expect(result.ok, result.output).toBe(true);
    expect(result.output).not.toMatch(/\[(WARNING|ERROR)\]/);
  });

  it('documents every value in values.yaml', () => {
    const valuesYaml = readFileSync(join(CHART, 'values.yaml'), 'utf8');
    const leaves = (node: unknown, prefix: string): string[] =>
      node && typeof node === 'object' && !Array.isArray(node)
        ? Object.entries(node).flatMap(([k, v]) => [`${prefix}${k}`, ...(k.endsWith('resources') ? [] : leaves(v, `${prefix}${k}.`))])
        : [];
    for (const path of leaves(DEFAULT_VALUES, '')) {
      expect(VALUE_DOCS[path], `values.${path} undocumented`).toBeTruthy();
      expect(valuesYaml).toContain(`# ${VALUE_DOCS[path]!.split('\n')[0]}`);
    }
  });

  it('with default values (and the image `make up` builds) renders the kind profile (semantically), every object schema-valid', () => {
    // The chart's proxy Service is a LoadBalancer by default; kind's fixed NodePort is KIND_VALUES.
    const rendered = helmTemplate(mergeValues({ image: { tag: 'dev' } }, KIND_VALUES));
    for (const object of rendered) validateManifest(object as never);
    // The profile also defines its Namespace; the chart leaves that to `helm install --namespace`.
    const kind = synthProfile('kind').app!.filter((o) => o.kind !== 'Namespace');
    expect(normalize(rendered, { dropToolLabels: true })).toEqual(normalize(kind, { dropToolLabels: true }));
  });

  const variants: Record<string, unknown> = {
    'ingress, nginx, host and TLS': { entry: { kind: 'ingress', className: 'nginx', host: 'rt.example.com', tls: { enabled: true, secretName: 'rt-tls' } } },
    'ingress, traefik (sticky cookie on the Service)': { entry: { kind: 'ingress', className: 'traefik', ingress: { controller: 'traefik' } } },
    // TLS on the Ingress marks the sticky cookie Secure; the generator once rendered "false" here (decision 0020).
    'ingress, traefik, host and TLS (Secure sticky cookie)': {
      entry: { kind: 'ingress', className: 'traefik', host: 'rt.example.com', tls: { enabled: true, secretName: 'rt-tls' }, ingress: { controller: 'traefik' } },
    },
    'Gateway API with host and TLS on 443': { entry: { host: 'rt.example.com', tls: { enabled: true, secretName: 'rt-tls' }, gatewayApi: { listenerPort: 443 } } },
    'KEDA on sockets per pod': { autoscaling: { mode: 'keda', minReplicas: 3, maxReplicas: 9, keda: { socketsPerPod: 500 } } },
    'fixed replicas': { autoscaling: { mode: 'none' }, replicaCount: 4 },
    'external Redis Cluster and an existing auth secret': {
      redis: { mode: 'external', external: { secretName: 'redis-ext', cluster: true, urlKey: 'nodes' } },
      auth: { existingSecret: 'my-auth' },
    },
    'longer drain, explicit grace period, extra settings': {
      drain: { windowMs: 45_000, jitterMs: 9000, ratePerSecond: 50, terminationGracePeriodSeconds: 90 },
      settings: { LOG_LEVEL: 'debug', MAX_CONNECTIONS: '5000' },
    },
    'controller off: the autoscaler scales the Deployment': { controller: { enabled: false } },
    'controller off with fixed replicas': { controller: { enabled: false }, autoscaling: { mode: 'none' }, replicaCount: 3 },
    'controller with a fractional budget, KEDA': { autoscaling: { mode: 'keda' }, controller: { drain: { reconnectBudgetPerSecond: 12.5 } } },
    'internal port moved, a Prometheus namespace admitted, KEDA in its own namespace': {
      internal: { port: 9191, metricsNamespace: 'monitoring' },
      autoscaling: { mode: 'keda', keda: { operatorNamespace: 'keda-system' } },
    },
    'a Prometheus namespace the only internal peer (controller off, fixed replicas)': {
      internal: { metricsNamespace: 'monitoring' },
      controller: { enabled: false },
      autoscaling: { mode: 'none' },
    },
    'no internal peer at all (controller off, fixed replicas)': { controller: { enabled: false }, autoscaling: { mode: 'none' } },
    'haproxy entry with its defaults (ClusterIP)': { entry: { kind: 'haproxy' } },
    'haproxy on a fixed NodePort: own image, replicas, port, limits, cluster domain and cookie': {
      entry: {
        kind: 'haproxy',
        cookieName: 'rt-sticky',
        haproxy: {
          image: { repository: 'registry.example.com/haproxy', tag: '3.3', pullPolicy: 'Always' },
          replicas: 2,
          serviceType: 'NodePort',
          nodePort: 30080,
          port: 9000,
          maxServers: 64,
          maxConnections: 20_000,
          clusterDomain: 'corp.internal',
          resources: { requests: { cpu: '200m', memory: '128Mi' }, limits: { memory: '512Mi' } },
        },
      },
    },
    'haproxy on a NodePort the cluster assigns, KEDA, controller off': {
      entry: { kind: 'haproxy', haproxy: { serviceType: 'NodePort' } },
      autoscaling: { mode: 'keda' },
      controller: { enabled: false },
    },
    'haproxy behind a LoadBalancer, external Redis, a host that it ignores': {
      entry: { kind: 'haproxy', host: 'rt.example.com', haproxy: { serviceType: 'LoadBalancer' } },
      redis: { mode: 'external', external: { secretName: 'redis-ext' } },
    },
    'every platform extension point (internal Redis, Gateway API, controller on)': PLATFORM_VALUES,
    'platform extension points with the HAProxy entry, KEDA and the controller off': { ...PLATFORM_VALUES, entry: { kind: 'haproxy' }, autoscaling: { mode: 'keda' }, controller: { enabled: false } },
    'nginx Ingress with more annotations': {
      entry: { kind: 'ingress', ingress: { annotations: { 'cert-manager.io/cluster-issuer': 'letsencrypt', 'nginx.ingress.kubernetes.io/proxy-body-size': '1m' } } },
    },
    'traefik Ingress with annotations of its own only': {
      entry: { kind: 'ingress', className: 'traefik', ingress: { controller: 'traefik', annotations: { 'traefik.ingress.kubernetes.io/router.middlewares': 'auth@kubernetescrd' } } },
    },
    'Envoy proxy on a fixed NodePort, 3 replicas, own resources, longer drain': {
      entry: {
        gatewayApi: {
          envoyProxy: {
            service: { type: 'NodePort', externalTrafficPolicy: 'Cluster', patch: { type: 'StrategicMerge', value: { spec: { ports: [{ port: 8080, nodePort: 31080 }] } } } },
            replicas: 3,
            minAvailable: 2,
            resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } },
          },
        },
      },
      drain: { preStopSeconds: 8, noticeDelayMs: 3500, windowMs: 45_000 },
    },
    'Envoy proxy behind a ClusterIP, TLS on 443': { entry: { host: 'rt.example.com', tls: { enabled: true, secretName: 'rt-tls' }, gatewayApi: { listenerPort: 443, envoyProxy: { service: { type: 'ClusterIP', annotations: { 'example.com/team': 'rt' } } } } } },
    'another Gateway API implementation (no Envoy objects)': { entry: { className: 'other', gatewayApi: { envoyPolicies: false } } },
    'the route attached to a shared Gateway (no Gateway of its own)': {
      entry: { host: 'rt.example.com', gatewayApi: { parentRefs: [{ name: 'shared', namespace: 'gateways', sectionName: 'https' }] } },
    },
    'ServiceMonitor and PrometheusRule with the labels a Prometheus selects by': {
      metrics: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'kps' } }, prometheusRule: { enabled: true, labels: { release: 'kps' } } },
      internal: { metricsNamespace: 'monitoring' },
      drain: { windowMs: 40_000 },
    },
    'RS256 with a JWKS from a ConfigMap': { auth: { mode: 'RS256', publicKey: { configMapName: 'rt-jwks' } } },
    'ES256 with one PEM key and an existing admin Secret': { auth: { mode: 'ES256', existingSecret: 'rt-admin', publicKey: { configMapName: 'rt-pem', key: 'key.pem', format: 'pem' } } },
    'name overrides, image and resources': {
      fullnameOverride: 'rt',
      image: { repository: 'registry.example.com/rt', tag: '1.2.3', pullPolicy: 'Always' },
      resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
    },
  };

  it.each(Object.entries(variants))('renders what the constructs synthesize for: %s', (_name, override) => {
    const values = mergeValues(DEFAULT_VALUES, override) as ChartValues;
    const rendered = helmTemplate(override);
    for (const object of rendered) validateManifest(object as never);
    expect(normalize(rendered)).toEqual(normalize(synthChartObjects(values, context)));
  });

  // Each documented knob → a new value → the object it must change.
  const knobs: [string, unknown, string][] = [
    ['image.repository', 'other/image', 'Deployment/realtime-gateway'],
    ['image.tag', '9.9.9', 'Deployment/realtime-gateway'],
    ['image.pullPolicy', 'Always', 'Deployment/realtime-gateway'],
    ['autoscaling.minReplicas', 3, 'HorizontalPodAutoscaler/realtime-gateway'],
    ['autoscaling.maxReplicas', 12, 'HorizontalPodAutoscaler/realtime-gateway'],
    ['autoscaling.targetCPUUtilizationPercentage', 50, 'HorizontalPodAutoscaler/realtime-gateway'],
    ['autoscaling.targetMemoryUtilizationPercentage', 60, 'HorizontalPodAutoscaler/realtime-gateway'],
    ['autoscaling.scaleUpPods', 8, 'HorizontalPodAutoscaler/realtime-gateway'],
    ['autoscaling.scaleDownStabilizationSeconds', 900, 'HorizontalPodAutoscaler/realtime-gateway'],
    ['autoscaling.scaleDownPeriodSeconds', 300, 'HorizontalPodAutoscaler/realtime-gateway'],
    ['resources', { requests: { cpu: '1', memory: '1Gi' } }, 'Deployment/realtime-gateway'],
    ['entry.className', 'other', 'Gateway/realtime-gateway'],
    ['entry.host', 'rt.example.com', 'HTTPRoute/realtime-gateway'],
    ['entry.cookieName', 'other-cookie', 'HTTPRoute/realtime-gateway'],
    ['entry.gatewayApi.listenerPort', 9090, 'Gateway/realtime-gateway'],
    ['redis.internal.image', 'redis:8.0-alpine', 'StatefulSet/realtime-gateway-redis'],
    ['redis.internal.storageSize', '5Gi', 'StatefulSet/realtime-gateway-redis'],
    ['redis.internal.resources', { requests: { cpu: '1', memory: '1Gi' } }, 'StatefulSet/realtime-gateway-redis'],
    ['drain.preStopSeconds', 10, 'Deployment/realtime-gateway'],
    ['drain.noticeDelayMs', 4000, 'ConfigMap/realtime-gateway'],
    ['drain.windowMs', 40_000, 'ConfigMap/realtime-gateway'],
    ['drain.ratePerSecond', 25, 'ConfigMap/realtime-gateway'],
    ['drain.jitterMs', 8000, 'ConfigMap/realtime-gateway'],
    ['drain.marginSeconds', 9, 'Deployment/realtime-gateway'],
    ['drain.terminationGracePeriodSeconds', 120, 'Deployment/realtime-gateway'],
    ['settings', { LOG_LEVEL: 'debug' }, 'ConfigMap/realtime-gateway'],
    ['auth.existingSecret', 'my-auth', 'Deployment/realtime-gateway'],
    ['nameOverride', 'rtg', 'Deployment/realtime-gateway-rtg'],
    ['fullnameOverride', 'rt', 'Deployment/rt'],
    ['controller.replicas', 3, 'Deployment/realtime-gateway-controller'],
    ['controller.resources', { requests: { cpu: '1', memory: '1Gi' } }, 'Deployment/realtime-gateway-controller'],
    ['controller.minReadyPods', 2, 'SocketGateway/realtime-gateway'],
    ['controller.leaseDurationSeconds', 30, 'Deployment/realtime-gateway-controller'],
    ['controller.drain.reconnectBudgetPerSecond', 25.5, 'SocketGateway/realtime-gateway'],
    ['controller.drain.windowSeconds', 60, 'SocketGateway/realtime-gateway'],
    ['controller.drain.marginSeconds', 30, 'SocketGateway/realtime-gateway'],
    ['internal.port', 9191, 'Service/realtime-gateway'],
    ['internal.port', 9191, 'NetworkPolicy/realtime-gateway'],
    ['internal.port', 9191, 'ConfigMap/realtime-gateway'],
    ['internal.metricsNamespace', 'monitoring', 'NetworkPolicy/realtime-gateway'],
    ['entry.gatewayApi.envoyProxy.service', { type: 'ClusterIP' }, 'EnvoyProxy/realtime-gateway'],
    ['entry.gatewayApi.envoyProxy.replicas', 4, 'EnvoyProxy/realtime-gateway'],
    ['entry.gatewayApi.envoyProxy.minAvailable', 0, 'EnvoyProxy/realtime-gateway'],
    ['entry.gatewayApi.envoyProxy.resources', { requests: { cpu: '1', memory: '1Gi' } }, 'EnvoyProxy/realtime-gateway'],
    ['drain.windowMs', 60_000, 'EnvoyProxy/realtime-gateway'],
    ['drain.preStopSeconds', 10, 'EnvoyProxy/realtime-gateway'],
    ['drain.noticeDelayMs', 4000, 'EnvoyProxy/realtime-gateway'],
  ];
  const defaults = () => normalize(helmTemplate());
  const set = (path: string, value: unknown) =>
    path.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);

  it.each(knobs)('changing %s changes the rendered object it should', (path, value, objectKey) => {
    const before = defaults();
    const after = normalize(helmTemplate(set(path, value)));
    expect(after[objectKey], `${objectKey} missing after setting ${path}`).toBeDefined();
    expect(after[objectKey]).not.toEqual(before[objectKey]);
  });

  const haproxy = { entry: { kind: 'haproxy' } };
  const haproxyKnobs: [string, unknown, string][] = [
    ['entry.haproxy.image.repository', 'registry.example.com/haproxy', 'Deployment/realtime-gateway-entry'],
    ['entry.haproxy.image.tag', '3.3', 'Deployment/realtime-gateway-entry'],
    ['entry.haproxy.image.pullPolicy', 'Always', 'Deployment/realtime-gateway-entry'],
    ['entry.haproxy.replicas', 3, 'Deployment/realtime-gateway-entry'],
    ['entry.haproxy.serviceType', 'LoadBalancer', 'Service/realtime-gateway-entry'],
    ['entry.haproxy.port', 9000, 'Service/realtime-gateway-entry'],
    ['entry.haproxy.port', 9000, 'ConfigMap/realtime-gateway-entry'],
    ['entry.haproxy.maxServers', 64, 'ConfigMap/realtime-gateway-entry'],
    ['entry.haproxy.maxConnections', 20_000, 'ConfigMap/realtime-gateway-entry'],
    ['entry.haproxy.clusterDomain', 'corp.internal', 'ConfigMap/realtime-gateway-entry'],
    ['entry.haproxy.resources', { requests: { cpu: '1', memory: '1Gi' } }, 'Deployment/realtime-gateway-entry'],
    ['entry.cookieName', 'rt-sticky', 'ConfigMap/realtime-gateway-entry'],
  ];
  it.each(haproxyKnobs)('with entry.kind=haproxy, changing %s (to %j) changes %s', (path, value, objectKey) => {
    const before = normalize(helmTemplate(haproxy));
    const after = normalize(helmTemplate(mergeValues(haproxy, set(path, value))));
    expect(after[objectKey], `${objectKey} missing after setting ${path}`).toBeDefined();
    expect(after[objectKey]).not.toEqual(before[objectKey]);
  });

  it('a changed haproxy.cfg rolls the HAProxy pods (it reads its config only at start)', () => {
    const checksum = (override: unknown) =>
      (helmTemplate(override) as Obj[]).find((o) => o.kind === 'Deployment' && o.metadata.name === 'realtime-gateway-entry')!.spec.template.metadata.annotations['checksum/config'];
    expect(checksum(haproxy)).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(mergeValues(haproxy, { entry: { cookieName: 'rt-sticky' } }))).not.toBe(checksum(haproxy));
    expect(checksum(mergeValues(haproxy, { entry: { haproxy: { replicas: 3 } } }))).toBe(checksum(haproxy));
  });

  it('entry.haproxy defaults are the HaproxyEntry construct\'s own', () => {
    const values = mergeValues(DEFAULT_VALUES, haproxy) as ChartValues;
    const entryObjects = (entry: RealtimeGatewayProps['entry']) => {
      const chart = new Chart(new App({ outdir: '/nonexistent' }), 'chart', { namespace: NAMESPACE, disableResourceNameHashes: true });
      new RealtimeGateway(chart, 'RealtimeGateway', { ...propsFromValues(values, identityFor(values, context)), entry });
      return normalize((chart.toJson() as Obj[]).filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'entry'));
    };
    const fromValues = propsFromValues(values, identityFor(values, context)).entry!;
    expect(Object.keys(entryObjects(fromValues))).toHaveLength(4);
    expect(entryObjects(fromValues)).toEqual(entryObjects({ kind: 'haproxy', cookieName: values.entry.cookieName }));
  });

  it('with --set entry.kind=haproxy on NodePort 30080, renders a haproxy.cfg the real haproxy accepts', () => {
    const result = helm(['template', RELEASE, CHART, '--namespace', NAMESPACE,
      '--set', 'entry.kind=haproxy', '--set', 'entry.haproxy.serviceType=NodePort', '--set', 'entry.haproxy.nodePort=30080']);
    expect(result.ok, result.output).toBe(true);
    const objects = normalize(parseAllDocuments(result.output).map((d) => d.toJS() as Obj).filter(Boolean));
    expect(objects['Service/realtime-gateway-entry']!.spec).toMatchObject({ type: 'NodePort', ports: [{ name: 'http', port: 8080, nodePort: 30080, targetPort: 'http' }] });
    const config = objects['ConfigMap/realtime-gateway-entry']!.data['haproxy.cfg'] as string;
    // HAProxy, not Helm, expands the namespace, from the pod's env.
    expect(config).toContain('server-template gw 1-32 "realtime-gateway-entry-pods.${POD_NAMESPACE}.svc.cluster.local:3000"');
    expect(config).toContain('cookie rtgw-affinity insert indirect nocache dynamic');
    const dir = mkdtempSync(join(tmpdir(), 'chart-haproxy-'));
    try {
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, config);
      // parse-resolv-conf needs a nameserver line; the check runs with the host's resolv.conf.
      const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', env: { ...process.env, POD_NAMESPACE: NAMESPACE } });
      expect(check.error, 'haproxy is not installed (apt-get install haproxy)').toBeUndefined();
      expect(check.stderr + check.stdout).toMatch(/Configuration file is valid/);
      expect(check.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('NOTES.txt says how to reach the entry the values chose', () => {
    // Helm renders NOTES.txt only on install; a copy of the chart renders it as a ConfigMap.
    const dir = mkdtempSync(join(tmpdir(), 'chart-notes-'));
    try {
      const chart = join(dir, 'realtime-gateway');
      cpSync(CHART, chart, { recursive: true });
      const notes = readFileSync(join(chart, 'templates', 'NOTES.txt'), 'utf8');
      rmSync(join(chart, 'templates', 'NOTES.txt'));
      writeFileSync(join(chart, 'templates', '_notes.tpl'), `{{- define "test.notes" -}}\n${notes}{{- end -}}\n`);
      writeFileSync(join(chart, 'templates', 'notes.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  text: {{ include "test.notes" . | toJson }}\n');
      const render = (override: unknown) => (helmTemplate(override, chart) as Obj[]).find((o) => o.metadata.name === 'notes')!.data.text as string;
      expect(render({})).toContain('httproute/realtime-gateway');
      const clusterIp = render(haproxy);
      expect(clusterIp).toContain(`rollout status deployment/realtime-gateway-entry`);
      expect(clusterIp).toContain(`port-forward service/realtime-gateway-entry 8080:8080`);
      expect(clusterIp).not.toContain('httproute');
      expect(render(mergeValues(haproxy, { entry: { haproxy: { serviceType: 'NodePort', nodePort: 30080 } } }))).toContain('http://<node address>:30080/');
      expect(render(mergeValues(haproxy, { entry: { haproxy: { serviceType: 'NodePort' } } }))).toContain(`get service/realtime-gateway-entry -o jsonpath='{.spec.ports[0].nodePort}'`);
      expect(render(mergeValues(haproxy, { entry: { haproxy: { serviceType: 'LoadBalancer', port: 9000 } } }))).toContain('http://<external IP>:9000/');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the drain knobs that shape the grace period change the Deployment and the shutdown deadline too', () => {
    const before = defaults();
    const after = normalize(helmTemplate({ drain: { windowMs: 40_000 } }));
    const grace = (o: Record<string, Obj>) => o['Deployment/realtime-gateway']!.spec.template.spec.terminationGracePeriodSeconds;
    expect(grace(after)).toBe(grace(before) + 20);
    expect(after['ConfigMap/realtime-gateway']!.data.SHUTDOWN_DEADLINE_MS).toBe(String(Number(before['ConfigMap/realtime-gateway']!.data.SHUTDOWN_DEADLINE_MS) + 20_000));
  });

  it('KEDA polls /fleet on the internal port, and its operator namespace is the one let in', () => {
    const rendered = normalize(helmTemplate({ autoscaling: { mode: 'keda', keda: { operatorNamespace: 'keda-system' } }, internal: { port: 9191 } }));
    expect(rendered['ScaledObject/realtime-gateway']!.spec.triggers[0].metadata.url).toBe(`http://realtime-gateway.${NAMESPACE}.svc:9191/fleet`);
    const from = rendered['NetworkPolicy/realtime-gateway']!.spec.ingress[1].from;
    expect(from).toContainEqual({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda-system' } }, podSelector: { matchLabels: { app: 'keda-operator' } } });
  });

  it('mode and kind values switch the objects that exist', () => {
    const kinds = (override: unknown) => Object.keys(normalize(helmTemplate(override))).map((k) => k.split('/')[0]).sort();
    expect(kinds({})).toContain('HTTPRoute');
    expect(kinds({ entry: { kind: 'ingress' } })).toContain('Ingress');
    expect(kinds({ entry: { kind: 'ingress' } })).not.toContain('HTTPRoute');
    expect(kinds({ autoscaling: { mode: 'keda' } })).toContain('ScaledObject');
    expect(kinds({ autoscaling: { mode: 'none' } })).not.toContain('HorizontalPodAutoscaler');
    expect(kinds({ redis: { mode: 'external', external: { secretName: 'x' } } })).not.toContain('StatefulSet');
    const withHaproxy = normalize(helmTemplate({ entry: { kind: 'haproxy' } }));
    expect(Object.keys(withHaproxy).filter((k) => k.endsWith('-entry') || k.endsWith('-entry-pods')).sort()).toEqual([
      'ConfigMap/realtime-gateway-entry',
      'Deployment/realtime-gateway-entry',
      'Service/realtime-gateway-entry',
      'Service/realtime-gateway-entry-pods',
    ]);
    expect(kinds({ entry: { kind: 'haproxy' } })).not.toContain('HTTPRoute');
    expect(kinds({ entry: { kind: 'haproxy' } })).not.toContain('Ingress');
    // An empty nodePort leaves it to the cluster: no field at all.
    expect(withHaproxy['Service/realtime-gateway-entry']!.spec.ports[0]).not.toHaveProperty('nodePort');
    const assigned = normalize(helmTemplate({ entry: { kind: 'haproxy', haproxy: { serviceType: 'NodePort' } } }));
    expect(assigned['Service/realtime-gateway-entry']!.spec).toMatchObject({ type: 'NodePort' });
    expect(assigned['Service/realtime-gateway-entry']!.spec.ports[0]).not.toHaveProperty('nodePort');
  });

  it('with the controller on, autoscalers scale the SocketGateway; off, the Deployment, and no controller object remains', () => {
    const target = (override: unknown, kind: string) => (helmTemplate(override) as Obj[]).find((o) => o.kind === kind)!.spec.scaleTargetRef;
    expect(target({}, 'HorizontalPodAutoscaler')).toEqual({ apiVersion: 'realtime.gateway.blueprint.dev/v1alpha1', kind: 'SocketGateway', name: 'realtime-gateway' });
    expect(target({ autoscaling: { mode: 'keda' } }, 'ScaledObject')).toMatchObject({ kind: 'SocketGateway', name: 'realtime-gateway' });
    expect(target({ controller: { enabled: false } }, 'HorizontalPodAutoscaler')).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'realtime-gateway' });
    const off = helmTemplate({ controller: { enabled: false } }) as Obj[];
    expect(off.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'controller')).toEqual([]);
    // With the controller on it owns the Deployment's replicas, even with a fixed count (the SocketGateway carries it).
    const fixed = helmTemplate({ autoscaling: { mode: 'none' }, replicaCount: 4 }) as Obj[];
    expect(fixed.find((o) => o.kind === 'Deployment' && o.metadata.name === 'realtime-gateway')!.spec.replicas).toBeUndefined();
    expect(fixed.find((o) => o.kind === 'SocketGateway')!.spec.replicas).toBe(4);
    const fixedOff = helmTemplate({ autoscaling: { mode: 'none' }, replicaCount: 4, controller: { enabled: false } }) as Obj[];
    expect(fixedOff.find((o) => o.kind === 'Deployment' && o.metadata.name === 'realtime-gateway')!.spec.replicas).toBe(4);
  });

  it('ships the SocketGateway CRD in crds/, generated from the controller\'s schema', () => {
    const file = readFileSync(join(CHART, 'crds', `${CRD_NAME}.yaml`), 'utf8');
    const crd = parseAllDocuments(file)[0]!.toJS() as Obj;
    validateManifest(crd as never);
    expect(crd.spec).toEqual(socketGatewayCrd().spec);
  });

  it('is namespace-agnostic: no Namespace object, everything in the release namespace (helm --namespace)', () => {
    for (const override of [{}, { autoscaling: { mode: 'keda' } }, { entry: { kind: 'ingress' } }, { entry: { kind: 'haproxy' } }]) {
      const rendered = helmTemplate(override) as Obj[];
      expect(rendered.filter((o) => o.kind === 'Namespace')).toEqual([]);
      for (const object of rendered) expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe(NAMESPACE);
    }
  });

  // values.schema.json refuses most of these first (chart-values.test.ts); the templates refuse them too, for
  // `--skip-schema-validation` and for values a schema cannot relate, in the constructs' own words.
  const noSchema = (values: object) => helmTemplate(values, CHART, ['--skip-schema-validation']);

  it('refuses what the constructs refuse, with a message naming the value', () => {
    expect(() => noSchema({ drain: { terminationGracePeriodSeconds: 10 } })).toThrow(/drain\.terminationGracePeriodSeconds=10 is shorter than the drain needs/);
    expect(() => noSchema({ settings: { NOPE: '1' } })).toThrow(/settings\.NOPE is not a gateway setting/);
    expect(() => noSchema({ settings: { PORT: '1' } })).toThrow(/settings\.PORT is set by the chart itself/);
    expect(() => noSchema({ redis: { mode: 'external' } })).toThrow(/redis\.external\.secretName is required/);
    expect(() => noSchema({ entry: { kind: 'ingress', tls: { enabled: true, secretName: 't' } } })).toThrow(/needs host/);
    expect(() => noSchema({ drain: { marginSeconds: 1 } })).toThrow(/drain\.marginSeconds=1 must be an integer >= 2/);
    expect(() => noSchema({ autoscaling: { minReplicas: 5, maxReplicas: 3 } })).toThrow(/autoscaling\.maxReplicas=3 must be >= autoscaling\.minReplicas \(5\)/);
  });

  it('refuses what the HAProxy entry cannot do, naming the value', () => {
    const helmTemplate = noSchema;
    const haproxy = (h: object, entry: object = {}) => ({ entry: { kind: 'haproxy', ...entry, haproxy: h } });
    expect(() => helmTemplate(haproxy({}, { tls: { enabled: true, secretName: 't' } }))).toThrow(/entry\.tls\.enabled=true does not apply to entry\.kind=haproxy/);
    expect(() => helmTemplate(haproxy({ nodePort: 30080 }))).toThrow(/entry\.haproxy\.nodePort is set, which needs entry\.haproxy\.serviceType=NodePort \(it is ClusterIP\)/);
    expect(() => helmTemplate(haproxy({ serviceType: 'LoadBalancer', nodePort: 30080 }))).toThrow(/needs entry\.haproxy\.serviceType=NodePort \(it is LoadBalancer\)/);
    expect(() => helmTemplate(haproxy({ serviceType: 'NodePort', nodePort: 80 }))).toThrow(/entry\.haproxy\.nodePort=80 is outside the default NodePort range 30000-32767/);
    expect(() => helmTemplate(haproxy({ maxServers: 0 }))).toThrow(/entry\.haproxy\.maxServers=0 must be an integer from 1 to 1000/);
    expect(() => helmTemplate(haproxy({ maxServers: 1001 }))).toThrow(/entry\.haproxy\.maxServers=1001 must be an integer from 1 to 1000/);
    expect(() => helmTemplate(haproxy({ serviceType: 'nodeport' }))).toThrow(/entry\.haproxy\.serviceType=nodeport must be one of ClusterIP, NodePort, LoadBalancer/);
    expect(() => helmTemplate({ entry: { kind: 'HAProxy' } })).toThrow(/entry\.kind=HAProxy must be one of gatewayApi, ingress, haproxy/);
    // The chart's bounds are the construct's.
    const values = (h: object) => mergeValues(DEFAULT_VALUES, haproxy(h)) as ChartValues;
    expect(() => synthChartObjects(values({ serviceType: 'NodePort', nodePort: 29999 }), context)).toThrow(/nodePort=29999 is outside/);
    expect(() => synthChartObjects(values({ serviceType: 'NodePort', nodePort: 32768 }), context)).toThrow(/nodePort=32768 is outside/);
    expect(() => synthChartObjects(values({ maxServers: 1001 }), context)).toThrow(/maxServers=1001/);
    for (const h of [{ serviceType: 'NodePort', nodePort: 30000 }, { serviceType: 'NodePort', nodePort: 32767 }, { maxServers: 1 }, { maxServers: 1000 }]) {
      expect(() => helmTemplate(haproxy(h))).not.toThrow();
      expect(() => synthChartObjects(values(h), context)).not.toThrow();
    }
  });
});
