import { describe, expect, it } from 'vitest';
import { checkDeliveries, histogram, peakInWindow, percentile } from '../../scripts/chaos/measure.ts';

describe('chaos measurements', () => {
  it('percentile uses the nearest rank', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([5], 99)).toBe(5);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
  });

  it('peakInWindow finds the busiest sliding second, half-open', () => {
    expect(peakInWindow([])).toEqual({ peak: 0, at: null });
    expect(peakInWindow([0, 999, 1_000, 1_001, 1_500])).toEqual({ peak: 4, at: 999 });
    // 20 evenly spaced per second: never 21 in one window.
    expect(peakInWindow(Array.from({ length: 100 }, (_, i) => i * 50)).peak).toBe(20);
    // A storm: 100 within 200 ms.
    expect(peakInWindow(Array.from({ length: 100 }, (_, i) => 5_000 + i * 2)).peak).toBe(100);
  });

  it('histogram bins from the origin and drops what is outside', () => {
    expect(histogram([0, 10, 999, 1_000, 2_500, -1, 3_000], 0, 3_000, 1_000)).toEqual([
      [0, 3],
      [1_000, 1],
      [2_000, 1],
    ]);
  });

  it('checkDeliveries counts lost, duplicate, out-of-order and unexpected seqs', () => {
    expect(checkDeliveries({ joinedAt: 10, delivered: [11, 12, 13] }, 13)).toEqual({ lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0 });
    expect(checkDeliveries({ joinedAt: 10, delivered: [11, 13] }, 14)).toMatchObject({ lost: 2 });
    expect(checkDeliveries({ joinedAt: 10, delivered: [11, 12, 12, 13] }, 13)).toMatchObject({ lost: 0, duplicates: 1, outOfOrder: 1 });
    expect(checkDeliveries({ joinedAt: 10, delivered: [12, 11] }, 12)).toMatchObject({ lost: 0, duplicates: 0, outOfOrder: 1 });
    expect(checkDeliveries({ joinedAt: 10, delivered: [9, 11] }, 11)).toMatchObject({ unexpected: 1, outOfOrder: 1 });
  });
});
