import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
// Only zod-free protocol modules at run time, so the browser bundle stays small.
import type {
  Ack,
  AckBodies,
  ClientEventName,
  ClientEventPayload,
  DurableEnvelope,
  Envelope,
  EnvelopePayloads,
  ErrorCode,
  HandshakeRefusal,
  HistoryResult,
  PresenceSnapshot,
  RoomSnapshot,
} from '../protocol/index.ts';
import { CONTROL_TYPES, isControlType, PROTOCOL_VERSION } from '../protocol/envelope.ts';
import { ERROR_CODES, RETRYABLE_CODES } from '../protocol/errors.ts';
import { userRoom } from '../protocol/rooms.ts';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF, resolveBackoff, type ResolvedBackoff } from './backoff.ts';
import { TypedEmitter } from './emitter.ts';
import { RoomTracker } from './rooms.ts';
import { type PollOutcome, RoomPoller, type PollerStats } from './short-poll.ts';
import { type MessageMap, type PublishOptions, type PublishResult, Subscription } from './subscription.ts';

export { backoffCeiling, backoffDelay, DEFAULT_BACKOFF, resolveBackoff, type BackoffOptions } from './backoff.ts';
export { RoomTracker, type OfferResult } from './rooms.ts';
export { RoomPoller, type PollAnswer, type PollerStats, type PollOutcome } from './short-poll.ts';
export { Subscription, type MessageMap, type MessageOf, type PublishOptions, type PublishResult, type SubscriptionEvents, type SubscriptionState } from './subscription.ts';

/** A subscription token, or a function that fetches a fresh one (called before every join of the room). */
export type SubscriptionTokenSource = string | (() => string | Promise<string>);

export interface SubscribeOptions {
  /** For namespaces whose join policy is `token`: a token from the application's backend (docs/namespaces.md). */
  readonly token?: SubscriptionTokenSource;
}

/**
 * `connecting`: first connection not made yet. `connected`: up. `draining`: up, but the pod asked us
 * to move and we will after its hinted delay. `reconnecting`: lost, waiting out a backoff or a drain
 * hint, or handshaking again. `closed`: `close()` was called, or the server refused us for good.
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'draining' | 'closed';

export type TransportName = 'polling' | 'websocket';
/** The ladder's first rung (`GET /poll`): read-only, for when neither Socket.IO transport gets through. */
export type ShortPollName = 'short-poll';

export interface GatewayClientOptions {
  /** Gateway (or edge) origin, e.g. `http://127.0.0.1:8080`. Required. */
  readonly url: string;
  /** Socket.IO path. @default '/socket.io/' */
  readonly path?: string;
  /**
   * Transports in the order to try; `['polling']` or `['websocket']` forces one. `'short-poll'` last is
   * the fallback after `shortPollAfterFailures` failed first attempts; `['short-poll']` alone uses it
   * from the start. Short polling only reads: requests fail with `read_only`.
   * @default ['polling', 'websocket']
   */
  readonly transports?: readonly (TransportName | ShortPollName)[];
  /** Failed connection attempts (none ever succeeded) before falling back to short polling, when listed. @default 3 */
  readonly shortPollAfterFailures?: number;
  /** The short-poll pace: the server's `Retry-After`, kept within these bounds. @default {minIntervalMs: 1000, maxIntervalMs: 30000} */
  readonly shortPoll?: { readonly minIntervalMs?: number; readonly maxIntervalMs?: number; readonly limit?: number };
  /** Upgrade from polling to WebSocket when both are allowed. @default true */
  readonly upgrade?: boolean;
  /** The user id to claim when the gateway runs with `AUTH_MODE=none`. */
  readonly userId?: string;
  /** A JWT for the handshake. With `getToken`, only the first one; later ones come from `getToken`. */
  readonly token?: string;
  /**
   * Returns a fresh JWT: called before a handshake when no token is held, after a handshake was
   * refused as expired or invalid, and when the gateway sends `auth:refresh`.
   */
  readonly getToken?: () => string | Promise<string>;
  /** Rooms to join as soon as the first connection is up. @default [] */
  readonly rooms?: readonly string[];
  /**
   * Join the user's own `user:<id>` room (from `server:hello`), so direct messages arrive and resume
   * like any room — for gateways whose namespaces declare `user` (the demo's do). @default false
   */
  readonly directMessages?: boolean;
  /** Reconnect backoff (full jitter). @default {baseMs: 1000, capMs: 30000, multiplier: 2, jitter: true} */
  readonly backoff?: BackoffOptions;
  /**
   * Move when the pod sends `server:draining`: close and reconnect after `reconnectAfterMs`, and
   * never reconnect earlier even if the pod closes the transport first. `false` only for contrast
   * runs (the connection then drops when the pod closes it and reconnects by backoff). @default true
   */
  readonly honourDrainHint?: boolean;
  /** How long a gap in a room's seqs may persist before `history:fetch` is asked. @default 500 */
  readonly gapFetchDelayMs?: number;
  /** Ack timeout of every request, including the wait for a connection. @default 10000 */
  readonly requestTimeoutMs?: number;
  /** Handshake timeout of one connection attempt. @default 20000 */
  readonly connectTimeoutMs?: number;
  /** Envelopes held per room while waiting for a gap to fill. @default 10000 */
  readonly maxHeldPerRoom?: number;
  /**
   * Keep and send cookies — the edge's sticky-session cookie that long-polling needs. In Node this
   * turns on engine.io-client's cookie jar; in a browser it only matters cross-origin (the server
   * must then allow credentials). @default true in Node, false in a browser
   */
  readonly withCredentials?: boolean;
  /** Connect at once; otherwise call `connect()`. @default true */
  readonly autoConnect?: boolean;
  /** Extra socket.io-client options (e.g. `extraHeaders`); reconnection stays off whatever is set here. */
  readonly socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** Source of randomness for the backoff, in [0, 1). @default Math.random */
  readonly random?: () => number;
  /**
   * How long `publish()` keeps retrying (same idempotency key) after a lost ack, a disconnect or a
   * retryable refusal before it gives up. @default 30000
   */
  readonly publishRetryMs?: number;
}

export const CLIENT_DEFAULTS = {
  path: '/socket.io/',
  transports: ['polling', 'websocket'] as readonly (TransportName | ShortPollName)[],
  shortPollAfterFailures: 3,
  shortPoll: { minIntervalMs: 1_000, maxIntervalMs: 30_000 },
  upgrade: true,
  rooms: [] as readonly string[],
  directMessages: false,
  backoff: DEFAULT_BACKOFF,
  honourDrainHint: true,
  gapFetchDelayMs: 500,
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 20_000,
  maxHeldPerRoom: 10_000,
  autoConnect: true,
  publishRetryMs: 30_000,
} as const;

/** Client-side failure codes, next to the protocol's `ErrorCode`s the gateway answers with. */
export type ClientErrorCode = ErrorCode | 'timeout' | 'closed' | 'connect_failed' | 'disconnected' | 'protocol' | 'no_token_source' | 'read_only';

export class GatewayClientError extends Error {
  readonly code: ClientErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(code: ClientErrorCode, message: string, options: { retryable?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'GatewayClientError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

export interface ResetEvent {
  readonly room: string;
  /** The client continues from this seq; envelopes up to it are summed up by `snapshot`. */
  readonly seq: number;
  readonly snapshot: RoomSnapshot;
}

export interface JoinedEvent {
  readonly room: string;
  readonly seq: number;
  readonly resume: AckBodies['room:join']['resume'];
  readonly replayed: number;
}

export interface GatewayClientEvents {
  /** A durable envelope, in seq order per room, each exactly once. */
  message: (envelope: DurableEnvelope) => void;
  state: (state: ConnectionState, previous: ConnectionState) => void;
  /** The room starts over from a snapshot (first join, or a gap older than the server's history). */
  reset: (event: ResetEvent) => void;
  /** A room was joined or resumed on the current connection. */
  joined: (event: JoinedEvent) => void;
  /** `server:hello`: which pod this connection landed on. */
  hello: (hello: EnvelopePayloads['server:hello']) => void;
  draining: (hint: EnvelopePayloads['server:draining']) => void;
  members: (event: { readonly room: string; readonly count: number }) => void;
  /** `connection:closing`: the gateway is about to close this connection, and why (`slow_consumer`, `token_expired`, …). */
  closing: (closing: EnvelopePayloads['connection:closing']) => void;
  /** Anything that went wrong; the client keeps going unless its state turns `closed`. */
  error: (error: GatewayClientError) => void;
}

/** Counters for tests and dashboards. */
export interface ClientStats {
  /** Connections made, the first included. */
  connects: number;
  /** Connection attempts that failed (handshake refused, timeout, transport error). */
  connectFailures: number;
  /** Moves made because of `server:draining`. */
  drainMoves: number;
  /** Envelopes delivered to the application. */
  delivered: number;
  /** Envelopes not delivered because they had been already (replays, refetches, resends). */
  duplicatesDropped: number;
  gapFetches: number;
  resets: number;
  /** Publishes sent again with their idempotency key after a lost ack or a retryable refusal. */
  publishRetries: number;
}

type Ok<E extends ClientEventName> = { readonly ok: true } & AckBodies[E];

/**
 * The gateway's refusal of a new transport (HTTP 503/429 with `{ok:false, error}`), read from the
 * stock client's transport error: long-polling hands over the XHR (`context`) with status and body.
 * A WebSocket handshake exposes only the status (Node's `ws`: "Unexpected server response: 503"; a
 * browser: nothing), so that case is reported as `over_capacity` without a hint — still retryable.
 */
export function refusalOfTransportError(err: { message?: string; description?: unknown; context?: unknown }): { code: ErrorCode; message: string; retryAfterMs?: number } | null {
  const context = err.context as { status?: unknown; responseText?: unknown } | undefined;
  const status = typeof err.description === 'number' ? err.description : typeof context?.status === 'number' ? context.status : null;
  if ((status === 503 || status === 429) && typeof context?.responseText === 'string') {
    try {
      const body = JSON.parse(context.responseText) as { error?: { code?: unknown; message?: unknown; retryAfterMs?: unknown } };
      const code = body.error?.code;
      if (typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)) {
        const retryAfterMs = typeof body.error?.retryAfterMs === 'number' ? body.error.retryAfterMs : undefined;
        return { code: code as ErrorCode, message: String(body.error?.message ?? code), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
      }
    } catch {
      // Not ours (an edge's own 503 page): the status alone decides below.
    }
  }
  const wsStatus = (err.description as { message?: unknown } | undefined)?.message;
  const upgradeStatus = typeof wsStatus === 'string' ? /Unexpected server response: (\d{3})/.exec(wsStatus)?.[1] : undefined;
  const refusedStatus = status ?? (upgradeStatus ? Number(upgradeStatus) : null);
  if (refusedStatus === 503 || refusedStatus === 429) {
    return { code: 'over_capacity', message: `the server answered HTTP ${refusedStatus} to the handshake` };
  }
  return null;
}

const FATAL_HANDSHAKE_CODES: ReadonlySet<string> = new Set(['auth_required', 'auth_invalid', 'token_expired', 'forbidden', 'auth_subject_mismatch']);
const TOKEN_CODES: ReadonlySet<string> = new Set(['auth_invalid', 'token_expired']);

/** One room's join on one socket, retried there after retryable refusals until leave() or a newer join supersedes it. */
interface JoinAttempt {
  readonly socket: Socket;
  retries: number;
  retryTimer: ReturnType<typeof setTimeout> | null;
}

interface ConnectionWaiter {
  resolve: (socket: Socket) => void;
  reject: (error: GatewayClientError) => void;
}

/**
 * A Socket.IO client for the gateway that survives pods going away: it reconnects by itself with
 * full-jitter backoff, moves when a pod drains, resumes every room from its last seq and hands the
 * application each durable envelope once, in order. See docs/client-sdk.md.
 */
export class GatewayClient<M extends MessageMap = MessageMap> extends TypedEmitter<GatewayClientEvents> {
  readonly #opts: GatewayClientOptions;
  readonly #backoff: ResolvedBackoff;
  readonly #tracker: RoomTracker;
  readonly #random: () => number;
  #state: ConnectionState = 'connecting';
  #socket: Socket | null = null;
  /** Bumped per connection attempt; callbacks of older attempts are ignored. */
  #generation = 0;
  /** Failed attempts since the last successful connection: the backoff exponent. */
  #attempt = 0;
  #everConnected = false;
  #started = false;
  #token: string | undefined;
  #pod: string | null = null;
  #userId: string | null = null;
  /** Epoch ms before which no reconnect is made (the drain hint). */
  #moveNotBefore = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  #drainTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #gapTimers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #gapFetching = new Set<string>();
  readonly #connectionWaiters = new Set<ConnectionWaiter>();
  readonly #joinWaiters = new Map<string, Set<{ resolve: (e: JoinedEvent) => void; reject: (e: GatewayClientError) => void }>>();
  /** Joins confirmed on the current connection, and joins in flight (by the socket they went out on). */
  readonly #joinedHere = new Map<string, JoinedEvent>();
  readonly #joinsInFlight = new Map<string, JoinAttempt>();
  /** Set once the client reads by short polling (chosen, or fallen back to): one poller per room. */
  #shortPolling = false;
  readonly #pollers = new Map<string, RoomPoller>();
  /** Stats of pollers already stopped, so `shortPollStats` never goes down. */
  readonly #retiredPollStats: PollerStats = { requests: 0, notModified: 0, bodyBytes: 0 };
  /** Failed polls in a row: the backoff exponent while short polling. */
  #pollFailures = 0;
  readonly #subscriptions = new Map<string, Subscription<M>>();
  readonly #joinTokens = new Map<string, SubscriptionTokenSource>();
  readonly stats: ClientStats = { connects: 0, connectFailures: 0, drainMoves: 0, delivered: 0, duplicatesDropped: 0, gapFetches: 0, resets: 0, publishRetries: 0 };

  constructor(options: GatewayClientOptions) {
    super();
    if (!options || typeof options.url !== 'string' || options.url.length === 0) {
      throw new TypeError('createGatewayClient: `url` is required, e.g. {url: "http://127.0.0.1:8080"}');
    }
    this.#opts = options;
    this.#backoff = resolveBackoff(options.backoff);
    this.#tracker = new RoomTracker(options.maxHeldPerRoom ?? CLIENT_DEFAULTS.maxHeldPerRoom);
    this.#random = options.random ?? Math.random;
    this.#token = options.token;
    for (const room of options.rooms ?? []) this.#tracker.track(room);
    if (options.autoConnect ?? CLIENT_DEFAULTS.autoConnect) this.connect();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The pod of the current connection (from `server:hello`), or null while not connected. */
  get pod(): string | null {
    return this.#pod;
  }

  /** The user id the gateway gave this connection (from `server:hello`). */
  get userId(): string | null {
    return this.#userId;
  }

  /** The transport in use right now (`polling` until an upgrade to `websocket`, or `short-poll`), or null. */
  get transport(): TransportName | ShortPollName | null {
    if (this.#shortPolling) return 'short-poll';
    const name = this.#socket?.io.engine?.transport?.name;
    return name === 'polling' || name === 'websocket' ? name : null;
  }

  /** HTTP requests and body bytes of short polling so far (zero unless the client short-polls). */
  get shortPollStats(): PollerStats {
    const total: PollerStats = { requests: this.#retiredPollStats.requests, notModified: this.#retiredPollStats.notModified, bodyBytes: this.#retiredPollStats.bodyBytes };
    for (const poller of this.#pollers.values()) {
      total.requests += poller.stats.requests;
      total.notModified += poller.stats.notModified;
      total.bodyBytes += poller.stats.bodyBytes;
    }
    return total;
  }

  /** Rooms followed (joined and resumed on every reconnect). */
  get rooms(): readonly string[] {
    return this.#tracker.rooms;
  }

  /** Last seq delivered to the application in `room`, or null. */
  lastSeq(room: string): number | null {
    return this.#tracker.lastSeq(room);
  }

  /** Starts connecting (only needed with `autoConnect: false`). */
  connect(): void {
    if (this.#started || this.#state === 'closed') return;
    this.#started = true;
    void this.#open();
  }

  /** Joins `room` now (or on the next connection) and on every reconnect, resuming from its last seq. */
  join(room: string): Promise<JoinedEvent> {
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    this.#tracker.track(room);
    const already = this.#joinedHere.get(room);
    if (already && (this.#isUp() || this.#shortPolling)) return Promise.resolve(already);
    const joined = this.#waitJoined(room);
    if (this.#shortPolling) {
      if (!this.#pollers.has(room)) this.#startPoller(room);
      return joined;
    }
    // One room:join per room and connection: the gateway refuses a second while the first runs.
    if (this.#isUp() && this.#joinsInFlight.get(room)?.socket !== this.#socket) void this.#sendJoin(this.#socket as Socket, room);
    return joined;
  }

  /** Stops following `room`. */
  async leave(room: string): Promise<void> {
    this.#tracker.untrack(room);
    this.#joinedHere.delete(room);
    this.#cancelJoin(room); // its ack, if it still comes, must not count for a later join()
    this.#clearGapTimer(room);
    this.#stopPoller(room);
    if (this.#isUp()) await this.#request('room:leave', { room });
  }

  /**
   * Follows `room` as its own object with its own events and state: joined now (or on the next
   * connection) and on every reconnect, resuming from its last seq. Subscribing twice returns the same object.
   */
  subscribe(room: string, options: SubscribeOptions = {}): Subscription<M> {
    if (options.token !== undefined) this.#joinTokens.set(room, options.token);
    let subscription = this.#subscriptions.get(room);
    if (subscription && subscription.state !== 'failed') return subscription;
    subscription = new Subscription<M>(room, {
      publish: (r, type, payload, opts) => this.publish(r, type, payload, opts),
      presence: (r) => this.presence(r),
      unsubscribe: (r) => this.unsubscribe(r),
      lastSeq: (r) => this.lastSeq(r),
    });
    this.#subscriptions.set(room, subscription);
    this.join(room).catch((err: unknown) => {
      // A timeout only means "not yet": the room stays followed and is joined on the next connection.
      if (err instanceof GatewayClientError && err.code === 'timeout') return;
      subscription.deliver({ kind: 'error', error: asClientError(err) });
    });
    return subscription;
  }

  /** The subscription of `room`, if `subscribe()` made one. */
  getSubscription(room: string): Subscription<M> | undefined {
    return this.#subscriptions.get(room);
  }

  /** Stops following `room` and ends its subscription. */
  async unsubscribe(room: string): Promise<void> {
    const subscription = this.#subscriptions.get(room);
    this.#subscriptions.delete(room);
    this.#joinTokens.delete(room);
    subscription?.setState('unsubscribed');
    await this.leave(room);
  }

  /**
   * Publishes an application message into `room` (a namespace with `publish: members`; the room must be
   * joined). Exactly-once: it carries an idempotency key, and an ack lost to a disconnect or a timeout,
   * or a retryable refusal, is retried with the same key — the gateway then answers the first result.
   */
  async publish<T extends keyof M & string>(room: string, type: T, payload: M[T], options: PublishOptions = {}): Promise<PublishResult> {
    const idempotencyKey = options.idempotencyKey ?? newIdempotencyKey(this.#random);
    const deadline = Date.now() + (this.#opts.publishRetryMs ?? CLIENT_DEFAULTS.publishRetryMs);
    for (let attempt = 0; ; attempt += 1) {
      try {
        // After a reconnect the room is joined again before anything is published into it.
        if (this.#tracker.has(room)) await this.join(room);
        const ack = await this.#request('publish', { room, type, payload, idempotencyKey });
        this.notePublished(room, ack.seq);
        return { room: ack.room, seq: ack.seq, duplicate: ack.duplicate };
      } catch (err) {
        const error = asClientError(err);
        const lost = error.code === 'disconnected' || error.code === 'timeout';
        const delay = error.retryAfterMs ?? backoffDelay(attempt, this.#backoff, this.#random);
        if (!(lost || error.retryable) || this.#state === 'closed' || Date.now() + delay > deadline) throw error;
        this.stats.publishRetries += 1;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Who is in `room` across the fleet (a joined room of a namespace with presence on). */
  async presence(room: string): Promise<PresenceSnapshot> {
    const ack = await this.#request('presence:get', { room });
    return { room: ack.room, users: ack.users, connections: ack.connections };
  }

  /**
   * Tells the room's sequence that our own publish got `seq`, so a lost envelope shows as a gap and is
   * fetched. `publish()` does this itself; helpers that publish through `request()` call it.
   */
  notePublished(room: string, seq: number): void {
    this.#tracker.noteSeq(room, seq);
    this.#checkBehind(room);
  }

  /** Sends any client event and resolves with its `ok:true` ack; rejects with `GatewayClientError`. */
  request<E extends ClientEventName>(event: E, payload: ClientEventPayload<E>): Promise<Ok<E>> {
    return this.#request(event, payload);
  }

  /** Closes the connection and cancels every timer and pending wait. The client cannot be reused. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#generation += 1;
    this.#clearTimer('reconnect');
    this.#clearTimer('drain');
    for (const room of [...this.#gapTimers.keys()]) this.#clearGapTimer(room);
    for (const room of [...this.#joinsInFlight.keys()]) this.#cancelJoin(room);
    for (const room of [...this.#pollers.keys()]) this.#stopPoller(room);
    if (this.#socket) this.#discard(this.#socket);
    this.#setState('closed');
    const error = this.#closedError();
    for (const waiter of this.#connectionWaiters) waiter.reject(error);
    this.#connectionWaiters.clear();
    for (const waiters of this.#joinWaiters.values()) for (const waiter of waiters) waiter.reject(error);
    this.#joinWaiters.clear();
  }

  // --- connection lifecycle -------------------------------------------------------------------

  async #open(): Promise<void> {
    this.#clearTimer('reconnect');
    if (this.#socketIoTransports().length === 0) return this.#startShortPolling();
    const generation = ++this.#generation;
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    if (generation !== this.#generation) return; // a 'state' listener called close()
    let auth: Record<string, string>;
    try {
      auth = await this.#handshakeAuth();
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#fail(err instanceof GatewayClientError ? err : new GatewayClientError('connect_failed', `getToken() failed: ${String(err)}`, { retryable: true, cause: err }));
      if (this.#state !== 'closed') this.#scheduleReconnect();
      return;
    }
    if (generation !== this.#generation) return;
    const o = this.#opts;
    const socket = io(o.url, {
      ...o.socketOptions,
      path: o.path ?? CLIENT_DEFAULTS.path,
      transports: this.#socketIoTransports(),
      upgrade: o.upgrade ?? CLIENT_DEFAULTS.upgrade,
      withCredentials: o.withCredentials ?? !isBrowser(),
      timeout: o.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs,
      auth,
      // This class owns reconnection (jitter, drain hints, resume); socket.io's own would fight it.
      reconnection: false,
      forceNew: true,
      autoConnect: false,
    });
    this.#socket = socket;
    this.#wire(socket, generation);
    socket.connect();
  }

  #wire(socket: Socket, generation: number): void {
    const current = (): boolean => generation === this.#generation && this.#socket === socket;
    socket.on('connect', () => {
      if (!current()) return;
      this.#attempt = 0;
      this.#everConnected = true;
      this.stats.connects += 1;
      this.#joinedHere.clear();
      this.#setState('connected');
      if (!current()) return; // a 'state' listener called close()
      for (const waiter of this.#connectionWaiters) waiter.resolve(socket);
      this.#connectionWaiters.clear();
      // A 'state' or waiter callback may have called join() already; the gateway refuses a second join.
      for (const room of this.#tracker.rooms) if (this.#joinsInFlight.get(room)?.socket !== socket) void this.#sendJoin(socket, room);
    });
    socket.on('connect_error', (err: Error & { data?: Partial<HandshakeRefusal>; description?: unknown; context?: unknown }) => {
      if (!current()) return;
      this.#discard(socket);
      this.stats.connectFailures += 1;
      // Retryable refusals (draining, over_capacity) come at the transport, as HTTP 503/429 with a JSON body.
      const transportRefusal = err.data ? null : refusalOfTransportError(err);
      if (transportRefusal) {
        const { code, message, retryAfterMs } = transportRefusal;
        this.#fail(
          new GatewayClientError(code, `connection refused: ${message}`, { retryable: RETRYABLE_CODES.has(code), cause: err, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }),
        );
        this.#scheduleReconnect(retryAfterMs);
        return;
      }
      const code = err.data?.code;
      if (code && FATAL_HANDSHAKE_CODES.has(code)) {
        if (this.#opts.getToken && TOKEN_CODES.has(code)) {
          this.#token = undefined; // fetch a new one before the next attempt
        } else {
          this.#fail(new GatewayClientError(code, `handshake refused: ${err.data?.message ?? err.message}`, { retryable: false, cause: err }));
          this.close();
          return;
        }
      }
      const retryable = code ? RETRYABLE_CODES.has(code) || TOKEN_CODES.has(code) : true;
      const retryAfterMs = typeof err.data?.retryAfterMs === 'number' ? err.data.retryAfterMs : undefined;
      this.#fail(new GatewayClientError(code ?? 'connect_failed', `connection attempt failed: ${err.data?.message ?? err.message}`, { retryable, cause: err, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }));
      this.#scheduleReconnect(retryAfterMs);
    });
    socket.on('disconnect', (reason: string) => {
      if (!current()) return;
      for (const subscription of this.#subscriptions.values()) if (subscription.state === 'subscribed') subscription.setState('subscribing');
      this.#discard(socket);
      this.#fail(new GatewayClientError('disconnected', `connection lost: ${reason}`, { retryable: true }));
      this.#scheduleReconnect();
    });
    // Every event that is not a control type is a durable envelope: the demo's and any application type.
    socket.onAny((type: string, envelope: unknown) => {
      if (!current()) return;
      if (isControlType(type)) this.#onControl(type, envelope);
      else this.#onDurable(envelope);
    });
  }

  /** Detaches and closes `socket` without triggering our own disconnect handling. */
  #discard(socket: Socket): void {
    if (this.#socket === socket) {
      this.#socket = null;
      this.#pod = null;
    }
    this.#clearTimer('drain');
    socket.removeAllListeners();
    socket.disconnect();
  }

  /** `notBeforeMs`: the server's `retryAfterMs` — the backoff (with its jitter) is never shorter. */
  #scheduleReconnect(notBeforeMs = 0): void {
    if (this.#state === 'closed') return;
    if (this.#fallBackToShortPolling()) return this.#startShortPolling();
    this.#clearTimer('reconnect');
    const now = Date.now();
    let delay: number;
    if (this.#moveNotBefore > now) {
      delay = this.#moveNotBefore - now; // the pod's hint already carries the jitter
    } else {
      delay = Math.max(backoffDelay(this.#attempt, this.#backoff, this.#random), notBeforeMs);
      this.#attempt += 1;
    }
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    // A 'state' listener may have called close(); TypeScript cannot see that the call changed #state.
    if ((this.#state as ConnectionState) === 'closed') return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      void this.#open();
    }, delay);
  }

  async #handshakeAuth(): Promise<Record<string, string>> {
    const { getToken, userId } = this.#opts;
    if (this.#token === undefined && getToken) this.#token = await getToken();
    if (this.#token !== undefined) return { token: this.#token };
    return userId === undefined ? {} : { userId };
  }

  // --- inbound --------------------------------------------------------------------------------

  #onDurable(raw: unknown): void {
    if (!isEnvelope(raw) || typeof raw.seq !== 'number' || typeof raw.room !== 'string') {
      this.#fail(new GatewayClientError('protocol', `dropped a malformed durable envelope: ${safeJson(raw)}`));
      return;
    }
    const envelope = raw as DurableEnvelope;
    const outcome = this.#tracker.offer(envelope);
    if (outcome.kind !== 'sequenced') return;
    if (outcome.duplicate) this.stats.duplicatesDropped += 1;
    this.#deliver(outcome.deliver);
    this.#checkBehind(envelope.room);
  }

  #onControl(type: (typeof CONTROL_TYPES)[number], raw: unknown): void {
    if (!isEnvelope(raw)) {
      this.#fail(new GatewayClientError('protocol', `dropped a malformed ${type} envelope: ${safeJson(raw)}`));
      return;
    }
    switch (type) {
      case 'room:reset': {
        const payload = raw.payload as EnvelopePayloads['room:reset'];
        if (typeof raw.room === 'string' && typeof raw.seq === 'number') this.#applyReset(raw.room, raw.seq, payload.snapshot);
        return;
      }
      case 'presence:join':
      case 'presence:leave': {
        const { userId } = raw.payload as EnvelopePayloads['presence:join'];
        if (typeof raw.room === 'string') this.#subscriptions.get(raw.room)?.deliver({ kind: 'presence', userId, joined: type === 'presence:join' });
        return;
      }
      case 'room:members': {
        const { count } = raw.payload as EnvelopePayloads['room:members'];
        if (typeof raw.room === 'string') this.emit('members', { room: raw.room, count });
        return;
      }
      case 'server:hello': {
        const hello = raw.payload as EnvelopePayloads['server:hello'];
        this.#pod = hello.pod;
        this.#userId = hello.userId;
        this.emit('hello', hello);
        const own = userRoom(hello.userId);
        if ((this.#opts.directMessages ?? CLIENT_DEFAULTS.directMessages) && !this.#tracker.has(own) && this.#socket) {
          this.#tracker.track(own);
          void this.#sendJoin(this.#socket, own);
        }
        return;
      }
      case 'server:draining':
        this.#onDraining(raw.payload as EnvelopePayloads['server:draining']);
        return;
      case 'auth:refresh':
        void this.#refreshToken();
        return;
      case 'connection:closing': {
        const closing = raw.payload as EnvelopePayloads['connection:closing'];
        this.emit('closing', closing);
        if (this.#opts.getToken && TOKEN_CODES.has(closing.reason)) {
          this.#token = undefined; // the reconnect that follows the close fetches a new one
        } else if (!closing.reconnect) {
          this.#fail(new GatewayClientError(closing.reason, `the gateway closed the connection for good: ${closing.message}`));
          this.close();
        }
        return;
      }
    }
  }

  #onDraining(hint: EnvelopePayloads['server:draining']): void {
    this.emit('draining', hint);
    if (!(this.#opts.honourDrainHint ?? CLIENT_DEFAULTS.honourDrainHint)) return;
    const socket = this.#socket;
    if (!socket) return;
    const delay = Math.max(0, Number(hint.reconnectAfterMs) || 0);
    this.#moveNotBefore = Date.now() + delay;
    this.#setState('draining');
    this.#clearTimer('drain');
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = null;
      if (this.#socket !== socket) return; // the pod closed us first; the reconnect is scheduled
      this.stats.drainMoves += 1;
      this.#discard(socket);
      void this.#open();
    }, delay);
  }

  #applyReset(room: string, seq: number, snapshot: RoomSnapshot): void {
    const { applied, deliver } = this.#tracker.reset(room, seq);
    if (!applied) return;
    this.stats.resets += 1;
    this.emit('reset', { room, seq, snapshot });
    this.#subscriptions.get(room)?.deliver({ kind: 'reset', seq, snapshot });
    this.#deliver(deliver);
    this.#checkBehind(room);
  }

  #deliver(envelopes: readonly DurableEnvelope[]): void {
    for (const envelope of envelopes) {
      this.stats.delivered += 1;
      this.emit('message', envelope);
      this.#subscriptions.get(envelope.room)?.deliver({ kind: 'message', envelope });
    }
  }

  // --- rooms: join, resume, gaps --------------------------------------------------------------

  #sendJoin(socket: Socket, room: string): Promise<void> {
    this.#cancelJoin(room);
    const attempt: JoinAttempt = { socket, retries: 0, retryTimer: null };
    this.#joinsInFlight.set(room, attempt);
    return this.#runJoin(room, attempt);
  }

  async #runJoin(room: string, attempt: JoinAttempt): Promise<void> {
    const { socket } = attempt;
    let ack: Ok<'room:join'>;
    try {
      const source = this.#joinTokens.get(room);
      const token = typeof source === 'function' ? await source() : source;
      if (this.#joinsInFlight.get(room) !== attempt) return;
      ack = await this.#emitOn(socket, 'room:join', { room, lastSeq: this.#tracker.resumePoint(room), ...(token === undefined ? {} : { token }) });
    } catch (err) {
      if (this.#joinsInFlight.get(room) !== attempt) return; // superseded by leave() or a newer join
      const error = asClientError(err);
      // An expired subscription token is worth one more try when a function can fetch a fresh one.
      const refreshable = error.code === 'subscription_token_expired' && typeof this.#joinTokens.get(room) === 'function' && attempt.retries < 3;
      if (error.code === 'disconnected') {
        this.#joinsInFlight.delete(room); // the next connection joins it again
      } else if (error.retryable || error.code === 'internal' || refreshable) {
        // A passing refusal (backplane blip, rate limit, timeout): ask again on this connection.
        const delay = error.retryAfterMs ?? backoffDelay(attempt.retries, this.#backoff, this.#random);
        attempt.retries += 1;
        attempt.retryTimer = setTimeout(() => {
          attempt.retryTimer = null;
          if (this.#joinsInFlight.get(room) !== attempt) return;
          if (this.#socket !== socket || !this.#isUp() || !this.#tracker.has(room)) {
            this.#joinsInFlight.delete(room);
            return;
          }
          void this.#runJoin(room, attempt);
        }, delay);
      } else {
        // The server will not let us in (forbidden, bad room name): stop following the room.
        this.#joinsInFlight.delete(room);
        this.#tracker.untrack(room);
        this.#settleJoin(room, error);
        this.#subscriptions.get(room)?.setState('failed');
      }
      if (error.code !== 'disconnected') this.#fail(error);
      return;
    }
    if (this.#joinsInFlight.get(room) !== attempt) return; // superseded by leave() or a newer join
    this.#joinsInFlight.delete(room);
    if (!this.#tracker.has(room)) return;
    this.#deliver(this.#tracker.acknowledgeJoin(room, ack.seq));
    const joined: JoinedEvent = { room, seq: ack.seq, resume: ack.resume, replayed: ack.replayed };
    if (this.#socket === socket) this.#joinedHere.set(room, joined);
    this.#subscriptions.get(room)?.setState('subscribed');
    this.emit('joined', joined);
    this.#settleJoin(room, joined);
    // A long resume comes one page in the join; the rest is fetched at once, not after the gap delay.
    if (ack.more) void this.#fillGap(room);
    else this.#checkBehind(room);
  }

  #cancelJoin(room: string): void {
    const attempt = this.#joinsInFlight.get(room);
    if (attempt?.retryTimer) clearTimeout(attempt.retryTimer);
    this.#joinsInFlight.delete(room);
  }

  #waitJoined(room: string): Promise<JoinedEvent> {
    const timeoutMs = this.#opts.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs;
    return new Promise<JoinedEvent>((resolve, reject) => {
      let waiters = this.#joinWaiters.get(room);
      if (!waiters) {
        waiters = new Set();
        this.#joinWaiters.set(room, waiters);
      }
      const waiter = {
        resolve: (e: JoinedEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
        reject: (e: GatewayClientError) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new GatewayClientError('timeout', `join of ${room} not confirmed within ${timeoutMs} ms; the room stays followed and is joined on the next connection`, { retryable: true }));
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  #settleJoin(room: string, outcome: JoinedEvent | GatewayClientError): void {
    const waiters = this.#joinWaiters.get(room);
    if (!waiters) return;
    this.#joinWaiters.delete(room);
    for (const waiter of waiters) {
      if (outcome instanceof GatewayClientError) waiter.reject(outcome);
      else waiter.resolve(outcome);
    }
  }

  #checkBehind(room: string): void {
    if (this.#gapTimers.has(room) || this.#tracker.behind(room) === null) return;
    const delay = this.#opts.gapFetchDelayMs ?? CLIENT_DEFAULTS.gapFetchDelayMs;
    this.#gapTimers.set(
      room,
      setTimeout(() => {
        this.#gapTimers.delete(room);
        void this.#fillGap(room);
      }, delay),
    );
  }

  /** Asks `history:fetch` for what the room is still missing; a reconnect resumes rooms anyway. */
  async #fillGap(room: string): Promise<void> {
    const afterSeq = this.#tracker.behind(room);
    if (afterSeq === null || this.#gapFetching.has(room) || !this.#isUp()) return;
    this.#gapFetching.add(room);
    let nextPage = false;
    try {
      const result: HistoryResult = await this.#emitOn(this.#socket as Socket, 'history:fetch', { room, afterSeq });
      this.stats.gapFetches += 1;
      this.#tracker.noteSeq(room, result.seq);
      nextPage = result.mode === 'replay' && result.more === true;
      if (result.mode === 'reset') {
        this.#applyReset(room, result.seq, result.snapshot);
      } else {
        for (const envelope of result.envelopes) {
          const outcome = this.#tracker.offer(envelope);
          if (outcome.kind === 'sequenced') this.#deliver(outcome.deliver);
        }
      }
    } catch (err) {
      const error = asClientError(err);
      if (error.code !== 'disconnected') this.#fail(error);
    } finally {
      this.#gapFetching.delete(room);
    }
    // One reply is one page (HISTORY_PAGE_BYTES): the next follows at once while the server has more.
    if (nextPage && this.#isUp()) return void this.#fillGap(room);
    if (this.#isUp()) this.#checkBehind(room);
  }

  #clearGapTimer(room: string): void {
    const timer = this.#gapTimers.get(room);
    if (timer) clearTimeout(timer);
    this.#gapTimers.delete(room);
  }

  // --- requests -------------------------------------------------------------------------------

  async #request<E extends ClientEventName>(event: E, payload: ClientEventPayload<E>): Promise<Ok<E>> {
    if (this.#shortPolling) throw this.#readOnlyError(event);
    const socket = await this.#connected();
    return this.#emitOn(socket, event, payload);
  }

  async #emitOn<E extends ClientEventName>(socket: Socket, event: E, payload: ClientEventPayload<E>): Promise<Ok<E>> {
    const timeoutMs = this.#opts.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs;
    let response: Ack<AckBodies[E]>;
    try {
      response = (await socket.timeout(timeoutMs).emitWithAck(event, payload)) as Ack<AckBodies[E]>;
    } catch (err) {
      if (this.#socket !== socket) {
        throw new GatewayClientError('disconnected', `${event}: the connection closed before the ack; it may or may not have been applied`, { retryable: true, cause: err });
      }
      throw new GatewayClientError('timeout', `${event}: no ack within ${timeoutMs} ms; it may or may not have been applied`, { retryable: true, cause: err });
    }
    if (!response || typeof response !== 'object' || typeof response.ok !== 'boolean') {
      throw new GatewayClientError('protocol', `${event}: malformed ack ${safeJson(response)}`);
    }
    if (!response.ok) {
      const { code, message, retryAfterMs } = response.error;
      throw new GatewayClientError(code, `${event}: ${message}`, { retryable: RETRYABLE_CODES.has(code), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
    }
    return response as Ok<E>;
  }

  /** The socket once it is connected, waiting up to `requestTimeoutMs`. */
  #connected(): Promise<Socket> {
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    if (this.#isUp()) return Promise.resolve(this.#socket as Socket);
    const timeoutMs = this.#opts.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs;
    return new Promise<Socket>((resolve, reject) => {
      const waiter: ConnectionWaiter = {
        resolve: (socket) => {
          clearTimeout(timer);
          resolve(socket);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.#connectionWaiters.delete(waiter);
        reject(new GatewayClientError('timeout', `not connected within ${timeoutMs} ms (state: ${this.#state})`, { retryable: true }));
      }, timeoutMs);
      this.#connectionWaiters.add(waiter);
    });
  }

  async #refreshToken(): Promise<void> {
    const { getToken } = this.#opts;
    if (!getToken) {
      this.#fail(new GatewayClientError('no_token_source', 'the gateway asked for a fresh token (auth:refresh) but no getToken option was given; the connection ends when the token expires'));
      return;
    }
    try {
      const token = await getToken();
      this.#token = token;
      await this.#request('auth:refresh', { token });
    } catch (err) {
      this.#fail(asClientError(err));
    }
  }

  // --- small helpers --------------------------------------------------------------------------

  #isUp(): boolean {
    return this.#socket !== null && this.#socket.connected && (this.#state === 'connected' || this.#state === 'draining');
  }

  #setState(next: ConnectionState): void {
    const previous = this.#state;
    if (previous === next || previous === 'closed') return;
    this.#state = next;
    this.emit('state', next, previous);
  }

  #fail(error: GatewayClientError): void {
    this.emit('error', error);
  }

  #clearTimer(which: 'reconnect' | 'drain'): void {
    if (which === 'reconnect' && this.#reconnectTimer) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
    if (which === 'drain' && this.#drainTimer) {
      clearTimeout(this.#drainTimer);
      this.#drainTimer = null;
    }
  }

  #readOnlyError(what: string): GatewayClientError {
    return new GatewayClientError('read_only', `${what}: this client reads by short polling (GET /poll), which only reads; send over Socket.IO or your own HTTP API`);
  }

  // --- short polling (the ladder's first rung) ------------------------------------------------

  #socketIoTransports(): TransportName[] {
    return (this.#opts.transports ?? CLIENT_DEFAULTS.transports).filter((t): t is TransportName => t !== 'short-poll');
  }

  /** Listed last and nothing else ever got through: the proxy or network in the way passes plain requests only. */
  #fallBackToShortPolling(): boolean {
    const transports = this.#opts.transports ?? CLIENT_DEFAULTS.transports;
    const after = this.#opts.shortPollAfterFailures ?? CLIENT_DEFAULTS.shortPollAfterFailures;
    return transports.includes('short-poll') && !this.#everConnected && this.stats.connectFailures >= after;
  }

  #startShortPolling(): void {
    if (this.#shortPolling || this.#state === 'closed') return;
    this.#shortPolling = true;
    this.#generation += 1;
    this.#clearTimer('reconnect');
    if (this.#socket) this.#discard(this.#socket);
    for (const waiter of this.#connectionWaiters) waiter.reject(this.#readOnlyError('request'));
    this.#connectionWaiters.clear();
    if (this.#tracker.rooms.length === 0) this.#setState('connected');
    for (const room of this.#tracker.rooms) this.#startPoller(room);
  }

  #startPoller(room: string): void {
    const { limit } = this.#opts.shortPoll ?? {};
    const poller: RoomPoller = new RoomPoller({
      url: this.#opts.url,
      room,
      ...(limit === undefined ? {} : { limit }),
      credentials: async () => {
        const auth = await this.#handshakeAuth();
        return auth.token !== undefined ? { token: auth.token } : auth.userId !== undefined ? { userId: auth.userId } : {};
      },
      resumePoint: () => this.#tracker.resumePoint(room),
      onOutcome: (outcome) => (this.#pollers.get(room) === poller ? this.#onPollOutcome(room, outcome) : null),
    });
    this.#pollers.set(room, poller);
    poller.start();
  }

  #stopPoller(room: string): void {
    const poller = this.#pollers.get(room);
    if (!poller) return;
    poller.stop();
    this.#pollers.delete(room);
    this.#retiredPollStats.requests += poller.stats.requests;
    this.#retiredPollStats.notModified += poller.stats.notModified;
    this.#retiredPollStats.bodyBytes += poller.stats.bodyBytes;
  }

  /** Delivers what a poll brought and returns when to poll next (null: stop polling the room). */
  #onPollOutcome(room: string, outcome: PollOutcome): number | null {
    const shortPoll = { ...CLIENT_DEFAULTS.shortPoll, ...this.#opts.shortPoll };
    const pace = (ms: number): number => Math.min(shortPoll.maxIntervalMs, Math.max(shortPoll.minIntervalMs, ms));
    if (outcome.kind === 'answer' || outcome.kind === 'not-modified') {
      const fresh = this.#tracker.resumePoint(room) === null;
      let replayed = 0;
      let reset = false;
      if (outcome.kind === 'answer') {
        for (const envelope of outcome.answer.envelopes) {
          if (envelope.type === 'room:reset') {
            reset = true;
            this.#onControl('room:reset', envelope);
          } else {
            replayed += 1;
            this.#onDurable(envelope);
          }
        }
      }
      this.#pollFailures = 0;
      if (!this.#everConnected) this.stats.connects += 1;
      this.#everConnected = true;
      this.#setState('connected');
      if (!this.#joinedHere.has(room) && this.#tracker.has(room)) {
        const seq = this.#tracker.lastSeq(room) ?? (outcome.kind === 'answer' ? outcome.answer.next : 0);
        const joined: JoinedEvent = { room, seq, resume: reset ? (fresh ? 'fresh' : 'reset') : 'replay', replayed };
        this.#joinedHere.set(room, joined);
        this.emit('joined', joined);
        this.#settleJoin(room, joined);
      }
      if (outcome.kind === 'answer' && outcome.answer.more) return 0;
      return pace(outcome.kind === 'answer' ? outcome.answer.retryAfterMs : outcome.retryAfterMs);
    }
    const backoff = (): number => backoffDelay(this.#pollFailures++, this.#backoff, this.#random);
    if (outcome.kind === 'failed') {
      this.#fail(new GatewayClientError('connect_failed', `${room}: ${outcome.message}`, { retryable: true }));
      if (this.#everConnected) this.#setState('reconnecting');
      return backoff();
    }
    const { code, message, retryAfterMs } = outcome.error;
    const retryable = RETRYABLE_CODES.has(code);
    const error = new GatewayClientError(code, `GET /poll ${room}: ${message}`, { retryable, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
    if (TOKEN_CODES.has(code) && this.#opts.getToken) {
      this.#token = undefined; // the next poll asks getToken() for a new one
      this.#fail(error);
      return backoff();
    }
    this.#fail(error);
    if (retryable) return retryAfterMs ?? backoff();
    if (FATAL_HANDSHAKE_CODES.has(code) && code !== 'forbidden') {
      this.close();
      return null;
    }
    // Not for us (another user's room, a bad room name): stop following it, as a refused join does.
    this.#stopPoller(room);
    this.#tracker.untrack(room);
    this.#settleJoin(room, error);
    return null;
  }

  #closedError(): GatewayClientError {
    return new GatewayClientError('closed', 'the client is closed');
  }
}

/**
 * Creates a client; with the default `autoConnect: true` it starts connecting at once. `M` types an
 * application's messages: `createGatewayClient<{'order:updated': Order}>(...)`.
 */
export function createGatewayClient<M extends MessageMap = MessageMap>(options: GatewayClientOptions): GatewayClient<M> {
  return new GatewayClient<M>(options);
}

/** A random idempotency key (crypto.randomUUID where there is one). */
function newIdempotencyKey(random: () => number): string {
  const uuid = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto?.randomUUID?.();
  return uuid ?? `k${Date.now().toString(36)}${Math.floor(random() * 2 ** 48).toString(36)}`;
}

function isBrowser(): boolean {
  return typeof (globalThis as { document?: unknown }).document !== 'undefined';
}

function isEnvelope(value: unknown): value is Envelope {
  return typeof value === 'object' && value !== null && (value as Envelope).v === PROTOCOL_VERSION && typeof (value as Envelope).type === 'string';
}

function asClientError(err: unknown): GatewayClientError {
  return err instanceof GatewayClientError ? err : new GatewayClientError('internal', String(err), { cause: err });
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value).slice(0, 200);
  } catch {
    return String(value);
  }
}
