import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { connectClient } from '../helpers/clients.ts';
import { startGateway } from '../../scripts/fleet/gateway.ts';
import { freePort, waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';

const MAIN = fileURLToPath(new URL('../../app/gateway/main.ts', import.meta.url));

describe('gateway start-up', () => {
  const cleanups: (() => unknown)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it.each([
    [{ ADAPTER: 'mongo' }, 'ADAPTER="mongo": must be one of memory, redis, redis-cluster'],
    [{ PORT: 'eighty' }, 'PORT="eighty"'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL="localhost:6379": must start with redis:// or rediss://'],
    [{ AUTH_MODE: 'jwt' }, 'AUTH_MODE=jwt needs one of JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE'],
    [{ HISTORY_PAGE_BYTES: '900000' }, 'HISTORY_PAGE_BYTES=900000 must be at most SLOW_CONSUMER_LIMIT_BYTES - SLOW_CONSUMER_HIGH_WATER_BYTES'],
    [{ MAX_PAYLOAD_BYTES: '1048576' }, 'INBOUND_BYTES_BURST=524288 must be at least MAX_PAYLOAD_BYTES=1048576'],
    // Checked while the authenticator is built, after the variables parse: still exit 2, no stack trace.
    [{ AUTH_MODE: 'jwt', JWT_PUBLIC_KEY_FILE: '/nonexistent/key.pem' }, 'JWT_PUBLIC_KEY_FILE=/nonexistent/key.pem: ENOENT'],
    [{ AUTH_MODE: 'jwt', JWT_PUBLIC_KEY_FILE: MAIN }, 'JWT_PUBLIC_KEY_FILE='],
    [{ AUTH_MODE: 'jwt', JWT_JWKS_FILE: MAIN }, 'JWT_JWKS_FILE='],
    [{ AUTH_MODE: 'jwt', JWT_SECRET: 'x'.repeat(32), JWT_ALGORITHMS: 'RS256' }, 'JWT_ALGORITHMS=RS256 cannot be used with JWT_SECRET'],
  ])('refuses bad configuration %j with exit code 2 and a message naming the variable', (env, message) => {
    const result = spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH, AUTH_MODE: 'none', ...env }, encoding: 'utf8', timeout: 20_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('README.md');
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it.each([
    ['namespaces: { orders: { join: everyone } }', 'namespaces.orders.join'],
    ['namespaces: { orders: { join: claim, publish: members, schema: { type: objekt } } }', 'namespaces.orders.schema: not a valid JSON Schema'],
    ['namespaces: { tickets: { join: token } }', 'namespaces.tickets.join: token needs AUTH_MODE=jwt'],
  ])('refuses a bad namespace file (%s) with exit code 2 naming the file and the field', (yaml, message) => {
    const file = writeNamespaces(yaml);
    const result = spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH, AUTH_MODE: 'none', NAMESPACES_FILE: file }, encoding: 'utf8', timeout: 20_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`NAMESPACES_FILE=${file}`);
    expect(result.stderr).toContain(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a namespace file it cannot read with exit code 2', () => {
    const result = spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH, AUTH_MODE: 'none', NAMESPACES_FILE: '/nonexistent/ns.yaml' }, encoding: 'utf8', timeout: 20_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('NAMESPACES_FILE=/nonexistent/ns.yaml: cannot be read');
  });

  it('answers /readyz 503 while Redis is unreachable at start-up, and 200 once it is up', async () => {
    const redisPort = await freePort();
    const [gateway, stop] = await startGateway({ env: { ADAPTER: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}` }, waitUntil: 'alive' });
    cleanups.push(stop);
    const notReady = await fetch(`${gateway.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ ready: false, backplane: false });
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);

    const [, stopRedis] = await startRedis({ port: redisPort });
    cleanups.push(stopRedis);
    await waitFor('/readyz 200 after Redis came up', async () => (await fetch(`${gateway.url}/readyz`)).status === 200);
    const [client, close] = await connectClient(gateway.url);
    cleanups.push(close);
    expect(await client.request('counter:increment', {})).toMatchObject({ ok: true, value: 1 });
  });

  it('runs embedded (in-memory adapter, one process) with the same contract, and serves the demo page', async () => {
    const [gateway, stop] = await startGateway({ env: { ADAPTER: 'memory' } });
    cleanups.push(stop);
    const page = await fetch(gateway.url);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('Live counter');
    expect((await fetch(`${gateway.url}/app.js`)).status).toBe(200);

    const [first, closeFirst] = await connectClient(gateway.url);
    cleanups.push(closeFirst);
    const [second, closeSecond] = await connectClient(gateway.url);
    cleanups.push(closeSecond);
    await second.request('room:join', { room: 'counter:global' });
    expect(await first.request('counter:increment', { by: 2 })).toMatchObject({ ok: true, value: 2 });
    await waitFor('the counter update on the other tab', () => second.received.length === 1);
    const { seq } = second.received[0]!;
    closeSecond();
    await first.request('counter:increment', {});
    await first.request('counter:increment', {});
    const [again, closeAgain] = await connectClient(gateway.url);
    cleanups.push(closeAgain);
    expect(await again.request('room:join', { room: 'counter:global', lastSeq: seq })).toMatchObject({ resume: 'replay', replayed: 2 });
    expect(again.received.map((e) => (e.payload as { value: number }).value)).toEqual([3, 4]);
  });
});
