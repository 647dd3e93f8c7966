import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';
import { startRedisGateways } from '../helpers/gateways.ts';
import { hs256Token, JWT_ENV } from '../helpers/tokens.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

const KEY_1 = 'k1-0123456789abcdef0123456789abcdef';
const KEY_2 = 'k2-fedcba9876543210fedcba9876543210';

// The server API (docs/server-api.md) of two real gateway processes on one real redis-server: what a
// backend calls on the internal port, and what clients of either pod then receive.
describe('the server API on a fleet', () => {
  const cleanups: (() => unknown)[] = [];
  let a: GatewayProcess, b: GatewayProcess;
  let keysFile: string;
  /** What every gateway of this suite is started with. */
  let env: Record<string, string>;

  const api = async (gateway: GatewayProcess, endpoint: string, body: unknown, key: string | null = KEY_1, init: RequestInit = {}) => {
    const res = await fetch(`${gateway.internalUrl}/api/${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...init,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { ok: boolean; error?: { code: string } } };
  };
  const connect = async (gateway: GatewayProcess, userId: string, claims?: Record<string, unknown>): Promise<TestClient> => {
    const [client, close] = await connectClient(gateway.url, { token: await hs256Token({ sub: userId, ...(claims ? { claims } : {}) }) });
    cleanups.push(close);
    return client;
  };
  const inRoom = (client: TestClient, room: string): DurableEnvelope[] => client.received.filter((e) => e.room === room);
  const currentSeq = async (room: string): Promise<number> => (await api(a, 'history', { room, afterSeq: null, recent: 0 })).body.seq as number;

  beforeAll(async () => {
    keysFile = writeNamespaces(`# server API keys\n${KEY_1}\n`, 'api-keys');
    const [fleet, stop] = await startRedisGateways(['api-a', 'api-b'], {
      ...JWT_ENV,
      NAMESPACES_FILE: writeNamespaces(),
      API_KEYS_FILE: keysFile,
      API_MAX_BODY_BYTES: '4096',
      FLEET_STATS_INTERVAL_MS: '500',
      FLEET_STATS_TTL_SECONDS: '2',
    });
    cleanups.push(stop);
    ({ env, gateways: [a, b] } = fleet);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('publishes from a backend to clients on every pod, in seq order, with contiguous seqs', async () => {
    const room = 'orders:acme-1';
    const [ann, bob] = await Promise.all([connect(a, 'ann', { rooms: ['orders:acme-*'] }), connect(b, 'bob', { rooms: ['orders:acme-1'] })]);
    for (const client of [ann, bob]) expect(await client.request('room:join', { room })).toMatchObject({ ok: true });
    const acks = [];
    for (let i = 1; i <= 5; i += 1) acks.push(await api(i % 2 ? a : b, 'publish', { room, type: 'order:updated', payload: { id: 'o-1', step: i } }));
    for (const ack of acks) expect(ack).toMatchObject({ status: 200, body: { ok: true, room, duplicate: false } });
    const seqs = acks.map((ack) => ack.body.seq as number);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    for (const client of [ann, bob]) {
      await waitFor('5 order updates', () => inRoom(client, room).length === 5);
      expect(inRoom(client, room).map((e) => [e.seq, (e.payload as { step: number }).step])).toEqual(seqs.map((seq, i) => [seq, i + 1]));
      expect(inRoom(client, room)[0]).not.toHaveProperty('from');
    }
    const history = await api(b, 'history', { room, afterSeq: seqs[2] });
    expect(history.body).toMatchObject({ ok: true, mode: 'replay', seq: seqs[4] });
    expect((history.body.envelopes as DurableEnvelope[]).map((e) => e.seq)).toEqual([seqs[3], seqs[4]]);
  });

  it('idempotency: a retried publish (even on another pod) returns the first seq and publishes once', async () => {
    const room = 'orders:acme-2';
    const ann = await connect(b, 'ann', { rooms: ['orders:acme-*'] });
    await ann.request('room:join', { room });
    const body = { room, type: 'order:created', payload: { id: 'o-2' }, idempotencyKey: 'order-o-2-created' };
    const first = await api(a, 'publish', body);
    const again = await api(b, 'publish', body);
    expect(first.body).toMatchObject({ ok: true, duplicate: false });
    expect(again.body).toMatchObject({ ok: true, duplicate: true, seq: first.body.seq });
    await waitFor('the order', () => inRoom(ann, room).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(inRoom(ann, room)).toHaveLength(1);
    expect(await currentSeq(room)).toBe(first.body.seq);
  });

  it('broadcasts to many rooms, and refuses the whole call when one room is in no namespace', async () => {
    const rooms = ['orders:acme-3', 'orders:globex-3', 'team:ops'];
    const before = await Promise.all(rooms.map(currentSeq));
    const refused = await api(a, 'broadcast', { rooms: [...rooms, 'nowhere:x'], type: 'system:notice', payload: { text: 'maintenance' } });
    expect(refused).toMatchObject({ status: 404, body: { ok: false, error: { code: 'unknown_namespace' } } });
    expect(await Promise.all(rooms.map(currentSeq))).toEqual(before);
    const sent = await api(a, 'broadcast', { rooms, type: 'system:notice', payload: { text: 'maintenance' } });
    expect(sent.status).toBe(200);
    expect((sent.body.results as { room: string; ok: boolean; seq: number }[]).map((r) => [r.room, r.ok, r.seq])).toEqual(
      rooms.map((room, i) => [room, true, before[i]! + 1]),
    );
  });

  it('refuses missing, wrong and revoked keys; rotation keeps both keys valid meanwhile; nothing is published', async () => {
    const room = 'orders:acme-keys';
    const before = await currentSeq(room);
    const publish = (key: string | null) => api(a, 'publish', { room, type: 'order:updated', payload: {} }, key);
    expect(await publish(null)).toMatchObject({ status: 401, body: { ok: false, error: { code: 'api_key_required' } } });
    expect(await publish('x'.repeat(40))).toMatchObject({ status: 401, body: { ok: false, error: { code: 'api_key_invalid' } } });
    expect(await publish(KEY_1.slice(0, -1))).toMatchObject({ status: 401, body: { error: { code: 'api_key_invalid' } } });
    expect(await currentSeq(room)).toBe(before);
    // Rotation: add the new key, then revoke the old one; the gateways re-read the file within a second.
    writeFileSync(keysFile, `${KEY_1}\n${KEY_2}\n`);
    await waitFor('the new key accepted', async () => (await publish(KEY_2)).status === 200, 5_000);
    expect((await publish(KEY_1)).status).toBe(200);
    writeFileSync(keysFile, `${KEY_2}\n`);
    await waitFor('the old key revoked', async () => (await publish(KEY_1)).status === 401, 5_000);
    expect(await publish(KEY_1)).toMatchObject({ status: 401, body: { error: { code: 'api_key_invalid' } } });
    expect((await api(b, 'publish', { room, type: 'order:updated', payload: {} }, KEY_2)).status).toBe(200);
    writeFileSync(keysFile, `${KEY_1}\n${KEY_2}\n`);
    await waitFor('the first key back', async () => (await publish(KEY_1)).status === 200, 5_000);
  });

  it.each([
    ['malformed JSON', '{"room": "orders:acme-9", ', 400, 'bad_request'],
    ['a JSON array', '[1,2]', 400, 'bad_request'],
    ['an unknown field', { room: 'orders:acme-9', type: 'order:x', payload: 1, extra: true }, 400, 'bad_request'],
    ['no payload', { room: 'orders:acme-9', type: 'order:x' }, 400, 'bad_request'],
    ['a protocol type', { room: 'orders:acme-9', type: 'room:reset', payload: 1 }, 400, 'bad_request'],
    ['a type with a quote', { room: 'orders:acme-9', type: 'order:"x', payload: 1 }, 400, 'bad_request'],
    ['a malformed room', { room: 'orders:', type: 'order:x', payload: 1 }, 400, 'bad_request'],
    ['a room in no namespace', { room: 'nowhere:x', type: 'order:x', payload: 1 }, 404, 'unknown_namespace'],
    ['a body over API_MAX_BODY_BYTES', { room: 'orders:acme-9', type: 'order:x', payload: 'x'.repeat(5_000) }, 413, 'payload_too_large'],
  ])('refuses %s with a clear error and publishes nothing', async (_what, body, status, code) => {
    const before = await currentSeq('orders:acme-9');
    expect(await api(a, 'publish', body)).toMatchObject({ status, body: { ok: false, error: { code } } });
    expect(await currentSeq('orders:acme-9')).toBe(before);
  });

  it('answers unknown endpoints and other methods with the error shape', async () => {
    expect(await api(a, 'nope', {})).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    const get = await fetch(`${a.internalUrl}/api/publish`, { headers: { authorization: `Bearer ${KEY_1}` } });
    expect(get.status).toBe(400);
    expect(get.headers.get('allow')).toBe('POST');
    // The public port never serves the API.
    expect((await fetch(`${a.url}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${KEY_1}` }, body: '{}' })).status).toBe(404);
  });

  it('presence: users and connection counts across pods, join/leave events, and a dead pod expires and is swept', async () => {
    const room = 'team:presence';
    const [ann1, ann2, bob] = await Promise.all([connect(a, 'ann'), connect(b, 'ann'), connect(b, 'bob')]);
    await ann1.request('room:join', { room });
    for (const client of [ann2, bob]) await client.request('room:join', { room });
    const snapshot = { ok: true, room, users: [{ userId: 'ann', connections: 2 }, { userId: 'bob', connections: 1 }], connections: 3 };
    await waitFor('presence of 3 connections', async () => (await api(a, 'presence', { room })).body.connections === 3);
    expect((await api(b, 'presence', { room })).body).toEqual(snapshot);
    expect(await ann1.request('presence:get', { room })).toEqual(snapshot);
    await waitFor('presence:join of bob on A', () => ann1.control.some((e) => e.type === 'presence:join' && (e.payload as { userId: string }).userId === 'bob'));
    // ann's second connection is not a second join.
    expect(bob.control.filter((e) => e.type === 'presence:join' && (e.payload as { userId: string }).userId === 'ann').length).toBeLessThanOrEqual(1);
    await bob.request('room:leave', { room });
    await waitFor('presence:leave of bob', () => ann1.control.some((e) => e.type === 'presence:leave' && (e.payload as { userId: string }).userId === 'bob'));
    expect(await api(a, 'presence', { room: 'orders:acme-1' })).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });

    // A pod killed without cleaning up: its entries expire after FLEET_STATS_TTL_SECONDS (2 s here).
    const [c, stopC] = await startGateway({ env, pod: 'api-c' });
    cleanups.push(stopC);
    const [carl, closeCarl] = await connectClient(c.url, { token: await hs256Token({ sub: 'carl' }) });
    cleanups.push(closeCarl);
    await carl.request('room:join', { room });
    await waitFor('carl present', async () => ((await api(a, 'presence', { room })).body.users as { userId: string }[]).some((u) => u.userId === 'carl'));
    await c.stop('SIGKILL');
    const killedAt = Date.now();
    await waitFor('carl gone', async () => !((await api(a, 'presence', { room })).body.users as { userId: string }[]).some((u) => u.userId === 'carl'), 10_000);
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    // ...and a survivor sweeps them, so the room hears that carl left (test/integration/presence-sweep.test.ts has the details).
    await waitFor('presence:leave of carl', () => ann1.control.some((e) => e.type === 'presence:leave' && (e.payload as { userId: string }).userId === 'carl'), 15_000).catch(
      async (err: Error) => {
        const sweepMetrics = async (g: GatewayProcess) => (await (await fetch(`${g.internalUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith('rt_presence')).join('\n');
        throw new Error(`${err.message}\n--- api-a\n${await sweepMetrics(a)}\n${a.output()}\n--- api-b\n${await sweepMetrics(b)}\n${b.output()}`);
      },
    );
  });

  it('disconnects a user everywhere (sockets on every pod), telling them not to reconnect', async () => {
    const [on, onB, other] = await Promise.all([connect(a, 'mallory'), connect(b, 'mallory'), connect(b, 'nina')]);
    const closed = [on, onB].map((client) => new Promise<string>((resolve) => client.socket.once('disconnect', resolve)));
    // An SSE stream of the same user, on the other pod than the one asked.
    const stream = await fetch(`${b.url}/sse?room=team:sse`, { headers: { authorization: `Bearer ${await hs256Token({ sub: 'mallory' })}` } });
    expect(stream.status).toBe(200);
    const streamText = stream.text();
    expect(await api(a, 'disconnect', { userId: 'mallory', reason: 'banned' })).toMatchObject({ status: 200, body: { ok: true, userId: 'mallory' } });
    expect(await Promise.all(closed)).toEqual(['io server disconnect', 'io server disconnect']);
    for (const client of [on, onB]) {
      expect(client.control.find((e) => e.type === 'connection:closing')?.payload).toEqual({ reason: 'disconnected_by_server', message: 'banned', reconnect: false });
    }
    expect(other.socket.connected).toBe(true);
    const events = await streamText; // ends: the pod closed it
    expect(events).toContain('event: connection:closing');
    expect(events).toContain('"reason":"disconnected_by_server"');
  });

  it('reports fleet info: every pod and the namespaces', async () => {
    const info = await api(b, 'info', {});
    expect(info.status).toBe(200);
    expect((info.body.pods as { pod: string }[]).map((p) => p.pod)).toEqual(expect.arrayContaining(['api-a', 'api-b']));
    expect((info.body.namespaces as { name: string }[]).map((n) => n.name)).toEqual(['orders', 'tickets', 'lobby', 'team', 'user']);
  });
});
