import { ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'socket.io';
import { ProtocolError } from '../protocol/index.ts';
import type { EventGuard } from './handlers.ts';

/** The default clock of a token bucket: one function for all of them, not a closure each. */
const monotonicNow = (): number => performance.now();

/**
 * A token bucket: holds up to `capacity` tokens, refills `refillPerSecond` of them per second, and
 * each take spends one. The clock is injectable so the arithmetic is tested without waiting.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly refillPerSecond: number;
  readonly #now: () => number;
  #tokens: number;
  #updatedAt: number;

  constructor(capacity: number, refillPerSecond: number, now: () => number = monotonicNow) {
    if (!(capacity >= 1) || !(refillPerSecond > 0)) {
      throw new RangeError(`a token bucket needs capacity >= 1 and refillPerSecond > 0, got ${capacity} and ${refillPerSecond}`);
    }
    this.capacity = capacity;
    this.refillPerSecond = refillPerSecond;
    this.#now = now;
    this.#tokens = capacity;
    this.#updatedAt = now();
  }

  /** Tokens available now (fractional while refilling). */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Spends `count` tokens (default one) when there are as many; false means "over the limit, refuse". */
  tryTake(count = 1): boolean {
    this.#refill();
    if (this.#tokens < count) return false;
    this.#tokens -= count;
    return true;
  }

  /** Milliseconds until the next token is available (0 when one is available now). */
  retryAfterMs(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) / this.refillPerSecond) * 1000);
  }

  #refill(): void {
    const now = this.#now();
    // A clock that goes backwards (it should not, with performance.now) never removes tokens.
    const elapsedMs = Math.max(0, now - this.#updatedAt);
    this.#tokens = Math.min(this.capacity, this.#tokens + (elapsedMs / 1000) * this.refillPerSecond);
    this.#updatedAt = now;
  }
}

export interface InboundLimitOptions {
  readonly perSecond: number;
  readonly burst: number;
  readonly now?: () => number;
}

/**
 * Per-socket inbound rate limit as an event guard: every event (known or not) spends a token; an
 * empty bucket refuses the event with `rate_limited` and the time until the next token.
 */
export function rateLimitGuard(opts: InboundLimitOptions): EventGuard {
  const buckets = new WeakMap<Socket, TokenBucket>();
  return (ctx) => {
    let bucket = buckets.get(ctx.socket);
    if (!bucket) {
      bucket = new TokenBucket(opts.burst, opts.perSecond, opts.now);
      buckets.set(ctx.socket, bucket);
    }
    if (!bucket.tryTake()) {
      const retryAfterMs = bucket.retryAfterMs();
      throw new ProtocolError('rate_limited', `more than ${opts.perSecond} events per second (burst ${opts.burst}) on this connection; retry after ${retryAfterMs} ms`, retryAfterMs);
    }
  };
}

/**
 * Per-user inbound rate limit across all of a user's sockets on this instance (per instance: a
 * fleet-wide bucket would cost a Redis round trip per event). Same refusal as the per-socket one.
 */
export function userRateLimitGuard(opts: InboundLimitOptions & { readonly userOf: (socket: Socket) => string }): EventGuard {
  const buckets = new Map<string, { bucket: TokenBucket; sockets: number }>();
  const counted = new WeakSet<Socket>();
  return (ctx) => {
    const user = opts.userOf(ctx.socket);
    let entry = buckets.get(user);
    if (!entry) {
      entry = { bucket: new TokenBucket(opts.burst, opts.perSecond, opts.now), sockets: 0 };
      buckets.set(user, entry);
    }
    if (!counted.has(ctx.socket)) {
      // Forget the user's bucket once its last socket is gone, so the map holds only connected users.
      counted.add(ctx.socket);
      entry.sockets += 1;
      const held = entry;
      ctx.socket.once?.('disconnect', () => {
        held.sockets -= 1;
        if (held.sockets === 0 && buckets.get(user) === held) buckets.delete(user);
      });
    }
    if (!entry.bucket.tryTake()) {
      const retryAfterMs = entry.bucket.retryAfterMs();
      throw new ProtocolError('rate_limited', `more than ${opts.perSecond} events per second (burst ${opts.burst}) from user ${user} across its connections; retry after ${retryAfterMs} ms`, retryAfterMs);
    }
  };
}

export interface AdmissionOptions {
  /** Connections this instance holds at most: Engine.IO transports (from their handshake) and SSE streams. */
  readonly maxConnections: number;
  /** New connections per second this instance accepts (a token bucket of the same size). */
  readonly maxPerSecond: number;
  /** Connections held now, not counting the one asking. */
  readonly connectionCount: () => number;
  readonly now?: () => number;
}

/**
 * Admission of a new connection (an Engine.IO transport or an SSE stream), before anything of it is
 * kept: past the connection limit, or faster than the connection rate, it is refused with the
 * retryable `over_capacity` and a `retryAfterMs`, so the client and the edge try again (elsewhere)
 * after a backoff instead of piling onto this instance.
 */
export function admissionGuard(opts: AdmissionOptions): () => void {
  const rate = new TokenBucket(opts.maxPerSecond, opts.maxPerSecond, opts.now);
  return () => {
    const count = opts.connectionCount();
    if (count >= opts.maxConnections) {
      throw new AdmissionRefusal(503, 'over_capacity', `this instance is at its connection limit (${opts.maxConnections}); retry after a backoff, another instance may take you`, 1_000);
    }
    if (!rate.tryTake()) {
      const retryAfterMs = Math.max(rate.retryAfterMs(), 100);
      throw new AdmissionRefusal(429, 'over_capacity', `this instance accepts at most ${opts.maxPerSecond} new connections per second; retry after a backoff`, retryAfterMs);
    }
  };
}

/** A retryable refusal of a new connection, with the HTTP status it is answered with (503 full or draining, 429 too fast). */
export class AdmissionRefusal extends ProtocolError {
  readonly status: 429 | 503;

  constructor(status: 429 | 503, code: ConstructorParameters<typeof ProtocolError>[0], message: string, retryAfterMs: number) {
    super(code, message, retryAfterMs);
    this.status = status;
  }
}

/**
 * Connections per user on this instance (sockets and SSE streams): `reserve` refuses past the limit
 * with `too_many_connections`; the reservation lasts until `release` runs (the transport's close).
 */
export class UserConnections {
  readonly #max: number;
  readonly #counts = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  count(userId: string): number {
    return this.#counts.get(userId) ?? 0;
  }

  /** Takes a slot for `userId` or throws; `onRelease` is given the function that gives it back (once). */
  reserve(userId: string, onRelease: (release: () => void) => void): void {
    this.take(userId);
    let released = false;
    onRelease(() => {
      if (released) return;
      released = true;
      this.release(userId);
    });
  }

  /** Takes a slot for `userId` or throws; the caller gives it back with `release`, exactly once. */
  take(userId: string): void {
    const count = this.count(userId);
    if (count >= this.#max) {
      throw new ProtocolError('too_many_connections', `user ${userId} already holds ${this.#max} connections on this instance (MAX_CONNECTIONS_PER_USER); close one, or retry later`, 5_000);
    }
    this.#counts.set(userId, count + 1);
  }

  release(userId: string): void {
    const left = this.count(userId) - 1;
    if (left > 0) this.#counts.set(userId, left);
    else this.#counts.delete(userId);
  }
}

/** How long a refused upgrade's socket may take to read the refusal before it is destroyed. */
const REFUSAL_LINGER_MS = 5_000;

/**
 * Answers a refused new connection: a polling handshake (or `GET /sse`) gets a normal HTTP response; a
 * WebSocket upgrade gets the same response written on its raw socket. Either way: the status,
 * `Retry-After` in seconds, and `{ok:false, error}` as JSON.
 */
export function refuseHttp(res: ServerResponse | Duplex, refusal: ProtocolError): void {
  const status = refusal instanceof AdmissionRefusal ? refusal.status : 503;
  const body = JSON.stringify({ ok: false, error: refusal.toBody() });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'retry-after': String(Math.max(1, Math.ceil((refusal.retryAfterMs ?? 1_000) / 1_000))),
    'cache-control': 'no-store',
  };
  if (res instanceof ServerResponse) {
    res.writeHead(status, { ...headers, connection: 'close' }).end(body);
    return;
  }
  const socket = res;
  // Node's HTTP server drops its own listeners from an upgraded socket: without these, a peer that resets
  // (or never reads the refusal) would crash the process or hold the socket.
  socket.on('error', () => socket.destroy());
  const linger = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
  socket.once('close', () => clearTimeout(linger));
  const head = Object.entries({ ...headers, 'content-length': String(Buffer.byteLength(body)), connection: 'close' })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${head}\r\n${body}`);
}
