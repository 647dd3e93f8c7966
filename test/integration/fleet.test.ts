import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';

// Three real gateway processes on one real redis-server, driven by the stock socket.io-client.
describe('a gateway fleet on the Redis backplane', () => {
  const cleanups: (() => unknown)[] = [];
  let a: GatewayProcess, b: GatewayProcess, c: GatewayProcess;

  const client = async (gateway: GatewayProcess, userId?: string): Promise<TestClient> => {
    const [c, close] = await connectClient(gateway.url, { userId });
    cleanups.push(close);
    return c;
  };
  const texts = (envelopes: DurableEnvelope[], room: string) =>
    envelopes.filter((e) => e.room === room).map((e) => (e.payload as { text: string }).text);

  beforeAll(async () => {
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    const env = { ADAPTER: 'redis', REDIS_URL: redis.url, HISTORY_SIZE: '20' };
    const started = await Promise.all(['a', 'b', 'c'].map(async (name) => {
      const [gw, stop] = await startGateway({ env, pod: `gw-${name}` });
      cleanups.push(stop);
      return gw;
    }));
    [a, b, c] = started as [GatewayProcess, GatewayProcess, GatewayProcess];
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('sends counter increments from instance A to subscribers on B and C, in seq order', async () => {
    const [onA, onB, onC] = await Promise.all([client(a), client(b), client(c)]);
    const room = 'counter:fleet-test';
    for (const x of [onA, onB, onC]) expect(await x.request('room:join', { room })).toMatchObject({ ok: true, resume: 'fresh' });
    const acks = [];
    for (let i = 0; i < 5; i += 1) acks.push(await onA.request('counter:increment', { room }));
    expect(acks.map((ack) => (ack as unknown as { value: number }).value)).toEqual([1, 2, 3, 4, 5]);
    for (const x of [onB, onC]) {
      await waitFor('5 counter updates', () => x.received.filter((e) => e.room === room).length === 5);
      const seen = x.received.filter((e) => e.room === room);
      expect(seen.map((e) => (e.payload as { value: number }).value)).toEqual([1, 2, 3, 4, 5]);
      const seqs = seen.map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    }
    expect(await onC.request('counter:read', { room })).toMatchObject({ ok: true, value: 5, seq: acks.at(-1)!.ok && (acks.at(-1) as unknown as { seq: number }).seq });
  });

  it('fans chat messages out across instances and counts members fleet-wide', async () => {
    const room = 'chat:crossing';
    const [alice, bob, carol] = await Promise.all([client(a, 'alice'), client(b, 'bob'), client(c, 'carol')]);
    for (const x of [alice, bob, carol]) await x.request('room:join', { room });
    await alice.request('chat:send', { room, text: 'hello from A' });
    await bob.request('chat:send', { room, text: 'hello from B' });
    for (const x of [alice, bob, carol]) {
      await waitFor('two chat messages', () => texts(x.received, room).length === 2);
      expect(texts(x.received, room)).toEqual(['hello from A', 'hello from B']);
    }
    await waitFor('member count 3', () => carol.control.some((e) => e.type === 'room:members' && e.room === room && (e.payload as { count: number }).count === 3));
  });

  it('delivers direct messages to a user on another instance, and only to them', async () => {
    const [alice, bob, mallory] = await Promise.all([client(a, 'alice2'), client(c, 'bob2'), client(b, 'mallory')]);
    expect(await bob.request('room:join', { room: 'user:bob2' })).toMatchObject({ ok: true });
    expect(await mallory.request('room:join', { room: 'user:bob2' })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    expect(await alice.request('dm:send', { to: 'bob2', text: 'psst' })).toMatchObject({ ok: true, room: 'user:bob2' });
    await waitFor('the direct message', () => bob.received.some((e) => e.type === 'dm:message'));
    expect(bob.received.find((e) => e.type === 'dm:message')?.payload).toEqual({ from: 'alice2', to: 'bob2', text: 'psst' });
    expect(mallory.received).toHaveLength(0);
  });

  it('resumes a client that missed N messages on a different instance: exactly those N, in order', async () => {
    const room = 'chat:resume';
    const publisher = await client(b, 'pub');
    const [reader, closeReader] = await connectClient(a.url, { userId: 'reader' });
    await reader.request('room:join', { room });
    await publisher.request('chat:send', { room, text: 'before-1' });
    await publisher.request('chat:send', { room, text: 'before-2' });
    await waitFor('messages before the disconnect', () => texts(reader.received, room).length === 2);
    const lastSeq = reader.received.at(-1)!.seq;
    closeReader();

    const missed = Array.from({ length: 7 }, (_, i) => `missed-${i + 1}`);
    for (const text of missed) await publisher.request('chat:send', { room, text });

    const resumed = await client(c, 'reader');
    const join = await resumed.request('room:join', { room, lastSeq });
    expect(join).toMatchObject({ ok: true, resume: 'replay', replayed: 7 });
    await publisher.request('chat:send', { room, text: 'after' });
    await waitFor('the live message after the replay', () => texts(resumed.received, room).includes('after'));
    expect(texts(resumed.received, room)).toEqual([...missed, 'after']);
    const seqs = resumed.received.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => lastSeq + 1 + i));
  });

  it('resumes exactly once, in order, while the room is being published to from other instances', async () => {
    const room = 'chat:busy';
    const [publisherA, publisherB] = await Promise.all([client(a, 'pa'), client(b, 'pb')]);
    let publishing = true;
    const flood = async (p: TestClient, name: string) => {
      for (let i = 0; publishing && i < 400; i += 1) {
        await p.request('chat:send', { room, text: `${name}-${i}` });
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const floods = Promise.all([flood(publisherA, 'a'), flood(publisherB, 'b')]);
    const resumers: { client: TestClient; from: number; mode: string }[] = [];
    for (let i = 0; i < 6; i += 1) {
      // Join, drop, come back on another instance a few messages later (HISTORY_SIZE is 20).
      const [before, dropBefore] = await connectClient([a, b, c][i % 3]!.url, { userId: `resumer-${i}` });
      const fresh = (await before.request('room:join', { room })) as unknown as { seq: number };
      dropBefore();
      await new Promise((r) => setTimeout(r, 10));
      const after = await client([a, b, c][(i + 1) % 3]!, `resumer-${i}`);
      const join = (await after.request('room:join', { room, lastSeq: fresh.seq })) as unknown as { resume: string };
      const reset = after.control.find((e) => e.type === 'room:reset');
      resumers.push({ client: after, from: reset ? reset.seq! : fresh.seq, mode: join.resume });
    }
    publishing = false;
    await floods;
    // The flood spent the publisher's event bucket: the final message waits for a token, as a client would.
    let last: { ok: boolean; seq: number; error?: { retryAfterMs?: number } };
    for (;;) {
      last = (await publisherA.request('chat:send', { room, text: 'end' })) as unknown as typeof last;
      if (last.ok) break;
      await new Promise((r) => setTimeout(r, last.error?.retryAfterMs ?? 100));
    }
    expect(resumers.some((r) => r.mode === 'replay')).toBe(true);
    for (const { client: resumer, from } of resumers) {
      await waitFor('the final message', () => resumer.received.some((e) => e.seq === last.seq));
      const seqs = resumer.received.filter((e) => e.room === room).map((e) => e.seq);
      expect(seqs).toEqual(Array.from({ length: last.seq - from }, (_, i) => from + 1 + i));
    }
  });

  it('answers a gap older than the history with room:reset and a snapshot', async () => {
    const room = 'counter:old-gap';
    const publisher = await client(a);
    await publisher.request('counter:increment', { room });
    const first = (await publisher.request('counter:read', { room })) as unknown as { seq: number };
    for (let i = 0; i < 25; i += 1) await publisher.request('counter:increment', { room }); // HISTORY_SIZE is 20
    const late = await client(b);
    expect(await late.request('room:join', { room, lastSeq: first.seq })).toMatchObject({ ok: true, resume: 'reset', replayed: 0 });
    const reset = late.control.find((e) => e.type === 'room:reset');
    expect(reset).toMatchObject({ room, seq: first.seq + 25, payload: { snapshot: { state: { value: 26 } } } });
    expect(late.received).toHaveLength(0);
  });

  it('streams the same envelopes over SSE and resumes from Last-Event-ID', async () => {
    const room = 'chat:sse';
    const publisher = await client(a, 'sse-pub');
    await publisher.request('room:join', { room });
    const seqs: number[] = [];
    for (const text of ['one', 'two', 'three']) seqs.push(((await publisher.request('chat:send', { room, text })) as unknown as { seq: number }).seq);

    const controller = new AbortController();
    const res = await fetch(`${c.url}/sse?room=${encodeURIComponent(room)}`, { headers: { 'last-event-id': String(seqs[0]) }, signal: controller.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const decoder = new TextDecoder();
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) text += decoder.decode((await reader.read()).value);
    };
    await readUntil('three');
    await publisher.request('chat:send', { room, text: 'four' });
    await readUntil('four');
    controller.abort();
    const events = text.split('\n\n').filter((block) => block.includes('event: chat:message'));
    expect(events.map((block) => Number(/^id: (\d+)$/m.exec(block)?.[1]))).toEqual([seqs[1], seqs[2], seqs[2]! + 1]);
    expect(events.map((block) => (JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as DurableEnvelope).payload)).toEqual(
      ['two', 'three', 'four'].map((t) => ({ from: 'sse-pub', text: t })),
    );
  });

  it('refuses malformed events with an error ack naming the problem', async () => {
    const x = await client(a);
    expect(await x.request('chat:send', { room: 'chat:x', text: '' })).toMatchObject({ ok: false, error: { code: 'bad_request', message: expect.stringContaining('text') } });
    expect(await x.request('room:join', { room: 'lobby' })).toMatchObject({ ok: false, error: { code: 'bad_request', message: expect.stringContaining('room') } });
    expect(await x.request('no:such', {})).toMatchObject({ ok: false, error: { code: 'unknown_event' } });
  });

  it('exposes fleet stats for every instance and Prometheus metrics on the internal port', async () => {
    const res = await fetch(`${a.internalUrl}/fleet`);
    const { pods, sockets } = (await res.json()) as { pods: { pod: string; ready: boolean; sockets: number }[]; sockets: number };
    expect(pods.map((p) => p.pod).sort()).toEqual(expect.arrayContaining(['gw-a', 'gw-b', 'gw-c']));
    expect(pods.every((p) => p.ready)).toBe(true);
    expect(sockets).toBe(pods.reduce((sum, p) => sum + p.sockets, 0));
    expect(sockets).toBeGreaterThan(0);
    const metrics = await (await fetch(`${a.internalUrl}/metrics`)).text();
    for (const name of ['rt_connected_sockets', 'rt_connections_total', 'rt_messages_in_total', 'rt_resumes_total', 'rt_history_misses_total', 'nodejs_eventloop_lag_seconds']) {
      expect(metrics).toContain(name);
    }
  });
});
