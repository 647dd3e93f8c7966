// The extension points a platform team expects of a chart (as the centrifugo chart offers them), each
// rendered and found where it belongs; the constructs expose the same points and handles on what users patch.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Chart, JsonPatch } from 'cdk8s';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthChartObjects } from '../../infra/chart/chart-generator.ts';
import { DEFAULT_VALUES, type ChartValues } from '../../infra/chart/values.ts';
import { RealtimeGateway } from '../../infra/realtime-gateway.ts';
import { PLATFORM_VALUES } from './platform-values.ts';
import { helmTemplate, NAMESPACE, RELEASE, renderByKindAndName, requireHelm, ROOT } from './helm.ts';
import { validateManifest } from './validate-models.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered objects are read as plain JSON */
type Obj = Record<string, any>;

const FULLNAME = 'realtime-gateway';

const render = (values: object) => renderByKindAndName(values) as Map<string, Obj>;

const podSpec = (objects: Map<string, Obj>, key: string) => objects.get(key)!.spec.template.spec as Obj;

describe('chart extension points', () => {
  beforeAll(() => {
    requireHelm();
  });

  it('none is rendered by default (no empty fields)', () => {
    const objects = render({});
    const gateway = podSpec(objects, `Deployment/${FULLNAME}`);
    for (const field of ['affinity', 'nodeSelector', 'tolerations', 'priorityClassName', 'imagePullSecrets']) expect(gateway).not.toHaveProperty(field);
    expect(objects.get(`ServiceAccount/${FULLNAME}`)!.metadata).not.toHaveProperty('annotations');
    expect(objects.get(`StatefulSet/${FULLNAME}-redis`)!.spec.volumeClaimTemplates[0].spec).not.toHaveProperty('storageClassName');
  });

  it('the gateway pods get scheduling, metadata, extra env, envFrom, volumes and mounts', () => {
    const objects = render(PLATFORM_VALUES);
    const deployment = objects.get(`Deployment/${FULLNAME}`)!;
    const pod = deployment.spec.template;
    expect(pod.metadata.annotations).toMatchObject({ 'example.com/team': 'realtime', 'prometheus.io/scrape': 'true' });
    expect(pod.metadata.labels).toMatchObject({ team: 'realtime', 'app.kubernetes.io/component': 'gateway' });
    // Never part of the selector: changing them must not orphan the ReplicaSets.
    expect(deployment.spec.selector.matchLabels).not.toHaveProperty('team');
    expect(pod.spec).toMatchObject({
      affinity: PLATFORM_VALUES.affinity,
      nodeSelector: PLATFORM_VALUES.nodeSelector,
      tolerations: PLATFORM_VALUES.tolerations,
      priorityClassName: 'realtime-high',
      imagePullSecrets: [{ name: 'regcred' }],
    });
    const container = pod.spec.containers[0];
    expect(container.env.slice(-2)).toEqual(PLATFORM_VALUES.extraEnv);
    expect(container.env.map((e: Obj) => e.name)).toContain('REDIS_URL');
    expect(container.envFrom).toEqual([{ configMapRef: { name: FULLNAME } }, { secretRef: { name: 'rt-api-keys' } }]);
    expect(container.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }, ...PLATFORM_VALUES.extraVolumeMounts]);
    expect(pod.spec.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }, ...PLATFORM_VALUES.extraVolumes]);
  });

  it('every pod of the release gets the node selector, tolerations, priority class and pull secrets', () => {
    for (const values of [PLATFORM_VALUES, { ...PLATFORM_VALUES, entry: { kind: 'haproxy' } }]) {
      const objects = render(values);
      const pods = [...objects.values()].filter((o) => o.spec?.template?.spec);
      expect(pods.length).toBeGreaterThanOrEqual(3);
      for (const o of pods) {
        expect(o.spec.template.spec, `${o.kind}/${o.metadata.name}`).toMatchObject({
          nodeSelector: PLATFORM_VALUES.nodeSelector,
          tolerations: PLATFORM_VALUES.tolerations,
          priorityClassName: 'realtime-high',
          imagePullSecrets: [{ name: 'regcred' }],
        });
      }
    }
  });

  it('ServiceAccount annotations and the Redis StorageClass', () => {
    const objects = render(PLATFORM_VALUES);
    expect(objects.get(`ServiceAccount/${FULLNAME}`)!.metadata.annotations).toEqual(PLATFORM_VALUES.serviceAccount.annotations);
    expect(objects.get(`StatefulSet/${FULLNAME}-redis`)!.spec.volumeClaimTemplates[0].spec.storageClassName).toBe('fast-ssd');
  });

  it('Ingress annotations join the nginx ones, and stand alone with traefik', () => {
    const extra = { 'cert-manager.io/cluster-issuer': 'letsencrypt' };
    const nginx = render({ entry: { kind: 'ingress', ingress: { annotations: extra } } }).get(`Ingress/${FULLNAME}`)!;
    expect(nginx.metadata.annotations).toMatchObject({ ...extra, 'nginx.ingress.kubernetes.io/affinity': 'cookie' });
    const traefik = render({ entry: { kind: 'ingress', ingress: { controller: 'traefik', annotations: extra } } }).get(`Ingress/${FULLNAME}`)!;
    expect(traefik.metadata.annotations).toEqual(extra);
  });

  it('parentRefs attach the route to a shared Gateway and create none', () => {
    const parentRefs = [{ name: 'shared', namespace: 'gateways', sectionName: 'https' }];
    const objects = render({ entry: { host: 'rt.example.com', gatewayApi: { parentRefs } } });
    expect([...objects.keys()].filter((k) => k.startsWith('Gateway/'))).toEqual([]);
    expect(objects.get(`HTTPRoute/${FULLNAME}`)!.spec).toMatchObject({ parentRefs, hostnames: ['rt.example.com'] });
    expect(() => helmTemplate({ entry: { tls: { enabled: true, secretName: 't' }, gatewayApi: { parentRefs } } })).toThrow(/\/entry\/tls\/enabled': value must be false/);
    expect(() => helmTemplate({ entry: { tls: { enabled: true, secretName: 't' }, gatewayApi: { parentRefs } } }, undefined, ['--skip-schema-validation'])).toThrow(
      /entry\.tls\.enabled=true does not apply with entry\.gatewayApi\.parentRefs/,
    );
  });

  it('a ServiceMonitor on the internal port and a PrometheusRule with the alerts of docs/operations.md', () => {
    expect([...render({}).keys()].filter((k) => k.startsWith('ServiceMonitor/') || k.startsWith('PrometheusRule/'))).toEqual([]);
    const objects = render({ metrics: { serviceMonitor: { enabled: true, labels: { release: 'kps' } }, prometheusRule: { enabled: true } } });
    const monitor = objects.get(`ServiceMonitor/${FULLNAME}`)!;
    expect(monitor.metadata.labels.release).toBe('kps');
    expect(monitor.spec.endpoints).toEqual([{ port: 'internal', path: '/metrics', interval: '30s' }]);
    // It selects the gateway Service, and only it.
    const services = [...objects.values()].filter((o) => o.kind === 'Service');
    const selected = services.filter((svc) => Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => svc.metadata.labels[k] === v));
    expect(selected.map((svc) => svc.metadata.name)).toEqual([FULLNAME]);
    expect(selected[0]!.spec.ports.map((p: Obj) => p.name)).toContain('internal');
    const rules = objects.get(`PrometheusRule/${FULLNAME}`)!.spec.groups[0].rules as Obj[];
    expect(rules.map((r) => r.alert)).toEqual([
      'RealtimeGatewayBackplaneDown',
      'RealtimeGatewayOverCapacity',
      'RealtimeGatewayPingTimeouts',
      'RealtimeGatewayRateLimited',
      'RealtimeGatewaySlowConsumers',
      'RealtimeGatewayDrainStuck',
      'RealtimeGatewayEventLoopLag',
    ]);
    const operations = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    for (const metric of ['rt_backplane_up', 'rt_handshake_refusals_total', 'rt_disconnections_total', 'rt_slow_consumer_disconnections_total', 'rt_drain_in_progress']) {
      expect(operations).toContain(metric);
      expect(rules.some((r) => r.expr.includes(metric)), metric).toBe(true);
    }
    for (const rule of rules) expect(rule.expr).toContain(`namespace="${NAMESPACE}", job="${FULLNAME}"`);
    // Prometheus' own template text reaches it untouched by Helm.
    expect(rules[0]!.annotations.description).toMatch(/^\{\{ \$labels\.pod \}\}: /);
    // A drain is stuck once it outlives the pods' grace period (derived from the drain values).
    const grace = objects.get(`Deployment/${FULLNAME}`)!.spec.template.spec.terminationGracePeriodSeconds;
    expect(rules.find((r) => r.alert === 'RealtimeGatewayDrainStuck')!.for).toBe(`${grace}s`);
    expect(() => helmTemplate({ metrics: { serviceMonitor: { enabled: true, labels: { 'app.kubernetes.io/name': 'x' } } } })).toThrow(/metrics\.serviceMonitor\.labels\.app\.kubernetes\.io\/name is set by the chart itself/);
    expect(() => helmTemplate({ metrics: { serviceMonitor: { interval: 'often' } } })).toThrow(/\/metrics\/serviceMonitor\/interval': 'often' does not match pattern/);
  });

  it("Envoy Gateway's circuit breaker admits MAX_CONNECTIONS x (the most pods + 1), not Envoy's 1024", () => {
    const breaker = (values: object) => render(values).get(`BackendTrafficPolicy/${FULLNAME}`)?.spec.circuitBreaker;
    expect(breaker({})).toEqual({ maxConnections: 10_000 * 7, maxPendingRequests: 10_000 * 7, maxParallelRequests: 10_000 * 7 });
    expect(breaker({ settings: { MAX_CONNECTIONS: 20_000 }, autoscaling: { maxReplicas: 10 } })!.maxConnections).toBe(20_000 * 11);
    expect(breaker({ autoscaling: { mode: 'none' }, replicaCount: 3 })!.maxConnections).toBe(10_000 * 4);
    const policy = render({}).get(`BackendTrafficPolicy/${FULLNAME}`)!;
    expect(policy.spec.targetRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: FULLNAME }]);
    expect(breaker({ entry: { gatewayApi: { envoyPolicies: false } } })).toBeUndefined();
    expect(breaker({ entry: { kind: 'ingress' } })).toBeUndefined();
  });

  it('refuses keys and names the chart sets itself, naming them', () => {
    expect(() => helmTemplate({ podLabels: { 'app.kubernetes.io/component': 'x' } })).toThrow(/podLabels\.app\.kubernetes\.io\/component is set by the chart itself/);
    expect(() => helmTemplate({ podAnnotations: { 'checksum/config': 'x' } })).toThrow(/podAnnotations\.checksum\/config is set by the chart itself/);
    expect(() => helmTemplate({ entry: { kind: 'ingress', ingress: { annotations: { 'nginx.ingress.kubernetes.io/affinity': 'none' } } } })).toThrow(
      /entry\.ingress\.annotations\.nginx\.ingress\.kubernetes\.io\/affinity is set by the chart itself/,
    );
    expect(() => helmTemplate({ extraEnv: [{ name: 'JWT_SECRET', value: 'x' }] })).toThrow(/extraEnv JWT_SECRET is set by the chart itself/);
    expect(() => helmTemplate({ extraEnv: [{ name: 'REDIS_URL', value: 'redis://x' }] })).toThrow(/extraEnv REDIS_URL is set by the chart itself/);
    expect(() => helmTemplate({ extraVolumeMounts: [{ name: 'x', mountPath: 'relative' }] })).toThrow(/\/extraVolumeMounts\/0\/mountPath': 'relative' does not match pattern/);
    expect(() => helmTemplate({ tolerations: { key: 'x' } })).toThrow(/\/tolerations': got object, want array/);
    // The constructs refuse the same.
    const synth = (override: Partial<ChartValues>) => () => synthChartObjects({ ...structuredClone(DEFAULT_VALUES), ...override }, { release: RELEASE, namespace: NAMESPACE });
    expect(synth({ podLabels: { 'app.kubernetes.io/component': 'x' } })).toThrow(/pod\.labels app\.kubernetes\.io\/component is set by the construct itself/);
    expect(synth({ extraEnv: [{ name: 'JWT_SECRET', value: 'x' }] })).toThrow(/pod\.env JWT_SECRET is set by the construct itself/);
  });
});

describe('construct handles and pod extension points', () => {
  it('a platform team patches the autoscaler, route and Ingress through handles, and extends the pods', () => {
    const chart = new Chart(new App({ outdir: '/nonexistent' }), 'c', { namespace: 'rt', disableResourceNameHashes: true });
    const rg = new RealtimeGateway(chart, 'rg', {
      app: { name: 'rt', instance: 'rt', version: '1', managedBy: 'cdk8s' },
      image: 'rt:1',
      pod: { tolerations: [{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }], env: [{ name: 'EXTRA', value: '1' }] },
    });
    rg.autoscaler!.addJsonPatch(JsonPatch.replace('/spec/maxReplicas', 40));
    rg.gateway.deployment.metadata.addAnnotation('example.com/owner', 'platform');
    if (rg.entry.constructor.name !== 'GatewayApiEntry') throw new Error('expected the Gateway API entry');
    const entry = rg.entry as import('../../infra/gateway-api-entry.ts').GatewayApiEntry;
    entry.route.addJsonPatch(JsonPatch.add('/spec/rules/0/filters', [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'X-Team', value: 'rt' }] } }]));
    entry.gateway!.metadata.addLabel('example.com/exposed', 'true');
    const objects = new Map((chart.toJson() as Obj[]).map((o) => [`${o.kind}/${o.metadata.name}`, o]));
    expect(objects.get('HorizontalPodAutoscaler/rt')!.spec.maxReplicas).toBe(40);
    expect(objects.get('Deployment/rt')!.metadata.annotations).toEqual({ 'example.com/owner': 'platform' });
    expect(objects.get('HTTPRoute/rt')!.spec.rules[0].filters[0].type).toBe('ResponseHeaderModifier');
    expect(objects.get('Gateway/rt')!.metadata.labels['example.com/exposed']).toBe('true');
    for (const key of ['Deployment/rt', 'Deployment/rt-controller', 'StatefulSet/rt-redis']) {
      expect(objects.get(key)!.spec.template.spec.tolerations, key).toEqual([{ key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' }]);
    }
    expect(objects.get('Deployment/rt')!.spec.template.spec.containers[0].env.at(-1)).toEqual({ name: 'EXTRA', value: '1' });
    for (const object of objects.values()) validateManifest(object as never);
  });
});
