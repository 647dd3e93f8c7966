// Fan-out benchmark: one publisher, SUBSCRIBERS clients in one room, MESSAGES messages with WINDOW in
// flight. The gateway (embedded and on Redis with two instances) runs side by side with its peers — raw
// `ws`, a single Socket.IO process with the in-memory adapter, raw Redis pub/sub — in this process tree,
// and results are reported as ratios. Writes bench/results/fanout.json and bench/results/fanout.svg.
//
//   node bench/run.ts [--subscribers 100] [--messages 2000] [--window 16] [--rounds 3]
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { io as connect, type Socket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { startGateway } from '../scripts/fleet/gateway.ts';
import { freePort, waitFor } from '../scripts/fleet/ports.ts';
import { startRedis } from '../scripts/fleet/redis.ts';

const { values: args } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '100' },
    messages: { type: 'string', default: '2000' },
    window: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const SUBSCRIBERS = Number(args.subscribers);
const MESSAGES = Number(args.messages);
const WINDOW = Number(args.window);
const ROUNDS = Number(args.rounds);

/** One system under test: subscribers receive `text`, the publisher sends it and resolves when accepted. */
interface Target {
  readonly name: string;
  subscribe(onText: (text: string) => void): Promise<void>;
  publish(text: string): Promise<void>;
  close(): Promise<void>;
}

interface Result {
  readonly target: string;
  readonly deliveriesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly delivered: number;
  readonly expected: number;
}

const cleanups: (() => Promise<void> | void)[] = [];

async function forkPeer(file: string): Promise<number> {
  const port = await freePort();
  const child: ChildProcess = fork(new URL(file, import.meta.url), { env: { ...process.env, PORT: String(port) }, stdio: 'inherit' });
  cleanups.push(() => void child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}`)));
  });
  return port;
}

function socketIoTarget(name: string, urls: string[], join: (s: Socket) => Promise<unknown>, send: (s: Socket, text: string) => Promise<unknown>, events: string[], textOf: (m: unknown) => string): Target {
  const sockets: Socket[] = [];
  const open = async (url: string): Promise<Socket> => {
    const socket = connect(url, { transports: ['websocket'], forceNew: true, auth: { userId: `bench-${sockets.length}` } });
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('connect_error', reject));
    return socket;
  };
  let publisher: Socket | null = null;
  return {
    name,
    async subscribe(onText) {
      for (let i = 0; i < SUBSCRIBERS; i += 1) {
        const socket = await open(urls[i % urls.length]!);
        for (const event of events) socket.on(event, (m: unknown) => onText(textOf(m)));
        await join(socket);
      }
      publisher = await open(urls[0]!);
    },
    publish: (text) => send(publisher!, text).then(() => undefined),
    async close() {
      for (const socket of sockets) socket.disconnect();
    },
  };
}

async function gatewayTarget(name: string, env: Record<string, string>, instances: number): Promise<Target> {
  const urls: string[] = [];
  for (let i = 0; i < instances; i += 1) {
    const [gateway, stop] = await startGateway({ env: { LOG_LEVEL: 'error', RATE_LIMIT_PER_SECOND: '100000', RATE_LIMIT_BURST: '100000', ...env } });
    cleanups.push(stop);
    urls.push(gateway.url);
  }
  const room = 'chat:bench';
  return socketIoTarget(
    name,
    urls,
    (s) => s.emitWithAck('room:join', { room }),
    (s, text) => s.emitWithAck('chat:send', { room, text }),
    ['chat:message'],
    (m) => (m as { payload: { text: string } }).payload.text,
  );
}

async function targets(redisUrl: string): Promise<(() => Promise<Target>)[]> {
  return [
    async () => {
      const port = await forkPeer('./peers/raw-ws.ts');
      const sockets: WebSocket[] = [];
      const open = async (): Promise<WebSocket> => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}`);
        sockets.push(ws);
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        return ws;
      };
      let publisher: WebSocket;
      return {
        name: 'raw ws',
        async subscribe(onText) {
          for (let i = 0; i < SUBSCRIBERS; i += 1) (await open()).on('message', (data) => onText(data.toString()));
          publisher = await open();
        },
        // ws has no acks: a send is accepted once written.
        publish: (text) => new Promise((resolve, reject) => publisher.send(text, (err) => (err ? reject(err) : resolve()))),
        async close() {
          for (const ws of sockets) ws.terminate();
        },
      };
    },
    async () => {
      const port = await forkPeer('./peers/socketio-memory.ts');
      const room = 'bench';
      return socketIoTarget(
        'Socket.IO, 1 process',
        [`http://127.0.0.1:${port}`],
        (s) => s.emitWithAck('join', room),
        (s, text) => s.emitWithAck('send', { room, text }),
        ['message'],
        (m) => (m as { text: string }).text,
      );
    },
    async () => {
      const subscribers: Redis[] = [];
      const publisher = new Redis(redisUrl);
      return {
        name: 'raw Redis pub/sub',
        async subscribe(onText) {
          for (let i = 0; i < SUBSCRIBERS; i += 1) {
            const sub = new Redis(redisUrl);
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
    () => gatewayTarget('gateway, embedded', { ADAPTER: 'memory' }, 1),
    () => gatewayTarget('gateway, 2 on Redis', { ADAPTER: 'redis', REDIS_URL: redisUrl }, 2),
  ];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function measure(target: Target): Promise<Result> {
  const latencies: number[] = [];
  let delivered = 0;
  await target.subscribe((text) => {
    delivered += 1;
    latencies.push(performance.now() - Number(text.slice(0, text.indexOf('|'))));
  });
  const expected = SUBSCRIBERS * MESSAGES;
  const started = performance.now();
  let next = 0;
  const pad = 'x'.repeat(80);
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next < MESSAGES) {
        next += 1;
        await target.publish(`${performance.now()}|${pad}`);
      }
    }),
  );
  await waitFor(`${target.name}: ${expected} deliveries`, () => delivered >= expected, 60_000, 5).catch(() => undefined);
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((x, y) => x - y);
  await target.close();
  return { target: target.name, deliveriesPerSecond: Math.round(delivered / elapsed), p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), delivered, expected };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function svgChart(results: Result[]): string {
  const width = 720;
  const barHeight = 26;
  const left = 190;
  const max = Math.max(...results.map((r) => r.deliveriesPerSecond));
  const rows = results.map((r, i) => {
    const y = 40 + i * (barHeight + 12);
    const w = Math.max(2, ((width - left - 150) * r.deliveriesPerSecond) / max);
    return `<text x="${left - 8}" y="${y + 18}" text-anchor="end">${r.target}</text>
<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${r.target.startsWith('gateway') ? '#3a7bd5' : '#9aa5b8'}"/>
<text x="${left + w + 6}" y="${y + 18}">${r.deliveriesPerSecond.toLocaleString('en')}/s · p99 ${r.p99Ms.toFixed(1)} ms</text>`;
  });
  const height = 60 + results.length * (barHeight + 12);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="22" font-weight="bold">Fan-out: ${SUBSCRIBERS} subscribers × ${MESSAGES} messages (deliveries per second, median of ${ROUNDS})</text>
${rows.join('\n')}
</svg>
`;
}

async function main(): Promise<void> {
  const [redis, stopRedis] = await startRedis();
  cleanups.push(stopRedis);
  const rounds = new Map<string, Result[]>();
  const factories = await targets(redis.url);
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const factory of factories) {
      const target = await factory();
      const result = await measure(target);
      console.log(`round ${round}/${ROUNDS} ${result.target.padEnd(22)} ${String(result.deliveriesPerSecond).padStart(8)}/s  p50 ${result.p50Ms.toFixed(1)} ms  p99 ${result.p99Ms.toFixed(1)} ms  (${result.delivered}/${result.expected})`);
      rounds.set(result.target, [...(rounds.get(result.target) ?? []), result]);
    }
  }
  const results: Result[] = [...rounds.values()].map((rs) => ({
    target: rs[0]!.target,
    deliveriesPerSecond: median(rs.map((r) => r.deliveriesPerSecond)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    delivered: Math.min(...rs.map((r) => r.delivered)),
    expected: rs[0]!.expected,
  }));
  const byName = new Map(results.map((r) => [r.target, r]));
  const ratio = (a: string, b: string): number => Number((byName.get(a)!.deliveriesPerSecond / byName.get(b)!.deliveriesPerSecond).toFixed(2));
  const ratios = {
    'gateway embedded / Socket.IO 1 process': ratio('gateway, embedded', 'Socket.IO, 1 process'),
    'gateway 2 on Redis / Socket.IO 1 process': ratio('gateway, 2 on Redis', 'Socket.IO, 1 process'),
    'gateway embedded / raw ws': ratio('gateway, embedded', 'raw ws'),
    'gateway 2 on Redis / raw Redis pub/sub': ratio('gateway, 2 on Redis', 'raw Redis pub/sub'),
  };
  mkdirSync(args.out!, { recursive: true });
  const report = { date: new Date().toISOString(), subscribers: SUBSCRIBERS, messages: MESSAGES, window: WINDOW, rounds: ROUNDS, results, ratios };
  writeFileSync(`${args.out}/fanout.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${args.out}/fanout.svg`, svgChart(results));
  console.table(results);
  console.table(ratios);
  console.log(`wrote ${args.out}/fanout.json and ${args.out}/fanout.svg`);
}

try {
  await main();
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
