import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge } from 'prom-client';
import { controlEnvelope, type DurableEnvelope, type Envelope, ProtocolError, roomSchema } from '../protocol/index.ts';
import { authorizeJoin, type Namespaces } from './namespaces.ts';
import type { Authenticator, Identity } from './auth.ts';
import type { Backplane } from './backplane/backplane.ts';
import { TokenBucket } from './limits.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { RoomHub, RoomMember } from './room-hub.ts';

/** Bounds of `GET /poll` (docs/security.md). */
export const SHORT_POLL_LIMITS = {
  /** Longest request target (path + query) accepted; past it: 414. */
  maxUrlBytes: 2_048,
  /** Envelopes per answer when `limit` is not given. */
  defaultLimit: 100,
  /** Largest `limit`. */
  maxLimit: 500,
  /** An answer stops adding envelopes past this many bytes (it always carries at least one) and sets `more`. */
  maxBodyBytes: 256 * 1024,
  /** Newest envelopes of a reset's snapshot, as for Socket.IO and SSE. */
  snapshotRecent: 50,
  /** Rooms one instance follows for pollers; past it, polls read history. */
  maxFollowedRooms: 1_000,
  /** Newest envelopes kept in memory per followed room, and at most this many bytes of them. */
  keptPerRoom: 100,
  keptBytesPerRoom: 64 * 1024,
} as const;

const PARAMS = new Set(['room', 'after', 'limit', 'userId', 'subscriptionToken']);
const SEQ_PATTERN = /^(0|[1-9][0-9]{0,15})$/;
const LIMIT_PATTERN = /^[1-9][0-9]{0,3}$/;
const BEARER = /^bearer[ \t]+([^ \t]+)[ \t]*$/i;

export interface ShortPollOptions {
  readonly hub: RoomHub;
  readonly backplane: Backplane;
  readonly auth: Authenticator;
  /** The rooms' join policies (docs/namespaces.md): a poll reads a room only where a join would be allowed. */
  readonly namespaces: Namespaces;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Polls per second one user may make (token bucket refill), as `RATE_LIMIT_PER_SECOND` for socket events. */
  readonly ratePerSecond: number;
  /** The bucket's size, as `RATE_LIMIT_BURST`. */
  readonly rateBurst: number;
  /** Rooms this instance follows for pollers (one subscription each); past it polls read history. @default SHORT_POLL_LIMITS.maxFollowedRooms */
  readonly maxFollowedRooms?: number;
  /** A followed room nobody polled for this long is left. @default 30000 */
  readonly followMs?: number;
  /** Envelopes kept per followed room, so a poller a few seqs behind is answered from memory. @default SHORT_POLL_LIMITS.keptPerRoom */
  readonly keptPerRoom?: number;
  /** The `Retry-After` hint: it starts here while the room is busy… @default 1000 */
  readonly minRetryMs?: number;
  /** …and grows with the room's quiet time up to this. @default 10000 */
  readonly maxRetryMs?: number;
  readonly now?: () => number;
}

/** A room this instance follows for its pollers: its last seq and newest envelopes, in memory. */
interface FollowedRoom {
  readonly member: RoomMember;
  /** Settles once the hub's join answered (or failed: the room is then forgotten). */
  joined: Promise<void>;
  /** Null until the hub's join answered; polls read history meanwhile. */
  seq: number | null;
  /** Contiguous, oldest first, ending at `seq`; at most `keptPerRoom` of them and `keptBytesPerRoom` bytes. */
  recent: DurableEnvelope[];
  recentBytes: number;
  lastActivityAt: number;
  lastPolledAt: number;
}

interface PollAnswer {
  /** The room's seq when the answer was made. */
  readonly seq: number;
  readonly envelopes: Envelope[];
  /** Where the client continues from: `after` of its next poll. */
  readonly next: number;
  readonly more: boolean;
  readonly lastActivityAt: number | null;
}

/**
 * `GET /poll?room=…&after=<seq>&limit=<n>`: the first rung of the ladder. The room's envelopes after
 * `after` — the same history, room authorization, envelopes and error bodies as Socket.IO and SSE —
 * in one plain, bearer-authenticated HTTP answer that any proxy passes and any instance can give.
 *
 * An idle poll is nearly free: each instance follows the rooms its pollers read (one subscription and
 * one history read, through the same hub as sockets, when the first poll arrives) and keeps their last
 * seq and newest envelopes in memory, so "nothing after N" (a `304` with `If-None-Match`) and "the few
 * after N" cost no Redis command. Only a fresh read (no `after`), a gap older than what memory holds,
 * or a room past `maxFollowedRooms` reads history (one script, as a resume does).
 */
export class ShortPoll {
  readonly #opts: ShortPollOptions;
  readonly #now: () => number;
  readonly #followed = new Map<string, FollowedRoom>();
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #sweeper: NodeJS.Timeout;
  readonly #polls: Counter<'status'>;

  constructor(opts: ShortPollOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    const registers = [opts.metrics.registry];
    this.#polls = new Counter({ name: 'rt_short_polls_total', help: 'GET /poll answers, by HTTP status.', labelNames: ['status'], registers });
    const followed = this.#followed;
    new Gauge({
      name: 'rt_short_poll_followed_rooms',
      help: 'Rooms this instance follows for short pollers (one subscription each).',
      registers,
      collect() {
        this.set(followed.size);
      },
    });
    new Gauge({
      name: 'rt_short_poll_kept_bytes',
      help: 'Bytes of envelopes kept in memory for short pollers, over every followed room.',
      registers,
      collect() {
        let bytes = 0;
        for (const room of followed.values()) bytes += room.recentBytes;
        this.set(bytes);
      },
    });
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(1_000, (opts.followMs ?? 30_000) / 2));
    this.#sweeper.unref();
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const status = await this.#handle(req, res, url).catch((err: unknown) => {
      this.#opts.log.error({ err }, 'GET /poll failed');
      if (res.headersSent) {
        res.end();
        return 500;
      }
      return this.#fail(res, 500, new ProtocolError('internal', 'the poll failed; it was logged'));
    });
    this.#polls.inc({ status: String(status) });
  }

  stop(): void {
    clearInterval(this.#sweeper);
    for (const [room, followed] of this.#followed) this.#opts.hub.leave(followed.member, room);
    this.#followed.clear();
  }

  async #handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<number> {
    if (req.method !== 'GET') {
      return this.#fail(res, 405, new ProtocolError('bad_request', `GET /poll only, not ${req.method}`), { allow: 'GET' });
    }
    if (Buffer.byteLength(req.url ?? '') > SHORT_POLL_LIMITS.maxUrlBytes) {
      return this.#fail(res, 414, new ProtocolError('bad_request', `the request target is longer than ${SHORT_POLL_LIMITS.maxUrlBytes} bytes`));
    }
    let params;
    try {
      params = parseParams(url);
    } catch (err) {
      if (err instanceof ProtocolError) return this.#fail(res, 400, err);
      throw err;
    }

    let identity: Identity;
    try {
      identity = await this.#authenticate(req, params.userId);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      if (err.code === 'bad_request') return this.#fail(res, 400, err);
      const description = err.code === 'auth_required' ? '' : `, error="invalid_token"`;
      return this.#fail(res, 401, err, { 'www-authenticate': `Bearer realm="poll"${description}` });
    }
    try {
      await authorizeJoin(this.#opts.namespaces.resolve(params.room), params.room, identity, params.subscriptionToken, this.#opts.auth.verifySubscriptionToken);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return this.#fail(res, err.code === 'unknown_namespace' ? 404 : err.code === 'auth_required' ? 401 : 403, err);
    }
    // The token's subject; without auth the claimed user, or the address for anonymous pollers.
    const anonymous = this.#opts.auth.mode === 'none' && params.userId === undefined;
    const bucket = this.#bucket(anonymous ? `addr:${req.socket.remoteAddress ?? '?'}` : `user:${identity.userId}`);
    if (!bucket.tryTake()) {
      const retryAfterMs = Math.max(bucket.retryAfterMs(), 1);
      const { ratePerSecond, rateBurst } = this.#opts;
      const err = new ProtocolError('rate_limited', `more than ${ratePerSecond} polls per second (burst ${rateBurst}); retry after ${retryAfterMs} ms`, retryAfterMs);
      return this.#fail(res, 429, err, { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) });
    }

    let answer: PollAnswer;
    try {
      answer = await this.#answer(params.room, params.after, params.limit);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      const retryAfterMs = err.retryAfterMs ?? 1_000;
      return this.#fail(res, 503, err, { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) });
    }
    const retryAfterMs = answer.more ? 0 : this.#retryAfterMs(answer.lastActivityAt);
    const headers = {
      // Per user (the token decides what may be read), and always revalidated: the ETag makes that cheap.
      'cache-control': 'private, no-cache',
      vary: 'Authorization',
      etag: `"${answer.next}"`,
      'retry-after': String(Math.ceil(retryAfterMs / 1000)),
    };
    if (answer.envelopes.length === 0 && ifNoneMatch(req.headers['if-none-match'], headers.etag)) {
      res.writeHead(304, headers).end();
      return 304;
    }
    const body = { ok: true, room: params.room, seq: answer.seq, envelopes: answer.envelopes, next: answer.next, more: answer.more, retryAfterMs };
    res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    return 200;
  }

  async #authenticate(req: IncomingMessage, userId: string | undefined): Promise<Identity> {
    const header = req.headers.authorization;
    let token: string | undefined;
    if (header !== undefined) {
      token = BEARER.exec(header)?.[1];
      if (token === undefined) throw new ProtocolError('auth_invalid', 'the Authorization header must be `Bearer <token>`');
    }
    return this.#opts.auth.authenticate({ token, userId });
  }

  /** From memory when this instance follows the room and holds what is asked; else one history read. */
  async #answer(room: string, after: number | null, limit: number): Promise<PollAnswer> {
    const followed = this.#follow(room);
    await followed?.joined;
    if (followed && followed.seq !== null && after !== null) {
      const oldest = followed.recent[0]?.seq ?? followed.seq + 1;
      if (after === followed.seq) return { seq: after, envelopes: [], next: after, more: false, lastActivityAt: followed.lastActivityAt };
      if (after < followed.seq && after >= oldest - 1) {
        return page(followed.seq, followed.recent.slice(after - oldest + 1), after, limit, followed.lastActivityAt);
      }
    }
    const history = await this.#opts.backplane.history(room, after, SHORT_POLL_LIMITS.snapshotRecent);
    if (history.mode === 'replay') {
      const last = history.envelopes.at(-1);
      return page(history.seq, history.envelopes, after ?? history.seq, limit, followed?.lastActivityAt ?? last?.ts ?? null);
    }
    const reset = controlEnvelope('room:reset', room, { snapshot: history.snapshot }, history.seq);
    const last = history.snapshot.recent.at(-1);
    return { seq: history.seq, envelopes: [reset], next: history.seq, more: false, lastActivityAt: followed?.lastActivityAt ?? last?.ts ?? null };
  }

  /** Follows `room` for pollers (joins it through the hub once); null when this instance follows enough rooms already. */
  #follow(room: string): FollowedRoom | null {
    const now = this.#now();
    const followed = this.#followed.get(room);
    if (followed) {
      followed.lastPolledAt = now;
      return followed;
    }
    if (this.#followed.size >= (this.#opts.maxFollowedRooms ?? SHORT_POLL_LIMITS.maxFollowedRooms)) return null;
    const kept = this.#opts.keptPerRoom ?? SHORT_POLL_LIMITS.keptPerRoom;
    const sizes = new WeakMap<DurableEnvelope, number>();
    const sizeOf = (envelope: DurableEnvelope): number => sizes.get(envelope) ?? JSON.stringify(envelope).length;
    const keep = (envelope: DurableEnvelope): void => {
      const size = sizeOf(envelope);
      sizes.set(envelope, size);
      entry.recent.push(envelope);
      entry.recentBytes += size;
      // Bounded in count and bytes, so a thousand followed rooms of large messages stay small.
      while (entry.recent.length > kept || (entry.recent.length > 1 && entry.recentBytes > SHORT_POLL_LIMITS.keptBytesPerRoom)) {
        entry.recentBytes -= sizeOf(entry.recent.shift()!);
      }
    };
    const entry: FollowedRoom = {
      joined: Promise.resolve(),
      seq: null,
      recent: [],
      recentBytes: 0,
      lastActivityAt: now,
      lastPolledAt: now,
      member: {
        id: `poll-${randomUUID()}`,
        send: (envelope) => {
          if (envelope.type === 'room:reset' && envelope.seq !== null) {
            const snapshot = (envelope.payload as { snapshot?: { recent?: DurableEnvelope[] } }).snapshot;
            entry.seq = envelope.seq;
            entry.recent = [];
            entry.recentBytes = 0;
            for (const recent of contiguousTail(snapshot?.recent ?? [], envelope.seq)) keep(recent);
            entry.lastActivityAt = entry.recent.at(-1)?.ts ?? entry.lastActivityAt;
            return;
          }
          if (envelope.seq === null || envelope.room !== room) return;
          // The hub delivers in seq order, each once; anything else starts the kept run afresh.
          if (entry.seq === null || envelope.seq !== entry.seq + 1) {
            entry.recent = [];
            entry.recentBytes = 0;
          }
          keep(envelope as DurableEnvelope);
          entry.seq = envelope.seq;
          entry.lastActivityAt = this.#now();
        },
      },
    };
    this.#followed.set(room, entry);
    entry.joined = this.#opts.hub.join(entry.member, room, null).then(
      () => {},
      (err: unknown) => {
        // Backplane away: forget the room; this poll reads history, the next one tries to follow again.
        if (this.#followed.get(room) === entry) this.#followed.delete(room);
        this.#opts.log.debug({ err, room }, 'following a polled room failed');
      },
    );
    return entry;
  }

  #sweep(): void {
    const idleBefore = this.#now() - (this.#opts.followMs ?? 30_000);
    for (const [room, followed] of this.#followed) {
      if (followed.lastPolledAt >= idleBefore) continue;
      this.#followed.delete(room);
      this.#opts.hub.leave(followed.member, room);
    }
    for (const [key, bucket] of this.#buckets) if (bucket.tokens >= bucket.capacity) this.#buckets.delete(key);
  }

  #bucket(key: string): TokenBucket {
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.#opts.rateBurst, this.#opts.ratePerSecond);
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }

  /** A quarter of the room's quiet time, between the bounds: busy rooms are polled often, quiet ones rarely. */
  #retryAfterMs(lastActivityAt: number | null): number {
    const min = this.#opts.minRetryMs ?? 1_000;
    const max = this.#opts.maxRetryMs ?? 10_000;
    if (lastActivityAt === null) return max;
    return Math.round(Math.min(max, Math.max(min, (this.#now() - lastActivityAt) / 4)));
  }

  #fail(res: ServerResponse, status: number, err: ProtocolError, headers: Record<string, string> = {}): number {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify({ ok: false, error: err.toBody() }));
    return status;
  }
}

function parseParams(url: URL): { room: string; after: number | null; limit: number; userId: string | undefined; subscriptionToken: string | undefined } {
  const seen = new Set<string>();
  for (const name of url.searchParams.keys()) {
    if (!PARAMS.has(name)) throw new ProtocolError('bad_request', `unknown parameter ${JSON.stringify(name.slice(0, 40))}; GET /poll takes room, after, limit, subscriptionToken (for join: token namespaces) and userId (without auth)`);
    if (seen.has(name)) throw new ProtocolError('bad_request', `parameter ${name} is given more than once`);
    seen.add(name);
  }
  const room = roomSchema.safeParse(url.searchParams.get('room'));
  if (!room.success) throw new ProtocolError('bad_request', `room: ${room.error.issues[0]?.message ?? 'invalid'}`);
  const rawAfter = url.searchParams.get('after');
  let after: number | null = null;
  if (rawAfter !== null) {
    after = SEQ_PATTERN.test(rawAfter) ? Number(rawAfter) : NaN;
    if (!Number.isSafeInteger(after)) {
      throw new ProtocolError('bad_request', `after must be a seq (a non-negative integer below 2^53, digits only), got ${JSON.stringify(rawAfter.slice(0, 40))}`);
    }
  }
  const rawLimit = url.searchParams.get('limit');
  let limit: number = SHORT_POLL_LIMITS.defaultLimit;
  if (rawLimit !== null) {
    limit = LIMIT_PATTERN.test(rawLimit) ? Number(rawLimit) : NaN;
    if (!(limit >= 1 && limit <= SHORT_POLL_LIMITS.maxLimit)) {
      throw new ProtocolError('bad_request', `limit must be an integer from 1 to ${SHORT_POLL_LIMITS.maxLimit}, got ${JSON.stringify(rawLimit.slice(0, 40))}`);
    }
  }
  const subscriptionToken = url.searchParams.get('subscriptionToken') ?? undefined;
  if (subscriptionToken !== undefined && subscriptionToken.length > 8_192) throw new ProtocolError('bad_request', 'subscriptionToken is longer than 8192 characters');
  return { room: room.data, after, limit, userId: url.searchParams.get('userId') ?? undefined, subscriptionToken };
}

/** At most `limit` envelopes after `after`, and at most `maxBodyBytes` of them (always one). */
function page(seq: number, envelopes: readonly DurableEnvelope[], after: number, limit: number, lastActivityAt: number | null): PollAnswer {
  const out: Envelope[] = [];
  let bytes = 0;
  for (const envelope of envelopes) {
    if (envelope.seq <= after) continue;
    bytes += JSON.stringify(envelope).length + 1;
    if (out.length >= limit || (out.length > 0 && bytes > SHORT_POLL_LIMITS.maxBodyBytes)) break;
    out.push(envelope);
  }
  const next = out.at(-1)?.seq ?? after;
  return { seq, envelopes: out, next, more: next < seq, lastActivityAt };
}

function contiguousTail(envelopes: readonly DurableEnvelope[], seq: number): DurableEnvelope[] {
  const tail: DurableEnvelope[] = [];
  for (let i = envelopes.length - 1, expected = seq; i >= 0 && envelopes[i]!.seq === expected; i -= 1, expected -= 1) tail.unshift(envelopes[i]!);
  return tail;
}

function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((tag) => {
    const trimmed = tag.trim();
    return trimmed === '*' || trimmed.replace(/^W\//, '') === etag;
  });
}
