import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RoomTracker } from '../../app/client/rooms.ts';
import { type DurableEnvelope, PROTOCOL_VERSION } from '../../app/protocol/index.ts';

const ROOM = 'chat:lobby';

function envelope(seq: number, room = ROOM): DurableEnvelope {
  return { v: PROTOCOL_VERSION, type: 'chat:message', room, seq, payload: { from: 'u', text: `#${seq}` }, ts: 0 };
}

/** Offers envelopes and returns the seqs delivered to the application. */
function offerAll(tracker: RoomTracker, seqs: readonly number[]): number[] {
  const delivered: number[] = [];
  for (const seq of seqs) {
    const outcome = tracker.offer(envelope(seq));
    if (outcome.kind === 'sequenced') delivered.push(...outcome.deliver.map((e) => e.seq));
  }
  return delivered;
}

describe('RoomTracker: ordering and de-duplication per room', () => {
  it('delivers every seq once and in order, whatever the arrival order and duplication', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1e12 }),
        fc.integer({ min: 1, max: 60 }).chain((n) =>
          fc.tuple(fc.constant(n), fc.shuffledSubarray(Array.from({ length: n * 2 }, (_, i) => (i % n) + 1), { minLength: n * 2 })),
        ),
        (start, [n, arrivals]) => {
          const tracker = new RoomTracker();
          tracker.track(ROOM, start);
          const delivered = offerAll(
            tracker,
            arrivals.map((k) => start + k),
          );
          expect(delivered).toEqual(Array.from({ length: n }, (_, i) => start + i + 1));
          expect(tracker.lastSeq(ROOM)).toBe(start + n);
          expect(tracker.behind(ROOM)).toBeNull();
        },
      ),
    );
  });

  it('reports a gap as the afterSeq to fetch, until the hole is filled', () => {
    const tracker = new RoomTracker();
    tracker.track(ROOM, 10);
    expect(offerAll(tracker, [11, 14, 15])).toEqual([11]);
    expect(tracker.behind(ROOM)).toBe(11);
    expect(tracker.resumePoint(ROOM)).toBe(11);
    expect(offerAll(tracker, [12, 13])).toEqual([12, 13, 14, 15]);
    expect(tracker.behind(ROOM)).toBeNull();
  });

  it('counts a seq the server acknowledged but never sent as missing (the tail gap)', () => {
    const tracker = new RoomTracker();
    tracker.track(ROOM, 5);
    tracker.noteSeq(ROOM, 7);
    expect(tracker.behind(ROOM)).toBe(5);
    offerAll(tracker, [6, 7]);
    expect(tracker.behind(ROOM)).toBeNull();
  });

  it('flags duplicates so the client can count what it dropped', () => {
    const tracker = new RoomTracker();
    tracker.track(ROOM, 1);
    tracker.offer(envelope(2));
    expect(tracker.offer(envelope(2))).toEqual({ kind: 'sequenced', deliver: [], duplicate: true });
    expect(tracker.offer(envelope(1))).toMatchObject({ duplicate: true });
  });

  it('keeps envelopes of a fresh join until its reset gives the starting point, then drops those it covers', () => {
    const tracker = new RoomTracker();
    tracker.track(ROOM);
    expect(tracker.resumePoint(ROOM)).toBeNull();
    expect(tracker.offer(envelope(101))).toEqual({ kind: 'pending' });
    expect(tracker.offer(envelope(99))).toEqual({ kind: 'pending' });
    expect(tracker.behind(ROOM)).toBeNull();
    const { applied, deliver } = tracker.reset(ROOM, 100);
    expect(applied).toBe(true);
    expect(deliver.map((e) => e.seq)).toEqual([101]);
    expect(tracker.resumePoint(ROOM)).toBe(101);
  });

  it('takes the starting point from the join ack when no reset came, and ignores acks after that', () => {
    const tracker = new RoomTracker();
    tracker.track(ROOM);
    expect(tracker.acknowledgeJoin(ROOM, 40)).toEqual([]);
    expect(tracker.resumePoint(ROOM)).toBe(40);
    offerAll(tracker, [41]);
    expect(tracker.acknowledgeJoin(ROOM, 41)).toEqual([]);
    expect(tracker.lastSeq(ROOM)).toBe(41);
    tracker.acknowledgeJoin(ROOM, 43);
    expect(tracker.behind(ROOM)).toBe(41);
  });

  it('does not apply a reset older than what was delivered (a stale answer), and applies a newer one', () => {
    const tracker = new RoomTracker();
    tracker.track(ROOM, 50);
    offerAll(tracker, [51, 52]);
    expect(tracker.reset(ROOM, 51)).toEqual({ applied: false, deliver: [] });
    expect(tracker.lastSeq(ROOM)).toBe(52);
    offerAll(tracker, [60]);
    const newer = tracker.reset(ROOM, 59);
    expect(newer.applied).toBe(true);
    expect(newer.deliver.map((e) => e.seq)).toEqual([60]);
    expect(tracker.behind(ROOM)).toBeNull();
  });

  it('drops envelopes of rooms it does not follow, and forgets a room on untrack', () => {
    const tracker = new RoomTracker();
    expect(tracker.offer(envelope(1, 'chat:other'))).toEqual({ kind: 'untracked' });
    tracker.track(ROOM, 1);
    tracker.untrack(ROOM);
    expect(tracker.offer(envelope(2))).toEqual({ kind: 'untracked' });
    expect(tracker.rooms).toEqual([]);
  });

  it('keeps rooms independent', () => {
    const tracker = new RoomTracker();
    tracker.track('chat:a', 1);
    tracker.track('chat:b', 100);
    expect(tracker.offer(envelope(2, 'chat:a'))).toMatchObject({ deliver: [{ seq: 2 }] });
    expect(tracker.offer(envelope(102, 'chat:b'))).toMatchObject({ deliver: [] });
    expect(tracker.behind('chat:a')).toBeNull();
    expect(tracker.behind('chat:b')).toBe(100);
  });
});
