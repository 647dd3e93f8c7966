/**
 * Fleet stats (contract 4 of DESIGN.md): each gateway writes its own entry to Redis with a TTL; the
 * drain controller, the fleet view and the autoscaler's connection metric read the same data.
 *
 * Keys: `${KEY_PREFIX}:{fleet}:pods` (a sorted set of pod names by last update) and
 * `${KEY_PREFIX}:{fleet}:pod:${pod}` (JSON of FleetStat). The `{fleet}` hash tag keeps them, and the
 * drain plans (drain-plan.ts), in one Redis Cluster slot.
 */
export interface FleetStat {
  readonly pod: string;
  /**
   * Connections the instance holds — what `MAX_CONNECTIONS` counts and autoscaling divides: every
   * Engine.IO transport (from its handshake, before Socket.IO CONNECT) plus every SSE stream.
   */
  readonly sockets: number;
  /** Of `sockets`, the SSE streams (absent from gateways older than this field). */
  readonly sseStreams?: number;
  /** Of `sockets`, transports that have not completed CONNECT and authentication yet (absent from older gateways). */
  readonly pending?: number;
  readonly ready: boolean;
  readonly draining: boolean;
  /** Milliseconds since the epoch. */
  readonly updatedAt: number;
}

export function fleetIndexKey(keyPrefix: string): string {
  return `${keyPrefix}:{fleet}:pods`;
}

export function fleetStatKey(keyPrefix: string, pod: string): string {
  return `${keyPrefix}:{fleet}:pod:${pod}`;
}
