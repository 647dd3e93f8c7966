import type { DurableEnvelope } from '../protocol/index.ts';
import { RoomSequence } from '../protocol/sequence.ts';

/** What became of one durable envelope offered to the tracker. */
export type OfferResult =
  /** Not a room this client follows (left already, or never joined): dropped. */
  | { readonly kind: 'untracked' }
  /** The room has no starting point yet (first join in flight): kept until it has one. */
  | { readonly kind: 'pending' }
  | { readonly kind: 'sequenced'; readonly deliver: readonly DurableEnvelope[]; readonly duplicate: boolean };

interface TrackedRoom {
  readonly sequence: RoomSequence;
  /** False until the room has a starting point (a `room:reset`, or the join ack's seq). */
  baseline: boolean;
  /** Envelopes that arrived before the starting point. */
  readonly pending: DurableEnvelope[];
  /** Highest seq known to exist in the room (seen, acked or announced); above `lastSeq` means behind. */
  knownSeq: number | null;
}

/**
 * The client's per-room bookkeeping, free of I/O and timers: which rooms to resume and from where,
 * ordering and de-duplication (by `RoomSequence` from the protocol), and whether a room is behind
 * what the server has — the client turns that into a `history:fetch` when it persists.
 */
export class RoomTracker {
  readonly #rooms = new Map<string, TrackedRoom>();
  readonly #maxHeld: number;

  constructor(maxHeld = 10_000) {
    this.#maxHeld = maxHeld;
  }

  /** Follow `room`; with `lastSeq`, resume from it (a room already followed is left as it is). */
  track(room: string, lastSeq: number | null = null): void {
    if (this.#rooms.has(room)) return;
    this.#rooms.set(room, {
      sequence: new RoomSequence(lastSeq, this.#maxHeld),
      baseline: lastSeq !== null,
      pending: [],
      knownSeq: lastSeq,
    });
  }

  untrack(room: string): void {
    this.#rooms.delete(room);
  }

  has(room: string): boolean {
    return this.#rooms.has(room);
  }

  get rooms(): readonly string[] {
    return [...this.#rooms.keys()];
  }

  /** The `lastSeq` to send with `room:join`: null asks for a fresh snapshot. */
  resumePoint(room: string): number | null {
    const tracked = this.#rooms.get(room);
    return tracked?.baseline ? tracked.sequence.lastSeq : null;
  }

  /** Last seq delivered to the application, or null. */
  lastSeq(room: string): number | null {
    return this.#rooms.get(room)?.sequence.lastSeq ?? null;
  }

  offer(envelope: DurableEnvelope): OfferResult {
    const tracked = this.#rooms.get(envelope.room);
    if (!tracked) return { kind: 'untracked' };
    tracked.knownSeq = Math.max(tracked.knownSeq ?? envelope.seq, envelope.seq);
    if (!tracked.baseline) {
      // Anything dropped here past the bound is refetched later: `knownSeq` already marks it.
      if (tracked.pending.length < this.#maxHeld) tracked.pending.push(envelope);
      return { kind: 'pending' };
    }
    const outcome = tracked.sequence.offer(envelope);
    return { kind: 'sequenced', deliver: outcome.deliver, duplicate: outcome.duplicate };
  }

  /**
   * A `room:reset` (or a history reset) at `seq`: the room continues from there. A reset older than
   * what was already delivered is a stale answer that crossed a newer one; it is not applied.
   */
  reset(room: string, seq: number): { readonly applied: boolean; readonly deliver: readonly DurableEnvelope[] } {
    const tracked = this.#rooms.get(room);
    if (!tracked) return { applied: false, deliver: [] };
    const last = tracked.sequence.lastSeq;
    if (tracked.baseline && last !== null && seq < last) return { applied: false, deliver: [] };
    tracked.knownSeq = Math.max(tracked.knownSeq ?? seq, seq);
    return { applied: true, deliver: this.#startAt(tracked, seq) };
  }

  /**
   * The join ack's seq: the room's position once the replay (sent before the ack) is through.
   * A room still without a starting point takes it from here.
   */
  acknowledgeJoin(room: string, seq: number): readonly DurableEnvelope[] {
    const tracked = this.#rooms.get(room);
    if (!tracked) return [];
    tracked.knownSeq = Math.max(tracked.knownSeq ?? seq, seq);
    return tracked.baseline ? [] : this.#startAt(tracked, seq);
  }

  /** A seq the server said exists (e.g. the ack of our own publish). */
  noteSeq(room: string, seq: number): void {
    const tracked = this.#rooms.get(room);
    if (tracked) tracked.knownSeq = Math.max(tracked.knownSeq ?? seq, seq);
  }

  /**
   * When the room is missing envelopes the server has (a hole before held ones, or a known seq not
   * yet delivered), the `afterSeq` to fetch from; else null.
   */
  behind(room: string): number | null {
    const tracked = this.#rooms.get(room);
    if (!tracked?.baseline) return null;
    const last = tracked.sequence.lastSeq;
    if (last === null) return null;
    const missing = tracked.sequence.heldCount > 0 || (tracked.knownSeq !== null && tracked.knownSeq > last);
    return missing ? last : null;
  }

  #startAt(tracked: TrackedRoom, seq: number): DurableEnvelope[] {
    tracked.baseline = true;
    const deliver = [...tracked.sequence.reset(seq)];
    const pending = tracked.pending.splice(0).sort((a, b) => a.seq - b.seq);
    for (const envelope of pending) deliver.push(...tracked.sequence.offer(envelope).deliver);
    return deliver;
  }
}
