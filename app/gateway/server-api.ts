import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'socket.io';
import { Counter } from 'prom-client';
import { z } from 'zod';
import { controlEnvelope, type ErrorCode, idempotencyKeySchema, messageTypeSchema, ProtocolError, roomSchema, userIdSchema } from '../protocol/index.ts';
import type { Backplane } from './backplane/backplane.ts';
import { ConfigError, type GatewayConfig } from './config.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { Namespaces } from './namespaces.ts';
import { formatSse } from './sse.ts';

const MIN_KEY_LENGTH = 32;
const RELOAD_CHECK_MS = 1_000;

/**
 * The server API's keys (API_KEYS_FILE, mounted from a Secret): one per line, kept only as SHA-256
 * digests and compared in constant time against every configured key, so neither a key nor which one
 * matched leaks through timing. The file is re-read within a second of a change (a Secret update):
 * adding the new key, rolling the backends, then removing the old one rotates without a restart.
 */
export class ApiKeys {
  readonly #file: string;
  readonly #log: Logger;
  #digests: Buffer[];
  #signature: string;
  #checkedAt = 0;

  constructor(file: string, log: Logger) {
    this.#file = file;
    this.#log = log;
    try {
      this.#digests = ApiKeys.#read(file);
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  API_KEYS_FILE=${file}: ${(err as Error).message}\nSee docs/server-api.md.`);
    }
    this.#signature = ApiKeys.#stat(file);
  }

  get size(): number {
    return this.#digests.length;
  }

  /** True when `presented` is one of the configured keys. */
  verify(presented: string): boolean {
    this.#reloadIfChanged();
    const digest = createHash('sha256').update(presented).digest();
    let matched = false;
    for (const known of this.#digests) matched = timingSafeEqual(digest, known) || matched;
    return matched;
  }

  #reloadIfChanged(): void {
    const now = Date.now();
    if (now - this.#checkedAt < RELOAD_CHECK_MS) return;
    this.#checkedAt = now;
    const signature = ApiKeys.#stat(this.#file);
    if (signature === this.#signature) return;
    this.#signature = signature;
    if (signature === 'missing') {
      // A removed Secret revokes every key; refusing is the safe side.
      this.#digests = [];
      this.#log.warn({ file: this.#file }, 'API_KEYS_FILE is gone: every server API key is refused until it is back');
      return;
    }
    try {
      this.#digests = ApiKeys.#read(this.#file);
      this.#log.info({ keys: this.#digests.length }, 'server API keys reloaded');
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'API_KEYS_FILE changed but is invalid; keeping the previous keys');
    }
  }

  static #stat(file: string): string {
    try {
      const stat = statSync(file);
      return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
    } catch {
      return 'missing';
    }
  }

  static #read(file: string): Buffer[] {
    const lines = readFileSync(file, 'utf8').split('\n');
    const digests: Buffer[] = [];
    lines.forEach((line, index) => {
      const key = line.trim();
      if (key === '' || key.startsWith('#')) return;
      if (key.length < MIN_KEY_LENGTH || /\s/.test(key)) {
        throw new Error(`line ${index + 1}: a key must be at least ${MIN_KEY_LENGTH} characters without spaces (e.g. openssl rand -hex 32)`);
      }
      digests.push(createHash('sha256').update(key).digest());
    });
    if (digests.length === 0) throw new Error('holds no key (one per line; # starts a comment)');
    return digests;
  }
}

const publishBody = z.strictObject({
  room: roomSchema,
  type: messageTypeSchema,
  payload: z.unknown().refine((payload) => payload !== undefined, 'payload is required (null is allowed)'),
  idempotencyKey: idempotencyKeySchema.optional(),
});
const broadcastBody = z.strictObject({
  rooms: z.array(roomSchema).min(1).max(100, 'at most 100 rooms per broadcast'),
  type: messageTypeSchema,
  payload: z.unknown().refine((payload) => payload !== undefined, 'payload is required (null is allowed)'),
  idempotencyKey: idempotencyKeySchema.optional(),
});
const historyBody = z.strictObject({
  room: roomSchema,
  afterSeq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullish(),
  recent: z.number().int().min(0).max(1_000).default(50),
});
const roomBody = z.strictObject({ room: roomSchema });
const disconnectBody = z.strictObject({ userId: userIdSchema, reason: z.string().max(200).default('disconnected by the application') });
const emptyBody = z.strictObject({});

export type PresenceReader = (room: string) => Promise<unknown>;

export interface ServerApiDeps {
  readonly config: GatewayConfig;
  readonly io: Server;
  readonly backplane: Backplane;
  readonly namespaces: Namespaces;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly sseStreams: ReadonlySet<ServerResponse>;
  readonly sseUsers: WeakMap<ServerResponse, string>;
  readonly presence: PresenceReader;
}

/** The Socket.IO room every connection of a user is in; `~` keeps it apart from every valid room name. */
export function userTag(userId: string): string {
  return `~user:${userId}`;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  bad_request: 400,
  api_key_required: 401,
  api_key_invalid: 401,
  forbidden: 403,
  not_found: 404,
  unknown_namespace: 404,
  payload_too_large: 413,
  payload_invalid: 422,
  backplane_unavailable: 503,
};

const DISCONNECT_EVENT = 'rt:disconnect-user';

/** Every endpoint, as `/api/<name>`; docs/server-api.openapi.yaml lists the same (a unit test checks). */
export const SERVER_API_ENDPOINTS = ['publish', 'broadcast', 'history', 'presence', 'disconnect', 'info'] as const;

/**
 * The server API on the internal port (docs/server-api.md): publish, broadcast, history, presence,
 * disconnect and fleet info for the application's backends. Returns the route to add to the internal
 * server; `null` when API_KEYS_FILE is unset (the API is off and its paths are 404).
 */
export function createServerApi(deps: ServerApiDeps): ((req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>) | null {
  const { config, io, backplane, namespaces, log } = deps;
  if (!config.API_KEYS_FILE) return null;
  const keys = new ApiKeys(config.API_KEYS_FILE, log);
  log.info({ keys: keys.size }, 'server API on the internal port: /api/*');
  const requests = new Counter({
    name: 'rt_api_requests_total',
    help: 'Server API requests, by endpoint and outcome (ok or the error code).',
    labelNames: ['endpoint', 'outcome'],
    registers: [deps.metrics.registry],
  });

  /** Ends this instance's connections and SSE streams of `userId`. */
  async function disconnectLocal(userId: string, reason: string): Promise<number> {
    const sockets = await io.local.in(userTag(userId)).fetchSockets();
    const closing = controlEnvelope('connection:closing', null, { reason: 'disconnected_by_server' as const, message: reason, reconnect: false });
    for (const socket of sockets) {
      socket.emit('connection:closing', closing);
      socket.disconnect(true);
    }
    let streams = 0;
    for (const stream of deps.sseStreams) {
      if (deps.sseUsers.get(stream) !== userId) continue;
      stream.end(formatSse(closing));
      streams += 1;
    }
    if (sockets.length + streams > 0) log.info({ userId, sockets: sockets.length, streams }, 'disconnected a user on request of the server API');
    return sockets.length + streams;
  }
  // Other instances ask this one through the Socket.IO adapter (Redis); the memory adapter has no others.
  if (config.ADAPTER !== 'memory') {
    io.on(DISCONNECT_EVENT, (userId: unknown, reason: unknown) => {
      if (typeof userId === 'string' && typeof reason === 'string') void disconnectLocal(userId, reason).catch((err: unknown) => log.warn({ err }, 'disconnect failed'));
    });
  }

  async function publishOne(room: string, type: string, payload: unknown, idempotencyKey: string | undefined) {
    const ns = namespaces.resolve(room);
    const { envelope, duplicate } = await backplane.publishOnce({
      room,
      type,
      payload,
      from: 'server',
      history: ns.history,
      keyTtlSeconds: ns.keyTtlSeconds,
      ...(idempotencyKey === undefined ? {} : { idempotencyKey: `s:${idempotencyKey}`, idempotencyWindowSeconds: config.IDEMPOTENCY_WINDOW_SECONDS }),
    });
    deps.metrics.publishes.inc({ namespace: ns.name, source: 'server', outcome: duplicate ? 'duplicate' : 'ok' });
    return { room, seq: envelope.seq, duplicate };
  }

  const endpoints: Record<(typeof SERVER_API_ENDPOINTS)[number], (body: unknown) => Promise<object>> = {
    async publish(raw) {
      const body = parse(publishBody, raw);
      return publishOne(body.room, body.type, body.payload, body.idempotencyKey);
    },
    async broadcast(raw) {
      const body = parse(broadcastBody, raw);
      // Every room is checked before anything is published: an unknown one refuses the whole call.
      for (const room of body.rooms) namespaces.resolve(room);
      const results = [];
      for (const room of new Set(body.rooms)) {
        try {
          results.push({ ok: true, ...(await publishOne(room, body.type, body.payload, body.idempotencyKey)) });
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          results.push({ ok: false, room, error: err.toBody() });
        }
      }
      return { results };
    },
    async history(raw) {
      const body = parse(historyBody, raw);
      namespaces.resolve(body.room);
      return backplane.history(body.room, body.afterSeq ?? null, body.recent);
    },
    async presence(raw) {
      const body = parse(roomBody, raw);
      const ns = namespaces.resolve(body.room);
      if (!ns.presence) throw new ProtocolError('forbidden', `the ${ns.name} namespace keeps no presence (presence: false)`);
      return deps.presence(body.room) as Promise<object>;
    },
    async disconnect(raw) {
      const body = parse(disconnectBody, raw);
      if (config.ADAPTER !== 'memory') io.serverSideEmit(DISCONNECT_EVENT, body.userId, body.reason);
      const here = await disconnectLocal(body.userId, body.reason);
      return { userId: body.userId, disconnectedHere: here };
    },
    async info(raw) {
      parse(emptyBody, raw ?? {});
      const pods = await backplane.readFleetStats();
      return {
        pods,
        sockets: pods.reduce((sum, pod) => sum + pod.sockets, 0),
        namespaces: namespaces.all.map((ns) => ({ name: ns.name, join: ns.join, publish: ns.publish, history: ns.history, presence: ns.presence })),
      };
    },
  };

  const send = (res: ServerResponse, endpoint: string, status: number, body: { ok: boolean; error?: { code: string } }, headers: Record<string, string> = {}): void => {
    requests.inc({ endpoint, outcome: body.error?.code ?? 'ok' });
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, endpoint: string, err: ProtocolError, headers: Record<string, string> = {}): void => {
    const retry: Record<string, string> = err.code === 'backplane_unavailable' ? { 'retry-after': '1' } : {};
    send(res, endpoint, STATUS[err.code] ?? 500, { ok: false, error: err.toBody() }, { ...retry, ...headers });
  };

  return async (req, res, url) => {
    if (!url.pathname.startsWith('/api/')) return false;
    const name = url.pathname.slice('/api/'.length);
    const endpoint = Object.hasOwn(endpoints, name) ? name : 'unknown';
    const bearer = req.headers.authorization?.match(/^Bearer (\S+)$/)?.[1];
    if (!bearer) {
      fail(res, endpoint, new ProtocolError('api_key_required', 'send the server API key as Authorization: Bearer <key>'), { 'www-authenticate': 'Bearer' });
      return true;
    }
    if (!keys.verify(bearer)) {
      fail(res, endpoint, new ProtocolError('api_key_invalid', 'the API key is not configured (wrong or revoked)'), { 'www-authenticate': 'Bearer error="invalid_token"' });
      return true;
    }
    if (endpoint === 'unknown') {
      fail(res, endpoint, new ProtocolError('not_found', `no server API endpoint ${url.pathname}; see docs/server-api.md (${Object.keys(endpoints).map((e) => `/api/${e}`).join(', ')})`));
      return true;
    }
    if (req.method !== 'POST') {
      fail(res, endpoint, new ProtocolError('bad_request', `${url.pathname} takes POST with a JSON body`), { allow: 'POST' });
      return true;
    }
    try {
      const body = await readJson(req, config.API_MAX_BODY_BYTES);
      const result = await endpoints[endpoint as (typeof SERVER_API_ENDPOINTS)[number]](body);
      send(res, endpoint, 200, { ok: true, ...result });
    } catch (err) {
      if (err instanceof ProtocolError) {
        // An oversized body was left unread: close the connection rather than read on.
        fail(res, endpoint, err, err.code === 'payload_too_large' ? { connection: 'close' } : {});
        return true;
      }
      log.error({ err, endpoint }, 'server API request failed');
      fail(res, endpoint, new ProtocolError('internal', 'the request failed; it was logged'));
    }
    return true;
  };
}

function parse<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? issue.path.join('.') : 'body';
  throw new ProtocolError('bad_request', `${where}: ${issue?.message ?? 'invalid'}`);
}

/** The request body as JSON, refusing more than `limit` bytes without buffering them. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new ProtocolError('payload_too_large', `the body is ${declared} bytes; the limit is ${limit} (API_MAX_BODY_BYTES)`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ProtocolError('payload_too_large', `the body is over ${limit} bytes (API_MAX_BODY_BYTES)`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new ProtocolError('bad_request', `the body is not JSON: ${(err as Error).message}`);
  }
}
