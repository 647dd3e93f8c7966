import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF, resolveBackoff } from '../../app/client/backoff.ts';

// Deterministic PRNG (mulberry32) so the statistical checks are reproducible, not flaky.
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('full-jitter backoff', () => {
  it('documents its defaults: base 1 s, cap 30 s, multiplier 2, jitter on', () => {
    expect(resolveBackoff()).toEqual({ baseMs: 1000, capMs: 30_000, multiplier: 2, jitter: true });
    expect(DEFAULT_BACKOFF).toEqual(resolveBackoff({}));
  });

  it('grows the window by the multiplier and stops at the cap', () => {
    const options = resolveBackoff({ baseMs: 100, capMs: 5_000, multiplier: 3 });
    expect([0, 1, 2, 3, 4, 5, 1_000_000].map((n) => backoffCeiling(n, options))).toEqual([100, 300, 900, 2700, 5000, 5000, 5000]);
    // A zero base stays zero even where multiplier^attempt overflows (0 · Infinity would be NaN).
    expect(backoffDelay(5_000, resolveBackoff({ baseMs: 0, capMs: 1_000 }))).toBe(0);
  });

  it('always lands within [0, min(cap, base * multiplier^attempt)] for any options', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (base, extra, multiplier, attempt, r) => {
          const options = resolveBackoff({ baseMs: base, capMs: base + extra, multiplier });
          const delay = backoffDelay(attempt, options, () => r);
          // 0 · multiplier^attempt is 0 even when multiplier^attempt overflows to Infinity.
          const ceiling = base === 0 ? 0 : Math.min(base + extra, base * multiplier ** attempt);
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(ceiling);
          expect(Number.isFinite(delay)).toBe(true);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('spreads delays uniformly over the whole window (mean, spread and decile counts)', () => {
    const options = resolveBackoff({ baseMs: 1000, capMs: 30_000, multiplier: 2 });
    const random = seededRandom(42);
    for (const attempt of [0, 3, 10]) {
      const ceiling = backoffCeiling(attempt, options);
      const samples = Array.from({ length: 20_000 }, () => backoffDelay(attempt, options, random));
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...samples)).toBeLessThanOrEqual(ceiling);
      // Uniform on [0, c]: mean c/2 (std error c/sqrt(12n) ≈ 0.002c), so ±2 % is far outside chance.
      const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
      expect(mean / ceiling).toBeGreaterThan(0.48);
      expect(mean / ceiling).toBeLessThan(0.52);
      // Full jitter reaches both ends of the window, unlike "equal jitter" (which never goes below c/2).
      expect(Math.min(...samples)).toBeLessThan(0.01 * ceiling);
      expect(Math.max(...samples)).toBeGreaterThan(0.99 * ceiling);
      // Chi-square over 10 equal bins, 9 degrees of freedom: 27.88 is the 0.1 % critical value.
      const bins = new Array<number>(10).fill(0);
      for (const s of samples) bins[Math.min(9, Math.floor((s / ceiling) * 10))]! += 1;
      const expected = samples.length / 10;
      const chi2 = bins.reduce((sum, observed) => sum + (observed - expected) ** 2 / expected, 0);
      expect(chi2).toBeLessThan(27.88);
    }
  });

  it('with jitter off waits the whole window (the contrast setting)', () => {
    const options = resolveBackoff({ baseMs: 200, capMs: 1000, jitter: false });
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, options, () => 0.123))).toEqual([200, 400, 800, 1000]);
  });

  it('refuses options that make no sense, saying which and why', () => {
    expect(() => resolveBackoff({ baseMs: -1 })).toThrow(/baseMs must be a finite number >= 0/);
    expect(() => resolveBackoff({ baseMs: 500, capMs: 100 })).toThrow(/capMs must be a finite number >= baseMs \(500\)/);
    expect(() => resolveBackoff({ multiplier: 0.5 })).toThrow(/multiplier must be a finite number >= 1/);
  });
});
