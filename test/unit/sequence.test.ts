import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DurableEnvelope, PROTOCOL_VERSION, RoomSequence } from '../../app/protocol/index.ts';

const envelope = (seq: number): DurableEnvelope => ({ v: PROTOCOL_VERSION, type: 'chat:message', room: 'chat:x', seq, payload: { text: String(seq) }, ts: 0 });

describe('RoomSequence', () => {
  it('delivers contiguous seqs once and drops duplicates', () => {
    const sequence = new RoomSequence(10);
    expect(sequence.offer(envelope(11)).deliver.map((e) => e.seq)).toEqual([11]);
    expect(sequence.offer(envelope(11))).toMatchObject({ deliver: [], duplicate: true });
    expect(sequence.offer(envelope(9))).toMatchObject({ deliver: [], duplicate: true });
    expect(sequence.lastSeq).toBe(11);
  });

  it('holds envelopes past a gap, reports the gap, and releases them in order once it is filled', () => {
    const sequence = new RoomSequence(1);
    expect(sequence.offer(envelope(4))).toMatchObject({ deliver: [], gap: { from: 2, to: 3 } });
    expect(sequence.offer(envelope(3))).toMatchObject({ deliver: [], gap: { from: 2, to: 2 } });
    expect(sequence.offer(envelope(2)).deliver.map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(sequence.offer(envelope(5)).gap).toBeNull();
  });

  it('continues from a reset, keeping only held envelopes past it', () => {
    const sequence = new RoomSequence(1);
    sequence.offer(envelope(50));
    sequence.offer(envelope(52));
    expect(sequence.reset(50).map((e) => e.seq)).toEqual([]);
    expect(sequence.offer(envelope(51)).deliver.map((e) => e.seq)).toEqual([51, 52]);
  });

  it('delivers every seq exactly once, in order, whatever the arrival order and duplication', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 40 }),
        (arrivals, count) => {
          const sequence = new RoomSequence(0);
          const delivered: number[] = [];
          // Every seq 1..count arrives at least once, after the random noise.
          for (const seq of [...arrivals.filter((s) => s <= count), ...Array.from({ length: count }, (_, i) => count - i)]) {
            delivered.push(...sequence.offer(envelope(seq)).deliver.map((e) => e.seq));
          }
          expect(delivered).toEqual(Array.from({ length: count }, (_, i) => i + 1));
          expect(sequence.heldCount).toBe(0);
        },
      ),
    );
  });
});
