import type { Envelope, ErrorBody } from '../protocol/index.ts';

/** One answer of `GET /poll` (docs/protocol.md, "Short polling"). */
export interface PollAnswer {
  readonly ok: true;
  readonly room: string;
  readonly seq: number;
  readonly envelopes: readonly Envelope[];
  readonly next: number;
  readonly more: boolean;
  readonly retryAfterMs: number;
}

/** What one poll came to: envelopes (200), nothing new (304), or a refusal / a network failure. */
export type PollOutcome =
  | { readonly kind: 'answer'; readonly answer: PollAnswer }
  | { readonly kind: 'not-modified'; readonly retryAfterMs: number }
  | { readonly kind: 'refused'; readonly status: number; readonly error: ErrorBody }
  | { readonly kind: 'failed'; readonly message: string };

export interface RoomPollerOptions {
  /** Gateway or edge origin. */
  readonly url: string;
  readonly room: string;
  /** The bearer token, or the `userId` for `AUTH_MODE=none`; asked before every poll. */
  readonly credentials: () => Promise<{ token?: string; userId?: string }>;
  /** Where to continue from (`after`); null asks for a fresh read (a `room:reset`). */
  readonly resumePoint: () => number | null;
  /** Called with each outcome; returns how long to wait before the next poll, or null to stop. */
  readonly onOutcome: (outcome: PollOutcome) => number | null;
  /** Envelopes per answer (`limit`). @default 100 */
  readonly limit?: number;
  readonly fetch?: typeof fetch;
}

/** HTTP requests and bytes a poller used, for the page's ladder and the rung benchmark. */
export interface PollerStats {
  requests: number;
  notModified: number;
  /** Response body bytes received. */
  bodyBytes: number;
}

/**
 * Polls one room with `GET /poll`: `after` = the client's resume point, `If-None-Match` = the ETag of
 * the last answer (the resume point it led to), so a quiet room answers `304` with no body. The caller
 * decides the pace from each outcome (the server's `Retry-After`, a backoff after failures).
 */
export class RoomPoller {
  readonly stats: PollerStats = { requests: 0, notModified: 0, bodyBytes: 0 };
  readonly #opts: RoomPollerOptions;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #abort: AbortController | null = null;
  #etag: string | null = null;
  #stopped = false;

  constructor(opts: RoomPollerOptions) {
    this.#opts = opts;
  }

  start(): void {
    this.#schedule(0);
  }

  /** Polls now instead of waiting out the current delay (e.g. after our own publish). */
  pollSoon(): void {
    if (this.#timer === null) return; // a poll is in flight; it schedules the next one itself
    this.#schedule(0);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort?.abort();
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#poll();
    }, delayMs);
  }

  async #poll(): Promise<void> {
    const outcome = await this.#request();
    if (this.#stopped) return;
    const delay = this.#opts.onOutcome(outcome);
    if (delay === null) this.stop();
    else this.#schedule(delay);
  }

  async #request(): Promise<PollOutcome> {
    const { url, room, limit } = this.#opts;
    let credentials: { token?: string; userId?: string };
    try {
      credentials = await this.#opts.credentials();
    } catch (err) {
      return { kind: 'failed', message: `getToken() failed: ${String(err)}` };
    }
    const after = this.#opts.resumePoint();
    const query = new URLSearchParams({ room });
    if (after !== null) query.set('after', String(after));
    if (limit !== undefined) query.set('limit', String(limit));
    if (credentials.token === undefined && credentials.userId !== undefined) query.set('userId', credentials.userId);
    const headers: Record<string, string> = {};
    if (credentials.token !== undefined) headers.authorization = `Bearer ${credentials.token}`;
    if (after !== null && this.#etag === `"${after}"`) headers['if-none-match'] = this.#etag;
    this.#abort = new AbortController();
    this.stats.requests += 1;
    try {
      // no-store: the conditional request is ours; the browser's cache must not answer it for us.
      const res = await (this.#opts.fetch ?? fetch)(`${url.replace(/\/$/, '')}/poll?${query}`, { headers, cache: 'no-store', signal: this.#abort.signal });
      const text = res.status === 304 ? '' : await res.text();
      this.stats.bodyBytes += text.length;
      const etag = res.headers.get('etag');
      if (etag) this.#etag = etag;
      const retryAfterMs = Number(res.headers.get('retry-after') ?? '1') * 1000;
      if (res.status === 304) {
        this.stats.notModified += 1;
        return { kind: 'not-modified', retryAfterMs };
      }
      const body = JSON.parse(text) as PollAnswer | { ok: false; error: ErrorBody };
      if (res.ok && body.ok) return { kind: 'answer', answer: body };
      if (!body.ok && body.error) return { kind: 'refused', status: res.status, error: body.error };
      return { kind: 'failed', message: `GET /poll answered ${res.status} without an error body` };
    } catch (err) {
      return { kind: 'failed', message: `GET /poll failed: ${(err as Error).message}` };
    } finally {
      this.#abort = null;
    }
  }
}
