import type { Server, Socket } from 'socket.io';
import { ProtocolError } from '../protocol/index.ts';
import type { HandshakeGuard } from './gateway.ts';
import type { EventGuard } from './handlers.ts';

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

  constructor(capacity: number, refillPerSecond: number, now: () => number = () => performance.now()) {
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

  /** Spends one token when there is one; false means "over the limit, refuse". */
  tryTake(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
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

export interface AdmissionOptions {
  /** Connections this instance holds at most (Engine.IO connections, including the one asking). */
  readonly maxConnections: number;
  /** New handshakes per second this instance accepts (a token bucket of the same size). */
  readonly maxPerSecond: number;
  /** Current Engine.IO connections, including the handshaking one. */
  readonly connectionCount: () => number;
  readonly now?: () => number;
}

/**
 * Admission as a handshake guard: past the connection limit, or faster than the connection rate,
 * the handshake is refused with the retryable `over_capacity`, so the client and the edge try
 * again (elsewhere) after a backoff instead of piling onto this instance.
 */
export function admissionGuard(opts: AdmissionOptions): HandshakeGuard {
  const rate = new TokenBucket(opts.maxPerSecond, opts.maxPerSecond, opts.now);
  return () => {
    const count = opts.connectionCount();
    if (count > opts.maxConnections) {
      throw new ProtocolError('over_capacity', `this instance is at its connection limit (${opts.maxConnections}); retry after a backoff, another instance may take you`, 1_000);
    }
    if (!rate.tryTake()) {
      const retryAfterMs = Math.max(rate.retryAfterMs(), 100);
      throw new ProtocolError('over_capacity', `this instance accepts at most ${opts.maxPerSecond} new connections per second; retry after a backoff`, retryAfterMs);
    }
  };
}

/** Engine.IO connections of `io`, for `admissionGuard`. */
export function engineConnectionCount(io: Server): () => number {
  return () => io.engine.clientsCount;
}
