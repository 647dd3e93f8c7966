// Fan-out: one publisher, SUBSCRIBERS clients in one room. Two phases per contender, alternated over rounds:
//  - saturation: MESSAGES messages with WINDOW in flight; deliveries per wall second and, the figure that
//    survives a shared machine, deliveries per server CPU-second (the server processes' CPU from /proc,
//    plus redis-server's for the contenders that use Redis);
//  - latency: the same room fed open-loop at half of the contender's saturated rate; p50 and p99 of
//    publish-to-delivery on one clock (all clients live in this process).
import { Redis } from 'ioredis';
import { io as connect, type Socket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { startGateway } from '../scripts/fleet/gateway.ts';
import { waitFor } from '../scripts/fleet/ports.ts';
import { GATEWAY_BENCH_ENV, LEAN_NODE_OPTIONS } from './idle.ts';
import { alternate, forkPeer, percentile, sleep, summarize, type Summary, totalCpu } from './lib.ts';

export interface FanoutOptions {
  readonly subscribers: number;
  readonly messages: number;
  readonly window: number;
  readonly rounds: number;
  /** Messages sent in the half-saturation latency phase. */
  readonly latencyMessages: number;
  readonly redisUrl: string;
  readonly redisPid: number;
  readonly log: (line: string) => void;
}

/** One system under test: subscribers receive `text`, the publisher sends it and resolves when accepted. */
export interface Target {
  /** Server processes whose CPU this target costs (redis-server included when it uses Redis). */
  readonly pids: readonly number[];
  subscribe(onText: (text: string) => void): Promise<void>;
  publish(text: string): Promise<void>;
  close(): Promise<void>;
}

interface Contender {
  readonly name: string;
  readonly ours: boolean;
  /** Uses Redis: its CPU counts. */
  readonly redis: boolean;
  start(opts: FanoutOptions): Promise<Target>;
}

export function socketIoTarget(
  pids: number[],
  urls: string[],
  subscribers: number,
  cleanup: () => Promise<void>,
  protocol: { join(s: Socket): Promise<unknown>; send(s: Socket, text: string): Promise<unknown>; event: string; textOf(m: unknown): string },
): Target {
  const sockets: Socket[] = [];
  const open = async (url: string): Promise<Socket> => {
    const socket = connect(url, { transports: ['websocket'], forceNew: true, auth: { userId: `bench-${sockets.length}` } });
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('connect_error', reject));
    return socket;
  };
  let publisher: Socket | null = null;
  return {
    pids,
    async subscribe(onText) {
      for (let i = 0; i < subscribers; i += 1) {
        const socket = await open(urls[i % urls.length]!);
        socket.on(protocol.event, (m: unknown) => onText(protocol.textOf(m)));
        await protocol.join(socket);
      }
      publisher = await open(urls[0]!);
    },
    publish: (text) => protocol.send(publisher!, text).then(() => undefined),
    async close() {
      for (const socket of sockets) socket.disconnect();
      await cleanup();
    },
  };
}

export const gatewayProtocol = {
  join: (s: Socket) => s.emitWithAck('room:join', { room: 'chat:bench' }),
  send: (s: Socket, text: string) => s.emitWithAck('chat:send', { room: 'chat:bench', text }),
  event: 'chat:message',
  textOf: (m: unknown) => (m as { payload: { text: string } }).payload.text,
};

export const socketIoProtocol = {
  join: (s: Socket) => s.emitWithAck('join', 'bench'),
  send: (s: Socket, text: string) => s.emitWithAck('send', { room: 'bench', text }),
  event: 'message',
  textOf: (m: unknown) => (m as { text: string }).text,
};

export async function gatewayTarget(opts: Pick<FanoutOptions, 'subscribers' | 'redisPid'>, env: Record<string, string>, instances: number, redis: boolean): Promise<Target> {
  const urls: string[] = [];
  const pids: number[] = [];
  const stops: (() => Promise<void>)[] = [];
  for (let i = 0; i < instances; i += 1) {
    const [gateway, stop] = await startGateway({ env: { ...GATEWAY_BENCH_ENV, FLEET_STATS_INTERVAL_MS: '2000', ...env } });
    stops.push(stop);
    urls.push(gateway.url);
    pids.push(gateway.child.pid!);
  }
  if (redis) pids.push(opts.redisPid);
  return socketIoTarget(pids, urls, opts.subscribers, async () => void (await Promise.all(stops.map((s) => s()))), gatewayProtocol);
}

export function fanoutContenders(): Contender[] {
  return [
    {
      name: 'raw ws',
      ours: false,
      redis: false,
      async start(opts) {
        const peer = await forkPeer(new URL('./peers/raw-ws.ts', import.meta.url));
        const sockets: WebSocket[] = [];
        const open = async (): Promise<WebSocket> => {
          const ws = new WebSocket(`ws://127.0.0.1:${peer.port}`);
          sockets.push(ws);
          await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
          return ws;
        };
        let publisher: WebSocket;
        return {
          pids: [peer.pid],
          async subscribe(onText) {
            for (let i = 0; i < opts.subscribers; i += 1) (await open()).on('message', (data) => onText(data.toString()));
            publisher = await open();
          },
          // ws has no acks: a send is accepted once written.
          publish: (text) => new Promise((resolve, reject) => publisher.send(text, (err) => (err ? reject(err) : resolve()))),
          async close() {
            for (const ws of sockets) ws.terminate();
            await peer.stop();
          },
        };
      },
    },
    {
      name: 'Socket.IO, 1 process',
      ours: false,
      redis: false,
      async start(opts) {
        const peer = await forkPeer(new URL('./peers/socketio-memory.ts', import.meta.url));
        return socketIoTarget([peer.pid], [`http://127.0.0.1:${peer.port}`], opts.subscribers, peer.stop, socketIoProtocol);
      },
    },
    {
      name: 'Socket.IO + redis-adapter, 2',
      ours: false,
      redis: true,
      async start(opts) {
        const peers = [
          await forkPeer(new URL('./peers/socketio-redis.ts', import.meta.url), { REDIS_URL: opts.redisUrl }),
          await forkPeer(new URL('./peers/socketio-redis.ts', import.meta.url), { REDIS_URL: opts.redisUrl }),
        ];
        return socketIoTarget(
          [...peers.map((p) => p.pid), opts.redisPid],
          peers.map((p) => `http://127.0.0.1:${p.port}`),
          opts.subscribers,
          async () => void (await Promise.all(peers.map((p) => p.stop()))),
          socketIoProtocol,
        );
      },
    },
    {
      name: 'raw Redis pub/sub',
      ours: false,
      redis: true,
      async start(opts) {
        const subscribers: Redis[] = [];
        const publisher = new Redis(opts.redisUrl);
        return {
          pids: [opts.redisPid],
          async subscribe(onText) {
            for (let i = 0; i < opts.subscribers; i += 1) {
              const sub = new Redis(opts.redisUrl);
              subscribers.push(sub);
              sub.on('message', (_channel: string, message: string) => onText(message));
              await sub.subscribe('bench');
            }
          },
          publish: (text) => publisher.publish('bench', text).then(() => undefined),
          async close() {
            for (const sub of subscribers) sub.disconnect();
            publisher.disconnect();
          },
        };
      },
    },
    { name: 'gateway, embedded', ours: true, redis: false, start: (opts) => gatewayTarget(opts, { ADAPTER: 'memory' }, 1, false) },
    {
      name: 'gateway, embedded, small young gen',
      ours: true,
      redis: false,
      start: (opts) => gatewayTarget(opts, { ADAPTER: 'memory', NODE_OPTIONS: LEAN_NODE_OPTIONS }, 1, false),
    },
    { name: 'gateway, 2 on Redis', ours: true, redis: true, start: (opts) => gatewayTarget(opts, { ADAPTER: 'redis', REDIS_URL: opts.redisUrl }, 2, true) },
  ];
}

interface Recorder {
  delivered: number;
  latencies: number[];
}

async function subscribeRecorder(target: Target): Promise<Recorder> {
  const recorder: Recorder = { delivered: 0, latencies: [] };
  await target.subscribe((text) => {
    recorder.delivered += 1;
    recorder.latencies.push(performance.now() - Number(text.slice(0, text.indexOf('|'))));
  });
  return recorder;
}

const PAD = 'x'.repeat(80);

export interface SaturationRound {
  readonly deliveriesPerSecond: number;
  readonly cpuSeconds: number;
  readonly deliveriesPerCpuSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly delivered: number;
  readonly expected: number;
}

/** Subscribes the target's clients once; each phase starts from a cleared recorder. */
const recorders = new WeakMap<Target, Recorder>();
async function freshRecorder(target: Target): Promise<Recorder> {
  let recorder = recorders.get(target);
  if (!recorder) {
    recorder = await subscribeRecorder(target);
    recorders.set(target, recorder);
  }
  recorder.delivered = 0;
  recorder.latencies = [];
  await sleep(300);
  return recorder;
}

export async function saturate(name: string, target: Target, opts: Pick<FanoutOptions, 'subscribers' | 'messages' | 'window'>): Promise<SaturationRound> {
  const recorder = await freshRecorder(target);
  const expected = opts.subscribers * opts.messages;
  const cpuBefore = totalCpu(target.pids);
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.window }, async () => {
      while (next < opts.messages) {
        next += 1;
        await target.publish(`${performance.now()}|${PAD}`);
      }
    }),
  );
  await waitFor(`${name}: ${expected} deliveries`, () => recorder.delivered >= expected, 60_000, 5).catch(() => undefined);
  const elapsed = (performance.now() - started) / 1000;
  const cpu = totalCpu(target.pids) - cpuBefore;
  const sorted = [...recorder.latencies].sort((a, b) => a - b);
  return {
    deliveriesPerSecond: Math.round(recorder.delivered / elapsed),
    cpuSeconds: cpu,
    deliveriesPerCpuSecond: Math.round(recorder.delivered / Math.max(cpu, 0.01)),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    delivered: recorder.delivered,
    expected,
  };
}

export interface LatencyRound {
  readonly messagesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly delivered: number;
  readonly expected: number;
  /** Publishes refused or failed (none expected below saturation). */
  readonly failed: number;
}

/** Open loop: messages go out on a clock at `rate`, whatever the acks do, so queueing shows as latency. */
async function paced(name: string, target: Target, opts: FanoutOptions, rate: number): Promise<LatencyRound> {
  const recorder = await freshRecorder(target);
  const expected = opts.subscribers * opts.latencyMessages;
  const started = performance.now();
  let sent = 0;
  const failures: unknown[] = [];
  while (sent < opts.latencyMessages) {
    const due = Math.min(opts.latencyMessages, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    for (; sent < due; sent += 1) target.publish(`${performance.now()}|${PAD}`).catch((err: unknown) => failures.push(err));
    await sleep(2);
  }
  await waitFor(`${name}: ${expected} paced deliveries`, () => recorder.delivered >= expected, 30_000, 5).catch(() => undefined);
  const sorted = [...recorder.latencies].sort((a, b) => a - b);
  return { messagesPerSecond: Math.round(rate), p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), delivered: recorder.delivered, expected, failed: failures.length };
}

export interface FanoutResult {
  readonly contender: string;
  readonly ours: boolean;
  readonly redisCpuCounted: boolean;
  readonly deliveriesPerSecond: Summary;
  readonly deliveriesPerCpuSecond: Summary;
  readonly saturationP99Ms: Summary;
  readonly halfSaturation: { readonly messagesPerSecond: number; readonly p50Ms: Summary; readonly p99Ms: Summary };
  /** Fewest delivered in any round, saturation and latency phases, against what was expected. */
  readonly delivered: number;
  readonly expected: number;
  readonly latencyDelivered: number;
  readonly latencyExpected: number;
  readonly latencyFailed: number;
  readonly saturationRounds: readonly SaturationRound[];
  readonly latencyRounds: readonly LatencyRound[];
}

export async function runFanout(opts: FanoutOptions): Promise<FanoutResult[]> {
  const contenders = fanoutContenders();
  const saturation = new Map<string, SaturationRound[]>(contenders.map((c) => [c.name, []]));
  const latency = new Map<string, LatencyRound[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < opts.rounds; r += 1) {
    for (const contender of alternate(contenders, r)) {
      const target = await contender.start(opts);
      try {
        const sat = await saturate(contender.name, target, opts);
        saturation.get(contender.name)!.push(sat);
        opts.log(
          `fanout round ${r + 1}/${opts.rounds} ${contender.name.padEnd(30)} ${String(sat.deliveriesPerSecond).padStart(7)}/s  ` +
            `${String(sat.deliveriesPerCpuSecond).padStart(7)}/CPU-s  p99 ${sat.p99Ms.toFixed(1)} ms  (${sat.delivered}/${sat.expected})`,
        );
        // Same processes, same subscribers: half of what this round saturated at.
        const lat = await paced(contender.name, target, opts, Math.max(1, sat.deliveriesPerSecond / opts.subscribers / 2));
        latency.get(contender.name)!.push(lat);
        opts.log(
          `  half saturation ${String(lat.messagesPerSecond).padStart(5)} msg/s  p50 ${lat.p50Ms.toFixed(1)} ms  p99 ${lat.p99Ms.toFixed(1)} ms  (${lat.delivered}/${lat.expected}, ${lat.failed} failed)`,
        );
      } finally {
        await target.close();
      }
    }
  }
  return contenders.map((c) => {
    const sat = saturation.get(c.name)!;
    const lat = latency.get(c.name)!;
    return {
      contender: c.name,
      ours: c.ours,
      redisCpuCounted: c.redis,
      deliveriesPerSecond: summarize(sat.map((x) => x.deliveriesPerSecond)),
      deliveriesPerCpuSecond: summarize(sat.map((x) => x.deliveriesPerCpuSecond)),
      saturationP99Ms: summarize(sat.map((x) => x.p99Ms)),
      halfSaturation: { messagesPerSecond: summarize(lat.map((x) => x.messagesPerSecond)).median, p50Ms: summarize(lat.map((x) => x.p50Ms)), p99Ms: summarize(lat.map((x) => x.p99Ms)) },
      delivered: Math.min(...sat.map((x) => x.delivered)),
      expected: sat[0]!.expected,
      latencyDelivered: Math.min(...lat.map((x) => x.delivered)),
      latencyExpected: lat[0]!.expected,
      latencyFailed: Math.max(...lat.map((x) => x.failed)),
      saturationRounds: sat,
      latencyRounds: lat,
    };
  });
}
