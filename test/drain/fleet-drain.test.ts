import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalFleet, startLocalFleet } from '../../scripts/fleet/fleet.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

// The stock socket.io-client (its own reconnection on) through HAProxy: whether a pod drains or is
// SIGKILLed, the client sees a transport close, reconnects by itself and lands on another pod.

interface StockClient {
  readonly socket: Socket;
  readonly transport: 'websocket' | 'polling';
  readonly pods: string[];
  readonly disconnects: string[];
  readonly hints: number[];
}

async function stockClient(url: string, transport: 'websocket' | 'polling'): Promise<StockClient> {
  const socket = io(url, {
    transports: [transport],
    forceNew: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1_000,
    // Long-polling needs the sticky cookie HAProxy sets (round-robin alternates pods: i / 2 mixes both transports on each).
    withCredentials: true,
  });
  const client: StockClient = { socket, transport, pods: [], disconnects: [], hints: [] };
  socket.on('server:draining', (e: { payload: { reconnectAfterMs: number } }) => client.hints.push(e.payload.reconnectAfterMs));
  socket.on('server:hello', (e: { payload: { pod: string } }) => client.pods.push(e.payload.pod));
  socket.on('disconnect', (reason) => client.disconnects.push(reason));
  await waitFor('stock client connected', () => client.pods.length > 0, 10_000);
  return client;
}

describe('stock clients through HAProxy when a pod ends', () => {
  let fleet: LocalFleet;
  let stopFleet: () => Promise<void>;
  const clients: StockClient[] = [];

  beforeAll(async () => {
    [fleet, stopFleet] = await startLocalFleet({
      replicas: 2,
      graceMs: 10_000,
      env: { DRAIN_NOTICE_DELAY_MS: '1200', DRAIN_WINDOW_MS: '2000', DRAIN_JITTER_MS: '2000', SHUTDOWN_DEADLINE_MS: '8000' },
    });
  });
  afterAll(async () => {
    for (const c of clients) c.socket.disconnect();
    await stopFleet?.();
  });

  async function clientsOnOnePod(): Promise<[string, StockClient[]]> {
    const batch = await Promise.all(Array.from({ length: 16 }, (_, i) => stockClient(fleet.url, Math.floor(i / 2) % 2 ? 'polling' : 'websocket')));
    clients.push(...batch);
    const byPod = new Map<string, StockClient[]>();
    for (const c of batch) byPod.set(c.pods.at(-1)!, [...(byPod.get(c.pods.at(-1)!) ?? []), c]);
    const [pod, onPod] = [...byPod].sort((a, b) => b[1].length - a[1].length)[0]!;
    expect(new Set(onPod.map((c) => c.transport))).toEqual(new Set(['websocket', 'polling']));
    return [pod, onPod];
  }

  it('SIGTERM: each client of the draining pod gets the hint, is closed by transport, and reconnects elsewhere by itself', async () => {
    const [victim, onVictim] = await clientsOnOnePod();
    const exit = await fleet.terminate(victim);
    expect(exit).toMatchObject({ code: 0, killedAfterGrace: false });
    for (const c of onVictim) {
      await waitFor(`a client of ${victim} back on another pod`, () => c.socket.connected && c.pods.at(-1) !== victim, 10_000);
      expect(c.disconnects).toEqual(['transport close']);
      expect(c.hints).toHaveLength(1);
    }
    await fleet.waitForReady();
  });

  it('SIGKILL: no drain, yet every client of the pod notices the closed transport and reconnects elsewhere', async () => {
    const [victim, onVictim] = await clientsOnOnePod();
    const exit = await fleet.kill(victim);
    expect(exit.signal).toBe('SIGKILL');
    for (const c of onVictim) {
      await waitFor(`a client of killed ${victim} back on another pod`, () => c.socket.connected && c.pods.at(-1) !== victim, 15_000);
      expect(c.disconnects.length).toBeGreaterThanOrEqual(1);
      expect(['transport close', 'transport error', 'ping timeout']).toContain(c.disconnects[0]);
    }
    await fleet.waitForReady();
  });
});
