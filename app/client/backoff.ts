/**
 * Full-jitter exponential backoff ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015):
 * `delay = random(0, min(capMs, baseMs * multiplier ** attempt))`. Spreading every retry over the
 * whole window, down to zero, is what keeps a pod's worth of clients from arriving in one second.
 */
export interface BackoffOptions {
  /** Ceiling of the first retry's window. @default 1000 */
  readonly baseMs?: number;
  /** No window grows past this. @default 30000 */
  readonly capMs?: number;
  /** Growth of the window per failed attempt. @default 2 */
  readonly multiplier?: number;
  /**
   * `false` waits the whole window every time (plain exponential) — only for contrast runs that
   * show what jitter buys. @default true
   */
  readonly jitter?: boolean;
}

export const DEFAULT_BACKOFF = { baseMs: 1_000, capMs: 30_000, multiplier: 2, jitter: true } as const satisfies Required<BackoffOptions>;

export type ResolvedBackoff = Required<BackoffOptions>;

export function resolveBackoff(options: BackoffOptions = {}): ResolvedBackoff {
  const resolved = { ...DEFAULT_BACKOFF, ...stripUndefined(options) };
  const { baseMs, capMs, multiplier } = resolved;
  if (!(Number.isFinite(baseMs) && baseMs >= 0)) throw new RangeError(`backoff.baseMs must be a finite number >= 0, got ${baseMs}`);
  if (!(Number.isFinite(capMs) && capMs >= baseMs)) throw new RangeError(`backoff.capMs must be a finite number >= baseMs (${baseMs}), got ${capMs}`);
  if (!(Number.isFinite(multiplier) && multiplier >= 1)) throw new RangeError(`backoff.multiplier must be a finite number >= 1, got ${multiplier}`);
  return resolved;
}

/** Upper bound of the window for retry number `attempt` (0 for the first retry after a loss). */
export function backoffCeiling(attempt: number, options: ResolvedBackoff): number {
  // multiplier ** attempt overflows to Infinity for large attempts; min() then yields the cap
  // (a zero base would make that 0 * Infinity = NaN, hence its own case).
  if (options.baseMs === 0) return 0;
  return Math.min(options.capMs, options.baseMs * options.multiplier ** Math.max(0, attempt));
}

/** The delay before retry number `attempt`; `random` returns a number in [0, 1). */
export function backoffDelay(attempt: number, options: ResolvedBackoff, random: () => number = Math.random): number {
  const ceiling = backoffCeiling(attempt, options);
  return options.jitter ? random() * ceiling : ceiling;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
