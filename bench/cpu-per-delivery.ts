// Server CPU per delivery, head to head: this checkout's gateway, plain Socket.IO and, optionally, the
// gateway of another checkout (say main's, to measure a change), alternated in each round in one process.
// Finer than `bench/run.ts --only fanout` for a before/after: no other contenders between them, and more
// messages per round (docs/benchmarks.md, "Fan-out").
//   node bench/cpu-per-delivery.ts [--base DIR] [--subscribers 200] [--messages 1500] [--rounds 5] [--env '{"RECOVERY_MAX_DISCONNECTION_MS":"0"}']
// --base: a checkout of the gateway to compare (its scripts/fleet/gateway.ts starts it); --env: extra
// environment for this checkout's gateway only (to switch a part off).
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseOptions, usageError } from '../scripts/cli.ts';
import { startGateway } from '../scripts/fleet/gateway.ts';
import { gatewayProtocol, saturate, socketIoProtocol, socketIoTarget } from './fanout.ts';
import { GATEWAY_BENCH_ENV } from './idle.ts';
import { alternate, cpuSeconds, forkPeer, machineLoad, median } from './lib.ts';

const usage = "usage: node bench/cpu-per-delivery.ts [--base DIR] [--subscribers N] [--messages N] [--rounds N] [--env JSON]";
const args = parseOptions(usage, {
  base: { type: 'string' },
  subscribers: { type: 'string', default: '200' },
  messages: { type: 'string', default: '1500' },
  rounds: { type: 'string', default: '5' },
  env: { type: 'string', default: '{}' },
  help: { type: 'boolean', default: false },
});
const positive = (name: string, value: string | undefined): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) usageError(`--${name} must be a positive integer, got ${value}`, usage);
  return n;
};
const opts = { subscribers: positive('subscribers', args.subscribers), messages: positive('messages', args.messages), window: 16 };
const rounds = positive('rounds', args.rounds);
let extraEnv: Record<string, string>;
try {
  extraEnv = JSON.parse(args.env!) as Record<string, string>;
} catch {
  usageError(`--env must be a JSON object of strings, got ${args.env}`, usage);
}

type Start = typeof startGateway;
const contenders = new Map<string, { kind: 'gateway'; start: Start; env: Record<string, string> } | { kind: 'socket.io' }>();
if (args.base !== undefined) {
  const dir = isAbsolute(args.base) ? args.base : resolve(args.base);
  const module = (await import(pathToFileURL(`${dir}/scripts/fleet/gateway.ts`).href).catch((err: unknown) =>
    usageError(`--base ${dir}: no gateway checkout there (${(err as Error).message})`, usage),
  )) as { startGateway: Start };
  contenders.set('base gateway', { kind: 'gateway', start: module.startGateway, env: {} });
}
contenders.set('gateway', { kind: 'gateway', start: startGateway, env: extraEnv });
contenders.set('Socket.IO', { kind: 'socket.io' });

const names = [...contenders.keys()];
const perDelivery = new Map<string, number[]>(names.map((name) => [name, []]));
console.log(`${opts.subscribers} subscribers × ${opts.messages} messages, ${rounds} rounds; load ${JSON.stringify(machineLoad())}`);
for (let round = 0; round < rounds; round += 1) {
  const order = alternate(names, round);
  const line: string[] = [];
  for (const name of order) {
    const contender = contenders.get(name)!;
    let pid: number;
    let url: string;
    let stop: () => Promise<void>;
    if (contender.kind === 'gateway') {
      const [gateway, stopGateway] = await contender.start({ env: { ...GATEWAY_BENCH_ENV, ADAPTER: 'memory', ...contender.env } });
      [pid, url, stop] = [gateway.child.pid!, gateway.url, stopGateway];
    } else {
      const peer = await forkPeer(new URL('./peers/socketio-memory.ts', import.meta.url));
      pid = peer.pid;
      url = `http://127.0.0.1:${peer.port}`;
      stop = async () => {
        const exited = new Promise((r) => peer.child.once('exit', r));
        peer.child.kill('SIGTERM');
        await exited;
      };
    }
    const target = socketIoTarget([pid], [url], opts.subscribers, async () => {}, contender.kind === 'gateway' ? gatewayProtocol : socketIoProtocol);
    try {
      const before = cpuSeconds(pid);
      const round = await saturate(name, target, opts);
      const us = ((cpuSeconds(pid) - before) * 1_000_000) / round.delivered;
      if (round.delivered < round.expected) throw new Error(`${name}: ${round.delivered} of ${round.expected} deliveries`);
      perDelivery.get(name)!.push(us);
      line.push(`${name} ${us.toFixed(2)} µs`);
    } finally {
      await target.close();
      await stop();
    }
  }
  console.log(`round ${round + 1}: ${line.join(', ')}`);
}
const sio = median(perDelivery.get('Socket.IO')!);
for (const name of names) {
  const m = median(perDelivery.get(name)!);
  console.log(`${name.padEnd(14)} ${m.toFixed(2)} µs of server CPU per delivery (median)${name === 'Socket.IO' ? '' : `; deliveries per CPU-second vs Socket.IO ${(sio / m).toFixed(3)}`}`);
}
console.log(`load after ${JSON.stringify(machineLoad())}`);
process.exit(0);
