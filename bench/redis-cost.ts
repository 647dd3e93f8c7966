// What one publish costs Redis: redis-server's CPU per 10k publishes and its commands per publish
// (INFO commandstats deltas), for the gateway's sequenced publish (one Lua script: seq, history,
// channel) against a raw PUBLISH of the same payload and Socket.IO + redis-adapter's broadcast.
// One subscriber receives every message, so nothing is published into the void.
import { Redis } from 'ioredis';
import { io as connect, type Socket } from 'socket.io-client';
import { startGateway } from '../scripts/fleet/gateway.ts';
import { waitFor } from '../scripts/fleet/ports.ts';
import { GATEWAY_BENCH_ENV } from './idle.ts';
import { alternate, cpuSeconds, forkPeer, sleep, summarize, type Summary } from './lib.ts';

export interface RedisCostOptions {
  readonly publishes: number;
  readonly window: number;
  readonly rounds: number;
  readonly redisUrl: string;
  readonly redisPid: number;
  readonly log: (line: string) => void;
}

interface Publisher {
  /** Resolves once the subscriber has `count` messages. */
  received(): number;
  publish(text: string): Promise<unknown>;
  close(): Promise<void>;
}

interface Contender {
  readonly name: string;
  readonly ours: boolean;
  start(opts: RedisCostOptions): Promise<Publisher>;
}

async function socketPair(url: string, join: (s: Socket) => Promise<unknown>, event: string): Promise<{ publisher: Socket; count: () => number; close(): void }> {
  const open = async (userId: string): Promise<Socket> => {
    const socket = connect(url, { transports: ['websocket'], forceNew: true, auth: { userId } });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('connect_error', reject));
    return socket;
  };
  const subscriber = await open('cost-sub');
  let received = 0;
  subscriber.on(event, () => (received += 1));
  await join(subscriber);
  const publisher = await open('cost-pub');
  return { publisher, count: () => received, close: () => void (subscriber.disconnect(), publisher.disconnect()) };
}

const contenders: Contender[] = [
  {
    name: 'raw PUBLISH',
    ours: false,
    async start(opts) {
      const sub = new Redis(opts.redisUrl);
      const pub = new Redis(opts.redisUrl);
      let received = 0;
      sub.on('message', () => (received += 1));
      await sub.subscribe('cost');
      return {
        received: () => received,
        publish: (text) => pub.publish('cost', text),
        async close() {
          sub.disconnect();
          pub.disconnect();
        },
      };
    },
  },
  {
    name: 'Socket.IO + redis-adapter',
    ours: false,
    async start(opts) {
      const peer = await forkPeer(new URL('./peers/socketio-redis.ts', import.meta.url), { REDIS_URL: opts.redisUrl });
      const pair = await socketPair(`http://127.0.0.1:${peer.port}`, (s) => s.emitWithAck('join', 'cost'), 'message');
      return {
        received: pair.count,
        publish: (text) => pair.publisher.emitWithAck('send', { room: 'cost', text }),
        async close() {
          pair.close();
          await peer.stop();
        },
      };
    },
  },
  {
    name: 'gateway',
    ours: true,
    async start(opts) {
      // Fleet stats are written every 2 s by default; pushed out of the window so only publishes count.
      const [gateway, stop] = await startGateway({ env: { ...GATEWAY_BENCH_ENV, ADAPTER: 'redis', REDIS_URL: opts.redisUrl, FLEET_STATS_INTERVAL_MS: '600000' } });
      const pair = await socketPair(gateway.url, (s) => s.emitWithAck('room:join', { room: 'chat:cost' }), 'chat:message');
      return {
        received: pair.count,
        publish: (text) => pair.publisher.emitWithAck('chat:send', { room: 'chat:cost', text }),
        async close() {
          pair.close();
          await stop();
        },
      };
    },
  },
];

async function commandStats(client: Redis): Promise<{ total: number; byCommand: Map<string, number> }> {
  const info = await client.info('all');
  const total = Number(/total_commands_processed:(\d+)/.exec(info)![1]);
  const byCommand = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCommand.set(match[1]!, Number(match[2]));
  return { total, byCommand };
}

export interface RedisCostRound {
  readonly redisCpuMsPer10k: number;
  readonly commandsPerPublish: number;
  readonly commands: Record<string, number>;
  readonly received: number;
}

export interface RedisCostResult {
  readonly contender: string;
  readonly ours: boolean;
  readonly publishes: number;
  readonly received: number;
  readonly redisCpuMsPer10k: Summary;
  readonly commandsPerPublish: Summary;
  /** Calls per publish by command, from the last round. */
  readonly commands: Record<string, number>;
  readonly rounds: readonly RedisCostRound[];
}

async function measureOnce(contender: Contender, opts: RedisCostOptions, admin: Redis): Promise<RedisCostRound> {
  const publisher = await contender.start(opts);
  try {
    await sleep(300);
    const before = await commandStats(admin);
    const cpuBefore = cpuSeconds(opts.redisPid);
    let next = 0;
    const pad = 'x'.repeat(80);
    await Promise.all(
      Array.from({ length: opts.window }, async () => {
        while (next < opts.publishes) {
          next += 1;
          await publisher.publish(`${Date.now()}|${pad}`);
        }
      }),
    );
    await waitFor(`${contender.name}: ${opts.publishes} received`, () => publisher.received() >= opts.publishes, 30_000, 5).catch(() => undefined);
    const cpu = cpuSeconds(opts.redisPid) - cpuBefore;
    const after = await commandStats(admin);
    const commands: Record<string, number> = {};
    for (const [name, calls] of after.byCommand) {
      const delta = calls - (before.byCommand.get(name) ?? 0) - (name === 'info' ? 1 : 0);
      if (delta > 0) commands[name] = Number((delta / opts.publishes).toFixed(3));
    }
    return {
      redisCpuMsPer10k: (cpu * 1000 * 10_000) / opts.publishes,
      commandsPerPublish: (after.total - before.total - 1) / opts.publishes,
      commands,
      received: publisher.received(),
    };
  } finally {
    await publisher.close();
  }
}

export async function runRedisCost(opts: RedisCostOptions): Promise<RedisCostResult[]> {
  const admin = new Redis(opts.redisUrl);
  const rounds = new Map<string, RedisCostRound[]>(contenders.map((c) => [c.name, []]));
  try {
    for (let r = 0; r < opts.rounds; r += 1) {
      for (const contender of alternate(contenders, r)) {
        const result = await measureOnce(contender, opts, admin);
        rounds.get(contender.name)!.push(result);
        opts.log(
          `redis round ${r + 1}/${opts.rounds} ${contender.name.padEnd(26)} ${result.redisCpuMsPer10k.toFixed(0).padStart(5)} ms Redis CPU/10k publishes  ` +
            `${result.commandsPerPublish.toFixed(2)} commands/publish ${JSON.stringify(result.commands)}  (${result.received}/${opts.publishes})`,
        );
      }
    }
  } finally {
    admin.disconnect();
  }
  return contenders.map((c) => {
    const rs = rounds.get(c.name)!;
    return {
      contender: c.name,
      ours: c.ours,
      publishes: opts.publishes,
      received: Math.min(...rs.map((x) => x.received)),
      redisCpuMsPer10k: summarize(rs.map((x) => x.redisCpuMsPer10k)),
      commandsPerPublish: summarize(rs.map((x) => x.commandsPerPublish)),
      commands: rs.at(-1)!.commands,
      rounds: rs,
    };
  });
}
