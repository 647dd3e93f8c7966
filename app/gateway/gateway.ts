import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { controlEnvelope, type HandshakeRefusal, ProtocolError, RETRYABLE_CODES, type Envelope } from '../protocol/index.ts';
import { createSocketIoAdapter } from './adapter.ts';
import { type Authenticator, createAuthenticator, type Identity } from './auth.ts';
import type { Backplane } from './backplane/backplane.ts';
import { createMemoryBackplane } from './backplane/memory.ts';
import { createRedisBackplane } from './backplane/redis.ts';
import { trackReadiness } from './backplane/redis-connection.ts';
import type { GatewayConfig } from './config.ts';
import { type DrainController, installDrain } from './drain.ts';
import { type ConnectionContext, dispatch, type EventGuard } from './handlers.ts';
import { installHardening } from './hardening.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { RoomHub, type RoomMember } from './room-hub.ts';
import { handleSse } from './sse.ts';
import { serveWeb } from './web.ts';

/** A check before a handshake is accepted (auth, admission, drain); throws `ProtocolError` to refuse. */
export type HandshakeGuard = (socket: Socket) => void;
/** A check just before an authenticated `GET /sse` stream opens (drain); throws `ProtocolError` to refuse. */
export type SseGuard = () => void;

export interface GatewayState {
  /** Set by the drain sequence: readiness fails and handshakes are refused. */
  draining: boolean;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly http: HttpServer;
  readonly io: Server;
  readonly hub: RoomHub;
  readonly backplane: Backplane;
  readonly auth: Authenticator;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly state: GatewayState;
  /** Extension points for hardening and drain: run before each handshake / each event. */
  readonly handshakeGuards: HandshakeGuard[];
  readonly eventGuards: EventGuard[];
  readonly sseGuards: SseGuard[];
  /** Open `GET /sse` streams (sse.ts adds and removes them); the drain hints and ends them like sockets. */
  readonly sseStreams: ReadonlySet<ServerResponse>;
  /** Extra HTTP routes (e.g. `POST /admin/drain`); return true when handled. */
  readonly routes: ((req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>)[];
  isReady(): boolean;
  /** The drain sequence (drain.ts): SIGTERM (main.ts) and `POST /admin/drain` start it. */
  readonly drain: DrainController;
  listen(): Promise<URL>;
  /** Stops accepting, closes every socket and stream, removes its fleet entry, closes Redis. */
  close(): Promise<void>;
}

export async function createGateway(config: GatewayConfig, log: Logger = createLogger(config.LOG_LEVEL, config.POD_NAME)): Promise<Gateway> {
  const metrics = createMetrics();
  const auth = await createAuthenticator(config);
  const backplane =
    config.ADAPTER === 'memory'
      ? createMemoryBackplane({ historySize: config.HISTORY_SIZE })
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
  const routes: Gateway['routes'] = [];
  const handshakeGuards: HandshakeGuard[] = [];
  const eventGuards: EventGuard[] = [];
  const sseGuards: SseGuard[] = [];
  let listening = false;

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

  const http = createServer((req, res) => {
    handleHttp(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: false, error: { code: 'internal', message: 'request failed; it was logged' } }));
    });
  });

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway.local');
    if (url.pathname.startsWith('/socket.io/')) return; // Socket.IO's own listener answers these.
    for (const route of routes) if (await route(req, res, url)) return;
    switch (url.pathname) {
      case '/healthz':
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      case '/readyz': {
        const body = { ready: isReady(), pod: config.POD_NAME, backplane: backplane.isReady() && adapterReady(), draining: state.draining };
        return void res.writeHead(body.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      }
      case '/metrics':
        return void res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      case '/fleet': {
        // `sockets` is the fleet total: KEDA's metrics-api scaler divides it by the replica count.
        const pods = await backplane.readFleetStats().catch(() => []);
        return void res
          .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(JSON.stringify({ pods, sockets: pods.reduce((sum, pod) => sum + pod.sockets, 0) }));
      }
      case '/sse':
        return handleSse(req, res, url, { hub, auth, metrics, maxBufferedBytes: config.SLOW_CONSUMER_LIMIT_BYTES, streams: sseStreams, guards: sseGuards });
      default:
        if (config.SERVE_WEB && serveWeb(url.pathname, res)) return;
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, error: { code: 'not_found', message: `no route ${url.pathname}` } }));
    }
  }

  const io = new Server(http, {
    adapter: socketIoAdapter.adapter,
    pingInterval: config.PING_INTERVAL_MS,
    pingTimeout: config.PING_TIMEOUT_MS,
    maxHttpBufferSize: config.MAX_PAYLOAD_BYTES,
    serveClient: false,
    ...(config.CORS_ORIGIN ? { cors: { origin: config.CORS_ORIGIN } } : {}),
  });
  const hardening = installHardening({ config, io, metrics, log, handshakeGuards, eventGuards });
  const hub = new RoomHub({ io, backplane, metrics, log, outbound: hardening.outbound });

  io.use((socket, next) => {
    const refuse = (err: ProtocolError): void => {
      metrics.handshakeRefusals.inc({ code: err.code });
      const refusal = new Error(err.message) as Error & { data: HandshakeRefusal };
      refusal.data = { code: err.code, message: err.message, retryable: RETRYABLE_CODES.has(err.code) };
      next(refusal);
    };
    try {
      for (const guard of handshakeGuards) guard(socket);
    } catch (err) {
      return refuse(err instanceof ProtocolError ? err : new ProtocolError('internal', 'handshake check failed'));
    }
    const credentials = (socket.handshake.auth ?? {}) as { token?: unknown; userId?: unknown };
    auth.authenticate(credentials).then(
      (identity) => {
        socket.data.identity = identity;
        next();
      },
      (err: unknown) => refuse(err instanceof ProtocolError ? err : new ProtocolError('auth_invalid', 'authentication failed')),
    );
  });

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

  io.on('connection', (socket) => {
    const transport = socket.conn.transport.name;
    metrics.connections.inc({ transport });
    metrics.connectedSockets.inc();
    const member: RoomMember = { id: socket.id, socket, send: (envelope: Envelope) => hardening.outbound.sendDirect(socket, envelope) };
    const ctx: ConnectionContext = {
      socket,
      member,
      hub,
      backplane,
      identity: () => socket.data.identity as Identity,
      async refreshIdentity(token) {
        const next = await auth.authenticate({ token });
        if (next.userId !== ctx.identity().userId) {
          throw new ProtocolError('auth_subject_mismatch', `the new token is for ${next.userId}, this connection is ${ctx.identity().userId}`);
        }
        socket.data.identity = next;
        hardening.tokenRefreshed(socket);
        return next;
      },
      membersChanged,
    };
    socket.emit('server:hello', controlEnvelope('server:hello', null, { pod: config.POD_NAME, userId: ctx.identity().userId, transport }));
    hardening.onConnection(socket, ctx.identity);
    socket.onAny((event: unknown, ...args: unknown[]) => void dispatch(ctx, event, args, { metrics, log, guards: eventGuards }));
    // By 'disconnect' Socket.IO has already emptied socket.rooms; 'disconnecting' still has them.
    socket.on('disconnecting', () => {
      for (const room of socket.rooms) membersChanged(room);
    });
    socket.on('disconnect', (reason) => {
      metrics.connectedSockets.dec();
      metrics.disconnections.inc({ reason });
      hub.leaveAll(member);
    });
  });

  let statsTimer: NodeJS.Timeout | null = null;
  async function writeFleetStat(): Promise<void> {
    await backplane
      .writeFleetStat({ pod: config.POD_NAME, sockets: io.engine.clientsCount, ready: isReady(), draining: state.draining, updatedAt: Date.now() })
      .catch((err: unknown) => log.debug({ err }, 'fleet stats write failed'));
  }

  let drain: DrainController | null = null;
  const gateway: Gateway = {
    get drain() {
      return drain!;
    },
    config,
    http,
    io,
    hub,
    backplane,
    auth,
    metrics,
    log,
    state,
    handshakeGuards,
    eventGuards,
    sseGuards,
    sseStreams,
    routes,
    isReady,
    async listen() {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(config.PORT, config.HOST, () => resolve());
      });
      listening = true;
      onReadinessInput();
      statsTimer = setInterval(() => void writeFleetStat(), config.FLEET_STATS_INTERVAL_MS);
      void writeFleetStat();
      const { port } = http.address() as AddressInfo;
      const host = config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST;
      return new URL(`http://${host.includes(':') ? `[${host}]` : host}:${port}/`);
    },
    async close() {
      drain?.stop();
      listening = false;
      if (statsTimer) clearInterval(statsTimer);
      hardening.stop();
      for (const timer of membersTimers.values()) clearTimeout(timer);
      for (const stream of sseStreams) stream.end();
      await backplane.removeFleetStat(config.POD_NAME).catch(() => {});
      await io.close();
      await backplane.close();
      await socketIoAdapter.close();
    },
  };
  drain = installDrain(gateway);
  return gateway;
}
