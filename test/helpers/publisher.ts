import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import type { GatewayProcess } from '../../scripts/fleet/gateway.ts';
import { createRedisBackplane } from '../../app/gateway/backplane/redis.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedisGateways } from './gateways.ts';

/**
 * The gateway's own Redis backplane code, connected as a publisher the test controls — to flood a
 * room exactly as a gateway would, without a client's rate limit in the way: `[publisher, cleanup]`.
 */
export async function startPublisher(redisUrl: string): Promise<[Backplane, () => Promise<void>]> {
  const publisher = createRedisBackplane({ url: redisUrl, name: 'test-publisher' });
  await waitFor('the test publisher on Redis', () => publisher.isReady());
  return [publisher, () => publisher.close()];
}

/**
 * A flood target: a real redis-server, one gateway on it, and a publisher to flood its rooms. Heartbeats
 * are long, so a stalled reader is cut by the outbound byte limit, not by a ping timeout:
 * `[{gateway, publisher}, cleanup]`.
 */
export async function startFloodTarget(): Promise<[{ gateway: GatewayProcess; publisher: Backplane }, () => Promise<void>]> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step();
  };
  try {
    const [{ redisUrl, gateways: [gateway] }, stopGateway] = await startRedisGateways(['flood-target'], { PING_INTERVAL_MS: '25000', PING_TIMEOUT_MS: '20000' });
    cleanups.push(stopGateway);
    const [publisher, stopPublisher] = await startPublisher(redisUrl);
    cleanups.push(stopPublisher);
    return [{ gateway, publisher }, cleanup];
  } catch (err) {
    await cleanup();
    throw err;
  }
}
