import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Envelope, ProtocolError, RETRYABLE_CODES, roomSchema } from '../protocol/index.ts';
import type { Authenticator } from './auth.ts';
import type { Backpressure } from './backpressure.ts';
import { AdmissionRefusal, refuseHttp } from './limits.ts';
import { authorizeJoin, type Namespaces } from './namespaces.ts';
import type { RoomHub, RoomMember } from './room-hub.ts';
import type { Metrics } from './metrics.ts';
import { at } from './token-expiry.ts';

export interface SseOptions {
  readonly hub: RoomHub;
  readonly auth: Authenticator;
  readonly namespaces: Namespaces;
  readonly metrics: Metrics;
  /** Comment lines keep proxies from closing an idle stream. @default 15000 */
  readonly heartbeatMs?: number;
  /** The outbound budget: every write to a stream goes through it (hard limit, stall, metrics, log). */
  readonly outbound: Pick<Backpressure, 'trackStream'>;
  /** Most bytes of envelopes a resume replays on one stream; past it the stream ends after the page and the browser resumes. */
  readonly pageBytes: number;
  /** Open streams: the drain hints and ends them; shutdown ends what is left. */
  readonly streams: Set<ServerResponse>;
  /** Who each open stream belongs to (a server API disconnect ends a user's streams). */
  readonly streamUsers?: WeakMap<ServerResponse, string>;
  /** Run just before a stream opens (after auth, with no await until it is in `streams`); throw `ProtocolError` to refuse. */
  readonly guards?: readonly (() => void)[];
  /** Admission (capacity, rate, drain), run first — before the token is verified; throws to refuse with 503/429. */
  readonly admission?: readonly (() => void)[];
  /** Takes one of the user's connection slots for `stream` (released when it closes); throws `too_many_connections`. */
  readonly reserveUser?: (userId: string, stream: ServerResponse) => void;
}

/** How soon EventSource comes back for the next page of a long resume. */
const RESUME_PAGE_RETRY_MS = 100;

/**
 * `id:` is the seq (resume point), `event:` the envelope type, `data:` the envelope. `retryMs` adds a
 * `retry:` field: EventSource waits that long before it reconnects once the stream ends.
 */
export function formatSse(envelope: Envelope, retryMs?: number): string {
  const id = envelope.seq === null ? '' : `id: ${envelope.seq}\n`;
  const retry = retryMs === undefined ? '' : `retry: ${Math.max(0, Math.round(retryMs))}\n`;
  return `${retry}${id}event: ${envelope.type}\ndata: ${JSON.stringify(envelope)}\n\n`;
}

/**
 * GET /sse?room=…: the room's envelopes as `text/event-stream`, resuming from `Last-Event-ID`
 * (header, or `lastEventId` query for the first request) through the same history as Socket.IO.
 */
export async function handleSse(req: IncomingMessage, res: ServerResponse, url: URL, opts: SseOptions): Promise<void> {
  const fail = (status: number, err: ProtocolError, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ ok: false, error: err.toBody() }));
  };
  try {
    for (const guard of opts.admission ?? []) guard();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    opts.metrics.handshakeRefusals.inc({ code: err.code });
    return refuseHttp(res, err);
  }
  const room = roomSchema.safeParse(url.searchParams.get('room'));
  if (!room.success) return fail(400, new ProtocolError('bad_request', `room: ${room.error.issues[0]?.message ?? 'invalid'}`));
  const rawLastId = req.headers['last-event-id'] ?? url.searchParams.get('lastEventId');
  const lastSeq = rawLastId === undefined || rawLastId === null || rawLastId === '' ? null : Number(rawLastId);
  if (lastSeq !== null && !(Number.isSafeInteger(lastSeq) && lastSeq >= 0)) {
    return fail(400, new ProtocolError('bad_request', `Last-Event-ID must be a seq (a non-negative integer), got ${JSON.stringify(rawLastId)}`));
  }
  // The scheme is case-insensitive (RFC 9110 §11.1).
  const bearer = req.headers.authorization?.match(/^bearer +(\S+)\s*$/i)?.[1];
  let identity;
  try {
    identity = await opts.auth.authenticate({ token: bearer ?? url.searchParams.get('token') ?? undefined, userId: url.searchParams.get('userId') ?? undefined });
  } catch (err) {
    if (err instanceof ProtocolError) return fail(err.code === 'bad_request' ? 400 : 401, err);
    throw err;
  }
  try {
    const ns = opts.namespaces.resolve(room.data);
    const subscriptionToken = url.searchParams.get('subscriptionToken') ?? undefined;
    await authorizeJoin(ns, room.data, identity, subscriptionToken, opts.auth.verifySubscriptionToken);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    const status = err.code === 'unknown_namespace' ? 404 : err.code === 'auth_required' ? 401 : 403;
    return fail(status, err);
  }
  try {
    for (const guard of opts.guards ?? []) guard();
    opts.reserveUser?.(identity.userId, res);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    // Retryable refusals (draining, too many connections): 503/429 + Retry-After, so the edge or the client tries again later or elsewhere.
    if (!RETRYABLE_CODES.has(err.code)) return fail(403, err);
    if (err.code === 'too_many_connections') return refuseHttp(res, new AdmissionRefusal(429, err.code, err.message, err.retryAfterMs ?? 5_000));
    return refuseHttp(res, err);
  }

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const id = `sse-${randomUUID()}`;
  const budget = opts.outbound.trackStream(res, id, identity.userId);
  budget.write(': stream open\n\n');
  opts.streams.add(res);
  opts.streamUsers?.set(res, identity.userId);
  opts.metrics.sseStreams.inc();
  // Ended by the drain, a slow-consumer cut or expiry while a join was still replaying: the budget refuses.
  const member: RoomMember = { id, send: (envelope) => void budget.write(formatSse(envelope)) };
  const heartbeat = setInterval(() => budget.write(': ping\n\n'), opts.heartbeatMs ?? 15_000);
  const expiry = identity.exp === null ? null : at(identity.exp * 1000, () => res.end());
  res.on('close', () => {
    clearInterval(heartbeat);
    expiry?.cancel();
    opts.streams.delete(res);
    opts.metrics.sseStreams.dec();
    opts.hub.leave(member, room.data);
  });
  try {
    const joined = await opts.hub.join(member, room.data, lastSeq, { pageBytes: opts.pageBytes, stopAfterPage: true });
    // One page of a long resume: end here, the browser comes back with the last id it got for the next.
    if (joined.more) res.end(`retry: ${RESUME_PAGE_RETRY_MS}\n\n`);
  } catch (err) {
    const body = err instanceof ProtocolError ? err.toBody() : { code: 'internal', message: 'join failed' };
    res.end(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
  }
}
