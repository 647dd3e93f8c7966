import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backplane } from '../../app/gateway/backplane/backplane.ts';
import type { DurableEnvelope } from '../../app/protocol/index.ts';
import { connectClient, resumeRoom } from '../helpers/clients.ts';
import type { GatewayProcess } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { metricValue, processMemory } from '../helpers/process-memory.ts';
import { connectRawPolling } from '../helpers/raw-socketio.ts';
import { startFloodTarget } from '../helpers/publisher.ts';

const MiB = 1024 * 1024;
/** Flood published before giving up: ~80 MiB, which an unbounded write buffer would hold. */
const FLOOD_CAP = 40_000;
/** Peak RSS may grow this much over the warmed-up baseline; an unbounded buffer needs far more. */
const RSS_HEADROOM = 64 * MiB;

// A long-polling client that stops polling while its room is flooded, on a real gateway on real
// Redis. Unlike a stalled WebSocket, nothing waits in the kernel: every unsent packet sits in
// Engine.IO's write buffer until the next GET, so the byte count there is all that bounds it.
describe('a slow consumer on long-polling', () => {
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
    const room = 'chat:poll-flood';
    const text = 'x'.repeat(2_000);
    const flood = (): Promise<DurableEnvelope> => publisher.publish({ room, type: 'chat:message', payload: { from: 'flood', text }, from: 'flood' });
    const [fast, closeFast] = await connectClient(gateway.url, { userId: 'fast', transports: ['polling'] });
    cleanups.push(closeFast);
    expect(await fast.request('room:join', { room })).toMatchObject({ ok: true });
    const slow = await connectRawPolling(gateway.url, { auth: { userId: 'slow' } });
    cleanups.push(() => slow.close());
    const [joinAck] = (await slow.request('room:join', { room })) as [{ ok: boolean; seq: number }];
    expect(joinAck.ok).toBe(true);
    const firstSeq = joinAck.seq + 1;

    // Warm up with the poller still polling, then take the baseline.
    for (let i = 0; i < 200; i += 1) await flood();
    await waitFor('the warm-up on both clients', () => fast.received.length === 200 && slow.events.filter((e) => e[0] === 'chat:message').length === 200);
    const baseline = processMemory(gateway.child.pid!).rss;

    slow.pause();
    let published = 200;
    let cut = false;
    while (!cut && published < FLOOD_CAP) {
      await Promise.all(Array.from({ length: 100 }, flood));
      published += 100;
      cut = (await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total')) >= 1;
    }
    // Keep flooding after the cut (staying within one resume's replay, MAX_REPLAY): nothing more may queue for the closing poller.
    for (let i = 0; i < 3; i += 1) {
      await Promise.all(Array.from({ length: 100 }, flood));
      published += 100;
    }
    const { peakRss } = processMemory(gateway.child.pid!);
    expect(cut, `no slow_consumer cut after ${published} messages (~${Math.round((published * 2.1) / 1024)} MiB)`).toBe(true);
    expect(peakRss - baseline, `peak RSS ${Math.round(peakRss / MiB)} MiB vs baseline ${Math.round(baseline / MiB)} MiB`).toBeLessThan(RSS_HEADROOM);
    const lastSeq = joinAck.seq + published;

    // It polls again: a contiguous prefix, then connection:closing, then Engine.IO's close packet.
    slow.resume();
    const why = await Promise.race([slow.closed, new Promise<string>((r) => setTimeout(() => r('still open'), 20_000))]);
    expect(why).toBe('close packet');
    const closing = slow.events.find((e) => e[0] === 'connection:closing')?.[1] as { payload: unknown } | undefined;
    expect(closing?.payload).toMatchObject({ reason: 'slow_consumer', reconnect: true });
    const firstRun = slow.events.filter((e) => e[0] === 'chat:message').map((e) => (e[1] as DurableEnvelope).seq);
    expect(firstRun.length).toBeGreaterThan(200);
    expect(firstRun).toEqual(firstRun.map((_, i) => firstSeq + i));
    expect(firstRun.length).toBeLessThan(published);

    // It reconnects (long-polling again) and resumes from the last seq it saw: exactly the rest, in order.
    const [resumed, closeResumed] = await connectClient(gateway.url, { userId: 'slow', transports: ['polling'] });
    cleanups.push(closeResumed);
    // The rest is more than one reply carries (HISTORY_PAGE_BYTES): the join replays a page, history:fetch the others.
    const resume = await resumeRoom(resumed, room, firstRun.at(-1)!);
    expect(resume.join).toMatchObject({ ok: true, resume: 'replay', more: true });
    const secondRun = resume.envelopes.map((e) => e.seq);
    const everything = [...firstRun, ...secondRun];
    expect(everything.length).toBe(published);
    expect(everything).toEqual(everything.map((_, i) => firstSeq + i));
    expect(everything.at(-1)).toBe(lastSeq);
    expect(resumed.control.some((e) => e.type === 'connection:closing')).toBe(false);

    // The polling client that kept polling was served throughout: everything, once, in order.
    await waitFor('the whole flood on the fast client', () => fast.received.length === published, 30_000);
    expect(fast.received.map((e) => e.seq)).toEqual(everything);
    expect(fast.control.some((e) => e.type === 'connection:closing')).toBe(false);
    expect(await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total')).toBe(1);
  });
});
