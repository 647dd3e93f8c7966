import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ChaosReport, runChaos, scenariosFor, summaryLine } from '../../scripts/chaos/chaos.ts';

// The stock socket.io-client with default options (no SDK, no resume code: it joins its rooms when a
// connection is not recovered), half WebSocket and half long-polling through HAProxy, while a pod is
// drained and while one is SIGKILLed. Connection state recovery across pods (docs/stock-clients.md)
// must bring every one of them back with nothing lost and nothing duplicated.
const STOCK_SCENARIOS = scenariosFor('local').filter((s) => s.population === 'stock');

describe('chaos: stock socket.io-client populations (CI size)', () => {
  let report: ChaosReport;
  const outDir = process.env.CHAOS_RESULTS_DIR ?? mkdtempSync(join(tmpdir(), 'rt-chaos-stock-'));

  it('runs the stock-client scenarios on the local fleet', { timeout: 180_000 }, async () => {
    report = await runChaos({ size: 'ci', target: 'local', outDir, command: 'npx vitest run test/chaos/stock-chaos.test.ts', only: STOCK_SCENARIOS.map((s) => s.name) });
    for (const s of report.scenarios) console.log(summaryLine(s));
    expect(report.scenarios.map((s) => s.name)).toEqual(['stock-graceful', 'stock-sigkill']);
  });

  for (const spec of STOCK_SCENARIOS) {
    it(`${spec.name}: nothing lost or duplicated, every reconnect recovered, every client of the pod back on another`, () => {
      const s = report.scenarios.find((x) => x.name === spec.name)!;
      expect(s.victimClients).toBeGreaterThan(50);
      expect(s.published).toBeGreaterThan(0);
      expect(s.delivery).toMatchObject({ lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0 });
      expect(s.reconnected).toBe(s.victimClients);
      expect(s.stockRecovery!.resynced).toBe(0);
      expect(s.stockRecovery!.recovered).toBeGreaterThanOrEqual(s.victimClients);
      expect(s.failures).toEqual([]);
    });
  }

  it('stock-graceful: without the hint, each client comes back one backoff after its paced close, so arrivals span the drain', () => {
    const s = report.scenarios.find((x) => x.name === 'stock-graceful')!;
    const { drain } = report.settings;
    expect(s.exit).toMatchObject({ code: 0, killedAfterGrace: false });
    // Closed at the pod's paced rate, each client back after its own backoff (0.5-1.5 s) and a handshake:
    // the last one arrives no sooner than the paced window, and none waits much past its backoff.
    const pacedWindowMs = drain.noticeMs + (s.victimClients / drain.ratePerSecond) * 1_000;
    expect(s.movedWithinMs).toBeGreaterThanOrEqual(0.9 * pacedWindowMs);
    // What the load generator itself lagged (shared cores) delays when its clients record being back.
    expect(s.reconnectLatencyMs.p99).toBeLessThan(5_000 + s.loadGeneratorLagMs.max);
    // The peak is reported (docs/chaos.md): one load generator on two shared cores records arrivals in bunches.
    console.log(`stock-graceful: peak ${s.peakReconnectsPerSecond}/s on the survivors for a close rate of ${drain.ratePerSecond}/s`);
  });
});
