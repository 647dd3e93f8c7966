/**
 * A work queue like client-go's, in small: a key is reconciled by one worker at a time (a key added
 * while it is being reconciled runs again right after), errors requeue it with exponential backoff
 * per key (5 ms doubling to 30 s, reset on success), and a reconcile may ask to run again after a delay.
 * Different keys run concurrently.
 */

export interface ReconcileResult {
  /** Run again after this long even without an event. */
  readonly requeueAfterMs?: number | null;
}

export type ReconcileFn = (key: string) => Promise<ReconcileResult>;

export interface QueueOptions {
  readonly baseBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly onError?: (key: string, err: unknown, retryInMs: number) => void;
}

export class WorkQueue {
  readonly #reconcile: ReconcileFn;
  readonly #base: number;
  readonly #max: number;
  readonly #onError: QueueOptions['onError'];
  readonly #running = new Map<string, Promise<void>>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #failures = new Map<string, number>();
  #stopped = false;

  constructor(reconcile: ReconcileFn, options: QueueOptions = {}) {
    this.#reconcile = reconcile;
    this.#base = options.baseBackoffMs ?? 5;
    this.#max = options.maxBackoffMs ?? 30_000;
    this.#onError = options.onError;
  }

  /** Reconcile `key` as soon as it is not already being reconciled. */
  add(key: string): void {
    if (this.#stopped) return;
    const timer = this.#timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.#timers.delete(key);
    }
    if (this.#running.has(key)) {
      this.#dirty.add(key);
      return;
    }
    const run = this.#process(key);
    this.#running.set(key, run);
  }

  /** Reconcile `key` after `ms`, unless an earlier add comes first. */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    const existing = this.#timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, timer);
  }

  get inFlight(): number {
    return this.#running.size;
  }

  /** Stops taking work and waits (up to `timeoutMs`) for reconciles in flight. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#dirty.clear();
    const running = Promise.allSettled([...this.#running.values()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([running, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  async #process(key: string): Promise<void> {
    let result: ReconcileResult = {};
    try {
      result = await this.#reconcile(key);
      this.#failures.delete(key);
    } catch (err) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const retryInMs = Math.min(this.#max, this.#base * 2 ** (failures - 1));
      this.#onError?.(key, err, retryInMs);
      result = { requeueAfterMs: retryInMs };
    } finally {
      this.#running.delete(key);
    }
    if (this.#stopped) return;
    if (this.#dirty.delete(key)) this.add(key);
    else if (result.requeueAfterMs != null) this.addAfter(key, result.requeueAfterMs);
  }
}
