// The in-cluster Redis as the StatefulSet runs it, with a real redis-server: its command, redis.conf and the
// auth.conf its init container writes from the Secret's password (the script run for real, mount paths moved
// into a temp dir, a free port), the password never on a command line, PING-with-auth readiness, and the
// maxmemory policy the construct documents. The password is hostile: quotes, a backslash, spaces, `$`.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Chart } from 'cdk8s';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_MAXMEMORY_POLICY, Redis, type RedisProps } from '../../infra/redis.ts';
import { freePort, waitFor } from '../../scripts/fleet/ports.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized objects are read as plain JSON */
type Obj = Record<string, any>;

const PASSWORD = `Zm9v "ba'r\\ baz $HOME q`;

function synthRedis(extra: Partial<RedisProps> = { password: PASSWORD }): { statefulSet: Obj; config: string; objects: Obj[] } {
  const chart = new Chart(new App({ outdir: '/nonexistent' }), 'c', { namespace: 'rt', disableResourceNameHashes: true });
  new Redis(chart, 'redis', { app: { name: 'rt', instance: 'rt', version: '1', managedBy: 'test' }, clientSelectors: [{ a: 'b' }], ...extra });
  const objects = chart.toJson() as Obj[];
  const statefulSet = objects.find((o) => o.kind === 'StatefulSet')!;
  const config = objects.find((o) => o.kind === 'ConfigMap')!.data['redis.conf'] as string;
  return { statefulSet, config, objects };
}

describe('the in-cluster Redis, run for real', () => {
  let dir: string;
  let port: number;
  let child: ChildProcess | undefined;
  let container: Obj;
  const cli = (args: string[], auth = true) =>
    spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', env: { ...process.env, ...(auth ? { REDISCLI_AUTH: PASSWORD } : { REDISCLI_AUTH: '' }) } });

  beforeAll(async () => {
    execFileSync('redis-server', ['--version']);
    const { statefulSet, config, objects } = synthRedis();
    container = statefulSet.spec.template.spec.containers[0];
    const secret = objects.find((o) => o.kind === 'Secret')!;
    dir = mkdtempSync(join(tmpdir(), 'rt-redis-pod-'));
    for (const sub of ['auth', 'etc', 'data']) mkdirSync(join(dir, sub));
    port = await freePort();
    // The pod's mounts, moved into the temp dir: the ConfigMap's redis.conf and the Secret's auth.conf.
    const mounts = Object.fromEntries((container.volumeMounts as Obj[]).map((m) => [m.mountPath as string, join(dir, m.name === 'data' ? 'data' : m.name === 'config' ? 'etc' : 'auth')]));
    const local = (text: string) => Object.entries(mounts).reduce((t, [from, to]) => t.replaceAll(`${from}/`, `${to}/`).replace(new RegExp(`^dir ${from}$`, 'm'), `dir ${to}`), text);
    writeFileSync(join(dir, 'etc', 'redis.conf'), `${local(config)}port ${port}\nbind 127.0.0.1\n`);
    // The init container, for real: its script, with the password from the Secret in its environment.
    const init = statefulSet.spec.template.spec.initContainers[0] as Obj;
    expect(init.env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'rt-redis', key: 'password' } } }]);
    expect(init.volumeMounts).toEqual([{ name: 'auth', mountPath: '/etc/redis-auth' }]);
    const [shell, ...shellArgs] = init.command as string[];
    const written = spawnSync(shell!, shellArgs.map(local), { encoding: 'utf8', env: { PATH: process.env.PATH, REDIS_PASSWORD: secret.stringData.password } });
    expect(written.status, written.stderr).toBe(0);
    const [program, ...args] = container.command as string[];
    expect(program).toBe('redis-server');
    child = spawn(program!, args.map(local), { stdio: 'ignore' });
    await waitFor('redis-server answering PING with the password', () => cli(['ping']).stdout.trim() === 'PONG' || null, 10_000);
  });

  afterAll(() => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('requires the password, which no process carries on its command line', () => {
    expect(cli(['ping'], false).stdout).toMatch(/NOAUTH/);
    const cmdlines = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((pid) => {
      try {
        return [readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')];
      } catch {
        return [];
      }
    });
    expect(cmdlines.some((c) => c.includes('redis-server'))).toBe(true);
    expect(cmdlines.filter((c) => c.includes(PASSWORD))).toEqual([]);
    // Written by the same user Redis runs as, readable by it alone, on a memory-backed volume.
    expect(statSync(join(dir, 'auth', 'auth.conf')).mode & 0o077).toBe(0);
    const auth = (synthRedis().statefulSet.spec.template.spec.volumes as Obj[]).find((v) => v.name === 'auth')!;
    expect(auth.emptyDir.medium).toBe('Memory');
  });

  it('its readiness probe is PING with auth: passes with the password, fails without', () => {
    const probe = (container.readinessProbe.exec.command as string[]).map((a) => (a === '6379' ? String(port) : a));
    // The probe runs in the container's environment: REDISCLI_AUTH from the Secret.
    expect(container.env).toContainEqual({ name: 'REDISCLI_AUTH', valueFrom: { secretKeyRef: { name: 'rt-redis', key: 'password' } } });
    const run = (auth: string) => spawnSync(probe[0]!, probe.slice(1), { env: { PATH: process.env.PATH, REDISCLI_AUTH: auth } });
    expect(run(PASSWORD).status).toBe(0);
    expect(run('wrong').status).not.toBe(0);
    expect(container.readinessProbe.failureThreshold).toBeGreaterThanOrEqual(2);
  });

  it('evicts with the documented maxmemory policy, under a maxmemory below the 256Mi limit', () => {
    expect(cli(['config', 'get', 'maxmemory-policy']).stdout).toContain(REDIS_MAXMEMORY_POLICY);
    const maxmemory = Number(cli(['config', 'get', 'maxmemory']).stdout.trim().split('\n')[1]);
    expect(maxmemory).toBe(192 * 1024 * 1024);
    expect(maxmemory).toBeLessThan(256 * 1024 * 1024);
    expect(cli(['config', 'get', 'appendonly']).stdout).toContain('yes');
  });

  it('with an existing Secret: nothing generated, and Redis, its probe, the init container and the gateway read that Secret', () => {
    const chart = new Chart(new App({ outdir: '/nonexistent' }), 'c', { namespace: 'rt', disableResourceNameHashes: true });
    const redis = new Redis(chart, 'redis', { app: { name: 'rt', instance: 'rt', version: '1', managedBy: 'test' }, clientSelectors: [{ a: 'b' }], existingSecret: 'platform-redis', existingSecretPasswordKey: 'pw' });
    const objects = chart.toJson() as Obj[];
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const pod = objects.find((o) => o.kind === 'StatefulSet')!.spec.template.spec;
    const ref = { secretKeyRef: { name: 'platform-redis', key: 'pw' } };
    expect(pod.initContainers[0].env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: ref }]);
    expect(pod.containers[0].env).toEqual([{ name: 'REDISCLI_AUTH', valueFrom: ref }]);
    // The URL is not secret: the gateway gets it as a value, the password from the same Secret.
    expect(redis.connection).toMatchObject({ secretName: 'platform-redis', passwordKey: 'pw', url: 'redis://rt-redis:6379' });
    expect(() => synthRedis({ existingSecret: 'platform-redis', password: 'x' })).toThrow(/password="x" applies to the generated Secret, but existingSecret=platform-redis is set/);
    expect(() => synthRedis({ existingSecret: '' })).toThrow(/existingSecret="" must name the Secret/);
    expect(() => synthRedis({ existingSecretPasswordKey: 'pw' })).toThrow(/existingSecretPasswordKey="pw" needs existingSecret/);
  });
});
