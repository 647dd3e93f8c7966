// Bad input and faults of the node harness, as a person meets them: Ctrl-C in the middle of `make node-up`
// still tears everything down, and a missing tool is named with the command that builds it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultBinDir, repoRoot } from '../../scripts/cluster/control-plane.ts';
import { snapshotHost } from '../../scripts/node/host.ts';
import { NodeError, nodeStatus, startNode } from '../../scripts/node/node.ts';

describe('the node harness under faults', () => {
  it('Ctrl-C during `make node-up` stops the bring-up and undoes every host change', async () => {
    const before = snapshotHost();
    const child = spawn(process.execPath, ['scripts/node/cli.ts', 'up'], {
      cwd: repoRoot,
      env: { ...process.env, PATH: `${join(repoRoot, 'node_modules/.bin')}:${defaultBinDir}:${process.env.PATH}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // Interrupt once the API server is starting: processes, links and rules exist by then.
    await expect.poll(() => output, { timeout: 120_000, interval: 100 }).toContain('waiting for kube-apiserver /readyz');
    child.kill('SIGINT');
    const code = await exited;
    expect(code, output).toBe(1);
    expect(output).toContain('interrupted (Ctrl-C)');
    expect(output).toMatch(/teardown: done; the host is as it was/);
    expect(nodeStatus().running).toBe(false);
    expect(snapshotHost()).toEqual(before);
  }, 180_000);

  it('a missing tool is named, with the command that builds it, before anything is touched', async () => {
    const emptyBin = mkdtempSync(join(tmpdir(), 'empty-bin-'));
    try {
      const attempt = startNode({ images: [], binDir: emptyBin, log: () => {} });
      await expect(attempt).rejects.toThrow(NodeError);
      await expect(startNode({ images: [], binDir: emptyBin, log: () => {} })).rejects.toThrow(/kubelet.*missing in .*run `make tools`/s);
      expect(nodeStatus().running).toBe(false);
    } finally {
      rmSync(emptyBin, { recursive: true, force: true });
    }
  });
});
