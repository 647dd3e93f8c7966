import type { Socket } from 'socket.io';
import { describe, expect, it } from 'vitest';
import { admissionGuard, rateLimitGuard, TokenBucket } from '../../app/gateway/limits.ts';
import type { ConnectionContext } from '../../app/gateway/handlers.ts';
import { ProtocolError } from '../../app/protocol/index.ts';

/** A hand-driven clock, in milliseconds. */
function fakeClock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function refusalOf(fn: () => void): ProtocolError | null {
  try {
    fn();
    return null;
  } catch (err) {
    if (err instanceof ProtocolError) return err;
    throw err;
  }
}

describe('TokenBucket', () => {
  it('starts full, spends one token per take, and refuses when empty', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(3, 1, clock.now);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, true, false]);
  });

  it('refills at its rate and never beyond its capacity', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(2, 4, clock.now);
    bucket.tryTake();
    bucket.tryTake();
    expect(bucket.tryTake()).toBe(false);
    clock.advance(250); // 4/s → one token
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(60_000);
    expect(bucket.tokens).toBe(2);
  });

  it('says how long until the next token', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(1, 10, clock.now);
    expect(bucket.retryAfterMs()).toBe(0);
    bucket.tryTake();
    expect(bucket.retryAfterMs()).toBe(100);
    clock.advance(40);
    expect(bucket.retryAfterMs()).toBe(60);
  });

  it('ignores a clock that goes backwards instead of losing tokens', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(2, 1, clock.now);
    bucket.tryTake();
    clock.advance(-5_000);
    expect(bucket.tokens).toBe(1);
  });

  it('rejects a bucket that could never admit anything', () => {
    expect(() => new TokenBucket(0, 1)).toThrow(/capacity >= 1/);
    expect(() => new TokenBucket(1, 0)).toThrow(/refillPerSecond > 0/);
  });
});

describe('rateLimitGuard', () => {
  const ctxFor = (socket: object): ConnectionContext => ({ socket: socket as Socket }) as ConnectionContext;

  it('keeps one bucket per socket and refuses with rate_limited and retryAfterMs', () => {
    const clock = fakeClock();
    const guard = rateLimitGuard({ perSecond: 2, burst: 2, now: clock.now });
    const noisy = ctxFor({});
    const quiet = ctxFor({});
    expect(refusalOf(() => guard(noisy, 'counter:read', []))).toBeNull();
    expect(refusalOf(() => guard(noisy, 'counter:read', []))).toBeNull();
    const refused = refusalOf(() => guard(noisy, 'counter:read', []));
    expect(refused?.code).toBe('rate_limited');
    expect(refused?.retryAfterMs).toBe(500);
    expect(refusalOf(() => guard(quiet, 'counter:read', []))).toBeNull();
    clock.advance(500);
    expect(refusalOf(() => guard(noisy, 'counter:read', []))).toBeNull();
  });
});

describe('admissionGuard', () => {
  it('refuses past the connection limit (the count is of connections held, not the one asking) with 503', () => {
    let count = 2;
    const guard = admissionGuard({ maxConnections: 3, maxPerSecond: 100, connectionCount: () => count });
    expect(refusalOf(() => guard())).toBeNull();
    count = 3;
    expect(refusalOf(() => guard())).toMatchObject({ code: 'over_capacity', status: 503, retryAfterMs: 1_000 });
  });

  it('refuses handshakes faster than the connection rate, and admits again as the bucket refills', () => {
    const clock = fakeClock();
    const guard = admissionGuard({ maxConnections: 1_000, maxPerSecond: 2, connectionCount: () => 1, now: clock.now });
    expect(refusalOf(() => guard())).toBeNull();
    expect(refusalOf(() => guard())).toBeNull();
    const refused = refusalOf(() => guard());
    expect(refused).toMatchObject({ code: 'over_capacity', status: 429 });
    expect(refused?.retryAfterMs).toBeGreaterThan(0);
    clock.advance(500);
    expect(refusalOf(() => guard())).toBeNull();
  });
});
