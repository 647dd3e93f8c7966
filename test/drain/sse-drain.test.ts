import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import type { DrainStatus } from '../../app/gateway/drain.ts';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { connectClient } from '../helpers/clients.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';

// SSE streams in a paced drain, on real gateway processes over a real redis-server, read with fetch
// the way a browser's EventSource reads them (fields per the HTML spec's event-stream grammar).

interface SseEvent {
  readonly id: string | null;
  readonly event: string;
  readonly retry: number | null;
  readonly data: { type: string; seq: number | null; payload: unknown };
  readonly at: number;
}

interface SseReader {
  readonly events: SseEvent[];
  /** Resolves with the time the server ended the stream. */
  readonly ended: Promise<number>;
  /** The Last-Event-ID an EventSource would send on reconnect. */
  lastEventId(): string | null;
  chatSeqs(): number[];
  abort(): void;
}

async function openSse(baseUrl: string, room: string, lastEventId?: string): Promise<SseReader> {
  const controller = new AbortController();
  const res = await fetch(`${baseUrl}/sse?room=${encodeURIComponent(room)}`, {
    headers: lastEventId === undefined ? {} : { 'last-event-id': lastEventId },
    signal: controller.signal,
  });
  if (res.status !== 200) throw new Error(`GET /sse answered ${res.status}: ${await res.text()}`);
  const events: SseEvent[] = [];
  let last: string | null = lastEventId ?? null;
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const ended = (async () => {
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return Date.now();
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
        }
        if (!fields.has('data')) continue;
        if (fields.has('id')) last = fields.get('id')!;
        events.push({
          id: fields.get('id') ?? null,
          event: fields.get('event') ?? 'message',
          retry: fields.has('retry') ? Number(fields.get('retry')) : null,
          data: JSON.parse(fields.get('data')!) as SseEvent['data'],
          at: Date.now(),
        });
      }
    }
  })();
  return {
    events,
    ended,
    lastEventId: () => last,
    chatSeqs: () => events.filter((e) => e.event === 'chat:message').map((e) => e.data.seq!),
    abort: () => controller.abort(),
  };
}

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('SSE streams in a drain', () => {
  const cleanups: (() => unknown)[] = [];
  let draining: GatewayProcess;
  let survivor: GatewayProcess;
  let publisher: Backplane;

  const NOTICE = 400;
  const WINDOW = 1_500;

  beforeAll(async () => {
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    const env = { ADAPTER: 'redis', REDIS_URL: redis.url, FLEET_STATS_INTERVAL_MS: '5000' };
    const drainEnv = { ...env, ADMIN_TOKEN, DRAIN_NOTICE_DELAY_MS: String(NOTICE), DRAIN_WINDOW_MS: String(WINDOW), DRAIN_JITTER_MS: String(WINDOW) };
    const [a, stopA] = await startGateway({ env: drainEnv });
    const [b, stopB] = await startGateway({ env });
    draining = a;
    survivor = b;
    cleanups.push(stopA, stopB);
    const [started, stopPublisher] = await startPublisher(redis.url);
    publisher = started;
    cleanups.push(stopPublisher);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('hints each stream with retry:, ends it in its slot, refuses new streams with 503, and the reader resumes elsewhere with nothing lost or twice', async () => {
    const room = 'chat:sse-drain';
    const publish = (text: string): Promise<DurableEnvelope> => publisher.publish({ room, type: 'chat:message', payload: { from: 'pub', text }, from: 'pub' });
    const first = await publish('before');
    const readers = [await openSse(draining.url, room, String(first.seq - 1)), await openSse(draining.url, room, String(first.seq - 1))];
    cleanups.push(() => readers.forEach((r) => r.abort()));
    const [socketClient, closeSocketClient] = await connectClient(draining.url, { userId: 'ws-peer' });
    cleanups.push(closeSocketClient);
    await waitFor('the replay on both streams', () => readers.every((r) => r.chatSeqs().length === 1));

    // Publish throughout the drain and the reconnect: these are the messages "published meanwhile".
    const published: number[] = [first.seq];
    let publishing = true;
    const publishLoop = (async () => {
      for (let i = 0; publishing; i += 1) {
        published.push((await publish(`m${i}`)).seq);
        await new Promise((r) => setTimeout(r, 40));
      }
    })();

    const drainAt = Date.now();
    const post = await fetch(`${draining.internalUrl}/admin/drain`, { method: 'POST', headers: admin });
    expect(post.status).toBe(202);

    // Every stream gets server:draining: a control event (no id:), with retry: set to its hint.
    await waitFor('server:draining on both streams', () => readers.every((r) => r.events.some((e) => e.event === 'server:draining')), NOTICE + 3_000);
    const hints = readers.map((r) => r.events.find((e) => e.event === 'server:draining')!);
    for (const hint of hints) {
      expect(hint.id).toBeNull();
      expect(hint.data).toMatchObject({ type: 'server:draining', seq: null, payload: { pod: draining.pod } });
      const { reconnectAfterMs } = hint.data.payload as { reconnectAfterMs: number };
      expect(reconnectAfterMs).toBeGreaterThanOrEqual(0);
      expect(reconnectAfterMs).toBeLessThan(WINDOW);
      expect(hint.retry).toBe(reconnectAfterMs);
      expect(hint.at - drainAt).toBeGreaterThanOrEqual(NOTICE - 50);
    }
    expect(socketClient.control.some((c) => c.type === 'server:draining')).toBe(true);

    // While closing, a new stream is refused: 503, Retry-After, the JSON error body.
    const refused = await fetch(`${draining.url}/sse?room=${encodeURIComponent(room)}`);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ ok: false, error: { code: 'draining', message: expect.stringContaining('draining') } });

    // Each stream is ended by the server in its slot of the window (sockets and streams share the schedule).
    const endedAt = await Promise.all(readers.map((r) => r.ended));
    const firstHintAt = Math.min(...hints.map((h) => h.at));
    for (const t of endedAt) expect(t - firstHintAt).toBeLessThan(WINDOW + 1_000);
    await waitFor('the drain to finish', async () => ((await (await fetch(`${draining.internalUrl}/admin/drain`, { headers: admin })).json()) as { drain: DrainStatus }).drain.phase === 'drained', 5_000);
    const status = ((await (await fetch(`${draining.internalUrl}/admin/drain`, { headers: admin })).json()) as { drain: DrainStatus }).drain;
    expect(status).toMatchObject({ schedule: { sockets: 3 }, closed: 3, forced: 0, remaining: 0 });
    expect(await (await fetch(`${draining.internalUrl}/metrics`)).text()).toMatch(/^rt_sse_streams 0$/m);

    // What EventSource does next: reconnect (here to the other pod) with Last-Event-ID, resume from history.
    const resumed = await Promise.all(readers.map((r) => openSse(survivor.url, room, r.lastEventId()!)));
    cleanups.push(() => resumed.forEach((r) => r.abort()));
    await new Promise((r) => setTimeout(r, 300));
    publishing = false;
    await publishLoop;
    const lastSeq = published.at(-1)!;
    await waitFor('every published message on the resumed streams', () => resumed.every((r) => r.chatSeqs().at(-1) === lastSeq), 10_000);
    readers.forEach((reader, i) => {
      const everything = [...reader.chatSeqs(), ...resumed[i]!.chatSeqs()];
      expect(reader.chatSeqs().length).toBeGreaterThan(1);
      expect(resumed[i]!.chatSeqs().length).toBeGreaterThan(0);
      expect(everything).toEqual(published);
    });
    // A resumed stream starts with the replay, not a reset: the history covered the gap.
    for (const r of resumed) expect(r.events.some((e) => e.event === 'room:reset')).toBe(false);
  });
});
