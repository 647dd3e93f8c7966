import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient, GatewayClientError } from '../../app/client/index.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';
import { startRedisGateways } from '../helpers/gateways.ts';
import { hs256Token, JWT_ENV } from '../helpers/tokens.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

/** An application's own message map: the SDK types `publish` and `message` by it. */
type TeamMessages = {
  'team:msg': { n: number };
  'ticket:note': { text: string };
};

// The generic SDK (subscribe, publish, presence, subscription tokens, exactly-once publishes) against
// two real gateway processes on one real redis-server, with JWT auth and the example namespaces.
describe('the SDK: subscriptions and exactly-once publishes', () => {
  const cleanups: (() => unknown)[] = [];
  let env: Record<string, string>;
  let a: GatewayProcess, b: GatewayProcess;

  const client = async (gateway: GatewayProcess, userId: string, extra: Partial<Parameters<typeof createGatewayClient>[0]> = {}): Promise<GatewayClient<TeamMessages>> => {
    const c = createGatewayClient<TeamMessages>({
      url: gateway.url,
      token: await hs256Token({ sub: userId, expiresIn: 600 }),
      transports: ['websocket'],
      backoff: { baseMs: 100, capMs: 500 },
      ...extra,
    });
    cleanups.push(() => c.close());
    return c;
  };

  beforeAll(async () => {
    const [fleet, stop] = await startRedisGateways(['sdk-a', 'sdk-b'], { ...JWT_ENV, NAMESPACES_FILE: writeNamespaces() });
    cleanups.push(stop);
    ({ env, gateways: [a, b] } = fleet);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('subscribe() gives a per-room object with its own state, typed messages, publish and presence', async () => {
    const room = 'team:sdk';
    const [ann, bob] = await Promise.all([client(a, 'ann'), client(b, 'bob')]);
    const annRoom = ann.subscribe(room);
    const presence: string[] = [];
    annRoom.on('presence', ({ userId, joined }) => presence.push(`${joined ? '+' : '-'}${userId}`));
    // Presence events are live: ann hears bob arrive only if she is in the room first (presence() gives the snapshot).
    await waitFor('ann subscribed', () => annRoom.state === 'subscribed');
    const bobRoom = bob.subscribe(room);
    const other = bob.subscribe('team:other');
    const seen: number[] = [];
    bobRoom.on('message', (envelope) => {
      if (envelope.type === 'team:msg') seen.push(envelope.payload.n);
    });
    const otherSeen: unknown[] = [];
    other.on('message', (envelope) => otherSeen.push(envelope));

    await waitFor('both subscribed', () => annRoom.state === 'subscribed' && bobRoom.state === 'subscribed');
    for (let n = 1; n <= 5; n += 1) expect(await annRoom.publish('team:msg', { n })).toMatchObject({ room, duplicate: false });
    await waitFor('5 messages on bob', () => seen.length === 5);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(otherSeen).toEqual([]);
    await waitFor('ann sees bob arrive', () => presence.includes('+bob'));
    expect(await annRoom.presence()).toEqual({ room, users: [{ userId: 'ann', connections: 1 }, { userId: 'bob', connections: 1 }], connections: 2 });
    await bobRoom.unsubscribe();
    expect(bobRoom.state).toBe('unsubscribed');
    await waitFor('ann sees bob leave', () => presence.includes('-bob'));
  });

  it('joins token rooms with a token function, and a refused subscription ends in state failed with the code', async () => {
    const carol = await client(a, 'carol');
    let fetched = 0;
    const notes = carol.subscribe('tickets:42', {
      token: () => {
        fetched += 1;
        return hs256Token({ sub: 'carol', expiresIn: 60, claims: { room: 'tickets:42' } });
      },
    });
    await waitFor('subscribed with a token', () => notes.state === 'subscribed');
    expect(fetched).toBe(1);
    expect(await notes.publish('ticket:note', { text: 'hello' })).toMatchObject({ duplicate: false });
    await expect(notes.publish('ticket:note', { text: '' })).rejects.toMatchObject({ code: 'payload_invalid' });

    const errors: GatewayClientError[] = [];
    const stolen = carol.subscribe('tickets:43', { token: await hs256Token({ sub: 'dave', claims: { room: 'tickets:43' } }) });
    stolen.on('error', (err) => errors.push(err as GatewayClientError));
    await waitFor('refused', () => stolen.state === 'failed');
    expect(errors.map((e) => e.code)).toEqual(['subscription_token_invalid']);
    expect(carol.rooms).not.toContain('tickets:43');
  });

  it('a publish whose ack is lost (pod paused, then killed) is retried with its key: every message reaches readers exactly once, in order', async () => {
    const room = 'team:exactly-once';
    const [c, stopC] = await startGateway({ env, pod: 'sdk-c' });
    cleanups.push(stopC);
    const writer = await client(c, 'writer', { requestTimeoutMs: 400, publishRetryMs: 30_000 });
    const reader = await client(b, 'reader');
    const received: number[] = [];
    reader.subscribe(room).on('message', (envelope) => {
      if (envelope.type === 'team:msg') received.push(envelope.payload.n);
    });
    const writerRoom = writer.subscribe(room);
    await waitFor('both subscribed', () => writerRoom.state === 'subscribed' && reader.getSubscription(room)?.state === 'subscribed');

    const results: { n: number; duplicate: boolean }[] = [];
    const writing = (async () => {
      for (let n = 1; n <= 30; n += 1) {
        results.push({ n, duplicate: (await writerRoom.publish('team:msg', { n })).duplicate });
        // Paced, so the pause and the kill below land while publishes are still being made (unpaced, the
        // 30 can all be acked before the test sees the 10th).
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    // Lost acks, twice: the pod freezes with publishes in flight (their acks time out, the retries queue
    // behind them), then resumes; later it is killed outright and a new one takes its port.
    await waitFor('10 published', () => results.length >= 10);
    c.child.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    c.child.kill('SIGCONT');
    await waitFor('20 published', () => results.length >= 20, 20_000);
    await c.stop('SIGKILL');
    const [c2, stopC2] = await startGateway({ env, pod: 'sdk-c2', port: c.port });
    cleanups.push(stopC2);
    await writing;
    await waitFor('30 received', () => received.length >= 30, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(received).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(writer.pod).toBe(c2.pod);
    // Acks were lost and publishes retried — whether a retry was answered from the idempotency record
    // (the pod had applied the first try) or published (it had not) depends on where the pause fell; either
    // way the reader's 1..30, each once, shows no retry published twice.
    expect(writer.stats.publishRetries).toBeGreaterThan(0);
    expect(results.filter((r) => r.duplicate).length).toBeLessThanOrEqual(writer.stats.publishRetries);
  });
});
