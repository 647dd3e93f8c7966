import { describe, expect, it } from 'vitest';
import { createMemoryBackplane } from '../../app/gateway/backplane/memory.ts';

describe('the in-memory backplane', () => {
  it('assigns contiguous seqs from a clock-derived origin and replays what a client missed', async () => {
    const backplane = createMemoryBackplane({ historySize: 3 });
    const before = Date.now() * 1000;
    const first = await backplane.publish({ room: 'chat:x', type: 'chat:message', payload: { text: 'a' }, from: 'u' });
    expect(first.seq).toBeGreaterThan(before);
    const second = await backplane.publish({ room: 'chat:x', type: 'chat:message', payload: { text: 'b' }, from: 'u' });
    expect(second.seq).toBe(first.seq + 1);
    expect(await backplane.history('chat:x', first.seq, 10)).toEqual({ mode: 'replay', seq: second.seq, envelopes: [second] });
    expect(await backplane.history('chat:x', second.seq, 10)).toEqual({ mode: 'replay', seq: second.seq, envelopes: [] });
  });

  it('resets when the gap is older than the history or the client is ahead of the room', async () => {
    const backplane = createMemoryBackplane({ historySize: 2 });
    const envelopes = [];
    for (let i = 0; i < 4; i += 1) envelopes.push(await backplane.publish({ room: 'counter:c', type: 'counter:changed', counterBy: 1, from: 'u' }));
    const stale = await backplane.history('counter:c', envelopes[0]!.seq, 1);
    expect(stale).toMatchObject({ mode: 'reset', seq: envelopes[3]!.seq, snapshot: { state: { value: 4 } } });
    expect(stale.mode === 'reset' && stale.snapshot.recent.map((e) => e.seq)).toEqual([envelopes[3]!.seq]);
    expect((await backplane.history('counter:c', envelopes[3]!.seq + 5, 0)).mode).toBe('reset');
  });

  it('replays one page (the oldest `limit` missing envelopes) with the room\'s latest seq, so the caller sees more follow', async () => {
    const backplane = createMemoryBackplane({ historySize: 10 });
    const envelopes = [];
    for (let i = 0; i < 6; i += 1) envelopes.push(await backplane.publish({ room: 'chat:p', type: 'chat:message', payload: { text: `${i}` }, from: 'u' }));
    const page = await backplane.history('chat:p', envelopes[0]!.seq, 0, 2);
    expect(page).toEqual({ mode: 'replay', seq: envelopes[5]!.seq, envelopes: [envelopes[1], envelopes[2]] });
    await backplane.close();
  });

  it('forgets a room that never had a message once nobody follows it, and an idle one after its TTL', async () => {
    const backplane = createMemoryBackplane({ historySize: 10, historyTtlSeconds: 0.3, emptyRoomGraceMs: 60, sweepIntervalMs: 20 });
    await backplane.subscribe('chat:empty');
    const emptySeq = (await backplane.history('chat:empty', null, 0)).seq;
    await backplane.unsubscribe('chat:empty');
    // Within the grace a returning client still resumes (same seq); after it, a new epoch starts above the old one.
    expect((await backplane.history('chat:empty', emptySeq, 0)).mode).toBe('replay');
    await new Promise((r) => setTimeout(r, 150));
    expect((await backplane.history('chat:empty', null, 0)).seq).toBeGreaterThan(emptySeq);

    const kept = await backplane.publish({ room: 'chat:kept', type: 'chat:message', payload: { text: 'x' }, from: 'u' });
    expect(await backplane.history('chat:kept', kept.seq - 1, 0)).toMatchObject({ mode: 'replay', envelopes: [kept] });
    await new Promise((r) => setTimeout(r, 450));
    expect(await backplane.history('chat:kept', kept.seq - 1, 0)).toMatchObject({ mode: 'reset' });
    await backplane.close();
  });
});
