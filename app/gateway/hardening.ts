import type { Server, Socket } from 'socket.io';
import { Counter } from 'prom-client';
import type { Identity } from './auth.ts';
import { Backpressure } from './backpressure.ts';
import type { GatewayConfig } from './config.ts';
import type { AdmissionGuard, HandshakeGuard } from './gateway.ts';
import type { EventGuard } from './handlers.ts';
import { admissionGuard, rateLimitGuard, UserConnections, userRateLimitGuard } from './limits.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { OffsetSource } from './recovery.ts';
import { TokenExpiry } from './token-expiry.ts';

export interface HardeningDeps {
  readonly config: GatewayConfig;
  readonly io: Server;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly admissionGuards: AdmissionGuard[];
  readonly handshakeGuards: HandshakeGuard[];
  readonly eventGuards: EventGuard[];
  /** Connection state recovery: what it sends directly (replays, resets) carries the socket's offset. */
  readonly offsets?: OffsetSource | null;
  /** Connections held: Engine.IO transports (from their handshake) plus SSE streams. */
  readonly connectionCount: () => number;
}

/** The gateway's limits in one place (see docs/security.md): admission, inbound rate, outbound budget, token expiry. */
export interface Hardening {
  /** Every connection's outbound budget; also the hub's gate for live fan-out. */
  readonly outbound: Backpressure;
  /** Sockets and SSE streams per user on this instance. */
  readonly userConnections: UserConnections;
  /** Per-connection set-up: buffer accounting, `exp` enforcement, protocol-error logging. */
  onConnection(socket: Socket): void;
  /** Per-connection clean-up, from the socket's 'disconnect' (the gateway's one listener). */
  disconnected(socket: Socket): void;
  /** After a successful `auth:refresh`. */
  tokenRefreshed(socket: Socket): void;
  stop(): void;
}

export function installHardening(deps: HardeningDeps): Hardening {
  const { config, metrics, log } = deps;
  deps.admissionGuards.push(
    admissionGuard({ maxConnections: config.MAX_CONNECTIONS, maxPerSecond: config.MAX_CONNECTIONS_PER_SECOND, connectionCount: deps.connectionCount }),
  );
  const outbound = new Backpressure({
    highWaterBytes: config.SLOW_CONSUMER_HIGH_WATER_BYTES,
    limitBytes: config.SLOW_CONSUMER_LIMIT_BYTES,
    stallMs: config.SLOW_CONSUMER_STALL_MS,
    registry: metrics.registry,
    log,
    offsets: deps.offsets ?? null,
  });
  deps.eventGuards.push(
    rateLimitGuard({ perSecond: config.RATE_LIMIT_PER_SECOND, burst: config.RATE_LIMIT_BURST }),
    userRateLimitGuard({
      perSecond: config.USER_RATE_LIMIT_PER_SECOND,
      burst: config.USER_RATE_LIMIT_BURST,
      userOf: (socket) => (socket.data.identity as Identity).userId,
    }),
    // Asked after the rate limits, so a refused request costs the client its tokens too. Leaving a
    // room and refreshing the token only lighten the connection, so they always pass.
    (ctx, event) => {
      if (event !== 'room:leave' && event !== 'auth:refresh') outbound.admit(ctx.socket);
    },
  );
  const userConnections = new UserConnections(config.MAX_CONNECTIONS_PER_USER);
  const tokenExpiry = new TokenExpiry({ leadMs: config.AUTH_REFRESH_LEAD_MS, registry: metrics.registry, log });
  const protocolErrors = new Counter({
    name: 'rt_protocol_errors_total',
    help: 'Connections closed because a client sent a frame Socket.IO could not decode (or the inbound parser refused).',
    registers: [metrics.registry],
  });

  // Socket.IO closes the connection on an undecodable frame; without a listener it prints the stack to
  // stderr. One listener for every socket (`this` is the socket).
  function onSocketError(this: Socket, err: unknown): void {
    // A client may also emit an event named "error" (it gets unknown_event from dispatch); only real errors count.
    if (!(err instanceof Error)) return;
    protocolErrors.inc();
    log.debug({ err, socket: this.id }, 'protocol error from client; connection closed');
  }

  return {
    outbound,
    userConnections,
    onConnection(socket) {
      outbound.track(socket);
      tokenExpiry.watch(socket);
      socket.on('error', onSocketError);
    },
    disconnected: (socket) => tokenExpiry.forget(socket),
    tokenRefreshed: (socket) => tokenExpiry.refreshed(socket),
    stop() {
      outbound.stop();
      tokenExpiry.stop();
    },
  };
}
