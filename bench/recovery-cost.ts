// What connection state recovery costs the gateway's fan-out (docs/stock-clients.md): one gateway on a
// real redis-server, SUBSCRIBERS stock clients over WebSocket in one room, MESSAGES published into it;
// the gateway's CPU time (from /proc) with recovery off, on with every client in that room only (one
// offset for all: encoded once), and on with each client also in a room of its own (one offset each:
// encoded per client). Prints one JSON line per case.
//
//   node bench/recovery-cost.ts [--subscribers 300] [--messages 500] [--rounds 3]
import { parseArgs } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { createRedisBackplane } from '../app/gateway/backplane/redis.ts';
import { startGateway } from '../scripts/fleet/gateway.ts';
import { waitFor } from '../scripts/fleet/ports.ts';
import { startRedis } from '../scripts/fleet/redis.ts';
import { alternate, cpuSeconds, median } from './lib.ts';

const { values: args } = parseArgs({ options: { subscribers: { type: 'string', default: '300' }, messages: { type: 'string', default: '500' }, rounds: { type: 'string', default: '3' } } });
const SUBSCRIBERS = Number(args.subscribers);
const MESSAGES = Number(args.messages);
const ROUNDS = Number(args.rounds);

const cpuMs = (pid: number): number => cpuSeconds(pid) * 1_000;

const join = (socket: Socket, room: string): Promise<void> =>
  new Promise((resolve, reject) => socket.emit('room:join', { room }, (ack: { ok: boolean }) => (ack.ok ? resolve() : reject(new Error(`join ${room}`)))));

const [redis, stopRedis] = await startRedis();
const publisher = createRedisBackplane({ url: redis.url, name: 'bench-publisher' });
await waitFor('publisher', () => publisher.isReady());
try {
  const cases = [
    ['recovery off', '0', false],
    ['recovery on, one room per client (shared offset)', '120000', false],
    ['recovery on, plus a room of its own (offset per client)', '120000', true],
  ] as const;
  const perCase = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  // The order rotates each round: whichever case runs first also pays for this process warming up.
  const schedule = Array.from({ length: ROUNDS }, (_, round) => alternate(cases, round)).flat();
  for (const [name, recoveryMs, ownRoom] of schedule) {
    const [gateway, stopGateway] = await startGateway({ env: { ADAPTER: 'redis', REDIS_URL: redis.url, RECOVERY_MAX_DISCONNECTION_MS: recoveryMs, MAX_CONNECTIONS_PER_SECOND: '5000' } });
    const room = `chat:bench-${Date.now()}`;
    let received = 0;
    const sockets: Socket[] = [];
    for (let i = 0; i < SUBSCRIBERS; i += 1) {
      const socket = io(gateway.url, { transports: ['websocket'], forceNew: true, auth: { userId: `u${i}` } });
      socket.on('chat:message', () => (received += 1));
      sockets.push(socket);
    }
    await waitFor('connected', () => sockets.every((s) => s.connected), 30_000);
    for (const [i, socket] of sockets.entries()) {
      await join(socket, room);
      if (ownRoom) await join(socket, `chat:own-${i}`);
    }
    const before = cpuMs(gateway.child.pid!);
    const started = Date.now();
    for (let m = 0; m < MESSAGES; m += 1) await publisher.publish({ room, type: 'chat:message', payload: { from: 'bench', text: `message ${m}` }, from: 'bench' });
    await waitFor('every message delivered', () => received >= MESSAGES * SUBSCRIBERS, 120_000);
    const cpu = cpuMs(gateway.child.pid!) - before;
    perCase.get(name)!.push((cpu * 1000) / received);
    console.log(JSON.stringify({ case: name, subscribers: SUBSCRIBERS, messages: MESSAGES, deliveries: received, gatewayCpuMs: cpu, cpuUsPerDelivery: Math.round((cpu * 1000) / received * 100) / 100, wallMs: Date.now() - started }));
    for (const socket of sockets) socket.disconnect();
    await stopGateway();
  }
  for (const [name, samples] of perCase) {
    const twoDecimals = (us: number) => Math.round(us * 100) / 100;
    console.log(JSON.stringify({ case: name, rounds: samples.length, medianCpuUsPerDelivery: twoDecimals(median(samples)), minUs: twoDecimals(Math.min(...samples)), maxUs: twoDecimals(Math.max(...samples)) }));
  }
} finally {
  await publisher.close();
  await stopRedis();
}
