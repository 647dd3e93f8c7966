import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';
import { startRedisGateways } from '../helpers/gateways.ts';
import { hs256Token, JWT_ENV, TEST_SECRET } from '../helpers/tokens.ts';
import type { GatewayProcess } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

// Every join and publish policy of docs/namespaces.md on two real gateway processes sharing one real
// redis-server, with JWT auth on, driven by the stock socket.io-client.
describe('channel namespaces on a fleet', () => {
  const cleanups: (() => unknown)[] = [];
  let a: GatewayProcess, b: GatewayProcess;

  const connect = async (gateway: GatewayProcess, userId?: string, claims?: Record<string, unknown>): Promise<TestClient> => {
    const token = userId ? await hs256Token({ sub: userId, ...(claims ? { claims } : {}) }) : undefined;
    const [client, close] = await connectClient(gateway.url, token ? { token } : {});
    cleanups.push(close);
    return client;
  };
  const subscriptionToken = (sub: string, room: string, expiresIn = 60, secret = TEST_SECRET) => hs256Token({ sub, expiresIn, claims: { room } }, secret);
  /** The room's current seq, read by a member (a joined room needs no token to read). */
  const seqOf = async (client: TestClient, room: string): Promise<number> => {
    const ack = (await client.request('history:fetch', { room, afterSeq: 0 })) as unknown as { ok: boolean; seq: number };
    expect(ack.ok).toBe(true);
    return ack.seq;
  };
  const inRoom = (client: TestClient, room: string): DurableEnvelope[] => client.received.filter((e) => e.room === room);

  beforeAll(async () => {
    const [fleet, stop] = await startRedisGateways(['ns-a', 'ns-b'], { ...JWT_ENV, NAMESPACES_FILE: writeNamespaces() });
    cleanups.push(stop);
    [a, b] = fleet.gateways;
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('claim: a user joins only the rooms its token claim lists, with * patterns', async () => {
    const ann = await connect(a, 'ann', { rooms: ['orders:acme-*'] });
    expect(await ann.request('room:join', { room: 'orders:acme-42' })).toMatchObject({ ok: true, resume: 'fresh' });
    expect(await ann.request('room:join', { room: 'orders:globex-1' })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    const noClaim = await connect(b, 'bob');
    expect(await noClaim.request('room:join', { room: 'orders:acme-42' })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    expect(await noClaim.request('history:fetch', { room: 'orders:acme-42', afterSeq: 0 })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    // publish: none — clients may not publish there, even joined.
    expect(await ann.request('publish', { room: 'orders:acme-42', type: 'order:updated', payload: {} })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
  });

  it('token: a subscription token for that room and user, signed with the JWT key, unexpired', async () => {
    const room = 'tickets:7';
    const carol = await connect(a, 'carol');
    const codeOf = async (token: string | undefined): Promise<string> => {
      const ack = await carol.request('room:join', token === undefined ? { room } : { room, token });
      return ack.ok ? 'ok' : ack.error.code;
    };
    expect(await codeOf(undefined)).toBe('subscription_token_invalid');
    expect(await codeOf(await subscriptionToken('carol', room, 60, 'a-forged-secret-that-is-32-characters-long!'))).toBe('subscription_token_invalid');
    expect(await codeOf(await subscriptionToken('carol', room, -10))).toBe('subscription_token_expired');
    expect(await codeOf(await subscriptionToken('carol', 'tickets:8'))).toBe('subscription_token_invalid');
    expect(await codeOf(await subscriptionToken('dave', room))).toBe('subscription_token_invalid');
    expect(await codeOf('not-a-jwt')).toBe('subscription_token_invalid');
    expect(await codeOf(await subscriptionToken('carol', room))).toBe('ok');
    // A subscription token does not open a connection.
    await expect(connectClient(a.url, { token: await subscriptionToken('carol', room) })).rejects.toMatchObject({ data: { code: 'auth_invalid' } });
  });

  it('members publish with the namespace type, size and schema checked; a refused publish publishes nothing', async () => {
    const room = 'tickets:9';
    const [carol, dave] = await Promise.all([connect(a, 'carol'), connect(b, 'dave')]);
    for (const [who, client] of [['carol', carol], ['dave', dave]] as const) {
      expect(await client.request('room:join', { room, token: await subscriptionToken(who, room) })).toMatchObject({ ok: true });
    }
    const before = await seqOf(dave, room);
    const refused = [
      [{ type: 'ticket:note', payload: { text: 'x'.repeat(250) } }, 'payload_too_large'],
      [{ type: 'ticket:note', payload: { text: '' } }, 'payload_invalid'],
      [{ type: 'ticket:note', payload: { text: 'hi', admin: true } }, 'payload_invalid'],
      [{ type: 'ticket:close', payload: { text: 'hi' } }, 'payload_invalid'],
      [{ type: 'room:reset', payload: { text: 'hi' } }, 'bad_request'],
      [{ type: 'ticket:note' }, 'bad_request'],
    ] as const;
    for (const [body, code] of refused) expect(await carol.request('publish', { room, ...body }), JSON.stringify(body)).toMatchObject({ ok: false, error: { code } });
    expect(await seqOf(dave, room)).toBe(before);
    expect(await carol.request('publish', { room, type: 'ticket:note', payload: { text: 'first' } })).toMatchObject({ ok: true, seq: before + 1, duplicate: false });
    await waitFor('the note on the other gateway', () => inRoom(dave, room).length === 1);
    expect(inRoom(dave, room)[0]).toMatchObject({ type: 'ticket:note', seq: before + 1, payload: { text: 'first' }, from: 'carol' });
  });

  it('authenticated: members publish across pods in contiguous seq order; non-members and unknown namespaces are refused', async () => {
    const room = 'team:blue';
    const [ann, bob, eve] = await Promise.all([connect(a, 'ann'), connect(b, 'bob'), connect(b, 'eve')]);
    for (const client of [ann, bob]) await client.request('room:join', { room });
    expect(await eve.request('publish', { room, type: 'team:msg', payload: 1 })).toMatchObject({ ok: false, error: { code: 'not_joined' } });
    expect(await eve.request('room:join', { room: 'admin:x' })).toMatchObject({ ok: false, error: { code: 'unknown_namespace' } });
    expect(await eve.request('publish', { room: 'admin:x', type: 'team:msg', payload: 1 })).toMatchObject({ ok: false, error: { code: 'unknown_namespace' } });
    for (let i = 0; i < 10; i += 1) {
      const ack = await (i % 2 === 0 ? ann : bob).request('publish', { room, type: 'team:msg', payload: { i } });
      expect(ack).toMatchObject({ ok: true });
    }
    for (const client of [ann, bob]) {
      await waitFor('10 team messages', () => inRoom(client, room).length === 10);
      const seen = inRoom(client, room);
      expect(seen.map((e) => (e.payload as { i: number }).i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(seen.map((e) => e.seq)).toEqual(seen.map((_, i) => seen[0]!.seq + i));
    }
  });

  it('idempotency: a retry with the same key, on another pod, returns the first seq and publishes nothing', async () => {
    const room = 'team:idem';
    const [onA, onB, reader] = await Promise.all([connect(a, 'frank'), connect(b, 'frank'), connect(b, 'gina')]);
    for (const client of [onA, onB, reader]) await client.request('room:join', { room });
    const first = await onA.request('publish', { room, type: 'team:msg', payload: { n: 1 }, idempotencyKey: 'k-1' });
    const retry = await onB.request('publish', { room, type: 'team:msg', payload: { n: 1 }, idempotencyKey: 'k-1' });
    expect(first).toMatchObject({ ok: true, duplicate: false });
    expect(retry).toMatchObject({ ok: true, duplicate: true, seq: (first as unknown as { seq: number }).seq });
    // Keys are per user: another user's identical key is another publish.
    expect(await reader.request('publish', { room, type: 'team:msg', payload: { n: 2 }, idempotencyKey: 'k-1' })).toMatchObject({ ok: true, duplicate: false });
    await waitFor('two messages', () => inRoom(reader, room).length === 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(inRoom(reader, room).map((e) => e.payload)).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('public + live-only: anonymous connections join public rooms only; no history is kept, so a resume resets', async () => {
    const room = 'lobby:main';
    const [anon, anon2] = await Promise.all([connect(a), connect(b)]);
    expect(await anon.request('room:join', { room: 'team:blue' })).toMatchObject({ ok: false, error: { code: 'auth_required' } });
    expect(await anon.request('dm:send', { to: 'ann', text: 'hi' })).toMatchObject({ ok: false, error: { code: 'auth_required' } });
    for (const client of [anon, anon2]) expect(await client.request('room:join', { room })).toMatchObject({ ok: true });
    const sent = await anon.request('publish', { room, type: 'lobby:wave', payload: { hi: true } });
    expect(sent).toMatchObject({ ok: true });
    await waitFor('the wave live', () => inRoom(anon2, room).length === 1);
    const [late, closeLate] = await connectClient(b.url);
    cleanups.push(closeLate);
    const seq = (sent as unknown as { seq: number }).seq;
    expect(await late.request('room:join', { room, lastSeq: seq - 1 })).toMatchObject({ ok: true, resume: 'reset', replayed: 0 });
    expect(late.control.find((e) => e.type === 'room:reset')?.payload).toMatchObject({ snapshot: { recent: [] } });
  });

  it('owner: only the user joins user:<id>; direct messages reach them on another pod', async () => {
    const [hana, ivan] = await Promise.all([connect(a, 'hana'), connect(b, 'ivan')]);
    expect(await ivan.request('room:join', { room: 'user:hana' })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    expect(await hana.request('room:join', { room: 'user:hana' })).toMatchObject({ ok: true });
    expect(await ivan.request('dm:send', { to: 'hana', text: 'hello' })).toMatchObject({ ok: true, room: 'user:hana' });
    await waitFor('the direct message', () => inRoom(hana, 'user:hana').length === 1);
    // The demo's operations exist only where a namespace offers them.
    expect(await ivan.request('counter:increment', { room: 'counter:x' })).toMatchObject({ ok: false, error: { code: 'unknown_namespace' } });
  });

  it('SSE applies the same policies: subscription token as a query parameter, 404 for an unknown namespace', async () => {
    const token = await hs256Token({ sub: 'carol' });
    const sse = (query: string) => fetch(`${a.url}/sse?${query}`, { headers: { authorization: `Bearer ${token}` } });
    const unknown = await sse('room=admin:x');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'unknown_namespace' } });
    const missing = await sse('room=tickets:7');
    expect(missing.status).toBe(403);
    expect(await missing.json()).toMatchObject({ error: { code: 'subscription_token_invalid' } });
    const wrongRoom = await sse(`room=tickets:7&subscriptionToken=${await subscriptionToken('carol', 'tickets:1')}`);
    expect(wrongRoom.status).toBe(403);
    const controller = new AbortController();
    const ok = await fetch(`${a.url}/sse?room=tickets:7&subscriptionToken=${await subscriptionToken('carol', 'tickets:7')}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: controller.signal,
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/text\/event-stream/);
    controller.abort();
    const anonymous = await fetch(`${a.url}/sse?room=team:blue`);
    expect(anonymous.status).toBe(401);
  });
});
