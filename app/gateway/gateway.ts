import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge } from 'prom-client';
import { Server, type Socket } from 'socket.io';
import { controlEnvelope, type HandshakeRefusal, type PresenceSnapshot, ProtocolError, RETRYABLE_CODES } from '../protocol/index.ts';
import { createSocketIoAdapter } from './adapter.ts';
import { type Authenticator, createAuthenticator, type Identity } from './auth.ts';
import type { Backplane } from './backplane/backplane.ts';
import { createMemoryBackplane } from './backplane/memory.ts';
import { createRedisBackplane } from './backplane/redis.ts';
import { trackReadiness } from './backplane/redis-connection.ts';
import type { GatewayConfig } from './config.ts';
import { type DrainController, installDrain } from './drain.ts';
import { Connection, type ConnectionShared } from './connection.ts';
import { dispatch, type EventGuard } from './handlers.ts';
import { installHardening } from './hardening.ts';
import { refuseHttp, TokenBucket } from './limits.ts';
import { createInboundParser, type GuardedDecoder } from './parser.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { Recovery, type RestoredSession } from './recovery.ts';
import { loadNamespaces, type Namespaces } from './namespaces.ts';
import { RoomHub } from './room-hub.ts';
import { ShortPoll } from './short-poll.ts';
import { createServerApi, userTag } from './server-api.ts';
import { Presence } from './presence.ts';
import { handleSse } from './sse.ts';
import { serveFleetView, serveWeb } from './web.ts';

/** A check before a Socket.IO CONNECT is accepted (after admission); throws `ProtocolError` to refuse. */
export type HandshakeGuard = (socket: Socket) => void;
/**
 * A check before a new connection is accepted at the transport (an Engine.IO handshake, a `GET /sse`),
 * before anything of it is kept or authenticated (capacity, rate, drain): throws `ProtocolError` (an
 * `AdmissionRefusal` for its HTTP status) to refuse it with HTTP 503/429, `Retry-After` and the code.
 */
export type AdmissionGuard = () => void;
/** A check just before an authenticated `GET /sse` stream opens (drain); throws `ProtocolError` to refuse. */
export type SseGuard = () => void;

/** An extra HTTP route (e.g. `POST /admin/drain`); returns true when it answered. */
export type HttpRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

/** Where a listening gateway answers (contract 6 of DESIGN.md: two ports). */
export interface GatewayUrls {
  /** What clients use: Socket.IO, SSE, the demo page, and `/healthz` + `/readyz` for the edge. */
  readonly url: URL;
  /** For the cluster only: `/metrics`, `/fleet`, `/admin/drain`, probes, the fleet view. */
  readonly internalUrl: URL;
}

/**
 * How long `close()` lets connections still answering a request finish before it cuts them. Idle
 * ones are closed at once; see `closeServer`.
 */
export const CONNECTION_CLOSE_GRACE_MS = 1_000;

/** A peer must have sent its whole request head by then (slowloris), and its whole request (a polling POST) by this. */
const HTTP_HEADERS_TIMEOUT_MS = 10_000;
const HTTP_REQUEST_TIMEOUT_MS = 30_000;
/** Engine.IO control packets (pong, noop, upgrade probes) a connection may send: a few per heartbeat is normal. */
const CONTROL_PACKETS_PER_SECOND = 5;
const CONTROL_PACKET_BURST = 20;
/** Largest frame before authentication: the CONNECT packet with its token (a JWT is far smaller). */
const PRE_AUTH_MAX_FRAME_BYTES = 16 * 1024;

export interface GatewayState {
  /** Set by the drain sequence: readiness fails and handshakes are refused. */
  draining: boolean;
}

export interface Gateway {
  readonly config: GatewayConfig;
  /** The public server: Socket.IO, SSE, the page, `/healthz`, `/readyz`. */
  readonly http: HttpServer;
  /** The internal server: `/metrics`, `/fleet`, `/admin/*`, probes (INTERNAL_PORT). */
  readonly internalHttp: HttpServer;
  readonly io: Server;
  readonly hub: RoomHub;
  readonly backplane: Backplane;
  readonly auth: Authenticator;
  /** Connection state recovery for stock clients; null when RECOVERY_MAX_DISCONNECTION_MS=0. */
  readonly recovery: Recovery | null;
  /** The channel namespaces and their policies (NAMESPACES_FILE, docs/namespaces.md). */
  readonly namespaces: Namespaces;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly state: GatewayState;
  /** Extension points for hardening and drain: run before each new connection / each CONNECT / each event. */
  readonly admissionGuards: AdmissionGuard[];
  readonly handshakeGuards: HandshakeGuard[];
  readonly eventGuards: EventGuard[];
  readonly sseGuards: SseGuard[];
  /** Open `GET /sse` streams (sse.ts adds and removes them); the drain hints and ends them like sockets. */
  readonly sseStreams: ReadonlySet<ServerResponse>;
  /** Extra routes of the internal port (e.g. `POST /admin/drain`); never reachable on the public port. */
  readonly internalRoutes: HttpRoute[];
  isReady(): boolean;
  /** The drain sequence (drain.ts): SIGTERM (main.ts) and `POST /admin/drain` start it. */
  readonly drain: DrainController;
  /** Listens on PORT and INTERNAL_PORT (both on HOST). */
  listen(): Promise<GatewayUrls>;
  /** Stops accepting, closes every socket and stream and every HTTP connection, removes its fleet entry, closes Redis. */
  close(): Promise<void>;
}

export async function createGateway(
  config: GatewayConfig,
  log: Logger = createLogger(config.LOG_LEVEL, config.POD_NAME),
  namespaces: Namespaces = loadNamespaces(config),
): Promise<Gateway> {
  const metrics = createMetrics();
  const auth = await createAuthenticator(config, { allowAnonymous: namespaces.anyPublic });
  const backplane =
    config.ADAPTER === 'memory'
      ? createMemoryBackplane({ historySize: config.HISTORY_SIZE, historyTtlSeconds: config.HISTORY_TTL_SECONDS })
      : createRedisBackplane({
          url: config.REDIS_URL,
          cluster: config.ADAPTER === 'redis-cluster',
          password: config.REDIS_PASSWORD,
          keyPrefix: config.KEY_PREFIX,
          historySize: config.HISTORY_SIZE,
          historyTtlSeconds: config.HISTORY_TTL_SECONDS,
          fleetStatsTtlSeconds: config.FLEET_STATS_TTL_SECONDS,
          name: config.POD_NAME,
        });
  const socketIoAdapter = createSocketIoAdapter(config);
  const state: GatewayState = { draining: false };
  const sseStreams = new Set<ServerResponse>();
  /** The user of each open SSE stream, so a server API disconnect ends their streams too. */
  const sseUsers = new WeakMap<ServerResponse, string>();
  const internalRoutes: HttpRoute[] = [];
  const admissionGuards: AdmissionGuard[] = [];
  const handshakeGuards: HandshakeGuard[] = [];
  const eventGuards: EventGuard[] = [];
  const sseGuards: SseGuard[] = [];
  let listening = false;
  /** Set by close(): Engine.IO handshakes are refused from then on (nothing new may start on a closing pod). */
  let shuttingDown = false;

  const adapterReady = trackReadiness(socketIoAdapter.clients, () => onReadinessInput());
  const isReady = (): boolean => listening && !state.draining && backplane.isReady() && adapterReady();
  let lastReady: boolean | null = null;
  function onReadinessInput(): void {
    const ready = isReady();
    metrics.backplaneUp.set(backplane.isReady() && adapterReady() ? 1 : 0);
    metrics.ready.set(ready ? 1 : 0);
    if (ready !== lastReady) log.info({ ready, backplane: backplane.isReady(), adapter: adapterReady(), draining: state.draining }, 'readiness changed');
    lastReady = ready;
  }
  backplane.onReadyChange(onReadinessInput);

  const serve = (handler: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>) => (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://gateway.local');
    handler(req, res, url).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: false, error: { code: 'internal', message: 'request failed; it was logged' } }));
    });
  };
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void =>
    void res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  const notFound = (res: ServerResponse, url: URL): void => json(res, 404, { ok: false, error: { code: 'not_found', message: `no route ${url.pathname}` } });

  /** Both ports answer the probes: the kubelet asks the internal one, edge health checks (HAProxy, an Ingress) the public one. */
  function probe(res: ServerResponse, url: URL): boolean {
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return true;
    }
    if (url.pathname === '/readyz') {
      const body = { ready: isReady(), pod: config.POD_NAME, backplane: backplane.isReady() && adapterReady(), draining: state.draining };
      json(res, body.ready ? 200 : 503, body);
      return true;
    }
    return false;
  }

  // Public: only what clients use. /metrics, /fleet and /admin/* are not here, so they answer 404.
  const http: HttpServer = createServer(
    // A peer trickling its headers or body (slowloris) is cut after these, checked every second.
    { headersTimeout: HTTP_HEADERS_TIMEOUT_MS, requestTimeout: HTTP_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1_000 },
    serve(async (req, res, url): Promise<void> => {
      if (url.pathname.startsWith('/socket.io/')) return; // Socket.IO's own listener answers these.
      if (probe(res, url)) return;
      if (url.pathname === '/sse') {
        return handleSse(req, res, url, {
          hub,
          auth,
          namespaces,
          metrics,
          outbound: hardening.outbound,
          pageBytes: config.HISTORY_PAGE_BYTES,
          streams: sseStreams,
          admission: admissionGuards,
          guards: sseGuards,
          reserveUser: (userId, stream) => hardening.userConnections.reserve(userId, (release) => stream.once('close', release)),
          streamUsers: sseUsers,
        });
      }
      if (url.pathname === '/poll') return shortPoll.handle(req, res, url);
      if (config.SERVE_WEB && serveWeb(url.pathname, res)) return;
      notFound(res, url);
    }),
  );

  const internalHttp: HttpServer = createServer(
    serve(async (req, res, url): Promise<void> => {
      for (const route of internalRoutes) if (await route(req, res, url)) return;
      if (probe(res, url)) return;
      switch (url.pathname) {
        case '/metrics':
          return void res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
        case '/fleet':
          return fleet(res);
        default:
          if (config.SERVE_WEB && serveFleetView(url.pathname, res)) return;
          notFound(res, url);
      }
    }),
  );

  /**
   * `sockets` is the fleet total: KEDA's metrics-api scaler divides it by the replica count. When Redis
   * cannot be read the answer is 503, never an empty fleet: the controller and KEDA must not read an
   * outage as an idle fleet (and scale it down).
   */
  async function fleet(res: ServerResponse): Promise<void> {
    const headers = { 'cache-control': 'no-store' };
    let pods: Awaited<ReturnType<Backplane['readFleetStats']>>;
    try {
      pods = await backplane.readFleetStats();
    } catch (err) {
      const error =
        err instanceof ProtocolError ? err.toBody() : { code: 'backplane_unavailable', message: `fleet stats could not be read from Redis: ${(err as Error).message}` };
      // Debug only: pollers ask every few seconds, and the outage itself is logged as a readiness change.
      log.debug({ err: error.message }, 'GET /fleet: fleet stats unreadable; answering 503');
      return json(res, 503, { ok: false, error }, { ...headers, 'retry-after': '1' });
    }
    json(res, 200, { pods, sockets: pods.reduce((sum, pod) => sum + pod.sockets, 0) }, headers);
  }

  const io = new Server(http, {
    adapter: socketIoAdapter.adapter,
    pingInterval: config.PING_INTERVAL_MS,
    pingTimeout: config.PING_TIMEOUT_MS,
    maxHttpBufferSize: config.MAX_PAYLOAD_BYTES,
    // A transport that has not completed CONNECT and authentication by then is closed.
    connectTimeout: config.CONNECT_TIMEOUT_MS,
    parser: createInboundParser({
      bytesPerSecond: config.INBOUND_BYTES_PER_SECOND,
      burstBytes: config.INBOUND_BYTES_BURST,
      preAuthMaxBytes: PRE_AUTH_MAX_FRAME_BYTES,
      onRefused: (why, socket) => {
        metrics.inboundRefusals.inc({ why });
        log.info({ why, socket: socket?.id, userId: (socket?.data.identity as Identity | undefined)?.userId }, 'inbound frame refused; closing the connection');
      },
    }),
    serveClient: false,
    // Only handshakes are asked (requests without a sid); sessions already open keep being served until close() ends them.
    allowRequest: (req, callback) => {
      if (!admit(req as IncomingMessage & { res?: ServerResponse })) return; // answered: never called back
      callback(shuttingDown ? 'the pod is shutting down' : null, !shuttingDown);
    },
    ...(config.CORS_ORIGIN ? { cors: { origin: config.CORS_ORIGIN } } : {}),
    // Middlewares run for a recovered session too: auth, drain and admission are never skipped.
    ...(config.RECOVERY_MAX_DISCONNECTION_MS > 0 ? { connectionStateRecovery: { maxDisconnectionDuration: config.RECOVERY_MAX_DISCONNECTION_MS, skipMiddlewares: false } } : {}),
  });
  const recovery =
    config.RECOVERY_MAX_DISCONNECTION_MS > 0 ? new Recovery({ backplane, pod: config.POD_NAME, maxDisconnectionMs: config.RECOVERY_MAX_DISCONNECTION_MS, log, metrics }) : null;
  recovery?.install(io.of('/'));
  const connectionCount = (): number => io.engine.clientsCount + sseStreams.size;
  new Gauge({
    name: 'rt_connections',
    help: 'Connections held, as MAX_CONNECTIONS counts them: Engine.IO transports (from their handshake, before CONNECT) plus SSE streams.',
    registers: [metrics.registry],
    collect() {
      this.set(connectionCount());
    },
  });
  const hardening = installHardening({ config, io, metrics, log, admissionGuards, handshakeGuards, eventGuards, connectionCount, offsets: recovery });
  const hub = new RoomHub({ io, backplane, metrics, log, outbound: hardening.outbound, offsets: recovery });
  const shortPoll = new ShortPoll({ hub, backplane, auth, namespaces, metrics, log, ratePerSecond: config.RATE_LIMIT_PER_SECOND, rateBurst: config.RATE_LIMIT_BURST });


  /**
   * Admission at the transport, before Engine.IO keeps anything: a refusal here is an HTTP 503/429
   * with Retry-After, which the stock client treats as a transport failure and retries with its own
   * backoff, and whose JSON body tells our SDK the code and the hint (docs/security.md). Asked from
   * `allowRequest`, which Engine.IO calls for handshakes only: an `io.engine.use` middleware cost a
   * promise chain per request and, per WebSocket, a response stand-in kept alive by a listener on the
   * TCP socket (docs/decisions/0018-per-connection-state.md). False: refused and answered here.
   */
  function admit(req: IncomingMessage & { res?: ServerResponse }): boolean {
    try {
      for (const guard of admissionGuards) guard();
      return true;
    } catch (err) {
      const refusal = err instanceof ProtocolError ? err : new ProtocolError('internal', 'admission check failed');
      metrics.handshakeRefusals.inc({ code: refusal.code });
      // A polling handshake has its response; a WebSocket upgrade only its TCP socket.
      refuseHttp(req.res ?? req.socket, refusal);
      return false;
    }
  }
  io.engine.on('connection', (conn: Transport) => {
    // Before authentication a polling body is read only up to the pre-auth frame size (the library
    // allows it per polling transport; a WebSocket's maxPayload is per server, so the parser checks it).
    setTransportBodyLimit(conn, PRE_AUTH_MAX_FRAME_BYTES);
    transportState(conn);
    conn.on('packet', onTransportPacket);
    conn.on('close', onTransportClose);
  });
  // Shared by every transport (`this` is the Engine.IO socket): no closure per connection.
  function onTransportPacket(this: Transport, packet: { type: string }): void {
    if (packet.type === 'message') return;
    // Engine.IO's own packets (pongs, noops) never reach the parser: a peer gets a few per heartbeat, not
    // a flood. The bucket is made at the first one: until then it would have stayed full anyway.
    const state = transportState(this);
    if ((state.controlPackets ??= new TokenBucket(CONTROL_PACKET_BURST, CONTROL_PACKETS_PER_SECOND)).tryTake()) return;
    metrics.inboundRefusals.inc({ why: 'packet_rate' });
    log.info({ type: packet.type }, 'Engine.IO control packet flood; closing the connection');
    this.close(true);
  }
  function onTransportClose(this: Transport): void {
    const state = transportState(this);
    if (!state.connected) metrics.unauthenticatedCloses.inc();
    if (state.userId !== null) hardening.userConnections.release(state.userId);
    state.userId = null;
  }

  /** A refused CONNECT closes its transport: the client cannot spend the instance's checks in a loop. */
  function refuseConnect(conn: Transport, next: (err?: Error) => void, err: ProtocolError): void {
    metrics.handshakeRefusals.inc({ code: err.code });
    const refusal = new Error(err.message) as Error & { data: HandshakeRefusal };
    refusal.data = { code: err.code, message: err.message, retryable: RETRYABLE_CODES.has(err.code), ...(err.retryAfterMs === undefined ? {} : { retryAfterMs: err.retryAfterMs }) };
    next(refusal);
    // Socket.IO writes the CONNECT error on the next tick; the close (after it is flushed) comes after that.
    setImmediate(() => conn.close());
  }
  io.use((socket, next) => {
    const conn = socket.conn;
    const transport = transportState(conn);
    if (transport.connecting) {
      return refuseConnect(conn, next, new ProtocolError('bad_request', 'this transport already sent a CONNECT: one Socket.IO connection per transport'));
    }
    transport.connecting = true;
    try {
      for (const guard of handshakeGuards) guard(socket);
    } catch (err) {
      return refuseConnect(conn, next, err instanceof ProtocolError ? err : new ProtocolError('internal', 'handshake check failed'));
    }
    const credentials = (socket.handshake.auth ?? {}) as { token?: unknown; userId?: unknown };
    auth.authenticate(credentials).then(
      (identity) => {
        if (conn.readyState !== 'open') return next(new Error('the transport closed during authentication'));
        try {
          hardening.userConnections.take(identity.userId);
        } catch (err) {
          return refuseConnect(conn, next, err as ProtocolError);
        }
        // Given back at the transport's close (onTransportClose).
        transport.userId = identity.userId;
        socket.data.identity = identity;
        recovery?.confirm(socket, identity.userId);
        next();
      },
      (err: unknown) => refuseConnect(conn, next, err instanceof ProtocolError ? err : new ProtocolError('auth_invalid', 'authentication failed')),
    );
  });

  const presence = new Presence({
    io,
    backplane,
    pod: config.POD_NAME,
    ttlSeconds: config.FLEET_STATS_TTL_SECONDS,
    refreshIntervalMs: config.FLEET_STATS_INTERVAL_MS,
    log,
    metrics,
  });
  async function readPresence(room: string): Promise<PresenceSnapshot> {
    const ns = namespaces.resolve(room);
    if (!ns.presence) throw new ProtocolError('forbidden', `the ${ns.name} namespace keeps no presence (presence: false)`);
    return presence.read(room);
  }

  const membersTimers = new Map<string, NodeJS.Timeout>();
  function membersChanged(room: string): void {
    if (!room.startsWith('chat:') || membersTimers.has(room)) return;
    membersTimers.set(
      room,
      setTimeout(() => {
        membersTimers.delete(room);
        io.in(room)
          .fetchSockets()
          .then((sockets) => io.to(room).emit('room:members', controlEnvelope('room:members', room, { count: sockets.length })))
          .catch((err: unknown) => log.debug({ err, room }, 'member count failed'));
      }, 250),
    );
  }

  const shared: ConnectionShared = {
    hub,
    backplane,
    auth,
    hardening,
    recovery,
    namespaces,
    limits: { pageBytes: config.HISTORY_PAGE_BYTES, maxRooms: config.MAX_ROOMS_PER_CONNECTION },
    idempotencyWindowSeconds: config.IDEMPOTENCY_WINDOW_SECONDS,
    presenceTracker: presence,
    metrics,
    presence: readPresence,
    membersChanged,
  };
  const dispatchDeps = { metrics, log, guards: eventGuards };

  io.on('connection', (socket) => {
    transportState(socket.conn).connected = true;
    setTransportBodyLimit(socket.conn, config.MAX_PAYLOAD_BYTES);
    (socket.client as unknown as { decoder: GuardedDecoder }).decoder.owner = socket;
    const transport = socket.conn.transport.name;
    metrics.connections.inc({ transport });
    metrics.connectedSockets.inc();
    const connection = new Connection(socket, shared);
    const userId = connection.identity().userId;
    // Every connection of a user shares one Socket.IO room, so the server API can end them all.
    void socket.join(userTag(userId));
    const restored = recovery?.attach(socket, userId) ?? null;
    const hello = controlEnvelope('server:hello', null, { pod: config.POD_NAME, userId, transport });
    // The offset rides on the hello too, so a stock client has one to send back before any room message.
    const helloOffset = recovery?.offsetOf(socket) ?? null;
    if (helloOffset === null) socket.emit('server:hello', hello);
    else socket.emit('server:hello', hello, helloOffset);
    if (restored) void rejoinRecovered(connection, restored);
    hardening.onConnection(socket);
    // Listeners every socket shares (`this` is the socket), so a connection keeps no closure of its own.
    socket.onAny(onSocketEvent);
    socket.on('disconnecting', onSocketDisconnecting);
    socket.on('disconnect', onSocketDisconnect);
  });
  function onSocketEvent(this: Socket, event: unknown, ...args: unknown[]): void {
    void dispatch(Connection.of(this), event, args, dispatchDeps);
  }
  // By 'disconnect' Socket.IO has already emptied socket.rooms; 'disconnecting' still has them.
  function onSocketDisconnecting(this: Socket): void {
    for (const room of this.rooms) membersChanged(room);
  }
  /** The one 'disconnect' listener of a socket: each module's clean-up, in turn. */
  function onSocketDisconnect(this: Socket, reason: string): void {
    recovery?.disconnected(this, reason);
    metrics.connectedSockets.dec();
    metrics.disconnections.inc({ reason });
    hub.leaveAll(Connection.of(this));
    presence.removeSocket(this.id);
    hardening.disconnected(this);
  }

  /**
   * A recovered stock client is back in each of its rooms from its own position: the hub replays the
   * gap from history, then live. When that fails (Redis away) the transport is closed, so the client
   * reconnects and recovers again rather than sitting in fewer rooms than it believes.
   */
  async function rejoinRecovered(member: Connection, attached: Promise<RestoredSession>): Promise<void> {
    const { socket } = member;
    try {
      const restored = await attached;
      await Promise.all(
        restored.rooms.map(async (room, i) => {
          if (room === null || !socket.connected) return;
          await hub.join(member, room, restored.positions[i] ?? null);
          membersChanged(room);
        }),
      );
    } catch (err) {
      log.warn({ err, socket: socket.id }, 'recovered session could not rejoin its rooms; closing the transport so the client recovers again');
      socket.conn.close();
    }
  }

  const sweepsPresence = namespaces.all.some((ns) => ns.presence);
  let statsTimer: NodeJS.Timeout | null = null;
  async function writeFleetStat(): Promise<void> {
    await backplane
      .writeFleetStat({
        pod: config.POD_NAME,
        sockets: connectionCount(),
        sseStreams: sseStreams.size,
        pending: Math.max(0, io.engine.clientsCount - io.of('/').sockets.size),
        ready: isReady(),
        draining: state.draining,
        updatedAt: Date.now(),
      })
      .catch((err: unknown) => log.debug({ err }, 'fleet stats write failed'));
    await presence.refresh();
    // Only a fleet that keeps presence has any to sweep.
    if (!shuttingDown && sweepsPresence) await presence.sweep();
  }

  let drain: DrainController | null = null;
  const gateway: Gateway = {
    get drain() {
      return drain!;
    },
    config,
    http,
    internalHttp,
    io,
    hub,
    backplane,
    auth,
    recovery,
    namespaces,
    metrics,
    log,
    state,
    admissionGuards,
    handshakeGuards,
    eventGuards,
    sseGuards,
    sseStreams,
    internalRoutes,
    isReady,
    async listen() {
      const listenOn = (server: HttpServer, port: number): Promise<URL> =>
        new Promise<URL>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, config.HOST, () => {
            server.off('error', reject);
            const host = config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST;
            resolve(new URL(`http://${host.includes(':') ? `[${host}]` : host}:${(server.address() as AddressInfo).port}/`));
          });
        });
      const url = await listenOn(http, config.PORT);
      const internalUrl = await listenOn(internalHttp, config.INTERNAL_PORT).catch(async (err: unknown) => {
        await new Promise((resolve) => http.close(resolve));
        throw err;
      });
      listening = true;
      onReadinessInput();
      statsTimer = setInterval(() => void writeFleetStat(), config.FLEET_STATS_INTERVAL_MS);
      void writeFleetStat();
      return { url, internalUrl };
    },
    async close() {
      drain?.stop();
      recovery?.stop();
      listening = false;
      shuttingDown = true;
      if (statsTimer) clearInterval(statsTimer);
      hardening.stop();
      shortPoll.stop();
      for (const timer of membersTimers.values()) clearTimeout(timer);
      for (const stream of sseStreams) stream.end();
      await backplane.removeFleetStat(config.POD_NAME).catch(() => {});
      await presence.clear();
      // io.close() closes every Engine.IO client, then the public server, and waits for its connections.
      await Promise.all([closeServer(http, () => io.close()), closeServer(internalHttp, () => new Promise((resolve) => internalHttp.close(resolve)))]);
      await backplane.close();
      await socketIoAdapter.close();
    },
  };
  drain = installDrain(gateway);
  const serverApi = createServerApi({
    config,
    io,
    backplane,
    namespaces,
    metrics,
    log,
    sseStreams,
    sseUsers,
    presence: readPresence,
  });
  if (serverApi) internalRoutes.push(serverApi);
  return gateway;
}

/** An Engine.IO connection (one per Socket.IO connection: the gateway serves one namespace). */
type Transport = Socket['conn'];

/** What the gateway keeps per transport, on the Engine.IO socket itself (cheaper than WeakSets: see docs/decisions/0018). */
class TransportState {
  /** Sent a CONNECT (one socket per transport) / completed it. */
  connecting = false;
  connected = false;
  /** The user whose connection slot this transport holds (MAX_CONNECTIONS_PER_USER), given back at its close. */
  userId: string | null = null;
  /** Engine.IO control packets' budget; made at the first control packet. */
  controlPackets: TokenBucket | null = null;
}
const TRANSPORT_STATE = Symbol('gateway transport state');

function transportState(conn: Transport): TransportState {
  const holder = conn as Transport & { [TRANSPORT_STATE]?: TransportState };
  return (holder[TRANSPORT_STATE] ??= new TransportState());
}

/** The most bytes a long-polling transport reads from one POST body (Engine.IO sets it per transport at the handshake). */
function setTransportBodyLimit(conn: Socket['conn'], bytes: number): void {
  const transport = conn.transport as unknown as { name: string; maxHttpBufferSize?: number };
  if (transport.name === 'polling') transport.maxHttpBufferSize = bytes;
}

/**
 * Runs `close` (which calls `server.close()` and waits for it) while making sure it ends promptly.
 * `server.close()` ends only the connections idle at that instant and then waits for every other one.
 * An edge proxy (HAProxy, Envoy) keeps HTTP/1.1 connections to the pod for reuse: the one that was
 * carrying a long-poll — Engine.IO answers every held GET with a close packet just before the server
 * closes — turns idle a moment later and would then stay open for `keepAliveTimeout` +
 * `keepAliveTimeoutBuffer` (6 s), past the SIGTERM watchdog. So idle connections are closed as soon as
 * they turn idle, and whatever is still busy after CONNECTION_CLOSE_GRACE_MS is cut.
 */
async function closeServer(server: HttpServer, close: () => Promise<unknown>): Promise<void> {
  if (!server.listening) return void (await close().catch(() => {}));
  const reaper = setInterval(() => server.closeIdleConnections(), 20);
  const cutoff = setTimeout(() => server.closeAllConnections(), CONNECTION_CLOSE_GRACE_MS);
  try {
    await close();
  } finally {
    clearInterval(reaper);
    clearTimeout(cutoff);
  }
}
