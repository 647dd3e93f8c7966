// The in-cluster Redis as the StatefulSet runs it, with a real redis-server: its command, redis.conf and its
// auth.conf — mounted from the generated Secret, or written by the init container from an existing Secret's
// password (the script run for real, with a hostile password: quotes, a backslash, spaces, `$`) — mount paths
// moved into a temp dir, a free port; the password never on a command line, PING-with-auth readiness, and the
// maxmemory policy the construct documents.
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

/** The chart's generated passwords are alphanumeric (and its schema refuses quotes in redis.internal.password). */
const GENERATED_PASSWORD = 'Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0';
/** A platform team's Secret may hold anything. */
const HOSTILE_PASSWORD = `Zm9v "ba'r\\ baz $HOME q`;
const APP = { name: 'rt', instance: 'rt', version: '1', managedBy: 'test' };

function synthRedis(extra: Partial<RedisProps>): { statefulSet: Obj; config: string; objects: Obj[]; redis: Redis } {
  const chart = new Chart(new App({ outdir: '/nonexistent' }), 'c', { namespace: 'rt', disableResourceNameHashes: true });
  const redis = new Redis(chart, 'redis', { app: APP, clientSelectors: [{ a: 'b' }], ...extra });
  const objects = chart.toJson() as Obj[];
  const statefulSet = objects.find((o) => o.kind === 'StatefulSet')!;
  const config = objects.find((o) => o.kind === 'ConfigMap')!.data['redis.conf'] as string;
  return { statefulSet, config, objects, redis };
}

const VARIANTS = [
  { variant: 'a generated Secret (auth.conf mounted from it)', props: { password: GENERATED_PASSWORD }, password: GENERATED_PASSWORD, ref: { name: 'rt-redis', key: 'password' } },
  {
    variant: 'an existing Secret (auth.conf written by the init container)',
    props: { existingSecret: 'platform-redis', existingSecretPasswordKey: 'pw' },
    password: HOSTILE_PASSWORD,
    ref: { name: 'platform-redis', key: 'pw' },
  },
];

describe.each(VARIANTS)('the in-cluster Redis from $variant, run for real', ({ props, password, ref }) => {
  let dir: string;
  let port: number;
  let child: ChildProcess | undefined;
  let container: Obj;
  let pod: Obj;
  const cli = (args: string[], auth = true) =>
    spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', env: { ...process.env, REDISCLI_AUTH: auth ? password : '' } });

  beforeAll(async () => {
    execFileSync('redis-server', ['--version']);
    const { statefulSet, config, objects } = synthRedis(props);
    pod = statefulSet.spec.template.spec;
    container = pod.containers[0];
    dir = mkdtempSync(join(tmpdir(), 'rt-redis-pod-'));
    for (const sub of ['auth', 'etc', 'data']) mkdirSync(join(dir, sub));
    port = await freePort();
    // The pod's mounts, moved into the temp dir: the ConfigMap's redis.conf and auth.conf.
    const mounts = Object.fromEntries((container.volumeMounts as Obj[]).map((m) => [m.mountPath as string, join(dir, m.name === 'data' ? 'data' : m.name === 'config' ? 'etc' : 'auth')]));
    const local = (text: string) => Object.entries(mounts).reduce((t, [from, to]) => t.replaceAll(`${from}/`, `${to}/`).replace(new RegExp(`^dir ${from}$`, 'm'), `dir ${to}`), text);
    writeFileSync(join(dir, 'etc', 'redis.conf'), `${local(config)}port ${port}\nbind 127.0.0.1\n`);
    const auth = (pod.volumes as Obj[]).find((v) => v.name === 'auth')!;
    if (auth.secret) {
      expect(pod.initContainers).toBeUndefined();
      const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === auth.secret.secretName)!;
      writeFileSync(join(dir, 'auth', 'auth.conf'), secret.stringData['auth.conf']);
    } else {
      // The init container, for real: its script, with the Secret's password in its environment.
      const init = pod.initContainers[0] as Obj;
      expect(init.env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: ref } }]);
      expect(init.volumeMounts).toEqual([{ name: 'auth', mountPath: '/etc/redis-auth' }]);
      const [shell, ...shellArgs] = init.command as string[];
      const written = spawnSync(shell!, shellArgs.map(local), { encoding: 'utf8', env: { PATH: process.env.PATH, REDIS_PASSWORD: password } });
      expect(written.status, written.stderr).toBe(0);
    }
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
    expect(cmdlines.filter((c) => c.includes(password))).toEqual([]);
    const auth = (pod.volumes as Obj[]).find((v) => v.name === 'auth')!;
    if (auth.secret) {
      // Redis runs as 999 with fsGroup 999: the mounted file must be group-readable.
      expect(auth.secret.defaultMode & 0o040).toBe(0o040);
    } else {
      // Written by the same user Redis runs as, readable by it alone, on a memory-backed volume.
      expect(statSync(join(dir, 'auth', 'auth.conf')).mode & 0o077).toBe(0);
      expect(auth.emptyDir.medium).toBe('Memory');
    }
  });

  it('its readiness probe is PING with auth: passes with the password, fails without', () => {
    const probe = (container.readinessProbe.exec.command as string[]).map((a) => (a === '6379' ? String(port) : a));
    // The probe runs in the container's environment: REDISCLI_AUTH from the Secret.
    expect(container.env).toContainEqual({ name: 'REDISCLI_AUTH', valueFrom: { secretKeyRef: ref } });
    const run = (auth: string) => spawnSync(probe[0]!, probe.slice(1), { env: { PATH: process.env.PATH, REDISCLI_AUTH: auth } });
    expect(run(password).status).toBe(0);
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
});

describe('the in-cluster Redis from an existing Secret', () => {
  it('generates nothing; the gateway gets the URL as a value and the password from that Secret; conflicting props are refused', () => {
    const { objects, redis } = synthRedis({ existingSecret: 'platform-redis', existingSecretPasswordKey: 'pw' });
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(redis.connection).toMatchObject({ secretName: 'platform-redis', passwordKey: 'pw', url: 'redis://rt-redis:6379' });
    expect(() => synthRedis({ existingSecret: 'platform-redis', password: 'x' })).toThrow(/password="x" applies to the generated Secret, but existingSecret=platform-redis is set/);
    expect(() => synthRedis({ existingSecret: '' })).toThrow(/existingSecret="" must name the Secret/);
    expect(() => synthRedis({ existingSecretPasswordKey: 'pw' })).toThrow(/existingSecretPasswordKey="pw" needs existingSecret/);
  });
});
