import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { io } from 'socket.io-client';
import { afterAll, describe, expect, it } from 'vitest';
import type { HandshakeRefusal } from '../../app/protocol/index.ts';
import { connectClient } from '../helpers/clients.ts';
import { startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { metricValue } from '../helpers/process-memory.ts';
import { connectRaw } from '../helpers/raw-socketio.ts';
import { TEST_SECRET } from '../helpers/tokens.ts';
import { GatewayClient, refusalOfTransportError } from '../../app/client/index.ts';

/**
 * Connects with the stock client over long-polling (whose transport error carries the HTTP body);
 * resolves `true` when accepted, else the refusal as the SDK reads it, with the HTTP status.
 */
async function tryConnect(url: string, cleanups: (() => unknown)[]): Promise<true | { code: string; status: unknown; retryAfterMs?: number; retryAfterHeader?: unknown }> {
  const socket = io(url, { auth: {}, transports: ['polling'], reconnection: false, forceNew: true });
  cleanups.push(() => socket.disconnect());
  return new Promise((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('connect_error', (err: Error & { description?: unknown; context?: { getResponseHeader?: (name: string) => unknown } }) => {
      const refusal = refusalOfTransportError(err);
      resolve({ code: refusal?.code ?? `not refused at the transport: ${err.message}`, status: err.description, retryAfterMs: refusal?.retryAfterMs, retryAfterHeader: err.context?.getResponseHeader?.('retry-after') });
    });
  });
}

describe('per-instance limits', () => {
  const cleanups: (() => unknown)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('rate-limits inbound events per socket with an error ack that says when to retry', async () => {
    const [gateway, stop] = await startGateway({ env: { RATE_LIMIT_PER_SECOND: '5', RATE_LIMIT_BURST: '10' } });
    cleanups.push(stop);
    const [noisy, closeNoisy] = await connectClient(gateway.url);
    const [quiet, closeQuiet] = await connectClient(gateway.url);
    cleanups.push(closeNoisy, closeQuiet);
    const acks = await Promise.all(Array.from({ length: 30 }, () => noisy.request('counter:read', {})));
    const limited = acks.filter((a) => !a.ok);
    // The burst passes (plus whatever refilled meanwhile); the rest is refused, none silently.
    expect(acks.filter((a) => a.ok).length).toBeGreaterThanOrEqual(10);
    expect(limited.length).toBeGreaterThanOrEqual(15);
    for (const ack of limited) {
      expect(ack).toMatchObject({ ok: false, error: { code: 'rate_limited' } });
      expect((ack as { error: { retryAfterMs: number } }).error.retryAfterMs).toBeGreaterThan(0);
    }
    // The bucket is per socket: another connection is not affected; the noisy one recovers after the hint.
    expect(await quiet.request('counter:read', {})).toMatchObject({ ok: true });
    const { retryAfterMs } = (limited.at(-1) as { error: { retryAfterMs: number } }).error;
    await new Promise((r) => setTimeout(r, retryAfterMs + 50));
    expect(await noisy.request('counter:read', {})).toMatchObject({ ok: true });
    expect(await metricValue(gateway.internalUrl, 'rt_messages_in_total', { outcome: 'rate_limited' })).toBe(limited.length);
  });

  it('refuses new transports past the connection limit with HTTP 503 over_capacity + Retry-After, counting transports that never sent CONNECT, and admits again after a leave', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_CONNECTIONS: '3' } });
    cleanups.push(stop);
    const [admitted, closeAdmitted] = await connectClient(gateway.url);
    cleanups.push(closeAdmitted);
    // Two raw transports that never send CONNECT hold the other two slots.
    const idle = await Promise.all([0, 1].map(() => connectRaw(gateway.url, { connect: false })));
    cleanups.push(...idle.map((r) => r.close));
    expect(await tryConnect(gateway.url, cleanups)).toMatchObject({ code: 'over_capacity', status: 503, retryAfterMs: 1_000, retryAfterHeader: '1' });
    await waitFor('the fleet stat to count every transport', async () => {
      const body = (await (await fetch(`${gateway.internalUrl}/fleet`)).json()) as { sockets: number; pods: { sockets: number; pending?: number }[] };
      return body.sockets === 3 && body.pods[0]?.pending === 2;
    });
    idle[0]!.close();
    await waitFor('a slot after a transport left', async () => (await tryConnect(gateway.url, cleanups)) === true);
    expect(admitted.socket.connected).toBe(true);
    expect(await metricValue(gateway.internalUrl, 'rt_handshake_refusals_total', { code: 'over_capacity' })).toBeGreaterThanOrEqual(1);
  });

  it('refuses new transports faster than the connection rate with HTTP 429 over_capacity and a retry hint', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_CONNECTIONS_PER_SECOND: '2' } });
    cleanups.push(stop);
    const results = await Promise.all(Array.from({ length: 15 }, () => tryConnect(gateway.url, cleanups)));
    const refused = results.filter((r) => r !== true);
    expect(results.filter((r) => r === true).length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeGreaterThanOrEqual(5);
    for (const r of refused) expect(r).toMatchObject({ code: 'over_capacity', status: 429, retryAfterMs: expect.any(Number) });
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await tryConnect(gateway.url, cleanups)).toBe(true);
  });

  it('the stock client with default options reconnects by itself after a transport refusal (full, then a slot frees up), on polling and WebSocket', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_CONNECTIONS: '1' } });
    cleanups.push(stop);
    for (const transports of [undefined, ['websocket'] as ['websocket']]) {
      const [occupant, closeOccupant] = await connectClient(gateway.url);
      cleanups.push(closeOccupant);
      const stock = io(gateway.url, { forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 400, ...(transports ? { transports } : {}) });
      cleanups.push(() => stock.disconnect());
      const refusals: unknown[] = [];
      stock.on('connect_error', (err: Error & { description?: unknown }) => refusals.push(err.description));
      await waitFor('two refusals the stock client retried by itself', () => refusals.length >= 2 && stock.active);
      expect(stock.connected).toBe(false);
      closeOccupant();
      expect(occupant.socket.connected).toBe(false);
      await waitFor('the stock client connected by itself', () => stock.connected, 10_000);
      stock.disconnect();
      await waitFor('the slot freed', async () => (await metricValue(gateway.internalUrl, 'rt_connections')) === 0);
    }
  });

  it('the SDK learns over_capacity and its retry hint from the transport refusal, waits at least the hint, and connects once a slot frees', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_CONNECTIONS: '1' } });
    cleanups.push(stop);
    const [, closeOccupant] = await connectClient(gateway.url);
    cleanups.push(closeOccupant);
    const client = new GatewayClient({ url: gateway.url, backoff: { baseMs: 50, capMs: 100 } });
    cleanups.push(() => client.close());
    const errors: { code: string; retryable: boolean; retryAfterMs?: number; at: number }[] = [];
    client.on('error', (err) => errors.push({ code: err.code, retryable: err.retryable, retryAfterMs: err.retryAfterMs, at: Date.now() }));
    await waitFor('two refusals', () => errors.length >= 2);
    expect(errors[0]).toMatchObject({ code: 'over_capacity', retryable: true, retryAfterMs: 1_000 });
    // The backoff (50-100 ms here) is stretched to the server's hint.
    expect(errors[1]!.at - errors[0]!.at).toBeGreaterThanOrEqual(950);
    closeOccupant();
    await waitFor('the SDK connected', () => client.state === 'connected', 10_000);
  });

  it('the stock client keeps retrying by itself against a draining pod (503 draining), and the SDK reads the code', async () => {
    const adminToken = 'test-admin-token-0123456789';
    const [gateway, stop] = await startGateway({ env: { ADMIN_TOKEN: adminToken, DRAIN_NOTICE_DELAY_MS: '0' } });
    cleanups.push(stop);
    expect((await fetch(`${gateway.internalUrl}/admin/drain`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } })).status).toBe(202);
    const stock = io(gateway.url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    cleanups.push(() => stock.disconnect());
    const codes: (string | undefined)[] = [];
    stock.on('connect_error', (err) => codes.push(refusalOfTransportError(err)?.code));
    await waitFor('three attempts the stock client made by itself', () => codes.length >= 3);
    expect(new Set(codes)).toEqual(new Set(['draining']));
    expect(stock.active).toBe(true); // still trying: the edge would send the next attempt to a ready pod
  });

  it('the stock client does not retry a final refusal (bad token): a CONNECT error, then the transport closes', async () => {
    const [gateway, stop] = await startGateway({ env: { AUTH_MODE: 'jwt', JWT_SECRET: TEST_SECRET } });
    cleanups.push(stop);
    const stock = io(gateway.url, { forceNew: true, auth: { token: 'not-a-jwt' }, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    cleanups.push(() => stock.disconnect());
    const errors: (HandshakeRefusal | undefined)[] = [];
    stock.on('connect_error', (err: Error & { data?: HandshakeRefusal }) => errors.push(err.data));
    await waitFor('the refusal', () => errors.length === 1);
    expect(errors[0]).toMatchObject({ code: 'auth_invalid', retryable: false });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(errors).toHaveLength(1);
    expect(stock.active).toBe(false);
    // The refused CONNECT closed its transport: nothing is held for it.
    await waitFor('no transport left', async () => (await metricValue(gateway.internalUrl, 'rt_connections')) === 0);
  });

  it('closes only the connection that sends a frame over MAX_PAYLOAD_BYTES', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_PAYLOAD_BYTES: '16384' } });
    cleanups.push(stop);
    const [bystander, closeBystander] = await connectClient(gateway.url);
    const [sender, closeSender] = await connectClient(gateway.url);
    cleanups.push(closeBystander, closeSender);
    const reason = new Promise<string>((resolve) => sender.socket.once('disconnect', resolve));
    sender.socket.emit('chat:send', { room: 'chat:big', text: 'z'.repeat(20_000) }, () => {});
    expect(await reason).toMatch(/transport (close|error)/);
    expect(bystander.socket.connected).toBe(true);
    expect(await bystander.request('counter:increment', {})).toMatchObject({ ok: true });
    expect(gateway.child.exitCode).toBeNull();
  });

  it('drops a peer that stops answering heartbeats, counts it, and keeps one that answers', async () => {
    const [gateway, stop] = await startGateway({ env: { PING_INTERVAL_MS: '1000', PING_TIMEOUT_MS: '1000' } });
    cleanups.push(stop);
    const zombie = await connectRaw(gateway.url, { auth: {}, answerPings: false });
    const alive = await connectRaw(gateway.url, { auth: {} });
    cleanups.push(zombie.close, alive.close);
    const started = Date.now();
    await zombie.closed;
    expect(Date.now() - started).toBeLessThan(4_000);
    await waitFor('the ping timeout in metrics', async () => (await metricValue(gateway.internalUrl, 'rt_disconnections_total', { reason: 'ping timeout' })) === 1);
    expect(alive.ws.readyState).toBe(alive.ws.OPEN);
    expect((await alive.request('counter:read', {}))[0]).toMatchObject({ ok: true });
  });
  it('a peer that resets its refused WebSocket upgrade, or never closes it, neither crashes the gateway nor holds its socket', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_CONNECTIONS: '1' } });
    cleanups.push(stop);
    const [, closeOccupant] = await connectClient(gateway.url);
    cleanups.push(closeOccupant);
    let exited = false;
    void gateway.exited.then(() => (exited = true));
    const { port } = new URL(gateway.url);
    const upgrade = `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const openSockets = (): number => readdirSync(`/proc/${gateway.child.pid}/fd`).length;
    const baseline = openSockets();
    // Resets right after the request, racing the refusal: the refusal's write or read meets ECONNRESET.
    for (let round = 0; round < 5; round += 1) {
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          new Promise<void>((resolve) => {
            const socket = createConnection(Number(port), '127.0.0.1', () => {
              socket.write(upgrade);
              setTimeout(() => (socket.resetAndDestroy(), resolve()), i % 4);
            });
            socket.on('error', () => resolve());
          }),
        ),
      );
    }
    // Holds the refusal open: reads it, never closes its side.
    const holders = Array.from({ length: 20 }, () => {
      const socket = createConnection({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true }, () => socket.write(upgrade));
      socket.on('error', () => {});
      socket.resume();
      return socket;
    });
    cleanups.push(() => holders.forEach((holder) => holder.destroy()));
    await new Promise((r) => setTimeout(r, 500));
    expect(exited).toBe(false);
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    await waitFor('the refused sockets released', () => openSockets() <= baseline + 2, 10_000);
    expect(exited).toBe(false);
  });
});
