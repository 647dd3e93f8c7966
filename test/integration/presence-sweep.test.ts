import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { startRedisGateways } from '../helpers/gateways.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';
import { metricValue } from '../helpers/process-memory.ts';
import type { GatewayProcess } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis, startRedisCluster } from '../../scripts/fleet/redis.ts';
import { startGateway } from '../../scripts/fleet/gateway.ts';
import { createRedisBackplane } from '../../app/gateway/backplane/redis.ts';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';

const API_KEY = 'sweep-0123456789abcdef0123456789abcdef';
const TTL_SECONDS = 2;
const INTERVAL_MS = 500;
/** The documented bound (decision 0019): FLEET_STATS_TTL_SECONDS + 2 × FLEET_STATS_INTERVAL_MS after the kill. */
const BOUND_MS = TTL_SECONDS * 1000 + 2 * INTERVAL_MS;
/** What a loaded 2-core machine may add to it (a sweep's round trips, the adapter hop, the client). */
const MARGIN_MS = 5_000;
/** Rooms `team:*` keep presence; AUTH_MODE=none (the fleet helpers' default) lets each client say its user id. */
const NAMESPACES = 'namespaces:\n  team:\n    join: authenticated\n    publish: members\n    presence: true\n';
const FAST_PRESENCE_ENV = { FLEET_STATS_TTL_SECONDS: String(TTL_SECONDS), FLEET_STATS_INTERVAL_MS: String(INTERVAL_MS) };

const leavesOf = (client: TestClient, room: string): string[] =>
  client.control.filter((e) => e.type === 'presence:leave' && e.room === room).map((e) => (e.payload as { userId: string }).userId);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// A gateway killed without cleaning up (SIGKILL: what an OOM kill or a lost node looks like to Redis):
// one survivor sweeps its presence and the rooms hear `presence:leave` for its users, once.
describe('presence of a killed gateway is swept (real gateways on one redis-server)', () => {
  const cleanups: (() => unknown)[] = [];
  let a: GatewayProcess, b: GatewayProcess, c: GatewayProcess;
  const connect = async (gateway: GatewayProcess, userId: string): Promise<TestClient> => {
    const [client, close] = await connectClient(gateway.url, { userId });
    cleanups.push(close);
    return client;
  };
  const presence = async (gateway: GatewayProcess, room: string) => {
    const res = await fetch(`${gateway.internalUrl}/api/presence`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ room }),
    });
    return (await res.json()) as { users: { userId: string; connections: number }[]; connections: number };
  };

  beforeAll(async () => {
    const [fleet, stop] = await startRedisGateways(['sweep-a', 'sweep-b', 'sweep-c'], {
      NAMESPACES_FILE: writeNamespaces(NAMESPACES),
      API_KEYS_FILE: writeNamespaces(`${API_KEY}\n`, 'api-keys'),
      ...FAST_PRESENCE_ENV,
    });
    cleanups.push(stop);
    [a, b, c] = fleet.gateways;
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('sends presence:leave once for the users only on the killed pod, none for users still connected elsewhere', async () => {
    const room = 'team:sweep';
    const [wendyOnA, waltOnC, annOnA, annOnB, bobOnB, carolOnB, erinOnB] = await Promise.all([
      connect(a, 'wendy'),
      connect(c, 'walt'),
      connect(a, 'ann'),
      connect(b, 'ann'),
      connect(b, 'bob'),
      connect(b, 'carol'),
      connect(b, 'erin'),
    ]);
    for (const client of [wendyOnA, waltOnC, annOnA, annOnB, bobOnB, carolOnB, erinOnB]) expect(await client.request('room:join', { room })).toMatchObject({ ok: true });
    await waitFor('all 7 connections present', async () => (await presence(a, room)).connections === 7);
    // B has refreshed (index and heartbeat) at least once.
    await sleep(2 * INTERVAL_MS);

    await b.stop('SIGKILL');
    const killedAt = Date.now();
    // erin is back at once, on A, before B's entries expire (or, on a slow machine, just after):
    // her live connection gets no leave either way.
    const erinOnA = await connect(a, 'erin');
    expect(await erinOnA.request('room:join', { room })).toMatchObject({ ok: true });

    for (const watcher of [wendyOnA, waltOnC]) {
      await waitFor('presence:leave of bob and carol', () => ['bob', 'carol'].every((user) => leavesOf(watcher, room).includes(user)), BOUND_MS + MARGIN_MS + 20_000);
    }
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThan(BOUND_MS + MARGIN_MS);

    // Long enough for a second sweep by the other survivor (a claim is retried every 2 intervals).
    await sleep(TTL_SECONDS * 1000 + 4 * INTERVAL_MS);
    for (const watcher of [wendyOnA, waltOnC, annOnA, erinOnA]) expect(leavesOf(watcher, room).sort()).toEqual(['bob', 'carol']);
    const expected = { users: [{ userId: 'ann', connections: 1 }, { userId: 'erin', connections: 1 }, { userId: 'walt', connections: 1 }, { userId: 'wendy', connections: 1 }], connections: 4 };
    for (const survivor of [a, c]) expect(await presence(survivor, room)).toMatchObject(expected);
    expect(await wendyOnA.request('presence:get', { room })).toMatchObject(expected);

    // One survivor swept B, once: its entries of bob and carol; ann's and erin's too unless a write of
    // theirs on A (a refresh, erin's join) came after the expiry and already dropped them (no leave owed).
    const [sweeps, leaves, entries] = await Promise.all([
      Promise.all([a, c].map((g) => metricValue(g.internalUrl, 'rt_presence_sweeps_total', { outcome: 'complete' }))),
      Promise.all([a, c].map((g) => metricValue(g.internalUrl, 'rt_presence_sweep_leaves_total'))),
      Promise.all([a, c].map((g) => metricValue(g.internalUrl, 'rt_presence_swept_entries_total'))),
    ]);
    expect(sweeps.sort()).toEqual([0, 1]);
    expect(leaves.sort()).toEqual([0, 2]);
    expect(entries[0]! + entries[1]!).toBeGreaterThanOrEqual(2);
    expect(entries[0]! + entries[1]!).toBeLessThanOrEqual(4);
  });
});

describe('presence of a killed gateway is swept on Redis Cluster', () => {
  const cleanups: (() => unknown)[] = [];

  beforeAll(async () => {
    const [cluster, stopCluster] = await startRedisCluster(3);
    cleanups.push(stopCluster);
    const env = { ADAPTER: 'redis-cluster', REDIS_URL: cluster.url, NAMESPACES_FILE: writeNamespaces(NAMESPACES), ...FAST_PRESENCE_ENV };
    for (const pod of ['sweep-cl-a', 'sweep-cl-b']) {
      const [gateway, stop] = await startGateway({ env, pod });
      cleanups.push(stop);
      gateways.push(gateway);
    }
  });
  const gateways: GatewayProcess[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('sweeps rooms on different shards, with the leaves once each', async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const connect = async (gateway: GatewayProcess, userId: string): Promise<TestClient> => {
      const [client, close] = await connectClient(gateway.url, { userId });
      cleanups.push(close);
      return client;
    };
    // Several rooms so their hash slots land on more than one master.
    const rooms = ['team:one', 'team:two', 'team:three', 'team:four'];
    const [watcher, annOnA, annOnB, bobOnB] = await Promise.all([connect(a, 'wendy'), connect(a, 'ann'), connect(b, 'ann'), connect(b, 'bob')]);
    for (const room of rooms) for (const client of [watcher, annOnA, annOnB, bobOnB]) expect(await client.request('room:join', { room })).toMatchObject({ ok: true });
    await waitFor('everyone present', async () => {
      const snapshots = await Promise.all(rooms.map((room) => watcher.request<{ connections: number }>('presence:get', { room })));
      return snapshots.every((s) => s.ok && s.connections === 4);
    });
    await sleep(2 * INTERVAL_MS);

    await b.stop('SIGKILL');
    const killedAt = Date.now();
    await waitFor('presence:leave of bob in every room', () => rooms.every((room) => leavesOf(watcher, room).includes('bob')), BOUND_MS + MARGIN_MS + 20_000);
    expect(Date.now() - killedAt).toBeLessThan(BOUND_MS + MARGIN_MS);
    await sleep(TTL_SECONDS * 1000 + 4 * INTERVAL_MS);
    for (const room of rooms) {
      expect(leavesOf(watcher, room)).toEqual(['bob']);
      expect(await watcher.request('presence:get', { room })).toMatchObject({ ok: true, users: [{ userId: 'ann', connections: 1 }, { userId: 'wendy', connections: 1 }], connections: 2 });
    }
    expect(await metricValue(a.internalUrl, 'rt_presence_sweep_leaves_total')).toBe(4);
  });
});

// The backplane's side of the sweep, on a real redis-server, one writer name per "gateway": the cases
// the fleet test cannot time on purpose.
describe('the presence sweep on the Redis backplane', () => {
  const cleanups: (() => unknown)[] = [];
  let redisUrl: string;
  let prefixes = 0;
  const TTL = 1;
  const expired = (): Promise<void> => sleep(TTL * 1000 + 200);

  beforeAll(async () => {
    const [redis, stop] = await startRedis();
    cleanups.push(stop);
    redisUrl = redis.url;
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  /** A backplane with a key prefix of its own, so each case starts from empty Redis. */
  const backplane = async (): Promise<Backplane> => {
    prefixes += 1;
    const b = createRedisBackplane({ url: redisUrl, keyPrefix: `sweep${prefixes}` });
    cleanups.push(() => b.close());
    await waitFor('backplane ready', () => b.isReady());
    return b;
  };
  /** What a gateway does when a user joins a room: index the room, then write the entry. */
  const join = async (b: Backplane, writer: string, room: string, userId: string, connections = 1) => {
    await b.notePresenceRooms(writer, [room], TTL, TTL * 1000);
    return b.writePresence(room, writer, [[userId, connections]], TTL);
  };
  /** One sweep as a gateway runs it: the leaves by room, or null when nothing was claimed. */
  const sweepOnce = async (b: Backplane, claimer: string): Promise<Record<string, string[]> | null> => {
    const dead = await b.claimPresenceSweep(claimer, 5_000);
    if (dead === null) return null;
    const leaves: Record<string, string[]> = {};
    let kept = 0;
    for (const room of await b.presenceRoomsOf(dead)) {
      const swept = await b.sweepPresenceRoom(room, dead);
      leaves[room] = swept.leaves;
      kept += swept.kept;
    }
    await b.finishPresenceSweep(dead, claimer, kept === 0, 200);
    return leaves;
  };

  it('keeps the leave owed when presence is read between the expiry and the sweep', async () => {
    const b = await backplane();
    expect(await join(b, 'dead/1', 'team:r', 'bob')).toEqual([{ userId: 'bob', joined: true }]);
    // bob also came and went through a live writer: his sorted-set score now outlives the dead entry, so
    // a read visits his hash after the expiry (a read that dropped expired fields would lose the leave).
    expect(await b.writePresence('team:r', 'live/1', [['bob', 1]], 60)).toEqual([]);
    expect(await b.writePresence('team:r', 'live/1', [['bob', 0]], 60)).toEqual([]);
    await expired();
    expect((await b.readPresence('team:r')).users).toEqual([]);
    expect((await b.readPresence('team:r')).users).toEqual([]);
    expect(await sweepOnce(b, 'live/1')).toEqual({ 'team:r': ['bob'] });
    // Forgotten with its index: nothing is claimed again.
    expect(await sweepOnce(b, 'live/1')).toBeNull();
    expect(await b.presenceRoomsOf('dead/1')).toEqual([]);
  });

  it('one claim per dead writer: a second sweeper finds nothing while the first holds it', async () => {
    const b = await backplane();
    await join(b, 'dead/1', 'team:r', 'bob');
    await expired();
    expect(await b.claimPresenceSweep('live/1', 5_000)).toBe('dead/1');
    expect(await b.claimPresenceSweep('live/2', 5_000)).toBeNull();
  });

  it('a user back on a live writer before the expiry gets neither a join nor a leave', async () => {
    const b = await backplane();
    await join(b, 'dead/1', 'team:r', 'erin');
    expect(await join(b, 'live/1', 'team:r', 'erin')).toEqual([]);
    await expired();
    await join(b, 'live/1', 'team:r', 'erin'); // live/1's refresh
    expect(await sweepOnce(b, 'live/1')).toEqual({ 'team:r': [] });
    expect((await b.readPresence('team:r')).users).toEqual([{ userId: 'erin', connections: 1 }]);
  });

  it('a user back on a live writer after the expiry gets a join from that write and no leave from the sweep', async () => {
    const b = await backplane();
    await join(b, 'dead/1', 'team:r', 'erin');
    await expired();
    expect(await join(b, 'live/1', 'team:r', 'erin')).toEqual([{ userId: 'erin', joined: true }]);
    expect(await sweepOnce(b, 'live/1')).toEqual({ 'team:r': [] });
    expect((await b.readPresence('team:r')).users).toEqual([{ userId: 'erin', connections: 1 }]);
  });

  it('a user whose last live connection leaves after the expiry gets one leave, from that write, none from the sweep', async () => {
    const b = await backplane();
    await join(b, 'dead/1', 'team:r', 'ann');
    await b.writePresence('team:r', 'live/1', [['ann', 1]], 60);
    await expired();
    expect(await b.writePresence('team:r', 'live/1', [['ann', 0]], 60)).toEqual([{ userId: 'ann', joined: false }]);
    expect(await sweepOnce(b, 'live/1')).toEqual({ 'team:r': [] });
  });

  it('two dead writers of one user: one leave, from whichever sweep empties the user', async () => {
    const b = await backplane();
    await join(b, 'dead/1', 'team:r', 'bob');
    await join(b, 'dead/2', 'team:r', 'bob');
    await expired();
    const first = await sweepOnce(b, 'live/1');
    const second = await sweepOnce(b, 'live/1');
    expect([...first!['team:r']!, ...second!['team:r']!]).toEqual(['bob']);
    expect(await sweepOnce(b, 'live/1')).toBeNull();
  });

  it('leaves entries that have not expired yet (a writer back, or clock skew) and retries the writer later', async () => {
    const b = await backplane();
    // The heartbeat says "all expired now", the entry itself lives 60 s.
    await b.notePresenceRooms('odd/1', ['team:r'], TTL, 0);
    await b.writePresence('team:r', 'odd/1', [['bob', 1]], 60);
    await sleep(50);
    expect(await b.claimPresenceSweep('live/1', 5_000)).toBe('odd/1');
    expect(await b.sweepPresenceRoom('team:r', 'odd/1')).toEqual({ removed: 0, kept: 1, leaves: [] });
    await b.finishPresenceSweep('odd/1', 'live/1', false, 200);
    expect(await b.claimPresenceSweep('live/2', 5_000)).toBeNull();
    await waitFor('the writer claimable again after the retry delay', () => b.claimPresenceSweep('live/2', 5_000).then((pod) => pod === 'odd/1'));
    expect((await b.readPresence('team:r')).users).toEqual([{ userId: 'bob', connections: 1 }]);
  });

  it('a writer that closed cleanly leaves nothing to claim', async () => {
    const b = await backplane();
    await join(b, 'gone/1', 'team:r', 'bob');
    expect(await b.writePresence('team:r', 'gone/1', [['bob', 0]], TTL)).toEqual([{ userId: 'bob', joined: false }]);
    await b.forgetPresenceWriter('gone/1');
    await expired();
    expect(await b.claimPresenceSweep('live/1', 5_000)).toBeNull();
  });
});
