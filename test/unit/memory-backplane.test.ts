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

  it('answers a repeated idempotency key with the first envelope, per room, until the window ends', async () => {
    const backplane = createMemoryBackplane();
    const req = { room: 'team:x', type: 'team:msg', payload: { n: 1 }, from: 'u', idempotencyKey: 'u:ann:k', idempotencyWindowSeconds: 1 };
    const first = await backplane.publishOnce(req);
    const again = await backplane.publishOnce({ ...req, payload: { n: 2 } });
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ envelope: first.envelope, duplicate: true });
    expect((await backplane.publishOnce({ ...req, room: 'team:y' })).duplicate).toBe(false);
    expect((await backplane.history('team:x', first.envelope.seq - 1, 0)).mode === 'replay').toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    expect((await backplane.publishOnce(req)).envelope.seq).toBe(first.envelope.seq + 1);
  });

  it('keeps no history for live-only rooms, yet their seqs stay contiguous', async () => {
    const backplane = createMemoryBackplane();
    const live = { history: { size: 0, ttlSeconds: 0 } };
    const a = await backplane.publish({ room: 'lobby:x', type: 'lobby:wave', payload: 1, from: 'u', ...live });
    const b = await backplane.publish({ room: 'lobby:x', type: 'lobby:wave', payload: 2, from: 'u', ...live, sender: 'ann' });
    expect(b.seq).toBe(a.seq + 1);
    expect(b.from).toBe('ann');
    expect(await backplane.history('lobby:x', b.seq, 10)).toEqual({ mode: 'replay', seq: b.seq, envelopes: [] });
    expect(await backplane.history('lobby:x', a.seq, 10)).toMatchObject({ mode: 'reset', seq: b.seq, snapshot: { recent: [] } });
  });

  it('counts presence per pod and user, reports first-join and last-leave, and forgets expired pods', async () => {
    const backplane = createMemoryBackplane();
    expect(await backplane.writePresence('team:x', 'p1', [['ann', 1]], 60)).toEqual([{ userId: 'ann', joined: true }]);
    expect(await backplane.writePresence('team:x', 'p2', [['ann', 2], ['bob', 1]], 1)).toEqual([{ userId: 'bob', joined: true }]);
    expect(await backplane.readPresence('team:x')).toEqual({ room: 'team:x', users: [{ userId: 'ann', connections: 3 }, { userId: 'bob', connections: 1 }], connections: 4 });
    expect(await backplane.writePresence('team:x', 'p1', [['ann', 0]], 60)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    expect(await backplane.readPresence('team:x')).toEqual({ room: 'team:x', users: [], connections: 0 });
  });
});
