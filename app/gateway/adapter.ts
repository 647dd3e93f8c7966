import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { ServerOptions } from 'socket.io';
import { Adapter } from 'socket.io-adapter';
import type { GatewayConfig } from './config.ts';
import { createRedisClient, type RedisClient } from './backplane/redis-connection.ts';

export interface SocketIoAdapter {
  readonly adapter: ServerOptions['adapter'];
  /** The adapter's Redis connections, for readiness. */
  readonly clients: readonly RedisClient[];
  close(): Promise<void>;
}

/**
 * The Socket.IO adapter for `ADAPTER`: cross-instance rooms for `fetchSockets`, member counts and
 * other ephemeral broadcasts. Durable envelopes travel on the backplane's own ordered channels.
 */
export function createSocketIoAdapter(config: GatewayConfig): SocketIoAdapter {
  // Named even in memory: with connection state recovery on, Socket.IO's default would be its own
  // session-aware adapter (offsets in one process's memory); recovery.ts supplies ours instead.
  if (config.ADAPTER === 'memory') return { adapter: Adapter, clients: [], close: async () => {} };
  const cluster = config.ADAPTER === 'redis-cluster';
  // Adapter traffic is ephemeral (member counts), so it may queue across a short outage.
  const connection = { url: config.REDIS_URL, cluster, password: config.REDIS_PASSWORD, offlineQueue: true };
  const pub = createRedisClient({ ...connection, name: `${config.POD_NAME}-adapter-pub` });
  const sub = createRedisClient({ ...connection, name: `${config.POD_NAME}-adapter-sub` });
  const key = `${config.KEY_PREFIX}:sio`;
  const adapter = cluster
    ? createShardedAdapter(pub, sub, { channelPrefix: key, subscriptionMode: 'dynamic' })
    : createAdapter(pub, sub, { key, requestsTimeout: 3_000 });
  return {
    adapter,
    clients: [pub, sub],
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
      pub.disconnect();
      sub.disconnect();
    },
  };
}
