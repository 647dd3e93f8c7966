import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublisher, type Publisher } from '../../app/publisher/index.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';

type AppMessages = { 'team:msg': { by: string; n: number } };
const API_KEY = 'publisher-test-key-0123456789abcdef0123';
const NAMESPACES = `
namespaces:
  team: { join: authenticated, publish: members }
  orders: { join: claim, publish: none }
  lobby: { join: public, publish: members, history: { size: 0 } }
`;

// The backend publisher library (app/publisher) on the gateways' real Redis: its messages interleave
// with client and server API publishes in one contiguous seq order, resume from history, and share the
// server API's idempotency keys.
describe('the Redis publisher library', () => {
  const cleanups: (() => unknown)[] = [];
  let a: GatewayProcess, b: GatewayProcess;
  let publisher: Publisher<AppMessages>;

  beforeAll(async () => {
    const [redisServer, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    const env = { ADAPTER: 'redis', REDIS_URL: redisServer.url, NAMESPACES_FILE: writeNamespaces(NAMESPACES), API_KEYS_FILE: writeNamespaces(`${API_KEY}\n`, 'keys') };
    [a, b] = (await Promise.all(
      ['a', 'b'].map(async (name) => {
        const [gateway, stop] = await startGateway({ env, pod: `pub-${name}` });
        cleanups.push(stop);
        return gateway;
      }),
    )) as [GatewayProcess, GatewayProcess];
    const redis = new Redis(redisServer.url);
    cleanups.push(() => redis.quit());
    publisher = createPublisher<AppMessages>({ redis, history: { lobby: { size: 0, ttlSeconds: 0 }, default: { size: 1000, ttlSeconds: 86_400 } } });
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const connect = async (gateway: GatewayProcess, userId: string): Promise<TestClient> => {
    const [client, close] = await connectClient(gateway.url, { userId });
    cleanups.push(close);
    return client;
  };
  const api = (body: unknown) =>
    fetch(`${a.internalUrl}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` }, body: JSON.stringify(body) }).then(
      async (res) => (await res.json()) as { seq: number; duplicate: boolean },
    );

  it('interleaves with client and server API publishes in one contiguous order, seen alike on every pod', async () => {
    const room = 'team:mixed';
    const [onA, onB] = await Promise.all([connect(a, 'ann'), connect(b, 'bob')]);
    for (const client of [onA, onB]) await client.request('room:join', { room });
    const seqs: number[] = [];
    for (let n = 0; n < 9; n += 1) {
      if (n % 3 === 0) seqs.push((await publisher.publish(room, 'team:msg', { by: 'publisher', n })).envelope.seq);
      else if (n % 3 === 1) seqs.push((await api({ room, type: 'team:msg', payload: { by: 'api', n } })).seq);
      else seqs.push(((await onA.request('publish', { room, type: 'team:msg', payload: { by: 'client', n } })) as unknown as { seq: number }).seq);
    }
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    for (const client of [onA, onB]) {
      await waitFor('9 messages', () => client.received.filter((e) => e.room === room).length === 9);
      expect(client.received.filter((e) => e.room === room).map((e) => [e.seq, (e.payload as { n: number }).n])).toEqual(seqs.map((seq, n) => [seq, n]));
    }
    // A client that was away resumes the publisher's messages from history like any other.
    const [late, closeLate] = await connectClient(b.url, { userId: 'late' });
    cleanups.push(closeLate);
    expect(await late.request('room:join', { room, lastSeq: seqs[5] })).toMatchObject({ ok: true, resume: 'replay', replayed: 3 });
  });

  it('shares idempotency keys with the server API, and honours live-only namespaces', async () => {
    const room = 'orders:acme-77';
    const first = await api({ room, type: 'order:updated', payload: { id: 77 }, idempotencyKey: 'order-77-v1' });
    const retried = await (publisher as unknown as Publisher).publish(room, 'order:updated', { id: 77 }, { idempotencyKey: 'order-77-v1' });
    expect(retried).toMatchObject({ duplicate: true, envelope: { seq: first.seq } });

    const live = await publisher.publish('lobby:x', 'team:msg', { by: 'publisher', n: 1 });
    const reader = await connect(a, 'reader');
    expect(await reader.request('room:join', { room: 'lobby:x', lastSeq: live.envelope.seq - 1 })).toMatchObject({ ok: true, resume: 'reset' });
  });

  it('refuses bad rooms, protocol types and keys before touching Redis', async () => {
    const loose = publisher as unknown as Publisher;
    await expect(loose.publish('no-namespace', 'team:msg', {})).rejects.toThrow(TypeError);
    await expect(loose.publish('team:x', 'room:reset', {})).rejects.toThrow(/protocol type/);
    await expect(loose.publish('team:x', 'team:"msg', {})).rejects.toThrow(TypeError);
    await expect(loose.publish('team:x', 'team:msg', undefined)).rejects.toThrow(/payload is required/);
    await expect(loose.publish('team:x', 'team:msg', {}, { idempotencyKey: 'has space' })).rejects.toThrow(/idempotencyKey/);
  });
});
