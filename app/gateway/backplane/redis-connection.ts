import { Cluster, Redis, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

export interface RedisConnectionOptions {
  /** `redis://…` for one server; a comma-separated list of seed URLs for a cluster. */
  readonly url: string;
  readonly cluster: boolean;
  /** Overrides the password in the URL. */
  readonly password?: string | undefined;
  /** Connection name shown by `CLIENT LIST`. */
  readonly name: string;
  /**
   * Queue commands while disconnected. Off for the command connection, so a publish during an
   * outage fails at once with a clear error instead of hanging.
   * @default false
   */
  readonly offlineQueue?: boolean;
}

/** Reconnect forever, backing off to 2 s: a gateway outlives its backplane's restarts. */
const retryStrategy = (attempt: number): number => Math.min(100 * 2 ** attempt, 2_000);

export function createRedisClient(opts: RedisConnectionOptions): RedisClient {
  const common: RedisOptions = {
    connectionName: opts.name,
    enableOfflineQueue: opts.offlineQueue ?? false,
    maxRetriesPerRequest: opts.offlineQueue ? null : 1,
    commandTimeout: opts.offlineQueue ? undefined : 3_000,
    retryStrategy,
    ...(opts.password ? { password: opts.password } : {}),
  };
  if (!opts.cluster) return new Redis(opts.url, common);
  const seeds = opts.url.split(',').map((raw) => {
    const u = new URL(raw.trim());
    return { host: u.hostname, port: Number(u.port || 6379) };
  });
  const first = new URL(opts.url.split(',')[0]!.trim());
  const password = opts.password ?? (first.password ? decodeURIComponent(first.password) : undefined);
  return new Cluster(seeds, {
    redisOptions: { ...common, password, tls: first.protocol === 'rediss:' ? {} : undefined },
    enableOfflineQueue: opts.offlineQueue ?? false,
    clusterRetryStrategy: retryStrategy,
    shardedSubscribers: true,
  });
}

/** Tracks whether every client is connected; calls `onChange` on each flip. */
export function trackReadiness(clients: readonly RedisClient[], onChange: (ready: boolean) => void): () => boolean {
  let last = false;
  const isReady = (): boolean => clients.every((c) => c.status === 'ready');
  const check = (): void => {
    const now = isReady();
    if (now !== last) {
      last = now;
      onChange(now);
    }
  };
  for (const client of clients) {
    for (const event of ['ready', 'close', 'end', 'reconnecting', '+node', '-node']) client.on(event, check);
    client.on('error', () => check());
  }
  return isReady;
}
