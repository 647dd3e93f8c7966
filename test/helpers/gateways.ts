import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';

/** Rate limits lifted, for suites that must reach the schemas, not the limits (tested on their own). */
export const UNLIMITED_RATES_ENV: Readonly<Record<string, string>> = {
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  USER_RATE_LIMIT_PER_SECOND: '1000000',
  USER_RATE_LIMIT_BURST: '1000000',
  INBOUND_BYTES_PER_SECOND: '1000000000',
  INBOUND_BYTES_BURST: '1000000000',
};

export interface RedisGateways<P extends readonly string[]> {
  readonly redisUrl: string;
  /** What every gateway was started with (the Redis adapter settings included), to start more alike. */
  readonly env: Record<string, string>;
  /** One gateway per pod name, in the order given. */
  readonly gateways: { -readonly [K in keyof P]: GatewayProcess };
}

/**
 * A real redis-server and one gateway process per name in `pods` on it, each started with `env` plus
 * the Redis adapter settings: `[{ redisUrl, env, gateways }, cleanup]` (cleanup stops the gateways, then Redis).
 */
export async function startRedisGateways<const P extends readonly string[]>(pods: P, env: Record<string, string> = {}): Promise<[RedisGateways<P>, () => Promise<void>]> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step();
  };
  try {
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    const fullEnv = { ADAPTER: 'redis', REDIS_URL: redis.url, ...env };
    const started = await Promise.allSettled(pods.map((pod) => startGateway({ env: fullEnv, pod })));
    for (const result of started) if (result.status === 'fulfilled') cleanups.push(result.value[1]);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const gateways = started.map((result) => (result as PromiseFulfilledResult<[GatewayProcess, unknown]>).value[0]);
    return [{ redisUrl: redis.url, env: fullEnv, gateways: gateways as RedisGateways<P>['gateways'] }, cleanup];
  } catch (err) {
    await cleanup();
    throw err;
  }
}
