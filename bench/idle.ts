// Idle memory per socket and handshake cost: a fresh server per contender and round, a separate
// client process (bench/swarm.ts) opens COUNT WebSocket connections with CONCURRENCY in flight and
// holds them. Server CPU is read from /proc around the connect phase (CPU per handshake), its RSS
// before and after (memory per idle socket). Contenders: the gateway (embedded, admission limits
// raised), plain Socket.IO 4.8 (one process, in-memory adapter) and raw `ws`.
import { type ChildProcess, fork } from 'node:child_process';
import { startGateway } from '../scripts/fleet/gateway.ts';
import { alternate, cpuSeconds, forkPeer, median, openFds, rssBytes, sleep, stopChild, summarize, type Summary } from './lib.ts';
import type { ConnectCommand, ConnectedReport } from './swarm.ts';

export interface IdleOptions {
  readonly count: number;
  readonly concurrency: number;
  readonly rounds: number;
  /** Wait after the last connect before reading RSS, so allocation settles. */
  readonly settleMs: number;
  readonly log: (line: string) => void;
  /** Only these contenders (all when unset). */
  readonly contenders?: readonly string[];
}

interface Server {
  readonly pid: number;
  readonly url: string;
  stop(): Promise<void>;
}

interface Contender {
  readonly name: string;
  readonly kind: ConnectCommand['kind'];
  readonly ours: boolean;
  start(): Promise<Server>;
}

/** The gateway with the limits that would refuse a handshake storm raised, as the issue asks. */
export const GATEWAY_BENCH_ENV = {
  LOG_LEVEL: 'error',
  MAX_CONNECTIONS: '100000',
  MAX_CONNECTIONS_PER_SECOND: '100000',
  RATE_LIMIT_PER_SECOND: '100000',
  RATE_LIMIT_BURST: '100000',
  // The bench's clients share a few users and publish as fast as acks return; per-user limits would cut them.
  MAX_CONNECTIONS_PER_USER: '100000',
  USER_RATE_LIMIT_PER_SECOND: '100000',
  USER_RATE_LIMIT_BURST: '100000',
  // The publisher's inbound bytes: past its 512 KiB burst (about 3,000 bench messages) the default
  // 128 KiB/s would close it mid-run (`byte_rate`), as it did `profile.ts --subscribers 10`.
  INBOUND_BYTES_PER_SECOND: '1000000000',
  INBOUND_BYTES_BURST: '1000000000',
} as const;

/** The documented setting that trades a little CPU for less memory per socket (docs/benchmarks.md). */
export const LEAN_NODE_OPTIONS = '--max-semi-space-size=4';

export function idleContenders(): Contender[] {
  return [
    {
      name: 'gateway',
      kind: 'socket.io',
      ours: true,
      async start() {
        const [gateway, stop] = await startGateway({ env: { ...GATEWAY_BENCH_ENV, ADAPTER: 'memory', FLEET_STATS_INTERVAL_MS: '2000' } });
        return { pid: gateway.child.pid!, url: gateway.url, stop };
      },
    },
    {
      name: 'gateway, small young generation',
      kind: 'socket.io',
      ours: true,
      async start() {
        const [gateway, stop] = await startGateway({
          env: { ...GATEWAY_BENCH_ENV, ADAPTER: 'memory', FLEET_STATS_INTERVAL_MS: '2000', NODE_OPTIONS: LEAN_NODE_OPTIONS },
        });
        return { pid: gateway.child.pid!, url: gateway.url, stop };
      },
    },
    {
      name: 'Socket.IO',
      kind: 'socket.io',
      ours: false,
      async start() {
        const peer = await forkPeer(new URL('./peers/socketio-memory.ts', import.meta.url));
        return { pid: peer.pid, url: `http://127.0.0.1:${peer.port}`, stop: peer.stop };
      },
    },
    {
      name: 'Socket.IO, small young generation',
      kind: 'socket.io',
      ours: false,
      async start() {
        const peer = await forkPeer(new URL('./peers/socketio-memory.ts', import.meta.url), {}, [LEAN_NODE_OPTIONS]);
        return { pid: peer.pid, url: `http://127.0.0.1:${peer.port}`, stop: peer.stop };
      },
    },
    {
      name: 'raw ws',
      kind: 'ws',
      ours: false,
      async start() {
        const peer = await forkPeer(new URL('./peers/raw-ws.ts', import.meta.url));
        return { pid: peer.pid, url: `ws://127.0.0.1:${peer.port}`, stop: peer.stop };
      },
    },
  ];
}

export interface IdleRound {
  readonly contender: string;
  readonly connected: number;
  readonly failed: number;
  readonly firstError: string | null;
  readonly bytesPerSocket: number;
  readonly handshakesPerSecond: number;
  readonly cpuMsPerHandshake: number;
  readonly serverFds: number;
  readonly clientFds: number;
}

export interface IdleResult {
  readonly contender: string;
  readonly ours: boolean;
  readonly count: number;
  /** Fewest connected in any round (completeness: must equal count). */
  readonly connected: number;
  readonly bytesPerSocket: Summary;
  readonly handshakesPerSecond: Summary;
  readonly cpuMsPerHandshake: Summary;
  readonly rounds: readonly IdleRound[];
}

async function forkSwarm(): Promise<ChildProcess> {
  const child = fork(new URL('./swarm.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`bench/swarm.ts exited with ${code}`)));
  });
  return child;
}

function request<T>(child: ChildProcess, message: unknown, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`swarm did not answer ${JSON.stringify(message).slice(0, 80)} in ${timeoutMs} ms`)), timeoutMs);
    child.once('message', (reply: T) => {
      clearTimeout(timer);
      resolve(reply);
    });
    child.send(message as object);
  });
}

function command(contender: Contender, server: Server, opts: IdleOptions): ConnectCommand {
  return { cmd: 'connect', kind: contender.kind, url: server.url, count: opts.count, concurrency: opts.concurrency };
}

async function measureOnce(contender: Contender, opts: IdleOptions): Promise<IdleRound> {
  const server = await contender.start();
  const swarm = await forkSwarm();
  try {
    // Warm-up: the first handshakes pay for JIT compilation, which is not a per-handshake cost.
    const warmup = Math.min(200, opts.count);
    await request<ConnectedReport>(swarm, { ...command(contender, server, opts), count: warmup }, 60_000);
    await request(swarm, { cmd: 'close' }, 30_000);
    await sleep(800);
    const baseline = median([rssBytes(server.pid), (await sleep(100), rssBytes(server.pid)), (await sleep(100), rssBytes(server.pid))]);
    const cpuBefore = cpuSeconds(server.pid);
    const report = await request<ConnectedReport>(swarm, command(contender, server, opts), 120_000 + opts.count * 20);
    const cpu = cpuSeconds(server.pid) - cpuBefore;
    await sleep(opts.settleMs);
    const samples: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      samples.push(rssBytes(server.pid));
      await sleep(200);
    }
    const connected = Math.max(1, report.connected);
    return {
      contender: contender.name,
      connected: report.connected,
      failed: report.failed,
      firstError: report.firstError,
      bytesPerSocket: Math.round((median(samples) - baseline) / connected),
      handshakesPerSecond: Math.round(report.connected / (report.ms / 1000)),
      cpuMsPerHandshake: (cpu * 1000) / connected,
      serverFds: openFds(server.pid),
      clientFds: report.fds,
    };
  } finally {
    await stopChild(swarm);
    await server.stop();
    // Let the kernel reap the closed sockets before the next contender starts.
    await sleep(300);
  }
}

export async function runIdle(opts: IdleOptions): Promise<IdleResult[]> {
  const contenders = idleContenders().filter((c) => !opts.contenders || opts.contenders.includes(c.name));
  const rounds = new Map<string, IdleRound[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < opts.rounds; r += 1) {
    for (const contender of alternate(contenders, r)) {
      const result = await measureOnce(contender, opts);
      rounds.get(contender.name)!.push(result);
      opts.log(
        `idle round ${r + 1}/${opts.rounds} ${contender.name.padEnd(10)} ${result.connected}/${opts.count} sockets  ${(result.bytesPerSocket / 1024).toFixed(1)} KB/socket  ` +
          `${result.handshakesPerSecond}/s  ${result.cpuMsPerHandshake.toFixed(3)} ms CPU/handshake  fds server ${result.serverFds} client ${result.clientFds}`,
      );
    }
  }
  return contenders.map((c) => {
    const rs = rounds.get(c.name)!;
    return {
      contender: c.name,
      ours: c.ours,
      count: opts.count,
      connected: Math.min(...rs.map((x) => x.connected)),
      bytesPerSocket: summarize(rs.map((x) => x.bytesPerSocket)),
      handshakesPerSecond: summarize(rs.map((x) => x.handshakesPerSecond)),
      cpuMsPerHandshake: summarize(rs.map((x) => x.cpuMsPerHandshake)),
      rounds: rs,
    };
  });
}
