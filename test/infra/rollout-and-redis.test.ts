// Issue 14's smaller findings that had only a snapshot behind them: readiness that tolerates one slow probe but
// still takes a draining pod out within the notice delay, `minReadySeconds` of one drain (rollouts never
// overlap drains), and the in-cluster Redis' PodDisruptionBudget and headless governing Service — in the
// constructs' output and in the chart's render with other drain values.
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveDrainTiming, DRAIN_DEFAULTS } from '../../infra/drain-timing.ts';
import { synthProfile } from '../../infra/synth.ts';
import { renderByKindAndName, requireHelm } from './helm.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are read as plain JSON */
type Obj = Record<string, any>;

const FULLNAME = 'realtime-gateway';
const kind = () => synthProfile('kind').app! as Obj[];
const gatewayDeployment = (objects: Obj[]) => objects.find((o) => o.kind === 'Deployment' && o.metadata.labels['app.kubernetes.io/component'] === 'gateway')!;

describe('gateway readiness and rollouts', () => {
  it('readiness tolerates one slow or failed probe, yet a draining pod leaves the endpoints within its notice delay', () => {
    const probe = gatewayDeployment(kind()).spec.template.spec.containers[0].readinessProbe;
    expect(probe.httpGet.path).toBe('/readyz');
    // One probe slower than a period, or one failure, does not flap the pod (failureThreshold 1 did).
    expect(probe.failureThreshold).toBeGreaterThanOrEqual(2);
    expect(probe.timeoutSeconds).toBeGreaterThanOrEqual(2);
    // /readyz answers 503 at once when a drain starts: failureThreshold probes later the endpoint is gone,
    // before the notice delay ends and the paced closes begin.
    expect(probe.periodSeconds * probe.failureThreshold * 1000).toBeLessThanOrEqual(DRAIN_DEFAULTS.noticeDelayMs);
  });

  it('minReadySeconds is one drain (preStop + notice + window), so a rolling update drains one pod at a time', () => {
    const deployment = gatewayDeployment(kind());
    const drain = resolveDrainTiming({});
    expect(deployment.spec.minReadySeconds).toBe(drain.preStopSeconds + Math.ceil((drain.noticeDelayMs + drain.windowMs) / 1000));
    expect(deployment.spec.strategy.rollingUpdate).toMatchObject({ maxSurge: 1, maxUnavailable: 0 });
  });
});

describe('in the chart', () => {
  beforeAll(() => {
    requireHelm();
  });

  it('minReadySeconds follows the drain values, and the grace period stays above it', () => {
    const objects = renderByKindAndName({ drain: { preStopSeconds: 3, noticeDelayMs: 1500, windowMs: 45_000 } });
    const spec = objects.get(`Deployment/${FULLNAME}`)!.spec as Obj;
    expect(spec.minReadySeconds).toBe(3 + Math.ceil((1500 + 45_000) / 1000));
    expect(spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(spec.minReadySeconds);
  });

  it('the in-cluster Redis: a PodDisruptionBudget that lets no eviction through, and a headless Service governing the StatefulSet', () => {
    const objects = renderByKindAndName({});
    const statefulSet = objects.get(`StatefulSet/${FULLNAME}-redis`)! as Obj;
    const podLabels = statefulSet.spec.template.metadata.labels as Record<string, string>;
    const pdb = objects.get(`PodDisruptionBudget/${FULLNAME}-redis`)! as Obj;
    expect(pdb.spec.maxUnavailable).toBe(0);
    for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels as Record<string, string>)) expect(podLabels[k], k).toBe(v);
    const headless = objects.get(`Service/${statefulSet.spec.serviceName}`)! as Obj;
    expect(headless.metadata.name).toBe(`${FULLNAME}-redis-headless`);
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    for (const [k, v] of Object.entries(headless.spec.selector as Record<string, string>)) expect(podLabels[k], k).toBe(v);
    // The gateway's PDB does not select Redis, nor Redis' the gateway.
    const gatewayPdb = objects.get(`PodDisruptionBudget/${FULLNAME}`)! as Obj;
    expect(gatewayPdb.spec.selector.matchLabels['app.kubernetes.io/component']).toBe('gateway');
  });

  it('no Redis objects of the chart\'s own with an external Redis', () => {
    const objects = renderByKindAndName({ redis: { mode: 'external', external: { secretName: 'rt-redis' } } });
    expect([...objects.keys()].filter((k) => k.includes('-redis'))).toEqual([]);
  });
});
