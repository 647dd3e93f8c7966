import type { DurableEnvelope } from './envelope.ts';

/** What to do after offering an envelope to a room's sequence. */
export interface SequenceOutcome {
  /** Envelopes now deliverable to the application, in seq order, each exactly once. */
  readonly deliver: readonly DurableEnvelope[];
  /** True when the offered envelope was already delivered (or already waiting). */
  readonly duplicate: boolean;
  /** Seqs missing before the earliest held envelope: ask `history:fetch` for `afterSeq = from - 1`. */
  readonly gap: { readonly from: number; readonly to: number } | null;
}

/**
 * Per-room ordering for a client: delivers contiguous seqs once, drops duplicates, holds envelopes
 * that arrive ahead of a gap until the gap is filled (by late arrival or by `history:fetch`).
 */
export class RoomSequence {
  #lastSeq: number | null;
  readonly #held = new Map<number, DurableEnvelope>();
  readonly #maxHeld: number;

  constructor(lastSeq: number | null = null, maxHeld = 10_000) {
    this.#lastSeq = lastSeq;
    this.#maxHeld = maxHeld;
  }

  /** The last seq delivered to the application (what to resume from), or null before the first. */
  get lastSeq(): number | null {
    return this.#lastSeq;
  }

  get heldCount(): number {
    return this.#held.size;
  }

  offer(envelope: DurableEnvelope): SequenceOutcome {
    const { seq } = envelope;
    if (this.#lastSeq === null) {
      this.#lastSeq = seq;
      return { deliver: [envelope, ...this.#drain()], duplicate: false, gap: this.#gap() };
    }
    if (seq <= this.#lastSeq || this.#held.has(seq)) {
      return { deliver: [], duplicate: true, gap: this.#gap() };
    }
    if (seq === this.#lastSeq + 1) {
      this.#lastSeq = seq;
      return { deliver: [envelope, ...this.#drain()], duplicate: false, gap: this.#gap() };
    }
    if (this.#held.size >= this.#maxHeld) {
      // Far behind: holding more only grows memory; the caller's gap fetch will answer with a reset.
      return { deliver: [], duplicate: false, gap: this.#gap() };
    }
    this.#held.set(seq, envelope);
    return { deliver: [], duplicate: false, gap: this.#gap() };
  }

  /** After `room:reset`: continue from `seq`, keeping only held envelopes past it. */
  reset(seq: number): readonly DurableEnvelope[] {
    this.#lastSeq = seq;
    for (const held of this.#held.keys()) if (held <= seq) this.#held.delete(held);
    return this.#drain();
  }

  #drain(): DurableEnvelope[] {
    const out: DurableEnvelope[] = [];
    for (;;) {
      const next = this.#held.get((this.#lastSeq ?? 0) + 1);
      if (!next) return out;
      this.#held.delete(next.seq);
      this.#lastSeq = next.seq;
      out.push(next);
    }
  }

  #gap(): { from: number; to: number } | null {
    if (this.#held.size === 0 || this.#lastSeq === null) return null;
    const earliest = Math.min(...this.#held.keys());
    return { from: this.#lastSeq + 1, to: earliest - 1 };
  }
}
