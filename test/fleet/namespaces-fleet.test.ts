import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient, type GatewayClientError } from '../../app/client/index.ts';
import { type LocalFleet, startLocalFleet } from '../../scripts/fleet/fleet.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';
import { hs256Token, JWT_ENV } from '../helpers/tokens.ts';

type Messages = { 'order:updated': { n: number }; 'ticket:note': { text: string }; 'team:msg': { n: number }; 'lobby:wave': { n: number } };
const API_KEY = 'fleet-ns-api-key-0123456789abcdef01234';

// Every join policy through the local fleet's HAProxy entry (cookie stickiness, polling and WebSocket),
// with SDK clients, while a backend publishes over the server API and a pod is drained mid-stream.
describe('namespace policies on the local fleet', () => {
  let fleet: LocalFleet;
  const cleanups: (() => unknown)[] = [];

  beforeAll(async () => {
    const keys = writeNamespaces('', 'api-keys');
    writeFileSync(keys, `${API_KEY}\n`);
    const [started, stop] = await startLocalFleet({
      replicas: 2,
      env: {
        ...JWT_ENV,
        NAMESPACES_FILE: writeNamespaces(),
        API_KEYS_FILE: keys,
        DRAIN_NOTICE_DELAY_MS: '300',
        DRAIN_WINDOW_MS: '1500',
        DRAIN_JITTER_MS: '500',
      },
    });
    fleet = started;
    cleanups.push(stop);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const client = async (userId: string | null, claims?: Record<string, unknown>, transports: ('polling' | 'websocket')[] = ['polling', 'websocket']): Promise<GatewayClient<Messages>> => {
    const c = createGatewayClient<Messages>({
      url: fleet.url,
      ...(userId ? { getToken: () => hs256Token({ sub: userId, expiresIn: 600, ...(claims ? { claims } : {}) }) } : {}),
      transports,
      backoff: { baseMs: 100, capMs: 500 },
    });
    cleanups.push(() => c.close());
    return c;
  };
  const api = (body: unknown) =>
    fetch(`${fleet.internalUrl}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<{ ok: boolean; seq: number }>);
  const failedWith = async (c: GatewayClient<Messages>, room: string, token?: string): Promise<string> => {
    const subscription = c.subscribe(room, token ? { token } : {});
    const errors: string[] = [];
    subscription.on('error', (err) => errors.push((err as GatewayClientError).code));
    await waitFor(`${room} refused`, () => subscription.state === 'failed' && errors.length > 0);
    return errors[0]!;
  };

  it('claim, token, owner, authenticated and public: each admits whom it should and refuses the rest', async () => {
    const [ann, bob, anon] = await Promise.all([client('ann', { rooms: ['orders:acme-*'] }), client('bob', undefined, ['websocket']), client(null, undefined, ['polling'])]);
    const orders = ann.subscribe('orders:acme-1');
    const tickets = bob.subscribe('tickets:9', { token: () => hs256Token({ sub: 'bob', expiresIn: 60, claims: { room: 'tickets:9' } }) });
    const own = ann.subscribe('user:ann');
    const team = bob.subscribe('team:x');
    const lobby = anon.subscribe('lobby:x');
    await waitFor('every allowed subscription', () => [orders, tickets, own, team, lobby].every((s) => s.state === 'subscribed'), 15_000);

    expect(await failedWith(bob, 'orders:acme-1')).toBe('forbidden');
    expect(await failedWith(ann, 'tickets:9', await hs256Token({ sub: 'bob', claims: { room: 'tickets:9' } }))).toBe('subscription_token_invalid');
    expect(await failedWith(bob, 'user:ann')).toBe('forbidden');
    expect(await failedWith(anon, 'team:x')).toBe('auth_required');
    expect(await failedWith(ann, 'nowhere:x')).toBe('unknown_namespace');

    expect(await tickets.publish('ticket:note', { text: 'hi' })).toMatchObject({ duplicate: false });
    expect(await lobby.publish('lobby:wave', { n: 1 })).toMatchObject({ duplicate: false });
    await expect(orders.publish('order:updated', { n: 1 })).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('a backend publishes through the internal entry while a pod drains: readers on every transport get every message once, in order', async () => {
    const room = 'orders:acme-7';
    const readers = await Promise.all([client('r1', { rooms: ['orders:acme-*'] }, ['polling']), client('r2', { rooms: ['orders:acme-7'] }, ['websocket']), client('r3', { rooms: ['orders:*'] })]);
    const received = readers.map(() => [] as number[]);
    readers.forEach((r, i) => r.subscribe(room).on('message', (e) => e.type === 'order:updated' && received[i]!.push(e.payload.n)));
    await waitFor('readers subscribed', () => readers.every((r) => r.getSubscription(room)?.state === 'subscribed'), 15_000);
    const victim = readers[0]!.pod!;
    let n = 0;
    const publishing = (async () => {
      for (; n < 60; n += 1) {
        expect(await api({ room, type: 'order:updated', payload: { n }, idempotencyKey: `o7-${n}` })).toMatchObject({ ok: true });
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    await waitFor('publishing under way', () => n >= 10);
    await fleet.terminate(victim);
    await publishing;
    for (const list of received) await waitFor('all 60', () => list.length >= 60, 20_000);
    for (const list of received) expect(list).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(readers[0]!.pod).not.toBe(victim);
  });
});
