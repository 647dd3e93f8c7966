import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { DRAIN_PLAN_TTL_SECONDS, drainPlanKey, type DrainPlan } from '../protocol/drain-plan.ts';
import { fleetStatKey, type FleetStat } from '../protocol/fleet.ts';

/**
 * The controller's side of the Redis contracts (app/protocol): it reads the gateways' fleet stats and
 * writes drain plans. All keys carry the `{fleet}` hash tag, so one MGET works on Redis Cluster too.
 */
export interface FleetStore {
  /** Fleet stats of these pods (absent: no entry, e.g. not started or gone). Throws when Redis cannot be read. */
  readStats(pods: readonly string[]): Promise<Map<string, FleetStat>>;
  writePlan(pod: string, plan: DrainPlan): Promise<void>;
  deletePlan(pod: string): Promise<void>;
  close(): Promise<void>;
}

export interface FleetStoreOptions {
  readonly url: string;
  readonly password?: string | undefined;
  readonly cluster: boolean;
  readonly keyPrefix: string;
  readonly name: string;
}

/** Reconnect forever, backing off to 2 s; commands fail fast while disconnected (no offline queue). */
const retryStrategy = (attempt: number): number => Math.min(100 * 2 ** attempt, 2_000);

export function createFleetStore(opts: FleetStoreOptions): FleetStore {
  const common: RedisOptions = {
    connectionName: opts.name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2_000,
    retryStrategy,
    ...(opts.password ? { password: opts.password } : {}),
  };
  let client: Redis | Cluster;
  if (opts.cluster) {
    const urls = opts.url.split(',').map((u) => new URL(u.trim()));
    const first = urls[0]!;
    client = new Cluster(
      urls.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
      {
        redisOptions: {
          ...common,
          password: opts.password ?? (first.password ? decodeURIComponent(first.password) : undefined),
          tls: first.protocol === 'rediss:' ? {} : undefined,
        },
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
      },
    );
  } else {
    client = new Redis(opts.url, common);
  }
  // Errors surface on the commands; the connection's own error events would only repeat them.
  client.on('error', () => {});

  return {
    async readStats(pods) {
      const stats = new Map<string, FleetStat>();
      if (pods.length === 0) return stats;
      const raw = await client.mget(pods.map((pod) => fleetStatKey(opts.keyPrefix, pod)));
      raw.forEach((value, i) => {
        if (value === null) return;
        try {
          const stat = JSON.parse(value) as FleetStat;
          if (typeof stat.sockets === 'number') stats.set(pods[i]!, stat);
        } catch {
          // A malformed entry is the same as none.
        }
      });
      return stats;
    },
    async writePlan(pod, plan) {
      await client.set(drainPlanKey(opts.keyPrefix, pod), JSON.stringify(plan), 'EX', DRAIN_PLAN_TTL_SECONDS);
    },
    async deletePlan(pod) {
      await client.del(drainPlanKey(opts.keyPrefix, pod));
    },
    async close() {
      client.disconnect();
    },
  };
}
