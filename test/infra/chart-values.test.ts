// Bad values are refused at `helm template`/`helm install` (values.schema.json, generated from the constructs'
// bounds, and validate.yaml for relations a schema cannot state), each naming the value; good edge values pass.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthChartObjects } from '../../infra/chart/chart-generator.ts';
import { valuesSchema } from '../../infra/chart/schema.ts';
import { DEFAULT_VALUES, type ChartValues } from '../../infra/chart/values.ts';
import { LIMITS } from '../../infra/limits.ts';
import { APP_VERSION } from '../../infra/profiles/common.ts';
import { KIND_VALUES } from '../../infra/profiles/kind.ts';
import { CHART, helm, helmTemplate, mergeValues, NAMESPACE, RELEASE, requireHelm } from './helm.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered objects are read as plain JSON */
type Obj = Record<string, any>;

/** value path → value, as `-f values.yaml` would give it. */
function valuesAt(path: string, value: unknown): object {
  return path.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as object;
}

// [what a user might write, the values, what the refusal must name]
const INVALID: [string, object, RegExp][] = [
  ['autoscaling.mode=bogus', valuesAt('autoscaling.mode', 'bogus'), /\/autoscaling\/mode': value must be one of 'hpa', 'keda', 'none'/],
  ['entry.kind=bogus', valuesAt('entry.kind', 'bogus'), /\/entry\/kind': value must be one of 'gatewayApi', 'ingress', 'haproxy'/],
  ['entry.ingress.controller=haproxy', valuesAt('entry.ingress.controller', 'haproxy'), /\/entry\/ingress\/controller': value must be one of 'nginx', 'traefik'/],
  ['redis.mode=cluster', valuesAt('redis.mode', 'cluster'), /\/redis\/mode': value must be one of 'internal', 'external'/],
  ['entry.haproxy.serviceType=nodeport', valuesAt('entry.haproxy.serviceType', 'nodeport'), /\/entry\/haproxy\/serviceType': value must be one of/],
  ['image.pullPolicy=always', valuesAt('image.pullPolicy', 'always'), /\/image\/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'/],
  ['minReplicas > maxReplicas', { autoscaling: { minReplicas: 8, maxReplicas: 4 } }, /autoscaling\.maxReplicas=4 must be >= autoscaling\.minReplicas \(8\)/],
  ['minReplicas > maxReplicas with KEDA', { autoscaling: { mode: 'keda', minReplicas: 8, maxReplicas: 4 } }, /autoscaling\.maxReplicas=4 must be >= autoscaling\.minReplicas \(8\)/],
  ['autoscaling.minReplicas=0', valuesAt('autoscaling.minReplicas', 0), /\/autoscaling\/minReplicas': minimum: got 0, want 1/],
  ['autoscaling.maxReplicas=2.5', valuesAt('autoscaling.maxReplicas', 2.5), /\/autoscaling\/maxReplicas': got number, want integer/],
  ['autoscaling.scaleDownPeriodSeconds=5', valuesAt('autoscaling.scaleDownPeriodSeconds', 5), /\/autoscaling\/scaleDownPeriodSeconds': minimum: got 5, want 15/],
  ['autoscaling.scaleDownStabilizationSeconds=30', valuesAt('autoscaling.scaleDownStabilizationSeconds', 30), /\/autoscaling\/scaleDownStabilizationSeconds': minimum: got 30, want 60/],
  ['autoscaling.keda.socketsPerPod=0', valuesAt('autoscaling.keda.socketsPerPod', 0), /\/autoscaling\/keda\/socketsPerPod': minimum: got 0, want 1/],
  ['replicaCount=0', valuesAt('replicaCount', 0), /\/replicaCount': minimum: got 0, want 1/],
  ['drain.windowMs=0 (the gateway refuses DRAIN_WINDOW_MS=0 and crash-loops)', valuesAt('drain.windowMs', 0), /\/drain\/windowMs': minimum: got 0, want 1/],
  ['drain.jitterMs=-1', valuesAt('drain.jitterMs', -1), /\/drain\/jitterMs': minimum: got -1, want 0/],
  ['drain.marginSeconds=1', valuesAt('drain.marginSeconds', 1), /\/drain\/marginSeconds': minimum: got 1, want 2/],
  ['drain.windowMs as text', valuesAt('drain.windowMs', '20s'), /\/drain\/windowMs': got string, want integer/],
  ['drain.terminationGracePeriodSeconds below the drain', valuesAt('drain.terminationGracePeriodSeconds', 10), /drain\.terminationGracePeriodSeconds=10 is shorter than the drain needs/],
  ['image.tag as a number (1.10 would become 1.1)', valuesAt('image.tag', 1.1), /\/image\/tag': got number, want string/],
  ['image.repository empty', valuesAt('image.repository', ''), /\/image\/repository': minLength: got 0, want 1/],
  ['internal.port=70000', valuesAt('internal.port', 70_000), /\/internal\/port': maximum: got 70,000, want 65,535/],
  ['entry.cookieName with a space', valuesAt('entry.cookieName', 'my cookie'), /\/entry\/cookieName': '.*' does not match pattern/],
  ['redis.mode=external without its Secret', valuesAt('redis.mode', 'external'), /\/redis\/external\/secretName': minLength: got 0, want 1/],
  ['entry.tls.enabled without a Secret', valuesAt('entry.tls.enabled', true), /\/entry\/tls\/secretName': minLength: got 0, want 1/],
  ['a TLS Ingress without a host', { entry: { kind: 'ingress', tls: { enabled: true, secretName: 't' } } }, /\/entry\/host': minLength: got 0, want 1/],
  ['TLS on the HAProxy entry', { entry: { kind: 'haproxy', tls: { enabled: true, secretName: 't' } } }, /\/entry\/tls\/enabled': value must be false/],
  ['entry.className empty with Gateway API', valuesAt('entry.className', ''), /\/entry\/className': minLength: got 0, want 1/],
  ['entry.haproxy.nodePort=80', { entry: { kind: 'haproxy', haproxy: { serviceType: 'NodePort', nodePort: 80 } } }, /\/entry\/haproxy\/nodePort': minimum: got 80, want 30,000/],
  ['entry.haproxy.maxServers=1001', valuesAt('entry.haproxy.maxServers', 1001), /\/entry\/haproxy\/maxServers': maximum: got 1,001, want 1,000/],
  ['entry.gatewayApi.envoyProxy.service.type=Ingress', valuesAt('entry.gatewayApi.envoyProxy.service', { type: 'Ingress' }), /\/entry\/gatewayApi\/envoyProxy\/service\/type': value must be one of 'LoadBalancer', 'NodePort', 'ClusterIP'/],
  ['an Envoy proxy service whose type is removed (null)', valuesAt('entry.gatewayApi.envoyProxy.service', { type: null, externalTrafficPolicy: 'Cluster' }), /\/entry\/gatewayApi\/envoyProxy\/service': missing property 'type'/],
  ['entry.gatewayApi.envoyProxy.replicas=0', valuesAt('entry.gatewayApi.envoyProxy.replicas', 0), /\/entry\/gatewayApi\/envoyProxy\/replicas': minimum: got 0, want 1/],
  ['an Envoy PDB no proxy could be evicted under', { entry: { gatewayApi: { envoyProxy: { replicas: 2, minAvailable: 2 } } } }, /envoyProxy\.minAvailable=2 must be below envoyProxy\.replicas=2/],
  ['controller.leaseDurationSeconds=1', valuesAt('controller.leaseDurationSeconds', 1), /\/controller\/leaseDurationSeconds': minimum: got 1, want 3/],
  ['controller.drain.reconnectBudgetPerSecond=0.1', valuesAt('controller.drain.reconnectBudgetPerSecond', 0.1), /\/controller\/drain\/reconnectBudgetPerSecond': minimum: got 0.1, want 0.2/],
  ['redis.internal.storageSize=lots', valuesAt('redis.internal.storageSize', 'lots'), /\/redis\/internal\/storageSize': 'lots' does not match pattern/],
  ['resources with a typo', valuesAt('resources', { request: { cpu: '1' } }), /\/resources': additional properties 'request' not allowed/],
  ['a misspelt value (autoscalling)', valuesAt('autoscalling.mode', 'none'), /additional properties 'autoscalling' not allowed/],
  ['namespaces of only whitespace (no namespaces file at all)', valuesAt('namespaces', '  \n\t '), /\/namespaces': '.*' does not match pattern '\^\$\|\\\\S'/],
  ['entry.cookieSameSite in lower case', valuesAt('entry.cookieSameSite', 'lax'), /\/entry\/cookieSameSite': value must be one of 'Lax', 'Strict', 'None'/],
  ['redis.internal.existingSecret not a Secret name', valuesAt('redis.internal.existingSecret', 'My_Secret'), /\/redis\/internal\/existingSecret': 'My_Secret' does not match pattern/],
  ['settings naming an unknown variable', valuesAt('settings', { NOPE: '1' }), /settings\.NOPE is not a gateway setting/],
  ['settings the chart owns', valuesAt('settings', { PORT: '1' }), /settings\.PORT is set by the chart itself/],
];

// Edge values that must render.
const VALID: [string, object][] = [
  ['minReplicas = maxReplicas', { autoscaling: { minReplicas: 3, maxReplicas: 3 } }],
  ['minReplicas > maxReplicas is moot with autoscaling.mode=none', { autoscaling: { mode: 'none', minReplicas: 8, maxReplicas: 4 } }],
  ['drain at its minimums', { drain: { preStopSeconds: 0, noticeDelayMs: 0, windowMs: 1, ratePerSecond: 0, jitterMs: 0, marginSeconds: 2 } }],
  ['a fractional reconnect budget', valuesAt('controller.drain.reconnectBudgetPerSecond', 0.2)],
  ['an explicit grace period, and null for derived', valuesAt('drain.terminationGracePeriodSeconds', null)],
  ['entry.className empty with the HAProxy entry (it has none)', { entry: { kind: 'haproxy', className: '' } }],
  ['a nodePort at each end of the range', { entry: { kind: 'haproxy', haproxy: { serviceType: 'NodePort', nodePort: 30000 } } }],
  ['one Envoy proxy and no PDB floor', { entry: { gatewayApi: { envoyProxy: { replicas: 1, minAvailable: 0 } } } }],
  ['the Envoy proxy on kind\'s fixed NodePort', KIND_VALUES],
  ['an Envoy PDB floor that is moot with a shared Gateway', { entry: { gatewayApi: { parentRefs: [{ name: 'shared' }], envoyProxy: { replicas: 2, minAvailable: 2 } } } }],
  ['resources in numbers', valuesAt('resources', { requests: { cpu: 1, memory: '1Gi' }, limits: { cpu: '1500m' } })],
  ['settings with a number value', valuesAt('settings', { MAX_CONNECTIONS: 5000 })],
  ['an umbrella chart\'s global values', { global: { imageRegistry: 'r.example.com' } }],
];

describe('chart values are checked at render', () => {
  beforeAll(() => {
    requireHelm();
  });

  it.each(INVALID)('refuses %s', (_name, values, message) => {
    expect(() => helmTemplate(values)).toThrow(message);
  });

  it.each(VALID)('renders %s', (_name, values) => {
    expect(helmTemplate(values).length).toBeGreaterThan(10);
  });

  it('the constructs refuse the same bounds the schema states (one source: infra/limits.ts)', () => {
    const synth = (override: object) => () => synthChartObjects(mergeValues(DEFAULT_VALUES, override) as ChartValues, { release: RELEASE, namespace: NAMESPACE });
    expect(synth(valuesAt('drain.windowMs', LIMITS.drain.windowMs.minimum - 1))).toThrow(/drain\.windowMs=0 must be an integer >= 1/);
    expect(synth(valuesAt('autoscaling.scaleDownPeriodSeconds', LIMITS.scaleDownPeriodSeconds.minimum - 1))).toThrow(/scaleDownPeriodSeconds=14 must be an integer >= 15/);
    expect(synth({ autoscaling: { minReplicas: 8, maxReplicas: 4 } })).toThrow(/maxReplicas=4 must be an integer >= minReplicas \(8\)/);
    expect(synth(valuesAt('entry.cookieName', 'my cookie'))).toThrow(/is not a valid cookie name/);
    expect(synth(valuesAt('namespaces', ' \n '))).toThrow(/namespaces=" \\n " is empty: leave it unset for the demo namespaces/);
    const schema = valuesSchema() as Obj;
    expect(schema.properties.drain.properties.windowMs.minimum).toBe(LIMITS.drain.windowMs.minimum);
    expect(schema.properties.autoscaling.properties.scaleDownPeriodSeconds.minimum).toBe(LIMITS.scaleDownPeriodSeconds.minimum);
  });

  it('namespaces of only whitespace fails in words without the schema too (--skip-schema-validation)', () => {
    expect(() => helmTemplate(valuesAt('namespaces', '   '), undefined, ['--skip-schema-validation'])).toThrow(/namespaces is only whitespace: leave it empty for the demo namespaces/);
    expect(helmTemplate(valuesAt('namespaces', 'namespaces:\n  orders: { join: claim }\n')).length).toBeGreaterThan(10);
  });

  it('image.tag defaults to the chart\'s appVersion', () => {
    const chart = readFileSync(join(CHART, 'Chart.yaml'), 'utf8');
    expect(chart).toContain(`appVersion: ${APP_VERSION}`);
    const images = (values: object) =>
      (helmTemplate(values) as Obj[]).filter((o) => o.kind === 'Deployment').flatMap((o) => o.spec.template.spec.containers.map((c: Obj) => c.image as string));
    expect(new Set(images({}))).toEqual(new Set([`realtime-gateway:${APP_VERSION}`]));
    expect(new Set(images(valuesAt('image.tag', '')))).toEqual(new Set([`realtime-gateway:${APP_VERSION}`]));
    expect(new Set(images(valuesAt('image.tag', '1.10')))).toEqual(new Set(['realtime-gateway:1.10']));
  });

  it('./bin/helm knows its version and renders a kubeVersion-constrained chart without --kube-version', () => {
    expect(helm(['version', '--short']).output).toMatch(/^v3\.\d+\.\d+/);
    const result = helm(['template', RELEASE, CHART, '--namespace', NAMESPACE]);
    expect(result.ok, result.output).toBe(true);
    expect(helm(['lint', CHART, '--strict']).ok).toBe(true);
  });
});
