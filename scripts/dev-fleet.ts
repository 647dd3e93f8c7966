// `make dev`: a local fleet — a real redis-server, N gateway processes and HAProxy in front — until
// Ctrl-C. Type `help` for commands that delete pods the way the kubelet does.
import { parseOptions, positiveIntOption, readCommands, stopOnSignals, usageError } from './cli.ts';
import { type FleetEvent, startLocalFleet } from './fleet/fleet.ts';

const usage = `usage: node scripts/dev-fleet.ts [--replicas N] [--port P] [--backplane redis|none] [--log-level L] [--grace-ms MS]
  --replicas   gateway processes to keep running (default 3)
  --backplane  redis: one shared redis-server (default). none: no Redis, each gateway on its own
               in-memory backplane — a demo of what breaks: a message sent on one pod never
               reaches clients on another (docs/tour.md, step 4)
  --port       HAProxy port on 127.0.0.1 (default 8080)
  --log-level  gateway log level printed here: fatal|error|warn|info|debug (default warn)
  --grace-ms   SIGTERM → SIGKILL grace period for "terminate" (default 30000)`;

const args = parseOptions(usage, {
  replicas: { type: 'string', default: '3' },
  port: { type: 'string', default: '8080' },
  'log-level': { type: 'string', default: 'warn' },
  'grace-ms': { type: 'string', default: '30000' },
  backplane: { type: 'string', default: 'redis' },
  help: { type: 'boolean', short: 'h', default: false },
});
const replicas = positiveIntOption('replicas', args.replicas, 32, usage);
const port = positiveIntOption('port', args.port, 65_535, usage);
const graceMs = positiveIntOption('grace-ms', args['grace-ms'], 600_000, usage);
const logLevel = args['log-level'];
const backplane = args.backplane;
if (backplane !== 'redis' && backplane !== 'none') usageError(`--backplane=${backplane}: must be redis or none`, usage);
if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(logLevel)) usageError(`--log-level=${logLevel}: must be one of fatal, error, warn, info, debug, trace`);

const describe = (e: FleetEvent): string => `[fleet] ${e.kind} ${e.pod}${e.detail ? ` (${e.detail})` : ''}`;

console.log(
  backplane === 'redis'
    ? `starting redis-server, ${replicas} gateways and HAProxy on 127.0.0.1:${port} ...`
    : `starting ${replicas} gateways WITHOUT a shared backplane (each on its own memory backplane, no Redis) and HAProxy on 127.0.0.1:${port} ...`,
);
let fleet;
let stop: () => Promise<void>;
try {
  [fleet, stop] = await startLocalFleet({
    replicas,
    port,
    graceMs,
    backplane,
    statsPage: true,
    env: { LOG_LEVEL: logLevel, SHUTDOWN_DEADLINE_MS: String(Math.max(1_000, graceMs - 2_000)) },
    onPodOutput: (pod, line) => console.log(`[${pod}] ${line}`),
    onEvent: (event) => console.log(describe(event)),
  });
} catch (err) {
  console.error(`make dev: could not start the fleet: ${(err as Error).message}`);
  if (/EADDRINUSE|cannot bind|Address already in use/i.test(String(err))) console.error(`Port ${port} is taken: run \`make dev DEV_PORT=<another>\`.`);
  process.exit(1);
}

const pods = await fleet.pods();
console.log(`
Local fleet is up.
  Demo page (through HAProxy): ${fleet.url}/
  Fleet view (internal port):  ${fleet.internalUrl}/   (also /fleet and /metrics; never on the public port)
  HAProxy stats:               ${fleet.haproxy.statsUrl}
  Backplane:                   ${backplane === 'redis' ? `redis-server ${fleet.redisUrl}` : 'NONE: each pod on its own memory backplane — pods do not see each other\'s messages (make dev BACKPLANE=redis fixes it)'}
  Pods (public, internal):     ${pods.map((p) => `${p.name} ${fleet.podUrl(p.name)} ${fleet.podInternalUrl(p.name)}`).join(', ')}
  HAProxy config:              ${fleet.haproxy.configPath}
Commands: pods | terminate <pod> | kill <pod> | scale <n> | help. Ctrl-C stops everything.`);

stopOnSignals('stopping the fleet', async () => {
  await stop();
  console.log('stopped: gateways, HAProxy and redis-server are gone.');
});

readCommands({
  pods: async () => {
    for (const pod of await fleet.pods()) {
      console.log(`${pod.name}\t${pod.phase}\t${fleet.podUrl(pod.name)}\tinternal ${fleet.podInternalUrl(pod.name)}\tup ${Math.round((Date.now() - pod.startedAt) / 1000)} s`);
    }
  },
  terminate: async (arg) => {
    const exit = await fleet.terminate(arg ?? '');
    console.log(`[fleet] ${exit.pod} gone after ${exit.durationMs} ms: code=${exit.code} signal=${exit.signal}${exit.killedAfterGrace ? ' (SIGKILL after grace)' : ''}`);
  },
  kill: async (arg) => {
    const exit = await fleet.kill(arg ?? '');
    console.log(`[fleet] ${exit.pod} killed: signal=${exit.signal}`);
  },
  scale: (arg) => fleet.scale(Number(arg)),
  help: () => console.log('pods — list pods | terminate <pod> — SIGTERM, SIGKILL after the grace period, replacement starts | kill <pod> — SIGKILL | scale <n>'),
});
