import type { Server, Socket } from 'socket.io';
import { Counter } from 'prom-client';
import type { Identity } from './auth.ts';
import { Backpressure } from './backpressure.ts';
import type { GatewayConfig } from './config.ts';
import type { HandshakeGuard } from './gateway.ts';
import type { EventGuard } from './handlers.ts';
import { admissionGuard, engineConnectionCount, rateLimitGuard } from './limits.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { OffsetSource } from './recovery.ts';
import { TokenExpiry } from './token-expiry.ts';

export interface HardeningDeps {
  readonly config: GatewayConfig;
  readonly io: Server;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly handshakeGuards: HandshakeGuard[];
  readonly eventGuards: EventGuard[];
  /** Connection state recovery: what it sends directly (replays, resets) carries the socket's offset. */
  readonly offsets?: OffsetSource | null;
}

/** The gateway's limits in one place (see docs/security.md): admission, inbound rate, outbound backpressure, token expiry. */
export interface Hardening {
  /** The hub's outbound gate; also sends replays so their size does not count as slowness. */
  readonly outbound: Backpressure;
  /** Per-connection set-up: buffer accounting, `exp` enforcement, protocol-error logging. */
  onConnection(socket: Socket, identity: () => Identity): void;
  /** After a successful `auth:refresh`. */
  tokenRefreshed(socket: Socket): void;
  stop(): void;
}

export function installHardening(deps: HardeningDeps): Hardening {
  const { config, io, metrics, log } = deps;
  deps.handshakeGuards.push(
    admissionGuard({ maxConnections: config.MAX_CONNECTIONS, maxPerSecond: config.MAX_CONNECTIONS_PER_SECOND, connectionCount: engineConnectionCount(io) }),
  );
  deps.eventGuards.push(rateLimitGuard({ perSecond: config.RATE_LIMIT_PER_SECOND, burst: config.RATE_LIMIT_BURST }));
  const outbound = new Backpressure({
    highWaterBytes: config.SLOW_CONSUMER_HIGH_WATER_BYTES,
    limitBytes: config.SLOW_CONSUMER_LIMIT_BYTES,
    registry: metrics.registry,
    log,
    offsets: deps.offsets ?? null,
  });
  const tokenExpiry = new TokenExpiry({ leadMs: config.AUTH_REFRESH_LEAD_MS, registry: metrics.registry, log });
  const protocolErrors = new Counter({
    name: 'rt_protocol_errors_total',
    help: 'Connections closed because a client sent a frame Socket.IO could not decode.',
    registers: [metrics.registry],
  });

  return {
    outbound,
    onConnection(socket, identity) {
      outbound.track(socket);
      tokenExpiry.watch(socket, identity);
      // Socket.IO closes the connection on an undecodable frame; without a listener it prints the stack to stderr.
      socket.on('error', (err: unknown) => {
        // A client may also emit an event named "error" (it gets unknown_event from dispatch); only real errors count.
        if (!(err instanceof Error)) return;
        protocolErrors.inc();
        log.debug({ err, socket: socket.id }, 'protocol error from client; connection closed');
      });
    },
    tokenRefreshed: (socket) => tokenExpiry.refreshed(socket),
    stop() {
      outbound.stop();
      tokenExpiry.stop();
    },
  };
}
