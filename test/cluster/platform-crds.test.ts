// Objects of other projects' APIs the chart and constructs render — the Prometheus Operator's ServiceMonitor
// and PrometheusRule, Envoy Gateway's BackendTrafficPolicy, EnvoyProxy and EnvoyPatchPolicy — applied to a real kube-apiserver that serves their CRDs (./bin/crds-optional, from
// the pinned Go modules: `make tools`), so a field their schema does not know is an error here, not in a
// platform team's cluster. Run `make tools` first.
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultBinDir, installOptionalCrds, repoRoot, startControlPlane, type ControlPlane, type StopControlPlane } from '../../scripts/cluster/control-plane.ts';
import { dryRunThenApply, readBack, renderChart, lostFields, describeObject } from './manifests.ts';
import { validateManifest } from '../infra/validate-models.ts';
import { synthProfile } from '../../infra/synth.ts';
import { KIND_VALUES } from '../../infra/profiles/kind.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- stored objects are read as plain JSON */

const OPTIONAL_CRDS = join(defaultBinDir, 'crds-optional');
const helm = join(defaultBinDir, 'helm');
const chartDir = join(repoRoot, 'charts', 'realtime-gateway');

let plane: ControlPlane;
let stop: StopControlPlane | undefined;

beforeAll(async () => {
  [plane, stop] = await startControlPlane();
  await installOptionalCrds(plane, readdirSync(OPTIONAL_CRDS));
}, 180_000);

afterAll(async () => {
  await stop?.();
});

describe('objects of the Prometheus Operator API', () => {
  test('the ServiceMonitor and PrometheusRule pass server-side dry-run and are stored whole', async () => {
    const namespace = 'monitoring-objects';
    const rendered = await renderChart(helm, chartDir, namespace, {
      metrics: { serviceMonitor: { enabled: true, labels: { release: 'kps' } }, prometheusRule: { enabled: true } },
    });
    const objects = rendered.objects.filter((o) => o.apiVersion === 'monitoring.coreos.com/v1');
    expect(objects.map((o) => o.kind).sort()).toEqual(['PrometheusRule', 'ServiceMonitor']);
    const report = await dryRunThenApply(plane, { ...rendered, objects }, namespace);
    expect(report.warnings).toEqual([]);
    const stored = await readBack(plane, objects, namespace);
    for (const object of objects) expect(lostFields(object, stored.get(describeObject(object))), describeObject(object)).toEqual([]);
  }, 120_000);

  test('the Envoy Gateway BackendTrafficPolicy (circuit breaker) passes server-side dry-run and is stored whole', async () => {
    const namespace = 'envoy-policies';
    const rendered = await renderChart(helm, chartDir, namespace, { autoscaling: { maxReplicas: 20 }, settings: { MAX_CONNECTIONS: '20000' } });
    const objects = rendered.objects.filter((o) => o.kind === 'BackendTrafficPolicy');
    expect(objects).toHaveLength(1);
    expect((objects[0] as any).spec.circuitBreaker.maxConnections).toBe(20_000 * 21);
    const report = await dryRunThenApply(plane, { ...rendered, objects }, namespace);
    expect(report.warnings).toEqual([]);
    const stored = await readBack(plane, objects, namespace);
    for (const object of objects) expect(lostFields(object, stored.get(describeObject(object))), describeObject(object)).toEqual([]);
  }, 120_000);

  const ENVOY_KINDS = ['BackendTrafficPolicy', 'EnvoyPatchPolicy', 'EnvoyProxy'];
  const envoyObjects = (objects: readonly { apiVersion: string }[]) => objects.filter((o) => o.apiVersion === 'gateway.envoyproxy.io/v1alpha1') as any[];
  const acceptedWhole = async (objects: any[], source: string, namespace?: string) => {
    const report = await dryRunThenApply(plane, { source, objects }, namespace);
    expect(report.warnings).toEqual([]);
    const stored = await readBack(plane, objects, namespace);
    for (const object of objects) expect(lostFields(object, stored.get(describeObject(object))), describeObject(object)).toEqual([]);
  };

  test.each(['kind', 'production'] as const)('the constructs\' Envoy Gateway objects (profile %s) pass server-side dry-run, CEL rules included, and are stored whole', async (profile) => {
    const objects = envoyObjects(synthProfile(profile).app!);
    expect(objects.map((o) => o.kind).sort()).toEqual(ENVOY_KINDS);
    // Both profiles use the namespace realtime-gateway: one at a time, as they would be deployed.
    await acceptedWhole(objects, `synthProfile(${profile})`);
    await plane.kubectl(['delete', '--namespace', objects[0].metadata.namespace, ...objects.map((o) => `${o.kind.toLowerCase()}.gateway.envoyproxy.io/${o.metadata.name}`)]);
  }, 120_000);

  test.each([
    ['default values', {}],
    ['kind values (NodePort 30080)', KIND_VALUES],
    ['a ClusterIP proxy, 3 replicas, a longer drain', { entry: { gatewayApi: { envoyProxy: { service: { type: 'ClusterIP' }, replicas: 3, minAvailable: 2 } } }, drain: { windowMs: 60_000 } }],
  ] as const)('the chart\'s Envoy Gateway objects with %s pass server-side dry-run and are stored whole', async (name, values) => {
    const namespace = `envoy-chart-${name.split(' ')[0]}`;
    const rendered = await renderChart(helm, chartDir, namespace, values);
    const objects = envoyObjects(rendered.objects);
    expect(objects.map((o) => o.kind).sort()).toEqual(ENVOY_KINDS);
    await acceptedWhole(objects, rendered.source, namespace);
  }, 120_000);

  test('the API server refuses what Envoy Gateway\'s CRDs refuse: a check that would catch a wrong field', async () => {
    const [proxy] = envoyObjects(synthProfile('kind').app!).filter((o) => o.kind === 'EnvoyProxy');
    const refused = async (object: object, message: RegExp) => {
      const result = await plane.kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '-f', '-'], { input: JSON.stringify(object), allowFailure: true });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(message);
    };
    const broken = structuredClone(proxy);
    broken.metadata.namespace = 'default';
    broken.spec.provider.kubernetes.envoyService.type = 'Ingress';
    await refused(broken, /Unsupported value: "Ingress"/);
    const both = structuredClone(proxy);
    both.metadata.namespace = 'default';
    both.spec.provider.kubernetes.envoyPDB = { minAvailable: 1, maxUnavailable: 1 };
    await refused(both, /envoyPDB/);
    const unknown = structuredClone(proxy);
    unknown.metadata.namespace = 'default';
    unknown.spec.shutdown.drainSeconds = 30;
    await refused(unknown, /\.spec\.shutdown\.drainSeconds: field not declared in schema/);
  }, 120_000);

  test('the offline check (validate-models.ts) reads the same CRDs and refuses what they refuse', () => {
    const monitor = { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'm' }, spec: { selector: {}, endpoints: 'internal' } };
    expect(() => validateManifest(monitor)).toThrow(/ServiceMonitor\/m fails its CRD's schema/);
    const ok = { ...monitor, spec: { selector: {}, endpoints: [{ port: 'internal' }] } };
    expect(() => validateManifest(ok)).not.toThrow();
  });
});
