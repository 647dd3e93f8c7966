// The SDK against real gateway processes on a real Redis: tokens, direct messages, resume after a
// gateway restart.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient } from '../../app/client/index.ts';
import { readCounter, sendChat, sendDirect } from '../../app/client/demo.ts';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { type RedisServer, startRedis } from '../../scripts/fleet/redis.ts';

const SECRET = 'test-secret-that-is-at-least-32-characters-long';
const cleanups: (() => Promise<void>)[] = [];
const clients: GatewayClient[] = [];
let redis: RedisServer;
let jwtGateway: GatewayProcess;

async function token(sub: string, lifetimeSeconds: number): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + lifetimeSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

function track(client: GatewayClient): GatewayClient {
  clients.push(client);
  return client;
}

beforeAll(async () => {
  const [r, stopRedis] = await startRedis();
  redis = r;
  cleanups.push(stopRedis);
  // auth:refresh goes out AUTH_REFRESH_LEAD_MS before exp: with 60 s tokens and a 59 s lead, after ~1 s.
  const [g, stop] = await startGateway({
    env: { ADAPTER: 'redis', REDIS_URL: redis.url, AUTH_MODE: 'jwt', JWT_SECRET: SECRET, AUTH_REFRESH_LEAD_MS: '59000' },
  });
  jwtGateway = g;
  cleanups.push(stop);
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

describe('SDK against a real gateway', () => {
  it('refreshes its token when the gateway sends auth:refresh, and stays connected', async () => {
    let issued = 0;
    const client = track(
      createGatewayClient({
        url: jwtGateway.url,
        transports: ['websocket'],
        getToken: async () => {
          issued += 1;
          return token('alice', 60);
        },
      }),
    );
    const errors: string[] = [];
    client.on('error', (e) => errors.push(`${e.code}: ${e.message}`));
    await waitFor('connected', () => client.state === 'connected');
    await waitFor('a second token, sent with auth:refresh', () => issued >= 2);
    // The gateway accepted it: a request after the refresh still works on the same connection.
    await waitFor('the refresh ack', async () => (await readCounter(client)).ok && errors.length === 0);
    expect(client.userId).toBe('alice');
    expect(client.stats.connects).toBe(1);
    expect(errors).toEqual([]);
  });

  it('closes with a clear error when the token is refused and there is no getToken', async () => {
    const client = track(createGatewayClient({ url: jwtGateway.url, token: 'not-a-jwt', transports: ['websocket'] }));
    const errors: string[] = [];
    client.on('error', (e) => errors.push(e.code));
    await waitFor('closed', () => client.state === 'closed');
    expect(errors).toEqual(['auth_invalid']);
  });

  it('delivers direct messages across gateways and resumes them after its gateway restarts', async () => {
    const env = { ADAPTER: 'redis', REDIS_URL: redis.url, AUTH_MODE: 'none' };
    const [a, stopA] = await startGateway({ env });
    const [b, stopB] = await startGateway({ env });
    cleanups.push(stopA, stopB);
    const bob = track(createGatewayClient({ url: b.url, userId: 'bob', directMessages: true, transports: ['polling', 'websocket'], backoff: { baseMs: 200, capMs: 1_000 } }));
    const carol = track(createGatewayClient({ url: a.url, userId: 'carol', transports: ['websocket'] }));
    const inbox: DurableEnvelope[] = [];
    bob.on('message', (e) => e.type === 'dm:message' && inbox.push(e));
    await waitFor("bob's own room joined", () => bob.rooms.includes('user:bob') && bob.lastSeq('user:bob') !== null);
    await sendDirect(carol, 'bob', 'one');
    await waitFor('first DM', () => inbox.length === 1);

    // Bob's gateway dies; DMs sent meanwhile wait in the room's history on Redis.
    await b.stop('SIGKILL');
    await sendDirect(carol, 'bob', 'two');
    await sendDirect(carol, 'bob', 'three');
    const [b2, stopB2] = await startGateway({ env, port: b.port, pod: `${b.pod}-again` });
    cleanups.push(stopB2);
    await waitFor('bob back on the restarted gateway', () => bob.pod === b2.pod, 20_000);
    await waitFor('three DMs', () => inbox.length === 3);
    expect(inbox.map((e) => (e.payload as { text: string }).text)).toEqual(['one', 'two', 'three']);
    expect(inbox.every((e) => e.room === 'user:bob' && (e.payload as { from: string }).from === 'carol')).toBe(true);
  });

  it('resumes a long gap in pages (join replay, then history:fetch while more: true): everything once, in order', async () => {
    const env = {
      ADAPTER: 'redis', REDIS_URL: redis.url, AUTH_MODE: 'none',
      RATE_LIMIT_PER_SECOND: '10000', RATE_LIMIT_BURST: '10000', USER_RATE_LIMIT_PER_SECOND: '10000', USER_RATE_LIMIT_BURST: '10000',
      INBOUND_BYTES_PER_SECOND: '100000000', INBOUND_BYTES_BURST: '100000000',
    };
    const [a, stopA] = await startGateway({ env });
    const [b, stopB] = await startGateway({ env });
    cleanups.push(stopA, stopB);
    const room = 'chat:long-gap';
    const reader = track(createGatewayClient({ url: b.url, userId: 'reader', rooms: [room], backoff: { baseMs: 200, capMs: 1_000 } }));
    const writer = track(createGatewayClient({ url: a.url, userId: 'writer', transports: ['websocket'] }));
    const got: DurableEnvelope[] = [];
    reader.on('message', (e) => e.room === room && got.push(e));
    await waitFor('the reader in the room', () => reader.lastSeq(room) !== null);
    await sendChat(writer, room, 'before');
    await waitFor('the first message', () => got.length === 1);

    // 600 messages of 2000 characters (~1.3 MB, 200 envelopes a page at most) while the reader's gateway is down.
    await b.stop('SIGKILL');
    for (let i = 0; i < 600; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => sendChat(writer, room, `${i + j}`.padEnd(2_000, '.'))));
    const fetchesBefore = reader.stats.gapFetches;
    const [b2, stopB2] = await startGateway({ env, port: b.port, pod: `${b.pod}-again` });
    cleanups.push(stopB2);
    await waitFor('all 601 messages', () => got.length === 601, 30_000);
    const seqs = got.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    expect(reader.stats.gapFetches - fetchesBefore).toBeGreaterThanOrEqual(3);
    expect(reader.pod).toBe(b2.pod);
  });
});
