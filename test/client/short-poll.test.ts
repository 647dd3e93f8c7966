// The SDK on the ladder's first rung, against a real gateway process: short polling chosen outright,
// and as the fallback when Socket.IO never gets through.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient, type GatewayClientOptions } from '../../app/client/index.ts';
import { incrementCounter } from '../../app/client/demo.ts';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { connectClient } from '../helpers/clients.ts';

describe('the SDK over short polling (GET /poll)', () => {
  const cleanups: (() => unknown)[] = [];
  let gateway: GatewayProcess;

  beforeAll(async () => {
    const [gw, stop] = await startGateway();
    gateway = gw;
    cleanups.push(stop);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  function client(opts: Partial<GatewayClientOptions>): { client: GatewayClient; received: DurableEnvelope[] } {
    const c = createGatewayClient({ url: gateway.url, userId: 'poller', backoff: { baseMs: 100, capMs: 500 }, shortPoll: { minIntervalMs: 100, maxIntervalMs: 300 }, ...opts });
    cleanups.push(() => c.close());
    const received: DurableEnvelope[] = [];
    c.on('message', (e) => received.push(e));
    return { client: c, received };
  }

  it('reads a room in order with transports: [short-poll], answers idle polls with 304, and refuses writes with read_only', async () => {
    const room = 'counter:sdk-short';
    const { client: reader, received } = client({ transports: ['short-poll'], rooms: [room] });
    const resets: number[] = [];
    reader.on('reset', ({ seq }) => resets.push(seq));
    await expect.poll(() => reader.state).toBe('connected');
    expect(reader.transport).toBe('short-poll');
    await expect.poll(() => resets.length).toBe(1);

    const [writer, closeWriter] = await connectClient(gateway.url, { userId: 'writer' });
    cleanups.push(closeWriter);
    const acks: number[] = [];
    for (let i = 0; i < 5; i += 1) acks.push(((await writer.request('counter:increment', { room, by: 1 })) as unknown as { seq: number }).seq);
    await expect.poll(() => received.map((e) => e.seq)).toEqual(acks);
    expect(received.map((e) => (e.payload as { value: number }).value)).toEqual([1, 2, 3, 4, 5]);

    // Quiet now: the next polls are revalidations answered 304.
    await expect.poll(() => reader.shortPollStats.notModified).toBeGreaterThan(1);
    await expect(incrementCounter(reader, room)).rejects.toMatchObject({ code: 'read_only' });
  });

  it('falls back to short polling when Socket.IO never gets through, and stops following a room it may not read', async () => {
    const room = 'chat:sdk-fallback';
    // A path nothing answers stands in for a proxy that passes plain requests but not Socket.IO.
    const { client: reader, received } = client({ transports: ['websocket', 'short-poll'], path: '/blocked/', shortPollAfterFailures: 2, connectTimeoutMs: 2_000 });
    const errors: string[] = [];
    reader.on('error', (err) => errors.push(err.code));
    const joined = await reader.join(room);
    expect(reader.transport).toBe('short-poll');
    expect(reader.stats.connectFailures).toBe(2);
    expect(joined).toMatchObject({ room, resume: 'fresh' });

    const [writer, closeWriter] = await connectClient(gateway.url, { userId: 'writer' });
    cleanups.push(closeWriter);
    expect(await writer.request('chat:send', { room, text: 'through the fallback' })).toMatchObject({ ok: true });
    await expect.poll(() => received.map((e) => (e.payload as { text: string }).text)).toEqual(['through the fallback']);

    await expect(reader.join('user:someone-else')).rejects.toMatchObject({ code: 'forbidden' });
    expect(reader.rooms).not.toContain('user:someone-else');
    expect(errors).toContain('forbidden');
  });
});
