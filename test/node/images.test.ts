// Every real-node image, built by scripts/node/images.ts, imported into a private containerd the way the
// node harness imports it (`ctr -n k8s.io images import`) and run with runc: the entry points work, as the
// users the images declare. Needs root, containerd, runc and gcc (scripts/system-deps.sh), and
// `make tools` for coredns and metrics-server; a missing one fails with what to install.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildImages, GATEWAY_RECIPE, type ImageName, IMAGE_NAMES } from '../../scripts/node/images.ts';
import { freePort } from '../../scripts/fleet/ports.ts';
import { checkPrerequisites, type PrivateContainerd, startPrivateContainerd } from './private-containerd.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

/** Uid and gid of a host PID (/proc/<pid>/status: real, effective, saved, fs). */
function ids(pid: number): { uid: number; gid: number; capEff: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)`, 'm').exec(status)![1]!;
  return { uid: Number(field('Uid')), gid: Number(field('Gid')), capEff: BigInt(`0x${field('CapEff')}`) };
}

describe('real-node images in containerd', () => {
  let images: Map<ImageName, BuiltImage>;
  let containerd: PrivateContainerd | undefined;
  const ref = (name: ImageName) => images.get(name)!.storedRef;

  beforeAll(async () => {
    checkPrerequisites();
    const lines: string[] = [];
    try {
      images = new Map((await buildImages({ onProgress: (line) => lines.push(line) })).map((i) => [i.name, i]));
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${lines.slice(-10).join('\n')}`, { cause: err });
    }
    containerd = await startPrivateContainerd();
    for (const image of images.values()) {
      const r = await containerd.ctr(['images', 'import', image.archive], { timeoutMs: 120_000 });
      expect(r.code, `ctr images import ${image.archive}: ${r.stderr}`).toBe(0);
    }
  }, 900_000);

  afterAll(async () => {
    await containerd?.stop();
  }, 60_000);

  it('imports every image under the name pod specs resolve to, with the config the recipe says', async () => {
    const listed = (await containerd!.ctr(['images', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
    expect([...images.keys()].sort()).toEqual([...IMAGE_NAMES].sort());
    for (const image of images.values()) {
      expect(listed).toContain(image.storedRef);
      expect(image.config.config.User, `${image.name} runs as non-root`).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      expect(image.config.rootfs.diff_ids).toHaveLength(image.layers.length);
    }
    const gw = images.get('gateway')!.config.config;
    expect(ref('gateway')).toBe('docker.io/library/realtime-gateway:dev');
    expect(gw.User).toBe(GATEWAY_RECIPE.user);
    expect(gw.WorkingDir).toBe(GATEWAY_RECIPE.workdir);
    expect(gw.Cmd).toEqual(GATEWAY_RECIPE.cmd);
    expect(Object.keys(gw.ExposedPorts ?? {})).toEqual(GATEWAY_RECIPE.exposedPorts);
    for (const [k, v] of Object.entries(GATEWAY_RECIPE.env)) expect(gw.Env).toContain(`${k}=${v}`);
  });

  it('a warm rebuild writes nothing and takes about a second', async () => {
    const began = Date.now();
    const again = await buildImages();
    expect(again.filter((i) => !i.cached || i.layers.some((l) => !l.cached)).map((i) => i.name)).toEqual([]);
    expect(again.map((i) => i.manifestDigest)).toEqual([...images.values()].map((i) => i.manifestDigest));
    expect(Date.now() - began).toBeLessThan(10_000);
  });

  it('pause: runs as 65535, sleeps until SIGTERM and exits 0', async () => {
    const c = containerd!.start(ref('pause'), 'pause-1');
    const pid = await c.pid();
    expect(ids(pid)).toMatchObject({ uid: 65535, gid: 65535 });
    await new Promise((r) => setTimeout(r, 300));
    await c.signal('SIGTERM');
    expect((await c.exited).code).toBe(0);
  });

  it('gateway: Node 24 on PATH, production dependencies only, files read-only to uid 1000', async () => {
    const version = await containerd!.run(ref('gateway'), 'gw-version', { args: ['node', '--version'] });
    expect(version.stdout.trim()).toBe(execFileSync(join(ROOT, 'node_modules', '.bin', 'node'), ['--version'], { encoding: 'utf8' }).trim());

    const deps = Object.keys(pkg.dependencies);
    // What only the dev dependencies need, as the lockfile marks it (typescript, vitest, esbuild, the node package...).
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, p]) => p.dev && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path))
      .map(([path]) => path.slice('node_modules/'.length));
    expect(devOnly).toEqual(expect.arrayContaining(['vitest', 'typescript', 'node']));
    const script = `
      import { existsSync, writeFileSync } from 'node:fs';
      for (const d of ${JSON.stringify(deps)}) await import(d);
      const dev = ${JSON.stringify(devOnly)}.filter((d) => existsSync('node_modules/' + d));
      let writable = true;
      try { writeFileSync('package.json', '{}'); } catch (e) { writable = e.code !== 'EACCES'; }
      console.log(JSON.stringify({ cwd: process.cwd(), uid: process.getuid(), gid: process.getgid(), dev, writable, web: existsSync('dist/web/app.js') }));`;
    const r = await containerd!.run(ref('gateway'), 'gw-files', { args: ['node', '--input-type=module', '-e', script] });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cwd: GATEWAY_RECIPE.workdir, uid: 1000, gid: 1000, dev: [], writable: false, web: true });
  });

  it('gateway: the image command serves /healthz, /readyz and the page on the host network, and drains on SIGTERM', async () => {
    const port = await freePort();
    const internalPort = await freePort();
    const c = containerd!.start(ref('gateway'), 'gw-serve', {
      netHost: true,
      env: { AUTH_MODE: 'none', HOST: '127.0.0.1', PORT: String(port), INTERNAL_PORT: String(internalPort), LOG_LEVEL: 'info' },
    });
    const base = `http://127.0.0.1:${port}`;
    let health: Response | undefined;
    for (let i = 0; i < 100 && !health; i += 1) {
      health = await fetch(`${base}/healthz`).catch(() => undefined);
      if (!health) await new Promise((r) => setTimeout(r, 100));
    }
    expect(health?.status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    expect(ids(await c.pid())).toMatchObject({ uid: 1000, gid: 1000 });
    await c.signal('SIGTERM');
    const exit = await c.exited;
    expect(exit.code, exit.stdout + exit.stderr).toBe(0);
    expect(exit.stdout).toMatch(/drained; exiting/);
  });

  it('gateway: the same image runs the drain controller (its modules resolve; without config it exits 2 naming a variable)', async () => {
    const r = await containerd!.run(ref('gateway'), 'controller', { args: [...GATEWAY_RECIPE.controllerCmd], timeoutMs: 30_000 });
    expect(r.stdout + r.stderr).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/[A-Z_]{4,}/);
  });

  it('redis: the manifest’s arguments (password, AOF in /data) as uid 999; redis-cli in the image authenticates over stdin', async () => {
    expect((await containerd!.run(ref('redis'), 'redis-version', { args: ['redis-server', '--version'] })).stdout).toMatch(/^Redis server v=\d/);
    const port = await freePort();
    const password = 'image-test-password';
    const c = containerd!.start(ref('redis'), 'redis-1', {
      netHost: true,
      args: ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--appendonly', 'yes', '--dir', '/data'],
    });
    const pid = await c.pid();
    const client = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      for (let i = 0; ; i += 1) {
        try {
          await client.connect();
          break;
        } catch (err) {
          if (i > 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(await client.set('k', 'v')).toBe('OK');
      expect(ids(pid)).toMatchObject({ uid: 999, gid: 999 });
      const cli = await containerd!.ctr(['task', 'exec', '--exec-id', 'cli', 'redis-1', 'redis-cli', '-p', String(port)], { stdin: `AUTH "${password}"\nGET "k"\n` });
      expect(cli.stdout.trim().split('\n')).toEqual(['OK', 'v']);
    } finally {
      client.disconnect();
      await c.signal('SIGTERM');
    }
    expect((await c.exited).code).toBe(0);
  });

  it('haproxy: the binary and its libraries run as uid 99', async () => {
    const r = await containerd!.run(ref('haproxy'), 'haproxy-version', { args: ['haproxy', '-vv'] });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^HAProxy version 2\./);
    expect(images.get('haproxy')!.config.config.User).toBe('99:99');
  });

  it('coredns: as nonroot 65532 it binds :53 (the file capability survives the import) and answers', async () => {
    const c = containerd!.start(ref('coredns'), 'coredns-1', { args: ['/coredns', '-dns.port', '53'] });
    const pid = await c.pid();
    const { uid, capEff } = ids(pid);
    expect(uid).toBe(65532);
    expect(capEff & (1n << 10n)).toBe(1n << 10n); // CAP_NET_BIND_SERVICE, from security.capability on /coredns
    await new Promise((r) => setTimeout(r, 1_000));
    await c.signal('SIGTERM');
    const exit = await c.exited;
    expect(exit.stdout + exit.stderr).toMatch(/CoreDNS-\d/);
    expect(exit.stdout + exit.stderr).not.toMatch(/permission denied/);
  });

  it('metrics-server: the static binary reports the pinned version', async () => {
    const r = await containerd!.run(ref('metrics-server'), 'ms-version', { args: ['/metrics-server', '--version'] });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(images.get('metrics-server')!.ref.split(':').at(-1));
  });
});
