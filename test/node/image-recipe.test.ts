// The gateway image has two recipes: the Dockerfile kind users build, and scripts/node/images.ts for the
// real node (no Docker here). This reads both and fails when they drift: user, workdir, env, command,
// exposed port, what is copied from where, ownership, the Node major and the npm ci flags. It also checks
// the refs pod specs use and the Rootfs/ldd helpers on their own. No root, no containerd: fast.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GATEWAY_RECIPE, imageRefs, libraries, normalizeImageRef, pinnedToolVersion } from '../../scripts/node/images.ts';

const ROOT = join(import.meta.dirname, '..', '..');

interface Stage {
  from: string;
  name?: string;
  instructions: { op: string; args: string }[];
}

/** Dockerfile → stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (!op || args === undefined) throw new Error(`cannot parse Dockerfile line: ${line}`);
    if (op.toUpperCase() === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      stages.push({ from: from!, ...(name ? { name } : {}), instructions: [] });
    } else {
      stages.at(-1)!.instructions.push({ op: op.toUpperCase(), args: args.replace(/\s+/g, ' ') });
    }
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const final = dockerfile.at(-1)!;
const all = (op: string) => final.instructions.filter((i) => i.op === op).map((i) => i.args);
const one = (op: string) => {
  const found = all(op);
  expect(found, `the final stage has exactly one ${op}`).toHaveLength(1);
  return found[0]!;
};

describe('the gateway image recipe (scripts/node/images.ts) matches the Dockerfile', () => {
  it('user, workdir, command and exposed ports', () => {
    expect(one('USER')).toBe(GATEWAY_RECIPE.user);
    expect(one('WORKDIR')).toBe(GATEWAY_RECIPE.workdir);
    expect(JSON.parse(one('CMD'))).toEqual(GATEWAY_RECIPE.cmd);
    expect(all('ENTRYPOINT')).toEqual([]);
    expect(one('EXPOSE').split(' ').map((p) => (p.includes('/') ? p : `${p}/tcp`))).toEqual(GATEWAY_RECIPE.exposedPorts);
  });

  it('environment', () => {
    const env: Record<string, string> = {};
    for (const args of all('ENV')) for (const [, k, v] of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[k!] = v!.replace(/^"|"$/g, '');
    expect(env).toEqual(GATEWAY_RECIPE.env);
  });

  it('the same base: Node major version, and the node binary the recipe packs has it', () => {
    for (const stage of dockerfile) expect(stage.from).toMatch(new RegExp(`^node:${GATEWAY_RECIPE.nodeMajor}-`));
    const version = execFileSync(join(ROOT, 'node_modules', '.bin', 'node'), ['--version'], { encoding: 'utf8' });
    expect(version).toMatch(new RegExp(`^v${GATEWAY_RECIPE.nodeMajor}\\.`));
  });

  it('copies the same paths from the same sources, root-owned', () => {
    const stageByName = new Map(dockerfile.filter((s) => s.name).map((s) => [s.name!, s]));
    const copies = all('COPY').map((args) => {
      const words = args.split(' ');
      const flags = Object.fromEntries(words.filter((w) => w.startsWith('--')).map((w) => w.slice(2).split('=') as [string, string]));
      const paths = words.filter((w) => !w.startsWith('--'));
      return { flags, sources: paths.slice(0, -1), dest: paths.at(-1)! };
    });
    const found: { dest: string; source: unknown }[] = [];
    for (const copy of copies) {
      expect(copy.flags.chown, `COPY ${copy.sources.join(' ')} is root-owned`).toBe(GATEWAY_RECIPE.owner);
      for (const source of copy.sources) {
        // `COPY a b ./` puts each source under the directory; `COPY a ./x` renames it.
        const dest = (copy.dest.endsWith('/') ? `${copy.dest}${source.split('/').at(-1)}` : copy.dest).replace(/^\.\//, '');
        if (!copy.flags.from) {
          found.push({ dest, source: { kind: 'context', path: source } });
          continue;
        }
        const stage = stageByName.get(copy.flags.from)!;
        const runs = stage.instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join(' && ');
        const workdir = stage.instructions.find((i) => i.op === 'WORKDIR')!.args;
        const rel = source.replace(new RegExp(`^${workdir}/`), '');
        if (rel === 'node_modules') {
          expect(runs).toContain(`npm ${GATEWAY_RECIPE.npmCi.join(' ')}`);
          found.push({ dest, source: { kind: 'production-dependencies' } });
        } else if (rel === 'dist/web') {
          expect(runs).toContain(GATEWAY_RECIPE.webBuild.join(' '));
          found.push({ dest, source: { kind: 'web-build' } });
        } else {
          throw new Error(`COPY --from=${copy.flags.from} ${source}: the recipe in scripts/node/images.ts does not know this source`);
        }
      }
    }
    const sort = (list: readonly { dest: string }[]) => [...list].sort((a, b) => a.dest.localeCompare(b.dest));
    expect(sort(found)).toEqual(sort(GATEWAY_RECIPE.copies.map((c) => ({ dest: c.dest, source: c.source }))));
  });

  it('the drain controller runs from the same image: its entry point is in the copied app/ tree', () => {
    expect(GATEWAY_RECIPE.controllerCmd.slice(0, 1)).toEqual(GATEWAY_RECIPE.cmd.slice(0, 1));
    expect(GATEWAY_RECIPE.controllerCmd[1]).toMatch(/^app\//);
    expect(GATEWAY_RECIPE.copies.some((c) => c.dest === 'app')).toBe(true);
  });
});

describe('image references', () => {
  it('normalise the way containerd CRI looks images up', () => {
    expect(normalizeImageRef('realtime-gateway:dev')).toBe('docker.io/library/realtime-gateway:dev');
    expect(normalizeImageRef('redis')).toBe('docker.io/library/redis:latest');
    expect(normalizeImageRef('bitnami/redis:7')).toBe('docker.io/bitnami/redis:7');
    expect(normalizeImageRef('index.docker.io/library/redis:7')).toBe('docker.io/library/redis:7');
    expect(normalizeImageRef('localhost/pause:local')).toBe('localhost/pause:local');
    expect(normalizeImageRef('localhost:5000/x/y:1')).toBe('localhost:5000/x/y:1');
    expect(normalizeImageRef('registry.k8s.io/pause:3.10')).toBe('registry.k8s.io/pause:3.10');
    expect(normalizeImageRef(`realtime-gateway@sha256:${'a'.repeat(64)}`)).toBe(`docker.io/library/realtime-gateway@sha256:${'a'.repeat(64)}`);
    expect(() => normalizeImageRef('Upper/Case:1')).toThrow(/invalid image reference/);
  });

  it('are never :latest (the kubelet would pull), the gateway keeps the tag make up builds, the Go add-ons carry the pinned versions', () => {
    const refs = imageRefs();
    for (const ref of Object.values(refs)) expect(normalizeImageRef(ref)).not.toMatch(/:latest$/);
    const makefile = readFileSync(join(ROOT, 'Makefile'), 'utf8');
    expect(makefile).toContain(`IMG ?= ${refs.gateway}`);
    expect(refs.coredns).toBe(`localhost/coredns:${pinnedToolVersion('COREDNS_VERSION')}`);
    expect(refs['metrics-server']).toBe(`localhost/metrics-server:${pinnedToolVersion('METRICS_SERVER_VERSION')}`);
  });
});

describe('ldd', () => {
  it('lists a dynamic binary’s libraries, the dynamic loader included, by absolute path', async () => {
    const libs = await libraries(join(ROOT, 'node_modules', '.bin', 'node'));
    expect(libs.some((l) => /\/libc\.so\.6$/.test(l))).toBe(true);
    expect(libs.some((l) => /ld-linux.*\.so\.2$/.test(l))).toBe(true);
    for (const lib of libs) expect(lib.startsWith('/')).toBe(true);
  });
});
