// The local fleet (`make dev`): real redis-server, three gateway processes, HAProxy with sticky
// cookies. SDK clients over WebSocket and long-polling; pods deleted the way the kubelet does it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayClient, type GatewayClient } from '../../app/client/index.ts';
import { sendChat } from '../../app/client/demo.ts';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { type LocalFleet, startLocalFleet } from '../../scripts/fleet/fleet.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

let fleet: LocalFleet;
let stopFleet: () => Promise<void>;

beforeAll(async () => {
  [fleet, stopFleet] = await startLocalFleet({
    replicas: 3,
    graceMs: 10_000,
    // A short drain so the suite stays quick: notice 0.5 s, hints within 1.5 s, closes within 3 s.
    env: { DRAIN_NOTICE_DELAY_MS: '500', DRAIN_WINDOW_MS: '3000', DRAIN_JITTER_MS: '1500', SHUTDOWN_DEADLINE_MS: '8000' },
  });
});

afterAll(async () => {
  await stopFleet?.();
});

interface Subscriber {
  readonly client: GatewayClient;
  readonly texts: string[];
  readonly envelopes: DurableEnvelope[];
  /** Epoch ms of each `connected` state. */
  readonly connectedAt: number[];
  /** Epoch ms at which a `server:draining` hint allowed the move. */
  readonly hintDueAt: number[];
  /** How each (re)join of the room went: `fresh` first, then `replay` — a `reset` would mean a lost gap. */
  readonly joins: string[];
}

function subscribe(room: string, count: number, name: string): Subscriber[] {
  return Array.from({ length: count }, (_, i) => {
    const client = createGatewayClient({
      url: fleet.url,
      userId: `${name}-${i}`,
      // Half WebSocket, half long-polling: both must survive a pod going away.
      transports: i % 2 === 0 ? ['websocket'] : ['polling'],
      backoff: { baseMs: 300, capMs: 3_000 },
    });
    const s: Subscriber = { client, texts: [], envelopes: [], connectedAt: [], hintDueAt: [], joins: [] };
    client.on('joined', (j) => j.room === room && s.joins.push(j.resume));
    client.on('message', (e) => {
      if (e.room !== room) return;
      s.envelopes.push(e);
      s.texts.push((e.payload as { text: string }).text);
    });
    client.on('state', (state) => state === 'connected' && s.connectedAt.push(Date.now()));
    client.on('draining', (hint) => s.hintDueAt.push(Date.now() + hint.reconnectAfterMs));
    return s;
  });
}

async function joinAll(subscribers: Subscriber[], room: string): Promise<void> {
  await Promise.all(subscribers.map((s) => s.client.join(room)));
}

/**
 * Publishes `count` numbered messages from a client pinned to `pod` (bypassing the edge), one every
 * `everyMs` — at most 20/s, the gateway's default per-socket rate limit.
 */
async function publishStream(pod: string, room: string, count: number, everyMs: number, onHalfway?: () => void): Promise<void> {
  const publisher = createGatewayClient({ url: fleet.podUrl(pod), userId: `publisher-${pod}`, transports: ['websocket'] });
  try {
    for (let i = 1; i <= count; i += 1) {
      await sendChat(publisher, room, String(i));
      if (i === Math.floor(count / 2)) onHalfway?.();
      await new Promise((r) => setTimeout(r, everyMs));
    }
  } finally {
    publisher.close();
  }
}

const numbers = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i + 1));

function closeAll(subscribers: Subscriber[]): void {
  for (const s of subscribers) s.client.close();
}

describe('local fleet behind HAProxy', () => {
  it('fans a message published on one pod out to SDK clients on every pod', async () => {
    const room = 'chat:fanout';
    const subscribers = subscribe(room, 6, 'fanout');
    try {
      await joinAll(subscribers, room);
      const pods = new Set(subscribers.map((s) => s.client.pod));
      expect(pods.size).toBeGreaterThanOrEqual(2);
      const source = (await fleet.pods())[0]!.name;
      await publishStream(source, room, 20, 0);
      await waitFor('20 messages at every subscriber', () => subscribers.every((s) => s.texts.length >= 20));
      for (const s of subscribers) expect(s.texts).toEqual(numbers(20));
      // The ones that are not on the publishing pod got it through the Redis backplane.
      expect(subscribers.some((s) => s.client.pod !== source)).toBe(true);
    } finally {
      closeAll(subscribers);
    }
  });

  it('SIGKILL of a pod mid-stream: its clients come back elsewhere and every client gets every message once, in order', async () => {
    const room = 'chat:sigkill';
    const subscribers = subscribe(room, 6, 'kill');
    try {
      await joinAll(subscribers, room);
      const victim = subscribers[0]!.client.pod!;
      const onVictim = subscribers.filter((s) => s.client.pod === victim);
      const source = (await fleet.pods()).find((p) => p.name !== victim)!.name;
      let killed: Promise<unknown> = Promise.resolve();
      await publishStream(source, room, 60, 50, () => (killed = fleet.kill(victim)));
      await killed;
      await waitFor('60 messages at every subscriber', () => subscribers.every((s) => s.texts.length >= 60), 30_000);
      for (const s of subscribers) expect(s.texts).toEqual(numbers(60));
      for (const s of onVictim) {
        expect(s.client.pod).not.toBe(victim);
        expect(s.client.stats.connects).toBe(2);
      }
      // Moved clients resumed by replay; none needed a reset.
      for (const s of subscribers) expect(s.joins).toEqual(onVictim.includes(s) ? ['fresh', 'replay'] : ['fresh']);
      await fleet.waitForReady();
    } finally {
      closeAll(subscribers);
    }
  });

  it('SIGTERM of a pod mid-stream: its clients move after their drain hint (not before), the pod exits 0, nothing lost or repeated', async () => {
    const room = 'chat:sigterm';
    const subscribers = subscribe(room, 6, 'term');
    try {
      await joinAll(subscribers, room);
      const victim = subscribers[0]!.client.pod!;
      const onVictim = subscribers.filter((s) => s.client.pod === victim);
      const source = (await fleet.pods()).find((p) => p.name !== victim)!.name;
      let terminated: Promise<{ code: number | null; killedAfterGrace: boolean }> | null = null;
      await publishStream(source, room, 100, 50, () => (terminated = fleet.terminate(victim)));
      const exit = await terminated!;
      expect(exit).toMatchObject({ code: 0, killedAfterGrace: false });
      await waitFor('100 messages at every subscriber', () => subscribers.every((s) => s.texts.length >= 100), 30_000);
      for (const s of subscribers) expect(s.texts).toEqual(numbers(100));
      for (const s of onVictim) {
        expect(s.client.pod).not.toBe(victim);
        expect(s.hintDueAt).toHaveLength(1);
        // The second connection was made no earlier than the hint allowed.
        expect(s.connectedAt[1]!).toBeGreaterThanOrEqual(s.hintDueAt[0]!);
      }
      expect(onVictim.filter((s) => s.client.stats.drainMoves === 1).length).toBeGreaterThanOrEqual(1);
      for (const s of subscribers) expect(s.joins).toEqual(onVictim.includes(s) ? ['fresh', 'replay'] : ['fresh']);
      await fleet.waitForReady();
    } finally {
      closeAll(subscribers);
    }
  });
});
