import { describe, expect, it } from 'vitest';
import { runScaleDownChaos, SCALE_DOWN_SIZES, summary, type ScaleDownReport } from '../../scripts/chaos/scale-down.ts';

// The chaos suite's scale-down scenario at CI size: a real API server + kube-controller-manager, gateway pods
// run by scripts/pod-runner, 120 SDK clients and a numbered stream; one scale-down driven by the controller,
// then one plain Deployment scale-down with the controller stopped. `make chaos-scale-down` runs the full size.
describe('chaos: scale-down, controller-driven vs plain Deployment (CI size)', () => {
  let report: ScaleDownReport;

  it('runs both scale-downs', { timeout: 240_000 }, async () => {
    report = await runScaleDownChaos(SCALE_DOWN_SIZES.ci);
    for (const run of report.runs) console.log(summary(run));
    expect(report.runs.map((r) => r.name)).toEqual(['controller', 'deployment']);
  });

  it('either way: one pod removed, no message lost or duplicated, every client of the pod back on another', () => {
    for (const run of report.runs) {
      expect(run.deletedPods, run.name).toEqual([run.victim]);
      expect(run.victimClients, run.name).toBeGreaterThan(10);
      expect(run, run.name).toMatchObject({ lost: 0, duplicates: 0, outOfOrder: 0, reconnected: run.victimClients });
    }
  });

  it('the controller drains the emptiest pod, within the budget (generous bound for a shared machine)', () => {
    const run = report.runs.find((r) => r.name === 'controller')!;
    expect(run.victimWasEmptiest).toBe(true);
    expect(run.peakReconnectsPerSecond).toBeLessThanOrEqual(run.budgetPerSecond * 2);
  });
});
