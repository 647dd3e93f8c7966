import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backplane } from '../../app/gateway/backplane/backplane.ts';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { connectClient, resumeRoom } from '../helpers/clients.ts';
import type { GatewayProcess } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { metricValue, processMemory } from '../helpers/process-memory.ts';
import { connectRaw } from '../helpers/raw-socketio.ts';
import { startFloodTarget } from '../helpers/publisher.ts';

const MiB = 1024 * 1024;
/** Flood published before giving up: ~80 MiB, which an unbounded write buffer would hold in RSS. */
const FLOOD_CAP = 40_000;
/** Peak RSS may grow this much over the warmed-up baseline; an unbounded buffer needs far more. */
const RSS_HEADROOM = 64 * MiB;

// A raw WebSocket that stops reading its socket while its room is flooded, on a real gateway on
// real Redis; the flood is published through the gateway's own backplane code, as a gateway would.
describe('a slow consumer', () => {
  const cleanups: (() => unknown)[] = [];
  let gateway: GatewayProcess;
  let publisher: Backplane;

  beforeAll(async () => {
    const [target, stopTarget] = await startFloodTarget();
    ({ gateway, publisher } = target);
    cleanups.push(stopTarget);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('is cut with slow_consumer while memory stays bounded, and resumes with every message exactly once', async () => {
    const room = 'chat:flood';
    const text = 'x'.repeat(2_000);
    const [fast, closeFast] = await connectClient(gateway.url, { userId: 'fast' });
    cleanups.push(closeFast);
    expect(await fast.request('room:join', { room })).toMatchObject({ ok: true });
    const slow = await connectRaw(gateway.url, { auth: { userId: 'slow' } });
    cleanups.push(() => slow.close());
    const [joinAck] = (await slow.request('room:join', { room })) as [{ ok: boolean; seq: number }];
    expect(joinAck.ok).toBe(true);
    const firstSeq = joinAck.seq + 1;

    // Warm up (JIT, buffers) with the reader still reading, then take the baseline.
    for (let i = 0; i < 200; i += 1) await publisher.publish({ room, type: 'chat:message', payload: { from: 'flood', text }, from: 'flood' });
    await waitFor('the warm-up on the fast client', () => fast.received.length === 200);
    const baseline = processMemory(gateway.child.pid!).rss;

    slow.pause();
    let published = 200;
    let cut = false;
    while (!cut && published < FLOOD_CAP) {
      await Promise.all(
        Array.from({ length: 100 }, () => publisher.publish({ room, type: 'chat:message', payload: { from: 'flood', text }, from: 'flood' })),
      );
      published += 100;
      cut = (await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total')) >= 1;
    }
    const { peakRss } = processMemory(gateway.child.pid!);
    expect(cut, `no slow_consumer cut after ${published} messages (~${Math.round((published * 2.1) / 1024)} MiB)`).toBe(true);
    expect(peakRss - baseline, `peak RSS ${Math.round(peakRss / MiB)} MiB vs baseline ${Math.round(baseline / MiB)} MiB`).toBeLessThan(RSS_HEADROOM);
    const lastSeq = joinAck.seq + published;

    // The reader wakes up: it gets a contiguous prefix, then connection:closing, then the close.
    slow.resume();
    const code = await Promise.race([slow.closed, new Promise<string>((r) => setTimeout(() => r('still open'), 20_000))]);
    expect(code).not.toBe('still open');
    const closing = slow.events.find((e) => e[0] === 'connection:closing')?.[1] as { payload: unknown } | undefined;
    expect(closing?.payload).toMatchObject({ reason: 'slow_consumer', reconnect: true });
    const firstRun = slow.events.filter((e) => e[0] === 'chat:message').map((e) => (e[1] as DurableEnvelope).seq);
    expect(firstRun.length).toBeGreaterThan(0);
    expect(firstRun).toEqual(firstRun.map((_, i) => firstSeq + i));
    expect(firstRun.length).toBeLessThan(published);

    // It resumes from the last seq it saw: exactly the rest, in order.
    const [resumed, closeResumed] = await connectClient(gateway.url, { userId: 'slow' });
    cleanups.push(closeResumed);
    // In pages if the rest is more than one reply carries (docs/protocol.md, "Pages").
    const resume = await resumeRoom(resumed, room, firstRun.at(-1)!);
    expect(resume.join).toMatchObject({ ok: true, resume: 'replay' });
    const secondRun = resume.envelopes.map((e) => e.seq);
    const everything = [...firstRun, ...secondRun];
    expect(everything.length).toBe(published);
    expect(everything).toEqual(everything.map((_, i) => firstSeq + i));
    expect(everything.at(-1)).toBe(lastSeq);

    // The good client in the same room was served throughout: everything, once, in order.
    await waitFor('the whole flood on the fast client', () => fast.received.length === published, 30_000);
    expect(fast.received.map((e) => e.seq)).toEqual(everything);
    expect(fast.control.some((e) => e.type === 'connection:closing')).toBe(false);
  });

  it('past the high-water mark gets only the latest counter value (as a room:reset at its seq), and stays connected', async () => {
    const chat = 'chat:backlog';
    const counter = 'counter:coalesced';
    const text = 'y'.repeat(2_000);
    const lagging = await connectRaw(gateway.url, { auth: { userId: 'lagging' } });
    cleanups.push(() => lagging.close());
    for (const room of [chat, counter]) expect((await lagging.request('room:join', { room }))[0]).toMatchObject({ ok: true });
    const coalescedBefore = await metricValue(gateway.internalUrl, 'rt_coalesced_updates_total');
    const cutsBefore = await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total');

    lagging.pause();
    // Build a backlog past the high-water mark (but under the limit), probing with one increment per step.
    let coalescing = false;
    for (let step = 0; !coalescing && step < 2_000; step += 1) {
      await Promise.all(Array.from({ length: 20 }, () => publisher.publish({ room: chat, type: 'chat:message', payload: { from: 'flood', text }, from: 'flood' })));
      await publisher.publish({ room: counter, type: 'counter:changed', counterBy: 1, from: 'probe' });
      coalescing = (await metricValue(gateway.internalUrl, 'rt_coalesced_updates_total')) > coalescedBefore;
    }
    expect(coalescing, 'the counter was never coalesced').toBe(true);
    let latest!: DurableEnvelope;
    for (let i = 0; i < 50; i += 1) latest = await publisher.publish({ room: counter, type: 'counter:changed', counterBy: 1, from: 'burst' });
    await waitFor('50 more coalesced updates', async () => (await metricValue(gateway.internalUrl, 'rt_coalesced_updates_total')) >= coalescedBefore + 51);

    lagging.resume();
    const isLatestReset = (e: unknown[]): boolean => e[0] === 'room:reset' && (e[1] as { seq: number }).seq === latest.seq;
    await waitFor('the latest counter value as a room:reset', () => lagging.events.some(isLatestReset), 20_000);
    const counterEvents = lagging.events.filter((e) => (e[1] as { room?: string }).room === counter);
    const reset = counterEvents.find(isLatestReset)![1] as { payload: { snapshot: { state: { value: number } } } };
    expect(reset.payload.snapshot.state).toEqual({ value: (latest.payload as { value: number }).value });
    // Before the reset: contiguous counter:changed envelopes; none of the 50 burst updates one by one.
    const changes = counterEvents.filter((e) => e[0] === 'counter:changed').map((e) => e[1] as DurableEnvelope);
    expect(changes.map((e) => e.seq)).toEqual(changes.map((_, i) => changes[0]!.seq + i));
    expect(changes.some((e) => (e.payload as { from: string }).from === 'burst')).toBe(false);
    expect(await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total')).toBe(cutsBefore);
    expect(lagging.ws.readyState).toBe(lagging.ws.OPEN);
    expect((await lagging.request('counter:read', { room: counter }))[0]).toMatchObject({ ok: true, seq: latest.seq });
  });

  it('an SSE stream that stops reading is ended at the limit, counted and logged, while memory stays bounded', async () => {
    const room = 'chat:sse-flood';
    const text = 's'.repeat(2_000);
    const cutsBefore = await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total', { kind: 'sse' });
    // A raw TCP reader, so nothing (no fetch buffer) reads for it once it pauses.
    const reader = connect(Number(new URL(gateway.url).port), '127.0.0.1');
    cleanups.push(() => reader.destroy());
    let received = '';
    reader.on('data', (chunk: Buffer) => (received += chunk.toString()));
    const ended = new Promise<void>((resolve) => reader.once('close', () => resolve()));
    reader.on('error', () => {});
    reader.write(`GET /sse?room=${room}&userId=sse-reader HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    await waitFor('the stream to open', () => received.includes(': stream open'));
    const baseline = processMemory(gateway.child.pid!).rss;
    reader.pause();
    let published = 0;
    let cut = false;
    while (!cut && published < FLOOD_CAP) {
      await Promise.all(Array.from({ length: 100 }, () => publisher.publish({ room, type: 'chat:message', payload: { from: 'flood', text }, from: 'flood' })));
      published += 100;
      cut = (await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total', { kind: 'sse' })) > cutsBefore;
    }
    const { peakRss } = processMemory(gateway.child.pid!);
    expect(cut, `no SSE slow_consumer cut after ${published} messages`).toBe(true);
    expect(peakRss - baseline, `peak RSS ${Math.round(peakRss / MiB)} MiB vs baseline ${Math.round(baseline / MiB)} MiB`).toBeLessThan(RSS_HEADROOM);
    await waitFor('the cut in the log', () => gateway.output().includes('slow consumer: ending the SSE stream'));
    reader.resume();
    await ended;
    // What it got is a contiguous prefix (ids are seqs): it resumes from the last one with Last-Event-ID.
    const ids = [...received.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids.length).toBeGreaterThan(0);
    expect(ids).toEqual(ids.map((_, i) => ids[0]! + i));
  });
});
