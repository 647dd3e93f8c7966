import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Keeps `make bench` working: the smoke size of every bench must complete — every socket connected,
// every message delivered, every drained client back with nothing lost, the gateway fleet losing nothing
// when a pod is SIGTERMed or SIGKILLed — and write its JSON and SVG. No timing is asserted here, nor what
// the vanilla Socket.IO fleet loses (a measurement, not a contract); the numbers live in docs/benchmarks.md.
describe('make bench (smoke size)', () => {
  const out = mkdtempSync(join(tmpdir(), 'rt-bench-'));
  const read = <T>(name: string): T => JSON.parse(readFileSync(join(out, name), 'utf8')) as T;

  it('runs every bench side by side and writes JSON + SVG with ratios and the machine load', { timeout: 150_000 }, () => {
    execFileSync(process.execPath, ['bench/run.ts', '--size', 'smoke', '--only', 'idle,fanout,redis,drain', '--out', out], { stdio: 'pipe', timeout: 140_000 });

    const idle = read<{ count: number; load: { median: number }; results: { contender: string; connected: number; rounds: { failed: number; serverFds: number }[] }[] }>('idle.json');
    expect(idle.results.map((r) => r.contender)).toEqual(['gateway', 'gateway, small young generation', 'Socket.IO', 'Socket.IO, small young generation', 'raw ws']);
    for (const r of idle.results) {
      expect(r.connected, r.contender).toBe(idle.count);
      // Every held connection is an open descriptor on the server: the sockets were really held.
      expect(r.rounds[0]!.serverFds, r.contender).toBeGreaterThanOrEqual(idle.count);
    }
    expect(idle.load.median).toBeGreaterThanOrEqual(0);

    const fanout = read<{ results: { contender: string; delivered: number; expected: number; latencyDelivered: number; latencyExpected: number; latencyFailed: number }[] }>('fanout.json');
    expect(fanout.results.map((r) => r.contender)).toEqual([
      'raw ws',
      'Socket.IO, 1 process',
      'Socket.IO + redis-adapter, 2',
      'raw Redis pub/sub',
      'gateway, embedded',
      'gateway, embedded, small young gen',
      'gateway, 2 on Redis',
    ]);
    for (const r of fanout.results) {
      expect(r.delivered, r.contender).toBe(r.expected);
      expect(r.latencyDelivered, r.contender).toBe(r.latencyExpected);
      expect(r.latencyFailed, r.contender).toBe(0);
    }

    const redis = read<{ publishes: number; results: { contender: string; received: number; commands: Record<string, number> }[] }>('redis-cost.json');
    for (const r of redis.results) expect(r.received, r.contender).toBe(redis.publishes);
    // Each contender's publishes really reached Redis as PUBLISH commands.
    for (const r of redis.results) expect(r.commands.publish, r.contender).toBe(1);

    const drain = read<{ sockets: number; results: { joined: number; backOnSurvivors: number; published: number; lost: number; behind: number; duplicates: number; lateResets: number; peakReconnectsPerSecond: number; victimExit: { code: number } }[] }>('drain.json');
    const [drained] = drain.results;
    expect(drained).toMatchObject({ joined: drain.sockets, backOnSurvivors: drain.sockets, lost: 0, behind: 0, duplicates: 0, lateResets: 0, victimExit: { code: 0 } });
    expect(drained!.published).toBeGreaterThan(0);
    // The survivors' own counters saw the moved clients' handshakes (a count, not a rate bound).
    expect(drained!.peakReconnectsPerSecond).toBeGreaterThan(0);

    const summary = read<{ machine: { loadavg1: number }; idle: object; fanout: object; redis: object; drain: object }>('summary.json');
    expect(Object.keys(summary)).toEqual(expect.arrayContaining(['machine', 'idle', 'fanout', 'redis', 'drain']));
    for (const name of ['idle', 'fanout', 'redis-cost', 'drain']) expect(readFileSync(join(out, `${name}.svg`), 'utf8')).toContain('<svg');
  });

  it('ends a pod of the gateway fleet and of a vanilla Socket.IO fleet: the gateway loses nothing, the vanilla loss is measured', { timeout: 90_000 }, () => {
    const out = mkdtempSync(join(tmpdir(), 'rt-bench-chaos-'));
    execFileSync(process.execPath, ['bench/run.ts', '--size', 'smoke', '--only', 'chaos', '--out', out], { stdio: 'pipe', timeout: 85_000 });
    type Run = { action: string; victimClients: number; reconnected: number; notBack: number; published: number; owed: number; lost: number; duplicates: number; lostPercent: number; victimExit: { code: number | null; signal: string | null } };
    const chaos = JSON.parse(readFileSync(join(out, 'chaos.json'), 'utf8')) as { load: { median: number }; errors: string[]; results: { contender: string; action: string; runs: Run[] }[] };
    expect(chaos.errors).toEqual([]);
    expect(chaos.results.map((r) => `${r.contender} / ${r.action}`)).toEqual([
      'gateway, stock clients + recovery / SIGTERM',
      'gateway, stock clients + recovery / SIGKILL',
      'vanilla Socket.IO fleet, stock clients / SIGTERM',
      'vanilla Socket.IO fleet, stock clients / SIGKILL',
    ]);
    for (const result of chaos.results) {
      const [run] = result.runs;
      const name = `${result.contender} / ${result.action}`;
      // Both fleets really lost a pod that held clients, under a stream that flowed.
      expect(run!.victimClients, name).toBeGreaterThan(0);
      expect(run!.published, name).toBeGreaterThan(0);
      expect(run!.owed, name).toBeGreaterThan(0);
      expect(run!.victimExit, name).toMatchObject(result.action === 'SIGTERM' ? { code: 0, signal: null } : { code: null, signal: 'SIGKILL' });
      if (result.contender.startsWith('gateway')) {
        expect({ lost: run!.lost, duplicates: run!.duplicates, notBack: run!.notBack }, name).toEqual({ lost: 0, duplicates: 0, notBack: 0 });
        expect(run!.reconnected, name).toBe(run!.victimClients);
      } else {
        // Measured, whatever it is: a count and its share of the deliveries owed.
        expect(run!.lost, name).toBeGreaterThanOrEqual(0);
        expect(run!.lostPercent, name).toBeCloseTo((100 * run!.lost) / run!.owed, 2);
      }
    }
    expect(chaos.load.median).toBeGreaterThanOrEqual(0);
    expect(readFileSync(join(out, 'chaos.svg'), 'utf8')).toContain('<svg');
    expect(Object.keys(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as object)).toContain('chaos');
  });

  it('measures publishes with and without an idempotency key and writes a JSON report', () => {
    const out = mkdtempSync(join(tmpdir(), 'rt-bench-'));
    execFileSync(process.execPath, ['bench/idempotency.ts', '--publishes', '200', '--out', out], { stdio: 'pipe', timeout: 120_000 });
    const report = JSON.parse(readFileSync(join(out, 'idempotency.json'), 'utf8')) as { rows: { mode: string; keyed: boolean; publishesPerSecond: number }[] };
    expect(report.rows.map((r) => [r.mode, r.keyed])).toEqual([['sequential', false], ['sequential', true], ['64 in flight', false], ['64 in flight', true]]);
    expect(report.rows.every((r) => r.publishesPerSecond > 0)).toBe(true);
  });
});
