// Long-polling through HAProxy: works with cookie stickiness, breaks without it ("Session ID
// unknown"). Both edges sit in front of the same three real gateways on one real Redis.
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient } from '../../app/client/index.ts';
import { incrementCounter, sendChat } from '../../app/client/demo.ts';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { type Haproxy, startHaproxy } from '../../scripts/fleet/haproxy.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';

const cleanups: (() => Promise<void>)[] = [];
let gateways: GatewayProcess[] = [];
let sticky: Haproxy;
let plain: Haproxy;

beforeAll(async () => {
  const [redis, stopRedis] = await startRedis();
  cleanups.push(stopRedis);
  for (const pod of ['sticky-a', 'sticky-b', 'sticky-c']) {
    const [gateway, stop] = await startGateway({ pod, env: { ADAPTER: 'redis', REDIS_URL: redis.url } });
    cleanups.push(stop);
    gateways.push(gateway);
  }
  const slots = gateways.map((g, i) => ({ name: `slot${i + 1}`, port: g.port }));
  const [s, stopSticky] = await startHaproxy({ slots, sticky: true });
  const [p, stopPlain] = await startHaproxy({ slots, sticky: false });
  cleanups.push(stopSticky, stopPlain);
  sticky = s;
  plain = p;
  for (const edge of [sticky, plain]) {
    await waitFor('all three gateways UP at HAProxy', async () => (await edge.servers()).every((srv) => srv.state === 'UP'));
  }
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  gateways = [];
});

/** An Engine.IO v4 long-polling handshake by hand; returns the sid and the cookie HAProxy set (if any). */
async function handshake(base: string): Promise<{ sid: string; cookie: string | null; setCookie: string | null }> {
  const res = await fetch(`${base}/socket.io/?EIO=4&transport=polling`);
  const body = await res.text();
  expect(res.status, body).toBe(200);
  const open = JSON.parse(body.slice(1)) as { sid: string };
  const setCookie = res.headers.get('set-cookie');
  return { sid: open.sid, cookie: setCookie ? setCookie.split(';')[0]! : null, setCookie };
}

/** POSTs a `pong` packet (harmless at any time) on the session; returns status and body. */
async function postOnSession(base: string, sid: string, cookie: string | null): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
    method: 'POST',
    body: '3',
    headers: { 'content-type': 'text/plain;charset=UTF-8', ...(cookie ? { cookie } : {}) },
  });
  return { status: res.status, body: await res.text() };
}

describe('Engine.IO long-polling through HAProxy', () => {
  it('with the sticky cookie, every request of a session reaches the pod that made it', async () => {
    const { sid, cookie, setCookie } = await handshake(sticky.url);
    expect(cookie).toMatch(/^SERVERID=slot[123]$/);
    // No script reads it; same-site requests carry it. Not Secure: the local fleet serves plain http.
    expect(setCookie).toMatch(/^SERVERID=slot[123]; path=\/; HttpOnly; SameSite=Lax$/);
    const answers = [];
    for (let i = 0; i < 6; i += 1) answers.push(await postOnSession(sticky.url, sid, cookie));
    expect(answers).toEqual(Array.from({ length: 6 }, () => ({ status: 200, body: 'ok' })));
  });

  it('without stickiness (plain round-robin), requests land on other pods: "Session ID unknown"', async () => {
    const { sid, cookie } = await handshake(plain.url);
    expect(cookie).toBeNull();
    const answers = [];
    for (let i = 0; i < 6; i += 1) answers.push(await postOnSession(plain.url, sid, null));
    const unknown = answers.filter((a) => a.status === 400 && a.body.includes('Session ID unknown'));
    // Round-robin over three pods sends two of every three requests elsewhere.
    expect(unknown.length).toBeGreaterThanOrEqual(3);
  });
});

interface PollingOutcome {
  readonly ok: boolean;
  readonly pod: string | null;
  readonly error: string | null;
}

/** The stock client, long-polling only: connect, then three acked round trips. */
async function pollingRoundTrips(url: string, userId: string): Promise<PollingOutcome> {
  const socket: Socket = io(url, {
    transports: ['polling'],
    reconnection: false,
    forceNew: true,
    // Node has no cookie jar unless asked: without it HAProxy's cookie would never come back.
    withCredentials: true,
    auth: { userId },
    timeout: 5_000,
  });
  let pod: string | null = null;
  socket.on('server:hello', (hello: { payload: { pod: string } }) => (pod = hello.payload.pod));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (err) => reject(err));
    });
    const failure = new Promise<never>((_, reject) => socket.once('disconnect', (reason) => reject(new Error(`disconnected: ${reason}`))));
    for (let i = 0; i < 3; i += 1) {
      const ack = (await Promise.race([socket.timeout(5_000).emitWithAck('counter:read', { room: 'counter:sticky' }), failure])) as { ok: boolean };
      if (!ack.ok) throw new Error(`counter:read answered ${JSON.stringify(ack)}`);
    }
    return { ok: true, pod, error: null };
  } catch (err) {
    const e = err as Error & { description?: unknown; context?: { responseText?: string } };
    return { ok: false, pod, error: `${e.message} ${e.context?.responseText ?? ''}`.trim() };
  } finally {
    socket.disconnect();
  }
}

describe('socket.io-client, long-polling only', () => {
  it('works through the sticky edge, and handshakes still spread over the pods', async () => {
    const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => pollingRoundTrips(sticky.url, `poller-${i}`)));
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(new Set(outcomes.map((o) => o.pod)).size).toBeGreaterThanOrEqual(2);
  });

  it('fails through the plain round-robin edge', async () => {
    const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => pollingRoundTrips(plain.url, `poller-${i}`)));
    const failed = outcomes.filter((o) => !o.ok);
    // A client survives only if ~5 requests in a row all hit its pod ((1/3)^5 each); most must fail.
    expect(failed.length, JSON.stringify(outcomes)).toBeGreaterThanOrEqual(4);
    expect(failed.some((o) => /xhr (post|poll) error|Session ID unknown|disconnected/.test(o.error ?? ''))).toBe(true);
  });
});

describe('the SDK, long-polling only, through the sticky edge', () => {
  it('joins a room and receives what is published on another pod, in order', async () => {
    const clients: GatewayClient[] = Array.from({ length: 4 }, (_, i) =>
      createGatewayClient({ url: sticky.url, userId: `sdk-poll-${i}`, transports: ['polling'] }),
    );
    try {
      const received = clients.map(() => [] as DurableEnvelope[]);
      clients.forEach((c, i) => c.on('message', (e) => received[i]!.push(e)));
      await Promise.all(clients.map((c) => c.join('chat:sticky')));
      expect(clients.every((c) => c.transport === 'polling')).toBe(true);
      // Publish straight on one pod, bypassing the edge: fan-out goes over the Redis backplane.
      const publisher = createGatewayClient({ url: gateways[0]!.url, userId: 'publisher', transports: ['websocket'] });
      try {
        for (let i = 1; i <= 10; i += 1) await sendChat(publisher, 'chat:sticky', `m${i}`);
      } finally {
        publisher.close();
      }
      await waitFor('every polling SDK client to get 10 messages', () => received.every((r) => r.length >= 10));
      for (const r of received) expect(r.map((e) => (e.payload as { text: string }).text)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
      expect(clients.every((c) => c.stats.connects === 1)).toBe(true);
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('keeps a polling session on its pod after HAProxy takes the pod out of rotation (force-persist), while new handshakes go elsewhere', async () => {
    const client = createGatewayClient({ url: sticky.url, userId: 'persist-1', transports: ['polling'] });
    try {
      await client.join('counter:persist');
      const pod = client.pod!;
      const slot = `slot${gateways.findIndex((g) => g.pod === pod) + 1}`;
      // What a draining pod looks like to the edge: out of rotation, yet still serving its sessions.
      await sticky.command(`set server gateways/${slot} state maint`);
      try {
        for (let i = 0; i < 3; i += 1) await incrementCounter(client, 'counter:persist');
        expect(client.pod).toBe(pod);
        expect(client.stats.connects).toBe(1);
        const fresh = await Promise.all([0, 1, 2].map((i) => pollingRoundTrips(sticky.url, `fresh-${i}`)));
        expect(fresh.every((o) => o.ok && o.pod !== pod), JSON.stringify(fresh)).toBe(true);
      } finally {
        await sticky.command(`set server gateways/${slot} state ready`);
      }
    } finally {
      client.close();
    }
  });
});
