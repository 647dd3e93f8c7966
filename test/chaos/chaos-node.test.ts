import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ChaosReport, runChaos, scenariosFor, summaryLine } from '../../scripts/chaos/chaos.ts';

// The chaos suite at CI size on the real node: the chart on a kubelet, the HAProxy entry on a NodePort,
// pods ended with `kubectl delete pod` (SIGTERM, paced drain) and with a SIGKILL of the container plus
// `--grace-period=0 --force`, a rolling update (`kubectl rollout restart`) and the Redis pod deleted
// mid-stream. `make chaos-node` runs the full size and writes what docs/chaos.md quotes.
describe('chaos on the real node: kubectl delete pod under load (CI size)', () => {
  let report: ChaosReport;
  const outDir = process.env.CHAOS_RESULTS_DIR ?? mkdtempSync(join(tmpdir(), 'rt-chaos-node-'));

  it('runs every scenario on the node', { timeout: 600_000 }, async () => {
    report = await runChaos({ size: 'ci', target: 'node', outDir, command: 'npx vitest run test/chaos/chaos-node.test.ts' });
    for (const s of report.scenarios) console.log(summaryLine(s));
    expect(report.scenarios.map((s) => s.name)).toEqual(scenariosFor('node').map((s) => s.name));
  });

  for (const spec of scenariosFor('node')) {
    const wholeFleet = spec.action === 'rollout' || spec.action === 'restart-backplane';
    it(`${spec.name}: no message lost, none duplicated, ${wholeFleet ? 'every client connected at the end' : 'every client of the pod back on another'}`, () => {
      const s = report.scenarios.find((x) => x.name === spec.name)!;
      expect(s.victimClients).toBeGreaterThan(50);
      expect(s.published).toBeGreaterThan(0);
      expect(s.delivery).toMatchObject({ lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0 });
      if (wholeFleet) expect(s.notReconnected).toBe(0);
      else expect(s.reconnected).toBe(s.victimClients);
      expect(s.failures).toEqual([]);
    });
  }

  it('graceful: the paced drain keeps reconnects within the budget on a real kubelet; the contrast run does not', () => {
    const graceful = report.scenarios.find((s) => s.name === 'graceful')!;
    const contrast = report.scenarios.find((s) => s.name === 'no-hint-no-jitter')!;
    expect(graceful.peakReconnectsPerSecond).toBeLessThanOrEqual(graceful.budgetPerSecond);
    expect(contrast.peakReconnectsPerSecond).toBeGreaterThan(contrast.budgetPerSecond);
  });
});
