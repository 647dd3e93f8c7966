import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Socket } from 'socket.io';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Identity } from '../../app/gateway/auth.ts';
import { TokenExpiry } from '../../app/gateway/token-expiry.ts';
import type { Envelope } from '../../app/protocol/index.ts';

const LEAD_MS = 30_000;
const START = Date.UTC(2026, 10, 23, 12, 0, 0);

function fakeSocket() {
  const sent: Envelope[] = [];
  let disconnected: boolean | null = null;
  const socket = {
    id: 's1',
    data: {} as { identity?: Identity },
    emit: (_type: string, envelope: Envelope) => void sent.push(envelope),
    disconnect: (close: boolean) => void (disconnected = close),
  };
  return { socket: socket as unknown as Socket, sent, disconnected: () => disconnected, data: socket.data };
}

describe('TokenExpiry', () => {
  let expiry: TokenExpiry;
  beforeEach(() => {
    vi.useFakeTimers({ now: START });
    expiry = new TokenExpiry({ leadMs: LEAD_MS, registry: new Registry(), log: pino({ level: 'silent' }) });
  });
  afterEach(() => {
    expiry.stop();
    vi.useRealTimers();
  });

  it('asks for a refresh lead-time before exp and disconnects at exp with token_expired', () => {
    const exp = START / 1000 + 120;
    const s = fakeSocket();
    s.data.identity = { userId: 'u', exp };
    expiry.watch(s.socket);
    vi.advanceTimersByTime(120_000 - LEAD_MS - 1);
    expect(s.sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(s.sent).toEqual([expect.objectContaining({ type: 'auth:refresh', payload: { exp, refreshBy: exp * 1000 } })]);
    vi.advanceTimersByTime(LEAD_MS - 1);
    expect(s.disconnected()).toBeNull();
    vi.advanceTimersByTime(1);
    expect(s.sent.at(-1)).toMatchObject({ type: 'connection:closing', payload: { reason: 'token_expired', reconnect: false } });
    expect(s.disconnected()).toBe(true);
  });

  it('moves both deadlines after a refresh', () => {
    const s = fakeSocket();
    s.data.identity = { userId: 'u', exp: START / 1000 + 60 };
    expiry.watch(s.socket);
    vi.advanceTimersByTime(40_000);
    s.data.identity = { userId: 'u', exp: START / 1000 + 600 };
    expiry.refreshed(s.socket);
    vi.advanceTimersByTime(600_000 - LEAD_MS - 40_000 - 1);
    expect(s.sent.filter((e) => e.type === 'auth:refresh')).toHaveLength(1); // only the first ask
    expect(s.disconnected()).toBeNull();
    vi.advanceTimersByTime(1);
    expect(s.sent.filter((e) => e.type === 'auth:refresh')).toHaveLength(2);
    vi.advanceTimersByTime(LEAD_MS);
    expect(s.disconnected()).toBe(true);
  });

  it('asks at once when the token is already inside the lead time, and leaves non-expiring identities alone', () => {
    const soon = fakeSocket();
    soon.data.identity = { userId: 'u', exp: START / 1000 + 5 };
    expiry.watch(soon.socket);
    vi.advanceTimersByTime(0);
    expect(soon.sent.map((e) => e.type)).toEqual(['auth:refresh']);

    const forever = fakeSocket();
    forever.data.identity = { userId: 'anon', exp: null };
    expiry.watch(forever.socket);
    vi.advanceTimersByTime(10 * 365 * 86_400_000);
    expect(forever.sent).toEqual([]);
  });

  it('starts enforcing exp when a refresh gives an identity that never expired one', () => {
    const s = fakeSocket();
    s.data.identity = { userId: 'u', exp: null };
    expiry.watch(s.socket);
    s.data.identity = { userId: 'u', exp: START / 1000 + 60 };
    expiry.refreshed(s.socket);
    vi.advanceTimersByTime(60_000);
    expect(s.sent.map((e) => e.type)).toEqual(['auth:refresh', 'connection:closing']);
    expect(s.disconnected()).toBe(true);
  });

  it('does not ask again when a refresh keeps the exp it was already asked about', () => {
    const s = fakeSocket();
    const exp = START / 1000 + 20; // inside the lead: asked at once
    s.data.identity = { userId: 'u', exp };
    expiry.watch(s.socket);
    vi.advanceTimersByTime(0);
    // A caching token source answers with the same token, so the same exp, three times.
    for (let i = 0; i < 3; i += 1) {
      expiry.refreshed(s.socket);
      vi.advanceTimersByTime(1);
    }
    expect(s.sent.map((e) => e.type)).toEqual(['auth:refresh']);
    vi.advanceTimersByTime(20_000);
    expect(s.sent.map((e) => e.type)).toEqual(['auth:refresh', 'connection:closing']);
  });

  it('waits correctly for an exp beyond the 24.8-day timer limit', () => {
    const s = fakeSocket();
    const exp = START / 1000 + 40 * 86_400;
    s.data.identity = { userId: 'u', exp };
    expiry.watch(s.socket);
    vi.advanceTimersByTime(30 * 86_400_000);
    expect(s.sent).toEqual([]);
    vi.advanceTimersByTime(10 * 86_400_000 - LEAD_MS);
    expect(s.sent.map((e) => e.type)).toEqual(['auth:refresh']);
  });

  it('stops watching a socket that disconnected (the gateway forgets it from its disconnect listener)', () => {
    const s = fakeSocket();
    s.data.identity = { userId: 'u', exp: START / 1000 + 60 };
    expiry.watch(s.socket);
    expiry.forget(s.socket);
    vi.advanceTimersByTime(120_000);
    expect(s.sent).toEqual([]);
  });
});
