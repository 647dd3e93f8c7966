import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// The tour's commands refuse bad options with exit code 2 and a message naming the option.
describe('the tour commands on bad input', () => {
  const run = (script: string, args: string[]): { status: number | null; stderr: string } => {
    const result = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 30_000 });
    return { status: result.status, stderr: result.stderr };
  };

  it('make dev BACKPLANE=…, make tour-limits TOUR_PORT=…, make bench-rungs', () => {
    const dev = run('scripts/dev-fleet.ts', ['--backplane', 'etcd']);
    expect(dev.status).toBe(2);
    expect(dev.stderr).toMatch(/--backplane=etcd: must be redis or none/);
    const limits = run('scripts/tour-limits.ts', ['--port', '70000']);
    expect(limits.status).toBe(2);
    expect(limits.stderr).toMatch(/--port=70000: must be an integer from 1 to 65535/);
    const bench = run('bench/rungs.ts', ['--clients', '0']);
    expect(bench.status).toBe(2);
    expect(bench.stderr).toMatch(/--clients=0: must be a number from 1 to 200/);
  });
});
