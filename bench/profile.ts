// Where the time and the bytes go, the gateway beside plain Socket.IO (docs/benchmarks.md, "Profiles"):
//   cpu     each server under the fan-out load with `--cpu-prof`; self time by frame and by package
//   memory  each server in a child with --expose-gc: GC'd heap, external and RSS deltas per idle
//           socket, and a heap-snapshot diff by constructor (objects and bytes per socket)
//   node bench/profile.ts [--only cpu,memory] [--loads fanout,handshake] [--sockets 5000] [--subscribers 200] [--messages 3000] [--out bench/results/profile]
// Writes <out>/profile-<only>.json.
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapSnapshot } from 'node:v8';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { gatewayProtocol, saturate, socketIoProtocol, socketIoTarget } from './fanout.ts';
import { forkPeer, machineLoad, round } from './lib.ts';
import type { ConnectedReport } from './swarm.ts';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'cpu,memory' },
    // The CPU profiles' loads: fanout, handshake or both.
    loads: { type: 'string', default: 'fanout,handshake' },
    sockets: { type: 'string', default: '5000' },
    subscribers: { type: 'string', default: '200' },
    messages: { type: 'string', default: '3000' },
    out: { type: 'string', default: 'bench/results/profile' },
    // Internal: the memory child.
    child: { type: 'string' },
  },
});
const SOCKETS = Number(args.sockets);
const out = args.out!;

// ---------- CPU ----------

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
}

/** What a frame belongs to, from its script URL. */
function packageOf(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.includes('/app/gateway/')) return 'app/gateway';
  if (url.includes('/app/protocol/')) return 'app/protocol';
  if (url.startsWith('node:')) return 'node core';
  return url.split('/').slice(-2).join('/');
}

function summarizeProfile(profile: CpuProfile): { totalMs: number; byPackage: [string, number][]; topFrames: [string, number][] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const frames = new Map<string, number>();
  const packages = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    total += us;
    const file = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(app|bench)\//, '$1/');
    const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
    frames.set(key, (frames.get(key) ?? 0) + us);
    const pkg = packageOf(url, functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const share = (m: Map<string, number>, n: number): [string, number][] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => [k, round((100 * us) / total, 3)]);
  return { totalMs: Math.round(total / 1000), byPackage: share(packages, 15), topFrames: share(frames, 25) };
}

function newestProfile(dir: string): CpuProfile {
  const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort().at(-1);
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
}

type Load = 'fanout' | 'handshake';

/** Starts `kind` under `--cpu-prof`, drives `load` at it, stops it so it writes the profile, and summarizes. */
async function profileUnder(kind: 'gateway' | 'Socket.IO', load: Load): Promise<Record<string, unknown>> {
  const opts = { subscribers: Number(args.subscribers), messages: Number(args.messages), window: 16, redisPid: 0 };
  const dir = mkdtempSync(join(tmpdir(), 'rt-prof-'));
  let pid: number;
  let url: string;
  let stop: () => Promise<void>;
  if (kind === 'gateway') {
    const { startGateway } = await import('../scripts/fleet/gateway.ts');
    const { GATEWAY_BENCH_ENV } = await import('./idle.ts');
    const [gateway, kill] = await startGateway({ env: { ...GATEWAY_BENCH_ENV, ADAPTER: 'memory', NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` } });
    pid = gateway.child.pid!;
    url = gateway.url;
    // SIGINT: the gateway closes at once and exits 0, which writes the profile.
    stop = async () => {
      await gateway.stop('SIGINT');
      await kill();
    };
  } else {
    const peer = await forkPeer(new URL('./peers/socketio-memory.ts', import.meta.url), {}, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    pid = peer.pid;
    url = `http://127.0.0.1:${peer.port}`;
    stop = async () => {
      const exited = new Promise((resolve) => peer.child.once('exit', resolve));
      peer.child.kill('SIGTERM');
      await exited;
    };
  }
  let work: Record<string, number>;
  if (load === 'fanout') {
    const target =
      kind === 'gateway'
        ? socketIoTarget([pid], [url], opts.subscribers, async () => {}, gatewayProtocol)
        : socketIoTarget([pid], [url], opts.subscribers, async () => {}, socketIoProtocol);
    const sat = await saturate(kind, target, opts);
    work = { deliveries: sat.delivered, serverCpuSeconds: round(sat.cpuSeconds) };
    await stop();
    await target.close();
  } else {
    const swarm = fork(new URL('./swarm.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise((resolve) => swarm.once('message', resolve));
    const report = await new Promise<ConnectedReport>((resolve) => {
      swarm.once('message', resolve);
      swarm.send({ cmd: 'connect', kind: 'socket.io', url, count: SOCKETS, concurrency: 100 });
    });
    work = { handshakes: report.connected };
    swarm.kill('SIGKILL');
    await stop();
  }
  return { ...work, ...summarizeProfile(newestProfile(dir)) };
}

async function cpuProfiles(): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  for (const load of (['fanout', 'handshake'] as const).filter((l) => args.loads!.split(',').includes(l))) {
    for (const kind of ['gateway', 'Socket.IO'] as const) {
      result[`${kind}, ${load}`] = await profileUnder(kind, load);
      console.log(`cpu ${kind}, ${load}: ${JSON.stringify(result[`${kind}, ${load}`]).slice(0, 300)}`);
    }
  }
  return result;
}

// ---------- memory (runs in a child with --expose-gc) ----------

interface HeapCensus {
  readonly count: Map<string, number>;
  readonly bytes: Map<string, number>;
}

/** Objects and self bytes per constructor (closures, strings, arrays and V8 internals grouped by kind). */
function heapCensus(): Promise<HeapCensus> {
  return new Promise((resolve, reject) => {
    const chunks: string[] = [];
    const stream = getHeapSnapshot();
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      const snapshot = JSON.parse(chunks.join('')) as {
        snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
        nodes: number[];
        strings: string[];
      };
      const fields = snapshot.snapshot.meta.node_fields;
      const types = snapshot.snapshot.meta.node_types[0];
      const width = fields.length;
      const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
      const count = new Map<string, number>();
      const bytes = new Map<string, number>();
      for (let i = 0; i < snapshot.nodes.length; i += width) {
        const type = types[snapshot.nodes[i + typeAt]!]!;
        const name = snapshot.strings[snapshot.nodes[i + nameAt]!]!;
        const key = type === 'object' || type === 'native' ? name : type === 'closure' ? `closure ${name || '(anonymous)'}` : `(${type})`;
        count.set(key, (count.get(key) ?? 0) + 1);
        bytes.set(key, (bytes.get(key) ?? 0) + snapshot.nodes[i + sizeAt]!);
      }
      resolve({ count, bytes });
    });
  });
}

async function startInProcess(kind: string): Promise<{ url: string; swarmKind: 'socket.io' }> {
  if (kind === 'gateway') {
    const { loadConfig } = await import('../app/gateway/config.ts');
    const { createGateway } = await import('../app/gateway/gateway.ts');
    const { GATEWAY_BENCH_ENV } = await import('./idle.ts');
    const config = loadConfig({ ...GATEWAY_BENCH_ENV, ADAPTER: 'memory', AUTH_MODE: 'none', PORT: '0', INTERNAL_PORT: '0', LOG_LEVEL: 'error', POD_NAME: 'profile' });
    const gateway = await createGateway(config);
    const { url } = await gateway.listen();
    return { url: url.href.replace(/\/$/, ''), swarmKind: 'socket.io' };
  }
  const http = createServer();
  const io = new Server(http, { serveClient: false });
  io.on('connection', (socket) => {
    socket.on('join', (room: string, ack: () => void) => void (socket.join(room), ack()));
    socket.on('send', (msg: { room: string; text: string }, ack: () => void) => void (io.to(msg.room).emit('message', msg), ack()));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, swarmKind: 'socket.io' };
}

async function memoryChild(kind: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const server = await startInProcess(kind);
  const swarm = fork(new URL('./swarm.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve) => swarm.once('message', resolve));
  const request = <T>(message: object): Promise<T> => new Promise((resolve) => (swarm.once('message', resolve), swarm.send(message)));
  // Warm-up, so code compiled on the first handshakes is not counted per socket.
  await request<ConnectedReport>({ cmd: 'connect', kind: server.swarmKind, url: server.url, count: 100, concurrency: 50 });
  await request({ cmd: 'close' });
  await new Promise((r) => setTimeout(r, 1_000));
  const settle = async (): Promise<NodeJS.MemoryUsage> => {
    for (let i = 0; i < 3; i += 1) {
      gc();
      await new Promise((r) => setTimeout(r, 300));
    }
    return process.memoryUsage();
  };
  const before = await settle();
  const censusBefore = await heapCensus();
  const report = await request<ConnectedReport>({ cmd: 'connect', kind: server.swarmKind, url: server.url, count: SOCKETS, concurrency: 100 });
  await new Promise((r) => setTimeout(r, 2_000));
  const after = await settle();
  const censusAfter = await heapCensus();
  const n = report.connected;
  const perSocket = (key: keyof NodeJS.MemoryUsage): number => Math.round((after[key] - before[key]) / n);
  const kinds = [...censusAfter.bytes.keys()]
    .map((k) => ({ kind: k, objects: ((censusAfter.count.get(k) ?? 0) - (censusBefore.count.get(k) ?? 0)) / n, bytes: ((censusAfter.bytes.get(k) ?? 0) - (censusBefore.bytes.get(k) ?? 0)) / n }))
    .filter((k) => k.bytes >= 8 || k.objects >= 0.9)
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 30)
    .map((k) => ({ kind: k.kind, objectsPerSocket: round(k.objects, 2), bytesPerSocket: Math.round(k.bytes) }));
  process.send!({
    connected: n,
    perSocket: { rss: perSocket('rss'), heapUsed: perSocket('heapUsed'), external: perSocket('external'), arrayBuffers: perSocket('arrayBuffers') },
    heapObjectsPerSocket: round([...censusAfter.count.values()].reduce((a, b) => a + b, 0) / n - [...censusBefore.count.values()].reduce((a, b) => a + b, 0) / n, 2),
    kinds,
  });
  swarm.kill('SIGKILL');
  process.exit(0);
}

async function memoryProfiles(): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  for (const kind of (process.env.PROFILE_KINDS ?? 'gateway,Socket.IO').split(',')) {
    const child = fork(new URL(import.meta.url), ['--child', kind, '--sockets', String(SOCKETS)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    result[kind] = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`memory child for ${kind} exited with ${code}`)));
    });
    console.log(`memory ${kind}: ${JSON.stringify(result[kind]).slice(0, 400)}`);
  }
  return result;
}

if (args.child) {
  await memoryChild(args.child);
} else {
  mkdirSync(out, { recursive: true });
  const only = args.only!.split(',');
  const report: Record<string, unknown> = { date: new Date().toISOString(), machineBefore: machineLoad(), sockets: SOCKETS, subscribers: Number(args.subscribers), messages: Number(args.messages) };
  if (only.includes('cpu')) {
    report.cpu = await cpuProfiles();
    console.log(JSON.stringify(report.cpu, null, 1));
  }
  if (only.includes('memory')) report.memory = await memoryProfiles();
  report.machineAfter = machineLoad();
  const file = join(out, `profile-${only.join('-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${file}`);
}
