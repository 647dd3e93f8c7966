import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import type { DurableEnvelope, Envelope, ErrorBody } from '../../app/protocol/index.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';
import { connectClient } from '../helpers/clients.ts';
import { metricValue } from '../helpers/process-memory.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { hs256Token, TEST_SECRET, unsignedToken } from '../helpers/tokens.ts';

// GET /poll on a real gateway over a real redis-server: who may read, what input is refused, that the
// envelopes are the ones Socket.IO delivers, and what an idle poll costs Redis (MONITOR sees every command).

interface PollBody {
  ok: true;
  room: string;
  seq: number;
  envelopes: Envelope[];
  next: number;
  more: boolean;
  retryAfterMs: number;
}

describe('short polling: GET /poll', () => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  let gateway: GatewayProcess;
  let publisher: Backplane;
  let redisUrl: string;
  let alice: string;

  beforeAll(async () => {
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    redisUrl = redis.url;
    const [gw, stopGateway] = await startGateway({
      // Fleet stats are written once a minute here, so MONITOR only sees what polls cause.
      env: { ADAPTER: 'redis', REDIS_URL: redis.url, AUTH_MODE: 'jwt', JWT_SECRET: TEST_SECRET, FLEET_STATS_INTERVAL_MS: '60000' },
    });
    gateway = gw;
    cleanups.push(stopGateway);
    const [pub, stopPublisher] = await startPublisher(redis.url);
    publisher = pub;
    cleanups.push(stopPublisher);
    alice = await hs256Token({ sub: 'alice' });
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const poll = (query: string, headers: Record<string, string> = { authorization: `Bearer ${alice}` }, init: RequestInit = {}): Promise<Response> =>
    fetch(`${gateway.url}/poll?${query}`, { ...init, headers });
  const refusal = async (res: Response): Promise<ErrorBody> => {
    const body = (await res.json()) as { ok: false; error: ErrorBody };
    expect(body.ok).toBe(false);
    return body.error;
  };
  /**
   * Every command Redis runs from now on (MONITOR, script-inner commands included), starting from a quiet
   * moment: earlier tests' sockets may still be settling (member counts go through the adapter).
   * `settled()` returns what ran since, once a probe command of ours shows MONITOR has caught up.
   */
  async function watchRedis(): Promise<{ settled(): Promise<string[]> }> {
    const monitor = new Redis(redisUrl);
    const probe = new Redis(redisUrl);
    cleanups.push(() => void monitor.disconnect(), () => void probe.disconnect());
    const seen: string[] = [];
    const feed = await monitor.monitor();
    feed.on('monitor', (_time: string, args: string[]) => seen.push(args.join(' ')));
    await probe.get('monitor-probe');
    await waitFor('MONITOR sees commands', () => seen.some((c) => c.includes('monitor-probe')));
    let count = -1;
    await waitFor('Redis quiet for 500 ms', async () => {
      const quiet = count === seen.length;
      count = seen.length;
      if (!quiet) await new Promise((resolve) => setTimeout(resolve, 500));
      return quiet;
    });
    seen.length = 0;
    return {
      async settled() {
        await probe.get('monitor-probe-end');
        await waitFor('MONITOR caught up', () => seen.some((c) => c.includes('monitor-probe-end')));
        const commands = seen.filter((c) => !c.includes('monitor-probe'));
        seen.length = 0;
        return commands;
      },
    };
  }
  const chat = (room: string, text: string): Promise<DurableEnvelope> => publisher.publish({ room, type: 'chat:message', payload: { from: 'carol', text }, from: 'carol' });

  it('refuses a poll without a token, with a bad or expired token or another scheme, and a user room of someone else', async () => {
    const none = await poll('room=chat:auth', {});
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await refusal(none)).code).toBe('auth_required');

    for (const token of ['not-a-jwt', unsignedToken({ sub: 'alice' }), await hs256Token({ sub: 'alice' }, 'another-secret-that-is-32-characters-long!')]) {
      const res = await poll('room=chat:auth', { authorization: `Bearer ${token}` });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('invalid_token');
      expect((await refusal(res)).code).toBe('auth_invalid');
    }
    const expired = await poll('room=chat:auth', { authorization: `Bearer ${await hs256Token({ sub: 'alice', expiresIn: -5 })}` });
    expect(expired.status).toBe(401);
    expect((await refusal(expired)).code).toBe('token_expired');
    const basic = await poll('room=chat:auth', { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` });
    expect(basic.status).toBe(401);
    expect((await refusal(basic)).message).toMatch(/Bearer <token>/);

    const other = await poll('room=user:bob');
    expect(other.status).toBe(403);
    expect((await refusal(other)).code).toBe('forbidden');

    // The scheme is case-insensitive (RFC 9110); a user reads their own room.
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const own = await poll('room=user:alice', { authorization: `${scheme} ${alice}` });
      expect(own.status).toBe(200);
      expect(own.headers.get('cache-control')).toBe('private, no-cache');
      expect(((await own.json()) as PollBody).ok).toBe(true);
    }
  });

  it('refuses bad input with 400 bad_request naming the parameter (bad seq, unknown room, malformed or oversized parameters)', async () => {
    const cases: [string, RegExp][] = [
      ['room=chat:x&after=-1', /after/],
      ['room=chat:x&after=1e3', /after/],
      ['room=chat:x&after=abc', /after/],
      ['room=chat:x&after=', /after/],
      ['room=chat:x&after=%201', /after/],
      ['room=chat:x&after=99999999999999999', /after/],
      ['room=chat:x&after=9007199254740993', /after/],
      ['room=chat:x&after=1&after=2', /more than once/],
      ['room=chat:x&limit=0', /limit/],
      ['room=chat:x&limit=501', /limit/],
      ['room=chat:x&limit=10.5', /limit/],
      ['room=chat:x&since=1', /unknown parameter/],
      ['after=1', /room/],
      ['room=lobby', /room/],
      ['room=Admin:secrets', /room/],
      ['room=chat:', /room/],
      [`room=chat:${'a'.repeat(65)}`, /room/],
      ['room=chat:../../etc', /room/],
    ];
    for (const [query, message] of cases) {
      const res = await poll(query);
      expect(res.status, query).toBe(400);
      const error = await refusal(res);
      expect(error.code, query).toBe('bad_request');
      expect(error.message, query).toMatch(message);
    }
    // A well-formed room in no declared namespace (docs/namespaces.md) is not there: 404.
    const unknown = await poll('room=admin:secrets');
    expect(unknown.status).toBe(404);
    expect((await refusal(unknown)).code).toBe('unknown_namespace');
    const long = await poll(`room=chat:x&after=1&limit=1${'&'.repeat(2_100)}`);
    expect(long.status).toBe(414);
    expect((await refusal(long)).code).toBe('bad_request');
    const post = await poll('room=chat:x', { authorization: `Bearer ${alice}` }, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
  });

  it('gives the envelopes Socket.IO delivers, a reset on a fresh read, and pages with limit/next/more', async () => {
    const room = 'chat:pages';
    const [listener, close] = await connectClient(gateway.url, { token: alice });
    cleanups.push(close);
    expect(await listener.request('room:join', { room })).toMatchObject({ ok: true });

    const fresh = (await (await poll(`room=${room}`)).json()) as PollBody;
    expect(fresh.envelopes).toHaveLength(1);
    expect(fresh.envelopes[0]).toMatchObject({ type: 'room:reset', room, seq: fresh.seq });
    expect(fresh.next).toBe(fresh.seq);

    for (let i = 0; i < 7; i += 1) await chat(room, `m${i}`);
    await waitFor('the socket got all 7', () => listener.received.length === 7);

    const seen: Envelope[] = [];
    let after = fresh.next;
    for (let page = 0; page < 3; page += 1) {
      const res = await poll(`room=${room}&after=${after}&limit=3`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as PollBody;
      seen.push(...body.envelopes);
      expect(body.more).toBe(page < 2);
      if (body.more) expect(res.headers.get('retry-after')).toBe('0');
      expect(res.headers.get('etag')).toBe(`"${body.next}"`);
      after = body.next;
    }
    expect(seen).toEqual(listener.received);
    expect(after).toBe(listener.received.at(-1)!.seq);

    // A poll from before what the instance keeps in memory is answered from history, the same way.
    const fromHistory = (await (await poll(`room=${room}&after=${fresh.seq}&limit=2`)).json()) as PollBody;
    expect(fromHistory.envelopes).toEqual(listener.received.slice(0, 2));
    close();
  });

  it('bounds an answer to 256 KiB whatever the limit, and pages the rest', async () => {
    const room = 'chat:big';
    const fresh = (await (await poll(`room=${room}`)).json()) as PollBody;
    const text = 'y'.repeat(2_000);
    await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publish({ room, type: 'chat:message', payload: { from: 'carol', text: `${i} ${text}` }, from: 'carol' })));
    let after = fresh.next;
    const pages: number[] = [];
    for (let attempt = 0; attempt < 30 && after < fresh.seq + 200; attempt += 1) {
      const res = await poll(`room=${room}&after=${after}&limit=500`);
      const raw = await res.text();
      expect(raw.length).toBeLessThanOrEqual(256 * 1024 + 1_024);
      const body = JSON.parse(raw) as PollBody;
      // The instance may still be receiving the burst: an empty answer is "nothing yet", not the end.
      if (body.envelopes.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      else pages.push(body.envelopes.length);
      expect(body.envelopes.map((e) => e.seq)).toEqual(body.envelopes.map((_, i) => after + 1 + i));
      after = body.next;
    }
    expect(after).toBe(fresh.seq + 200);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.reduce((a, b) => a + b, 0)).toBe(200);
    // What the instance keeps for pollers stays bounded: 400 KiB went by in this room alone.
    expect(await metricValue(gateway.internalUrl, 'rt_short_poll_kept_bytes')).toBeLessThan(128 * 1024);
  });

  it('answers an idle poll of a quiet room with 304 and no Redis command at all, and hints a longer Retry-After as the room stays quiet', async () => {
    const room = 'chat:quiet';
    const first = (await (await poll(`room=${room}`)).json()) as PollBody;
    const sent = await chat(room, 'hello');
    await expect.poll(async () => ((await (await poll(`room=${room}&after=${first.next}`)).json()) as PollBody).envelopes).toEqual([sent]);

    const redis = await watchRedis();

    const etag = `"${sent.seq}"`;
    for (let i = 0; i < 20; i += 1) {
      const res = await poll(`room=${room}&after=${sent.seq}`, { authorization: `Bearer ${alice}`, 'if-none-match': etag });
      expect(res.status).toBe(304);
      expect(res.headers.get('etag')).toBe(etag);
      expect(res.headers.get('cache-control')).toBe('private, no-cache');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await res.text()).toBe('');
    }
    // Without If-None-Match the same idle answer is an empty 200, still from memory.
    const empty = await poll(`room=${room}&after=${sent.seq}`);
    expect(await empty.json()).toMatchObject({ ok: true, envelopes: [], next: sent.seq, more: false });
    const busyHint = ((await (await poll(`room=${room}&after=${sent.seq}`)).json()) as PollBody).retryAfterMs;
    expect(await redis.settled()).toEqual([]);

    expect(busyHint).toBe(1_000);
    await new Promise((resolve) => setTimeout(resolve, 6_500));
    const quiet = await poll(`room=${room}&after=${sent.seq}`, { authorization: `Bearer ${alice}`, 'if-none-match': etag });
    expect(quiet.status).toBe(304);
    expect(Number(quiet.headers.get('retry-after'))).toBeGreaterThanOrEqual(2);
  });

  it('counts polls in a per-user rate limit: past the burst, 429 rate_limited with Retry-After', async () => {
    const flooder = await hs256Token({ sub: 'flooder' });
    // All at once, so the bucket (burst 40, 20/s) cannot refill meanwhile, however loaded the machine is.
    const responses = await Promise.all(Array.from({ length: 100 }, () => poll('room=chat:flood&after=1', { authorization: `Bearer ${flooder}` })));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length, statuses.join(',')).toBeGreaterThanOrEqual(40);
    const limited = responses.find((r) => r.status === 429);
    expect(limited, statuses.join(',')).toBeDefined();
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const error = await refusal(limited!);
    expect(error.code).toBe('rate_limited');
    expect(error.retryAfterMs).toBeGreaterThan(0);
    await Promise.all(responses.filter((r) => r !== limited).map((r) => r.arrayBuffer()));
    // Another user is not affected.
    expect((await poll('room=chat:flood&after=1')).status).toBe(200);
  });

  it('follows at most 1000 rooms per instance for pollers; past that a poll is still answered, from history', async () => {
    const users = await Promise.all(Array.from({ length: 26 }, (_, i) => hs256Token({ sub: `many-${i}` })));
    const queries = Array.from({ length: 1_014 }, (_, i) => ({ room: `chat:many-${i}`, token: users[Math.floor(i / 39)]! }));
    for (let i = 0; i < queries.length; i += 100) {
      const batch = await Promise.all(queries.slice(i, i + 100).map(({ room, token }) => poll(`room=${room}`, { authorization: `Bearer ${token}` })));
      expect(batch.map((r) => r.status)).toEqual(batch.map(() => 200));
      await Promise.all(batch.map((r) => r.arrayBuffer()));
    }
    expect(await metricValue(gateway.internalUrl, 'rt_short_poll_followed_rooms')).toBe(1_000);
    const past = (await (await poll('room=chat:one-more')).json()) as PollBody;
    expect(past.envelopes[0]).toMatchObject({ type: 'room:reset', room: 'chat:one-more' });
    expect(await metricValue(gateway.internalUrl, 'rt_short_poll_followed_rooms')).toBe(1_000);

    // An idle poll of a room this instance does not follow: one history script, which reads one key.
    const redis = await watchRedis();
    const idle = await poll(`room=chat:one-more&after=${past.next}`, { authorization: `Bearer ${alice}`, 'if-none-match': `"${past.next}"` });
    expect(idle.status).toBe(304);
    const commands = await redis.settled();
    expect(commands).toHaveLength(2);
    expect(commands[0]).toMatch(/^evalsha \S+ 3 rt:\{chat:one-more\}:seq /);
    expect(commands[1]).toBe('GET rt:{chat:one-more}:seq');
  });
});
