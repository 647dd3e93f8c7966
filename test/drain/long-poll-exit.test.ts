import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient } from '../../app/client/index.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { startHaproxy } from '../../scripts/fleet/haproxy.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';

// Regression: with long-polling clients behind a keep-alive edge, a drained gateway finished its drain
// and then sat in gateway.close() until the shutdown watchdog. io.close() waits for http.Server#close(),
// which ends only the connections idle at that instant. The edge (HAProxy here, Envoy in a cluster)
// pools HTTP/1.1 connections to the pod, and long-polling keeps them busy: Engine.IO answers the GETs
// it still holds as it closes, and the clients' next requests are still on their way. A request that
// lands on a pooled connection just after close() is served, and the connection, idle again, is then
// kept for keepAliveTimeout + keepAliveTimeoutBuffer (6 s) — past the watchdog with the default timings.

const NOTICE = 500;
const WINDOW = 2_000;
const DEADLINE = 15_000;

interface LogLine {
  readonly time: string;
  readonly msg: string;
  readonly closeMs?: number;
}

const logLines = (gateway: GatewayProcess): LogLine[] =>
  gateway
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

/** SIGTERM, then how the shutdown went, from the gateway's own log. */
async function terminate(gateway: GatewayProcess): Promise<{ sinceDrained: number; total: number; closeMs: number }> {
  const sigtermAt = Date.now();
  gateway.child.kill('SIGTERM');
  expect(await gateway.exited).toEqual({ code: 0, signal: null });
  const exitedAt = Date.now();
  const lines = logLines(gateway);
  const drained = lines.find((l) => l.msg === 'drain: no socket left');
  const closed = lines.find((l) => l.msg === 'drained; exiting');
  expect(drained, gateway.output()).toBeDefined();
  expect(closed, gateway.output()).toBeDefined();
  expect(lines.filter((l) => l.msg.includes('deadline reached'))).toEqual([]);
  return { sinceDrained: exitedAt - Date.parse(drained!.time), total: exitedAt - sigtermAt, closeMs: closed!.closeMs! };
}

/** A raw keep-alive TCP connection to the gateway, collecting what it answers. */
function rawConnection(port: number): Promise<{ socket: Socket; received: () => string }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, received: () => data }));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

describe('a drained gateway exits promptly after its drain, whatever its HTTP connections do', () => {
  const cleanups: (() => unknown)[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    env = {
      ADAPTER: 'redis',
      REDIS_URL: redis.url,
      LOG_LEVEL: 'info',
      DRAIN_NOTICE_DELAY_MS: String(NOTICE),
      DRAIN_WINDOW_MS: String(WINDOW),
      DRAIN_JITTER_MS: String(WINDOW),
      SHUTDOWN_DEADLINE_MS: String(DEADLINE),
    };
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('long-polling SDK clients through HAProxy: the pod exits right after its drain, and every client moves to the survivor', async () => {
    const started = await Promise.all(['victim', 'survivor'].map((pod) => startGateway({ env, pod: `lp-${pod}` })));
    const [victim, survivor] = started.map(([gw]) => gw) as [GatewayProcess, GatewayProcess];
    cleanups.push(...started.map(([, stop]) => stop));
    const [haproxy, stopHaproxy] = await startHaproxy({
      slots: [
        { name: 'victim', port: victim.port },
        { name: 'survivor', port: survivor.port },
      ],
    });
    cleanups.push(stopHaproxy);
    await waitFor('both pods UP at HAProxy', async () => (await haproxy.servers()).filter((s) => s.state === 'UP').length === 2);

    const clients: GatewayClient[] = Array.from({ length: 16 }, (_, i) =>
      createGatewayClient({ url: haproxy.url, userId: `lp-${i}`, transports: ['polling'], rooms: ['chat:long-poll-exit'] }),
    );
    cleanups.push(() => clients.forEach((c) => c.close()));
    await waitFor('every SDK client connected', () => clients.every((c) => c.pod !== null), 15_000);
    expect(clients.filter((c) => c.pod === victim.pod).length).toBeGreaterThan(0);

    const { sinceDrained, total, closeMs } = await terminate(victim);
    // gateway.close() takes a moment, not the 6 s an idle keep-alive connection would hold it.
    expect(closeMs).toBeLessThan(1_500);
    expect(sinceDrained).toBeLessThan(2_000);
    expect(total).toBeLessThan(NOTICE + WINDOW + 3_000);
    await waitFor('every SDK client on the survivor', () => clients.every((c) => c.state === 'connected' && c.pod === survivor.pod), 15_000);
  });

  it('a request that lands on a kept-alive connection just as the server closes does not hold the exit', async () => {
    const [gateway, stop] = await startGateway({ env, pod: 'lp-late' });
    cleanups.push(stop);
    // A long-poll session whose held GET Engine.IO answers at close time: the moment a pooled edge
    // connection would carry the client's next request.
    const poll = await rawConnection(gateway.port);
    cleanups.push(() => poll.socket.destroy());
    poll.socket.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: gateway\r\n\r\n');
    const sid = (await waitFor('the Engine.IO handshake', () => /"sid":"([^"]+)"/.exec(poll.received())))[1]!;
    const handshakeAnswer = poll.received().length;
    poll.socket.write(`GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: gateway\r\n\r\n`);

    // The next request is on its way (headers not complete yet), so its connection is not idle when
    // the server closes; it completes as soon as the held GET is answered, as an edge's would.
    const next = await rawConnection(gateway.port);
    cleanups.push(() => next.socket.destroy());
    next.socket.write('GET /healthz HTTP/1.1\r\nHost: gateway\r\n');
    const answered = new Promise<void>((resolve) => poll.socket.on('data', () => poll.received().length > handshakeAnswer && resolve()));
    void answered.then(() => next.socket.write('\r\n'));

    const { sinceDrained, closeMs } = await terminate(gateway);
    await answered;
    expect(next.received()).toMatch(/^HTTP\/1\.1 200/);
    // Without closing connections as they turn idle, this one would hold the exit for 6 s.
    expect(closeMs).toBeLessThan(1_500);
    expect(sinceDrained).toBeLessThan(2_000);
  });

  it('a client that never finishes its request does not hold the exit either', async () => {
    const [gateway, stop] = await startGateway({ env, pod: 'lp-stalled' });
    cleanups.push(stop);
    const stalled = await rawConnection(gateway.port);
    cleanups.push(() => stalled.socket.destroy());
    stalled.socket.write('GET /healthz HTTP/1.1\r\nHost: gateway\r\n');
    const { sinceDrained, closeMs } = await terminate(gateway);
    // Cut after CONNECTION_CLOSE_GRACE_MS (1 s); without that, only the watchdog would end it.
    expect(closeMs).toBeLessThan(2_500);
    expect(sinceDrained).toBeLessThan(3_000);
  });
});
