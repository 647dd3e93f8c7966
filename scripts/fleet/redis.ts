import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './ports.ts';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGKILL: an outage, not a clean shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same port, with empty data (no persistence). */
  restart(): Promise<void>;
}

function requireBinary(name: string, pkg: string): void {
  try {
    execFileSync('which', [name], { stdio: 'ignore' });
  } catch {
    throw new Error(`${name} is not installed: run \`apt-get install -y ${pkg}\` (or \`bash .ci/run\`, which installs it)`);
  }
}

async function ping(port: number): Promise<boolean> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

function spawnRedis(port: number, dir: string, extra: string[] = []): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra], {
    stdio: 'ignore',
  });
}

async function stop(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** A real redis-server on a free loopback port, per suite: `[redis, cleanup]`. */
export async function startRedis(opts: { port?: number } = {}): Promise<[RedisServer, () => Promise<void>]> {
  requireBinary('redis-server', 'redis-server');
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'rt-redis-'));
  let child: ChildProcess | null = spawnRedis(port, dir);
  await waitFor(`redis-server on port ${port}`, () => ping(port));
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      await stop(child);
      child = null;
    },
    async restart() {
      await stop(child);
      child = spawnRedis(port, dir);
      await waitFor(`redis-server restart on port ${port}`, () => ping(port));
    },
  };
  return [server, async () => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }];
}

export interface RedisCluster {
  readonly ports: readonly number[];
  /** Seed list for `REDIS_URL` with `ADAPTER=redis-cluster`. */
  readonly url: string;
}

/** A real 3-master Redis Cluster (no replicas) on free loopback ports: `[cluster, cleanup]`. */
export async function startRedisCluster(masters = 3): Promise<[RedisCluster, () => Promise<void>]> {
  requireBinary('redis-server', 'redis-server');
  requireBinary('redis-cli', 'redis-tools');
  const dir = mkdtempSync(join(tmpdir(), 'rt-redis-cluster-'));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  for (let i = 0; i < masters; i += 1) {
    const port = await freePort();
    ports.push(port);
    children.push(spawnRedis(port, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000']));
  }
  const cleanup = async (): Promise<void> => {
    await Promise.all(children.map(stop));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) await waitFor(`cluster node on port ${port}`, () => ping(port));
    execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
    await waitFor('cluster_state:ok on every node', () =>
      ports.every((p) => execFileSync('redis-cli', ['-p', String(p), 'cluster', 'info']).toString().includes('cluster_state:ok')),
    );
  } catch (err) {
    await cleanup();
    throw err;
  }
  return [{ ports, url: ports.map((p) => `redis://127.0.0.1:${p}`).join(',') }, cleanup];
}
