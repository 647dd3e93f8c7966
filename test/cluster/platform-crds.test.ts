// Objects of other projects' APIs the chart and constructs render — the Prometheus Operator's ServiceMonitor
// and PrometheusRule, Envoy Gateway's BackendTrafficPolicy — applied to a real kube-apiserver that serves their CRDs (./bin/crds-optional, from
// the pinned Go modules: `make tools`), so a field their schema does not know is an error here, not in a
// platform team's cluster. Run `make tools` first.
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultBinDir, installOptionalCrds, repoRoot, startControlPlane, type ControlPlane, type StopControlPlane } from '../../scripts/cluster/control-plane.ts';
import { dryRunThenApply, readBack, renderChart, lostFields, describeObject } from './manifests.ts';
import { validateManifest } from '../infra/validate-models.ts';

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
    const objects = rendered.objects.filter((o) => o.apiVersion === 'gateway.envoyproxy.io/v1alpha1');
    expect(objects.map((o) => o.kind)).toEqual(['BackendTrafficPolicy']);
    expect((objects[0] as any).spec.circuitBreaker.maxConnections).toBe(20_000 * 21);
    const report = await dryRunThenApply(plane, { ...rendered, objects }, namespace);
    expect(report.warnings).toEqual([]);
    const stored = await readBack(plane, objects, namespace);
    for (const object of objects) expect(lostFields(object, stored.get(describeObject(object))), describeObject(object)).toEqual([]);
  }, 120_000);

  test('the offline check (validate-models.ts) reads the same CRDs and refuses what they refuse', () => {
    const monitor = { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'm' }, spec: { selector: {}, endpoints: 'internal' } };
    expect(() => validateManifest(monitor)).toThrow(/ServiceMonitor\/m fails its CRD's schema/);
    const ok = { ...monitor, spec: { selector: {}, endpoints: [{ port: 'internal' }] } };
    expect(() => validateManifest(ok)).not.toThrow();
  });
});
