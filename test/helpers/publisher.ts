import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import { createRedisBackplane } from '../../app/gateway/backplane/redis.ts';
import { waitFor } from './ports.ts';

/**
 * The gateway's own Redis backplane code, connected as a publisher the test controls — to flood a
 * room exactly as a gateway would, without a client's rate limit in the way: `[publisher, cleanup]`.
 */
export async function startPublisher(redisUrl: string): Promise<[Backplane, () => Promise<void>]> {
  const publisher = createRedisBackplane({ url: redisUrl, name: 'test-publisher' });
  await waitFor('the test publisher on Redis', () => publisher.isReady());
  return [publisher, () => publisher.close()];
}
