import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedisCluster } from '../../scripts/fleet/redis.ts';

// ADAPTER=redis-cluster: the sharded Socket.IO adapter and sharded pub/sub on a real 3-master Redis Cluster.
describe('a gateway fleet on Redis Cluster (sharded pub/sub)', () => {
  const cleanups: (() => unknown)[] = [];
  let a: GatewayProcess, b: GatewayProcess;
  const client = async (gateway: GatewayProcess, userId?: string): Promise<TestClient> => {
    const [c, close] = await connectClient(gateway.url, { userId });
    cleanups.push(close);
    return c;
  };

  beforeAll(async () => {
    const [cluster, stopCluster] = await startRedisCluster(3);
    cleanups.push(stopCluster);
    const env = { ADAPTER: 'redis-cluster', REDIS_URL: cluster.url };
    for (const name of ['a', 'b']) {
      const [gw, stop] = await startGateway({ env, pod: `cl-${name}` });
      cleanups.push(stop);
      if (name === 'a') a = gw;
      else b = gw;
    }
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('fans counter, chat and direct messages across instances for rooms on different shards', async () => {
    const [onA, onB] = await Promise.all([client(a, 'ann'), client(b, 'ben')]);
    // Several rooms so their hash slots land on more than one master.
    const rooms = ['chat:one', 'chat:two', 'chat:three', 'chat:four', 'counter:sharded'];
    for (const room of rooms) await onB.request('room:join', { room });
    await onB.request('room:join', { room: 'user:ben' });
    for (const room of rooms.filter((r) => r.startsWith('chat:'))) await onA.request('chat:send', { room, text: `to ${room}` });
    await onA.request('counter:increment', { room: 'counter:sharded', by: 3 });
    await onA.request('dm:send', { to: 'ben', text: 'sharded dm' });
    await waitFor('every message on instance B', () => onB.received.length === 6);
    expect(onB.received.map((e) => e.room).sort()).toEqual([...rooms, 'user:ben'].sort());
    expect(onB.received.find((e) => e.type === 'counter:changed')?.payload).toMatchObject({ value: 3, by: 3, from: 'ann' });
  });

  it('resumes across instances from the sharded history', async () => {
    const room = 'chat:cluster-resume';
    const publisher = await client(a, 'p');
    const first = (await publisher.request('chat:send', { room, text: 'seen' })) as unknown as { seq: number };
    for (let i = 0; i < 4; i += 1) await publisher.request('chat:send', { room, text: `missed-${i}` });
    const resumed = await client(b, 'r');
    expect(await resumed.request('room:join', { room, lastSeq: first.seq })).toMatchObject({ ok: true, resume: 'replay', replayed: 4 });
    expect(resumed.received.map((e) => e.seq)).toEqual([1, 2, 3, 4].map((i) => first.seq + i));
  });
});
