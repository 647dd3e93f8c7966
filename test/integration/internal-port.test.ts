import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../helpers/clients.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { freePort, waitFor } from '../../scripts/fleet/ports.ts';
import { type RedisServer, startRedis } from '../../scripts/fleet/redis.ts';

// Contract 6 of DESIGN.md on a real gateway process over a real redis-server: the public port serves
// what clients use (plus the probes edges check); metrics, fleet stats and admin live on the internal port.

const MAIN = fileURLToPath(new URL('../../app/gateway/main.ts', import.meta.url));
const ADMIN_TOKEN = 'internal-port-admin-token-0123';

describe('the public and the internal port', () => {
  const cleanups: (() => unknown)[] = [];
  let redis: RedisServer;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    const [server, stopRedis] = await startRedis();
    redis = server;
    cleanups.push(stopRedis);
    const [started, stop] = await startGateway({ env: { ADAPTER: 'redis', REDIS_URL: redis.url, ADMIN_TOKEN, LOG_LEVEL: 'info' } });
    gateway = started;
    cleanups.push(stop);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('the public port answers 404 for /metrics, /fleet and /admin/*, whatever the token', async () => {
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    for (const path of ['/metrics', '/fleet', '/admin/drain', '/admin/anything', '/admin/']) {
      for (const method of ['GET', 'POST']) {
        const res = await fetch(`${gateway.url}${path}`, { method, headers: auth });
        expect(res.status, `${method} ${path} on the public port`).toBe(404);
        expect(await res.json()).toMatchObject({ ok: false, error: { code: 'not_found' } });
      }
    }
  });

  it('the public port serves clients (Socket.IO, the page) and the probes the edge checks', async () => {
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${gateway.url}/readyz`)).json()).toMatchObject({ ready: true });
    expect(await (await fetch(gateway.url)).text()).toContain('Live counter');
    const [client, close] = await connectClient(gateway.url, { userId: 'public' });
    cleanups.push(close);
    expect(await client.request('counter:increment', { room: 'counter:ports' })).toMatchObject({ ok: true });
  });

  it('the internal port serves metrics, fleet stats, admin, probes and the fleet view — and no Socket.IO', async () => {
    const metrics = await (await fetch(`${gateway.internalUrl}/metrics`)).text();
    expect(metrics).toMatch(/^rt_ready 1$/m);
    const fleet = await fetch(`${gateway.internalUrl}/fleet`);
    expect(fleet.status).toBe(200);
    expect(fleet.headers.get('cache-control')).toBe('no-store');
    await waitFor('this pod in its own fleet stats', async () => {
      const body = (await (await fetch(`${gateway.internalUrl}/fleet`)).json()) as { pods: { pod: string }[] };
      return body.pods.some((p) => p.pod === gateway.pod);
    });
    expect((await fetch(`${gateway.internalUrl}/admin/drain`)).status).toBe(401);
    const status = await fetch(`${gateway.internalUrl}/admin/drain`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(await status.json()).toMatchObject({ ok: true, drain: { phase: 'serving', pod: gateway.pod } });
    expect((await fetch(`${gateway.internalUrl}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${gateway.internalUrl}/readyz`)).json()).toMatchObject({ ready: true, pod: gateway.pod });
    expect(await (await fetch(gateway.internalUrl)).text()).toContain('fleet view');
    expect((await fetch(`${gateway.internalUrl}/socket.io/?EIO=4&transport=polling`)).status).toBe(404);
    // The fleet view's bundle is not on the public port, the page's is not on the internal one.
    expect((await fetch(`${gateway.url}/fleet.js`)).status).toBe(404);
    expect((await fetch(`${gateway.internalUrl}/app.js`)).status).toBe(404);
  });

  it('logs both URLs at start-up', () => {
    const line = gateway.output().split('\n').find((l) => l.includes('listening on'));
    expect(line, gateway.output()).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ url: `${gateway.url}/`, internalUrl: `${gateway.internalUrl}/` });
  });

  it('/fleet answers 503 naming the cause while Redis is down — never an empty fleet — and 200 once it is back', async () => {
    await redis.kill();
    try {
      await waitFor('/fleet to fail', async () => (await fetch(`${gateway.internalUrl}/fleet`)).status === 503, 10_000);
      for (let i = 0; i < 3; i += 1) {
        const res = await fetch(`${gateway.internalUrl}/fleet`);
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        const body = (await res.json()) as Record<string, unknown>;
        expect(body).toMatchObject({ ok: false, error: { code: 'backplane_unavailable', message: expect.stringMatching(/Redis/) } });
        expect(body).not.toHaveProperty('pods');
        expect(body).not.toHaveProperty('sockets');
      }
      // The process stays up and says why it is not ready.
      expect((await fetch(`${gateway.internalUrl}/healthz`)).status).toBe(200);
      expect((await fetch(`${gateway.internalUrl}/readyz`)).status).toBe(503);
    } finally {
      await redis.restart();
    }
    await waitFor('/fleet to answer again', async () => (await fetch(`${gateway.internalUrl}/fleet`)).status === 200, 20_000);
    await waitFor('this pod back in the fleet stats', async () => {
      const body = (await (await fetch(`${gateway.internalUrl}/fleet`)).json()) as { pods: { pod: string }[] };
      return body.pods.some((p) => p.pod === gateway.pod);
    }, 10_000);
  });
});

describe('INTERNAL_PORT configuration', () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH, AUTH_MODE: 'none', ...env }, encoding: 'utf8', timeout: 20_000 });

  it.each([
    [{ INTERNAL_PORT: 'ninety' }, 'INTERNAL_PORT="ninety"'],
    [{ INTERNAL_PORT: '70000' }, 'INTERNAL_PORT="70000"'],
    [{ PORT: '4100', INTERNAL_PORT: '4100' }, 'INTERNAL_PORT=4100 must differ from PORT=4100'],
  ])('refuses %j with exit code 2 and a message naming the variable', (env, message) => {
    const result = run(env);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('PORT=0 and INTERNAL_PORT=0 pick two free ports, both in the start-up log', async () => {
    const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, AUTH_MODE: 'none', PORT: '0', INTERNAL_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const line = await waitFor('the start-up log', () => output.split('\n').find((l) => l.includes('listening on')));
      const { url, internalUrl } = JSON.parse(line) as { url: string; internalUrl: string };
      expect(url).not.toBe(internalUrl);
      expect((await fetch(new URL('/metrics', internalUrl))).status).toBe(200);
      expect((await fetch(new URL('/metrics', url))).status).toBe(404);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('does not start when the internal port is taken', async () => {
    const [busy, stopBusy] = await startGateway({ env: { ADAPTER: 'memory' } });
    try {
      const result = run({ PORT: String(await freePort()), INTERNAL_PORT: String(busy.internalPort) });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/cannot listen on .*INTERNAL_PORT=\d+.*EADDRINUSE/);
    } finally {
      await stopBusy();
    }
  });
});
