import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ChaosReport, runChaos, scenariosFor, summaryLine } from '../../scripts/chaos/chaos.ts';

// The chaos suite at CI size on the local fleet (redis-server, gateway processes, HAProxy):
// 300 SDK clients, half WebSocket and half long-polling, through each way a pod can end.
// `make chaos` runs the full size and writes the report docs/chaos.md quotes.
// The stock-client scenarios run in stock-chaos.test.ts.
const SDK_SCENARIOS = scenariosFor('local').filter((s) => s.population !== 'stock');

describe('chaos: ending gateway pods under load (CI size)', () => {
  let report: ChaosReport;
  const outDir = process.env.CHAOS_RESULTS_DIR ?? mkdtempSync(join(tmpdir(), 'rt-chaos-'));

  it('runs every scenario on the local fleet', { timeout: 240_000 }, async () => {
    report = await runChaos({ size: 'ci', target: 'local', outDir, command: 'npx vitest run test/chaos/chaos.test.ts', only: SDK_SCENARIOS.map((s) => s.name) });
    for (const s of report.scenarios) console.log(summaryLine(s));
    expect(report.scenarios.map((s) => s.name)).toEqual(SDK_SCENARIOS.map((s) => s.name));
  });

  for (const spec of SDK_SCENARIOS) {
    it(`${spec.name}: no message lost, none duplicated, every client of the pod back on another`, () => {
      const s = report.scenarios.find((x) => x.name === spec.name)!;
      expect(s.victimClients).toBeGreaterThan(50);
      expect(s.published).toBeGreaterThan(0);
      expect(s.delivery).toMatchObject({ lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0, lateResets: 0 });
      expect(s.reconnected).toBe(s.victimClients);
      expect(s.failures).toEqual([]);
    });
  }

  it('graceful: the drain flattens the reconnect storm to within the budget; the contrast run does not', () => {
    const graceful = report.scenarios.find((s) => s.name === 'graceful')!;
    const contrast = report.scenarios.find((s) => s.name === 'no-hint-no-jitter')!;
    expect(graceful.exit).toMatchObject({ code: 0, killedAfterGrace: false });
    expect(graceful.peakReconnectsPerSecond).toBeLessThanOrEqual(graceful.budgetPerSecond);
    expect(contrast.peakReconnectsPerSecond).toBeGreaterThan(contrast.budgetPerSecond);
    expect(contrast.peakReconnectsPerSecond).toBeGreaterThan(2 * graceful.peakReconnectsPerSecond);
  });
});
