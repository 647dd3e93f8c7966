import { io } from 'socket.io-client';
import { afterAll, describe, expect, it } from 'vitest';
import type { HandshakeRefusal } from '../../app/protocol/index.ts';
import { connectClient } from '../helpers/clients.ts';
import { startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { metricValue } from '../helpers/process-memory.ts';
import { connectRaw } from '../helpers/raw-socketio.ts';

/** Connects with the stock client; resolves `true` when accepted, or the refusal's data. */
async function tryConnect(url: string, cleanups: (() => unknown)[]): Promise<true | HandshakeRefusal> {
  const socket = io(url, { auth: {}, transports: ['websocket'], reconnection: false, forceNew: true });
  cleanups.push(() => socket.disconnect());
  return new Promise((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('connect_error', (err) => resolve((err as Error & { data: HandshakeRefusal }).data));
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

  it('refuses handshakes past the connection limit with a retryable over_capacity, and admits again after a leave', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_CONNECTIONS: '3' } });
    cleanups.push(stop);
    const admitted = [];
    for (let i = 0; i < 3; i += 1) admitted.push(await connectClient(gateway.url));
    cleanups.push(...admitted.map(([, close]) => close));
    expect(await tryConnect(gateway.url, cleanups)).toMatchObject({ code: 'over_capacity', retryable: true });
    admitted[0]![1]();
    await waitFor('a slot after a client left', async () => (await tryConnect(gateway.url, cleanups)) === true);
    expect(await metricValue(gateway.internalUrl, 'rt_handshake_refusals_total', { code: 'over_capacity' })).toBeGreaterThanOrEqual(1);
  });

  it('refuses handshakes faster than the connection rate with a retryable over_capacity', async () => {
    const [gateway, stop] = await startGateway({ env: { MAX_CONNECTIONS_PER_SECOND: '2' } });
    cleanups.push(stop);
    const results = await Promise.all(Array.from({ length: 15 }, () => tryConnect(gateway.url, cleanups)));
    const refused = results.filter((r): r is HandshakeRefusal => r !== true);
    expect(results.filter((r) => r === true).length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeGreaterThanOrEqual(5);
    for (const r of refused) expect(r).toMatchObject({ code: 'over_capacity', retryable: true });
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await tryConnect(gateway.url, cleanups)).toBe(true);
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
});
