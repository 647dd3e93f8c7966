import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import { type LocalFleet, startLocalFleet } from '../../scripts/fleet/fleet.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { checkDeliveries } from '../../scripts/chaos/measure.ts';
import { podOf, type StockClient, startStockClient } from '../../scripts/chaos/stock.ts';
import { metricValue } from '../helpers/process-memory.ts';
import { createRedisBackplane } from '../../app/gateway/backplane/redis.ts';

// Connection state recovery across pods for the stock socket.io-client (default options) through
// HAProxy: real redis-server, real gateway processes, the session on Redis. A drained, a SIGKILLed
// and a blipped connection come back on another pod with `recovered === true`, their rooms, and every
// missed message once and in order; past the maximum duration or the history they resync.

const MAX_DISCONNECTION_MS = 6_000;
const HISTORY_SIZE = 200;

describe('stock clients: connection state recovery across pods', () => {
  let fleet: LocalFleet;
  let stopFleet: () => Promise<void>;
  let publisher: Backplane;
  let stopPublisher: () => Promise<void>;
  const clients: StockClient[] = [];
  let n = 0;

  beforeAll(async () => {
    [fleet, stopFleet] = await startLocalFleet({
      replicas: 2,
      graceMs: 10_000,
      env: {
        DRAIN_NOTICE_DELAY_MS: '1200',
        DRAIN_WINDOW_MS: '2000',
        DRAIN_JITTER_MS: '2000',
        SHUTDOWN_DEADLINE_MS: '8000',
        RECOVERY_MAX_DISCONNECTION_MS: String(MAX_DISCONNECTION_MS),
        HISTORY_SIZE: String(HISTORY_SIZE),
      },
    });
    // The gateway's own publish code, trimming history to the fleet's HISTORY_SIZE.
    const backplane = createRedisBackplane({ url: fleet.redisUrl, name: 'test-publisher', historySize: HISTORY_SIZE });
    await waitFor('the test publisher on Redis', () => backplane.isReady());
    [publisher, stopPublisher] = [backplane, () => backplane.close()];
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.socket.disconnect();
    await stopPublisher?.();
    await stopFleet?.();
  });

  /**
   * Stock clients on both transports, until one pod holds both transports. Each follows the two
   * streamed rooms and a quiet room of its own, so each has an offset of its own (the per-recipient
   * path) and a room whose position comes only from its join.
   */
  async function clientsOnOnePod(tag: string): Promise<{ pod: string; onPod: StockClient[]; rooms: string[] }> {
    const rooms = [`chat:${tag}-a`, `chat:${tag}-b`];
    const batch: StockClient[] = [];
    for (let round = 0; round < 3; round += 1) {
      const more = Array.from({ length: 8 }, (_, i) =>
        startStockClient({
          url: fleet.url,
          transport: Math.floor(i / 2) % 2 ? 'polling' : 'websocket',
          rooms: [rooms[0]!, `chat:${tag}-own-${round}-${i}`, rooms[1]!],
          auth: { userId: `${tag}-${round}-${i}` },
        }),
      );
      clients.push(...more);
      batch.push(...more);
      await waitFor(`${tag}: every client joined`, () => batch.every((c) => [...c.deliveries.values()].every((d) => d.joinedAt !== null) && podOf(c) !== '?'), 15_000);
      const byPod = new Map<string, StockClient[]>();
      for (const c of batch) byPod.set(podOf(c)!, [...(byPod.get(podOf(c)!) ?? []), c]);
      const [pod, onPod] = [...byPod].sort((x, y) => y[1].length - x[1].length)[0]!;
      if (new Set(onPod.map((c) => c.transport)).size === 2) return { pod, onPod, rooms };
    }
    throw new Error(`${tag}: no pod held clients of both transports after 24 clients`);
  }

  /** Publishes into the rooms every 20 ms while `during` runs, then a last one; returns the last seq per room. */
  async function streamWhile(rooms: string[], during: () => Promise<unknown>): Promise<Map<string, number>> {
    let stop = false;
    const last = new Map<string, number>();
    const loop = (async () => {
      for (let i = 0; !stop && i < 2_000; i += 1) {
        for (const room of rooms) {
          const e = await publisher.publish({ room, type: 'chat:message', payload: { from: 'stream', text: `m${(n += 1)}` }, from: 'stream' });
          last.set(room, e.seq);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await during();
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await loop;
    return last;
  }

  function expectExactlyOnceInOrder(cs: StockClient[], last: Map<string, number>): void {
    for (const c of cs) {
      for (const [room, d] of c.deliveries) {
        if (!last.has(room)) {
          expect(d.delivered, `nothing was published into ${room}`).toEqual([]);
          continue;
        }
        expect(checkDeliveries({ joinedAt: d.joinedAt!, delivered: d.delivered }, last.get(room)!), `${c.transport} client in ${room}`).toEqual({
          lost: 0,
          duplicates: 0,
          outOfOrder: 0,
          unexpected: 0,
        });
      }
    }
  }

  /** Same rooms after recovery: a message into each client's quiet room of its own reaches it, once. */
  async function expectInOwnRooms(cs: StockClient[]): Promise<void> {
    const sent = new Map<StockClient, [string, number]>();
    for (const c of cs) {
      const own = [...c.deliveries.keys()].find((room) => room.includes('-own-'))!;
      sent.set(c, [own, (await publisher.publish({ room: own, type: 'chat:message', payload: { from: 's', text: 'own' }, from: 's' })).seq]);
    }
    await waitFor('each client has the message of its own room', () => cs.every((c) => c.deliveries.get(sent.get(c)![0])!.delivered.includes(sent.get(c)![1])), 10_000);
    for (const c of cs) expect(c.deliveries.get(sent.get(c)![0])!.delivered).toEqual([sent.get(c)![1]]);
  }

  async function allCaughtUp(cs: StockClient[], last: Map<string, number>): Promise<void> {
    await waitFor('every client has the last message of each streamed room', () => cs.every((c) => [...last].every(([room, seq]) => c.deliveries.get(room)!.delivered.at(-1) === seq)), 15_000);
  }

  it('SIGTERM drain: back on the other pod, recovered, every missed message once and in order', async () => {
    const { pod, onPod, rooms } = await clientsOnOnePod('drain');
    const last = await streamWhile(rooms, async () => {
      expect(await fleet.terminate(pod)).toMatchObject({ code: 0, killedAfterGrace: false });
      await waitFor('clients of the drained pod back elsewhere', () => onPod.every((c) => c.socket.connected && podOf(c) !== pod && podOf(c) !== '?'), 15_000);
    });
    await allCaughtUp(onPod, last);
    for (const c of onPod) {
      expect(c.connections.at(-1)!.recovered).toBe(true);
      expect(c.resyncs).toBe(0);
      expect(c.errors).toEqual([]);
    }
    expectExactlyOnceInOrder(onPod, last);
    await expectInOwnRooms(onPod);
    await fleet.waitForReady();
  });

  it('SIGKILL: nothing persisted at the end, yet recovered on the survivor with nothing lost or repeated', async () => {
    const { pod, onPod, rooms } = await clientsOnOnePod('kill');
    const last = await streamWhile(rooms, async () => {
      expect((await fleet.kill(pod)).signal).toBe('SIGKILL');
      await waitFor('clients of the killed pod back elsewhere', () => onPod.every((c) => c.socket.connected && podOf(c) !== pod && podOf(c) !== '?'), 20_000);
    });
    await allCaughtUp(onPod, last);
    for (const c of onPod) {
      expect(c.connections.at(-1)!.recovered).toBe(true);
      expect(c.resyncs).toBe(0);
    }
    expectExactlyOnceInOrder(onPod, last);
    await expectInOwnRooms(onPod);
    await fleet.waitForReady();
  });

  it('a network blip (the transport drops under the client): recovered, nothing lost or repeated', async () => {
    const { onPod, rooms } = await clientsOnOnePod('blip');
    const last = await streamWhile(rooms, async () => {
      for (const c of onPod) c.socket.io.engine.close();
      await waitFor('blipped clients back', () => onPod.every((c) => c.socket.connected && c.connections.length === 2), 15_000);
    });
    await allCaughtUp(onPod, last);
    for (const c of onPod) expect(c.connections.map((x) => x.recovered)).toEqual([false, true]);
    expectExactlyOnceInOrder(onPod, last);
  });

  it('past the maximum disconnection duration: not recovered, the application resyncs', async () => {
    const { onPod } = await clientsOnOnePod('late');
    const c = onPod[0]!;
    // The client's own backoff waits longer than the maximum before it tries again.
    c.socket.io.reconnectionDelay(MAX_DISCONNECTION_MS + 1_500).reconnectionDelayMax(MAX_DISCONNECTION_MS + 1_500).randomizationFactor(0);
    c.socket.io.engine.close();
    await waitFor('the late client back', () => c.socket.connected && c.connections.length === 2, 20_000);
    expect(c.connections[1]!.recovered).toBe(false);
    expect(c.resyncs).toBe(1);
  }, 30_000);

  it('beyond the history window: not recovered, the application resyncs', async () => {
    const { onPod, rooms } = await clientsOnOnePod('hist');
    const c = onPod[0]!;
    // Held off until history has moved past it, then reconnected as its backoff would.
    c.socket.io.reconnection(false);
    c.socket.io.engine.close();
    await waitFor('the client disconnected', () => !c.socket.connected);
    for (let i = 0; i < HISTORY_SIZE + 20; i += 1) await publisher.publish({ room: rooms[0]!, type: 'chat:message', payload: { from: 's', text: 'x' }, from: 's' });
    c.socket.io.reconnection(true);
    c.socket.connect();
    await waitFor('the client back', () => c.socket.connected && c.connections.length === 2, 15_000);
    expect(c.connections[1]!.recovered).toBe(false);
    // It did ask (pid and offset), and the gateway said why not.
    let refusedForHistory = 0;
    for (const p of await fleet.pods()) refusedForHistory += await metricValue(fleet.podInternalUrl(p.name), 'rt_recovery_attempts_total', { outcome: 'history' });
    expect(refusedForHistory).toBeGreaterThanOrEqual(1);
  });

  it('hostile pid and offset in the handshake: connected without recovery, nothing crashes, nobody else’s session', async () => {
    const { onPod, rooms } = await clientsOnOnePod('forge');
    const victim = onPod[0]!;
    const pid = (victim.socket as unknown as { _pid: string })._pid;
    const offset = (victim.socket as unknown as { _lastOffset: string })._lastOffset;
    expect(pid).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(offset).toMatch(/^r1\./);
    const attempts: Record<string, unknown>[] = [
      { pid: 'x'.repeat(10_000), offset: 'r1.1' },
      { pid, offset: 'r1.' + 'z'.repeat(5_000) },
      { pid, offset: 'r1.zzzzzzzzzzzz' },
      { pid, offset: 'r1.' + '.'.repeat(500) },
      { pid: '../../etc', offset: 'r1.1.2' },
      { pid: 'AAAAAAAAAAAAAAAAAAAA', offset: 'r1.1' },
      { pid, offset: 'r1.1.1' },
      // The real pid and offset of another user: a pid is that user's, never a way into their rooms.
      { pid, offset },
    ];
    for (const [i, auth] of attempts.entries()) {
      const socket = io(fleet.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { ...auth, userId: `intruder-${i}` } });
      const got: number[] = [];
      socket.on('chat:message', (e: { seq: number }) => got.push(e.seq));
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      expect(socket.recovered, JSON.stringify(auth).slice(0, 80)).toBe(false);
      await publisher.publish({ room: rooms[0]!, type: 'chat:message', payload: { from: 's', text: 'after' }, from: 's' });
      await new Promise((r) => setTimeout(r, 200));
      expect(got).toEqual([]);
      socket.disconnect();
    }
    // The victim is untouched and both pods still serve.
    expect(victim.socket.connected).toBe(true);
    for (const p of await fleet.pods()) expect((await fetch(fleet.podInternalUrl(p.name) + '/healthz')).status).toBe(200);
    let refused = 0;
    for (const p of await fleet.pods()) {
      for (const outcome of ['malformed', 'unknown', 'mismatch', 'history', 'other_user']) refused += await metricValue(fleet.podInternalUrl(p.name), 'rt_recovery_attempts_total', { outcome });
    }
    expect(refused).toBeGreaterThanOrEqual(attempts.length);
  });
});
