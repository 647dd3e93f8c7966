import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Keeps `make bench` working: a tiny run must deliver every message on every target and write its report.
// No timing is asserted here; the numbers live in docs/benchmarks.md.
describe('make bench', () => {
  it('runs every target side by side and writes JSON + SVG with ratios', () => {
    const out = mkdtempSync(join(tmpdir(), 'rt-bench-'));
    execFileSync(process.execPath, ['bench/run.ts', '--subscribers', '5', '--messages', '50', '--rounds', '1', '--out', out], { stdio: 'pipe', timeout: 120_000 });
    const report = JSON.parse(readFileSync(join(out, 'fanout.json'), 'utf8')) as { results: { target: string; delivered: number; expected: number }[]; ratios: Record<string, number> };
    expect(report.results.map((r) => r.target)).toEqual(['raw ws', 'Socket.IO, 1 process', 'raw Redis pub/sub', 'gateway, embedded', 'gateway, 2 on Redis']);
    for (const result of report.results) expect(result.delivered, result.target).toBe(result.expected);
    expect(Object.values(report.ratios).every((r) => r > 0)).toBe(true);
    expect(readFileSync(join(out, 'fanout.svg'), 'utf8')).toContain('<svg');
  });
});
