/**
 * What the chaos suite computes from what clients recorded. Pure functions, unit-tested in
 * test/chaos/measure.test.ts, so the numbers in docs/chaos.md mean what they say.
 */

/** The p-th percentile (0–100) by nearest rank; null for no samples. */
export function percentile(samples: readonly number[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Most events in any window of `windowMs` (sliding, half-open), and where that window starts. */
export function peakInWindow(times: readonly number[], windowMs = 1_000): { peak: number; at: number | null } {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  let at: number | null = null;
  let start = 0;
  for (let end = 0; end < sorted.length; end += 1) {
    while (sorted[end]! - sorted[start]! >= windowMs) start += 1;
    if (end - start + 1 > peak) {
      peak = end - start + 1;
      at = sorted[start]!;
    }
  }
  return { peak, at };
}

/** Events per bin from `origin`, for the chart: `[binStartMs, count][]` covering [origin, until). */
export function histogram(times: readonly number[], origin: number, until: number, binMs: number): [number, number][] {
  const bins = Math.max(1, Math.ceil((until - origin) / binMs));
  const counts = new Array<number>(bins).fill(0);
  for (const t of times) {
    const i = Math.floor((t - origin) / binMs);
    if (i >= 0 && i < bins) counts[i]! += 1;
  }
  return counts.map((count, i) => [i * binMs, count]);
}

export interface RoomDeliveries {
  /** The seq the room's first join started from (deliveries begin after it). */
  readonly joinedAt: number;
  /** Seqs delivered to the application, in delivery order. */
  readonly delivered: readonly number[];
}

export interface DeliveryCheck {
  /** Seqs in (joinedAt, finalSeq] never delivered. */
  readonly lost: number;
  /** Deliveries of a seq already delivered. */
  readonly duplicates: number;
  /** Deliveries out of seq order. */
  readonly outOfOrder: number;
  /** Seqs outside (joinedAt, finalSeq] that were delivered (would mean a wrong room or a bad seq). */
  readonly unexpected: number;
}

/** Checks one client's deliveries in one room against the room's final seq: exactly once, in order. */
export function checkDeliveries(room: RoomDeliveries, finalSeq: number): DeliveryCheck {
  const seen = new Set<number>();
  let duplicates = 0;
  let outOfOrder = 0;
  let unexpected = 0;
  let previous = room.joinedAt;
  for (const seq of room.delivered) {
    if (seen.has(seq)) duplicates += 1;
    seen.add(seq);
    if (seq <= previous) outOfOrder += 1;
    previous = Math.max(previous, seq);
    if (seq <= room.joinedAt || seq > finalSeq) unexpected += 1;
  }
  let lost = 0;
  for (let seq = room.joinedAt + 1; seq <= finalSeq; seq += 1) if (!seen.has(seq)) lost += 1;
  return { lost, duplicates, outOfOrder, unexpected };
}
