// `make bench`: the gateway beside its peers, every measure as a ratio from one run.
//   node bench/run.ts [--size full|smoke] [--only idle,fanout,redis,drain,chaos] [--rounds N] [--chaos-clients N] [--chaos-gateway sdk,stock|none] [--out bench/results]
//
// idle    memory per idle socket, handshake rate and server CPU per handshake (bench/idle.ts)
// fanout  deliveries per server CPU-second and per second, latency at half saturation (bench/fanout.ts)
// redis   redis-server CPU and commands per publish (bench/redis-cost.ts)
// drain   a pod holding N sockets drained onto survivors: peak reconnects/s vs budget, time, loss (bench/drain.ts)
// chaos   the gateway fleet and a vanilla Socket.IO fleet losing a pod to SIGTERM and to SIGKILL: loss and
//         duplicates (% of the stream), peak reconnects/s on the survivors, time until every client is back (bench/chaos.ts)
//
// Each writes <out>/<bench>.json and <out>/<bench>.svg; <out>/summary.json collects the ratios. The
// machine's load average is sampled throughout and written beside every figure: on a shared machine
// compare the CPU-per-work ratios, not wall-clock rates.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { listOption, parseOptions, usageError } from '../scripts/cli.ts';
import { startRedis } from '../scripts/fleet/redis.ts';
import { SIZES as CHAOS_SIZES } from '../scripts/chaos/chaos.ts';
import { type ChaosBenchReport, type ChaosContenderResult, runChaosBench } from './chaos.ts';
import { type DrainResult, runDrain } from './drain.ts';
import { type FanoutResult, runFanout } from './fanout.ts';
import { type IdleResult, runIdle } from './idle.ts';
import { barChart, type LoadSummary, loadSampler, machineLoad, redisPid, round } from './lib.ts';
import { type RedisCostResult, runRedisCost } from './redis-cost.ts';

const BENCHES = ['idle', 'fanout', 'redis', 'drain', 'chaos'] as const;
type BenchName = (typeof BENCHES)[number];

const SIZES = {
  smoke: {
    rounds: 1,
    idle: { count: 60, concurrency: 20, settleMs: 300 },
    fanout: { subscribers: 5, messages: 50, window: 16, latencyMessages: 20 },
    redis: { publishes: 200, window: 16 },
    drain: { sockets: 60, survivors: 2, windowMs: 2_000, budgetPerSecond: 200, messages: 30, clientProcesses: 2 },
    // The chaos suite's fleet shrunk to finish in about 30 s; the gateway with stock clients only.
    chaos: {
      rounds: 1,
      size: 'ci',
      gatewayClients: ['stock'],
      settings: {
        ...CHAOS_SIZES.ci,
        clients: 60,
        rooms: 4,
        streamPerRoomPerSecond: 5,
        warmupMs: 1_000,
        drain: { ratePerSecond: 30, noticeMs: 1_500, shutdownDeadlineMs: 7_000, graceMs: 9_000 },
      },
    },
  },
  full: {
    rounds: 3,
    idle: { count: 5_000, concurrency: 100, settleMs: 1_500 },
    fanout: { subscribers: 200, messages: 500, window: 16, latencyMessages: 200 },
    redis: { publishes: 10_000, window: 16 },
    drain: { sockets: 10_000, survivors: 2, windowMs: 20_000, budgetPerSecond: 1_000, messages: 200, clientProcesses: 4 },
    // `make chaos`'s full size (1000 clients, 4 pods), so the figures stand beside docs/chaos.md's.
    chaos: { rounds: 3, size: 'full', gatewayClients: ['stock', 'sdk'], settings: CHAOS_SIZES.full },
  },
} as const;

const usage = 'usage: node bench/run.ts [--size full|smoke] [--only idle,fanout,redis,drain,chaos] [--rounds N] [--chaos-clients N] [--chaos-gateway sdk,stock|none] [--out DIR]';
const args = parseOptions(usage, {
  size: { type: 'string', default: 'full' },
  only: { type: 'string' },
  rounds: { type: 'string' },
  // Fewer chaos clients than the size's, for a machine too loaded to connect 1000 within the suite's 60 s.
  'chaos-clients': { type: 'string' },
  // Which clients the gateway's chaos scenarios use; `none` runs the vanilla fleet alone.
  'chaos-gateway': { type: 'string' },
  out: { type: 'string', default: 'bench/results' },
  help: { type: 'boolean', default: false },
});
if (args.size !== 'full' && args.size !== 'smoke') usageError(`--size must be full or smoke, got ${args.size}`, usage);
const only = (listOption(args.only) ?? [...BENCHES]) as BenchName[];
const unknown = only.filter((name) => !BENCHES.includes(name));
if (unknown.length > 0) usageError(`unknown bench ${unknown.join(', ')}; known: ${BENCHES.join(', ')}`, usage);
const size = SIZES[args.size];
const rounds = args.rounds === undefined ? size.rounds : Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) usageError(`--rounds must be a positive integer, got ${args.rounds}`);
const chaosClients = args['chaos-clients'] === undefined ? undefined : Number(args['chaos-clients']);
if (chaosClients !== undefined && !(Number.isInteger(chaosClients) && chaosClients >= 20)) usageError(`--chaos-clients must be an integer of at least 20, got ${args['chaos-clients']}`, usage);
const chaosGateway = args['chaos-gateway'] === 'none' ? [] : listOption(args['chaos-gateway']);
if (chaosGateway?.some((kind) => kind !== 'sdk' && kind !== 'stock')) usageError(`--chaos-gateway takes sdk, stock or none, got ${args['chaos-gateway']}`, usage);
const out = args.out!;
mkdirSync(out, { recursive: true });
const log = (line: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const ratio = (a: number, b: number): number => round(a / b, 3);

function write(name: string, report: unknown, svg: string): void {
  writeFileSync(`${out}/${name}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`${out}/${name}.svg`, svg);
  log(`wrote ${out}/${name}.json and ${out}/${name}.svg`);
}

const started = Date.now();
// A partial run (--only) updates its own entries and keeps the others'.
const previous = existsSync(`${out}/summary.json`) ? (JSON.parse(readFileSync(`${out}/summary.json`, 'utf8')) as Record<string, unknown>) : {};
const summary: Record<string, unknown> = { ...previous, date: new Date().toISOString(), size: args.size, rounds, machine: machineLoad() };
/** When each bench's entry was last written, so a partial run's summary says which figures are older. */
const runAt: Record<string, string> = { ...((previous.runAt as Record<string, string> | undefined) ?? {}) };
for (const name of only) runAt[name] = new Date().toISOString();
summary.runAt = runAt;
const [redis, stopRedis] = await startRedis();
try {
  const pidOfRedis = await redisPid(redis.url);

  if (only.includes('idle')) {
    const load = loadSampler();
    log(`idle: ${size.idle.count} sockets per contender, ${rounds} round(s)`);
    const results = await runIdle({ ...size.idle, rounds, log });
    const during = load.stop();
    const by = new Map<string, IdleResult>(results.map((r) => [r.contender, r]));
    const m = (name: string, key: 'bytesPerSocket' | 'cpuMsPerHandshake' | 'handshakesPerSecond'): number => by.get(name)![key].median;
    const ratios = {
      'memory per socket, gateway / Socket.IO': ratio(m('gateway', 'bytesPerSocket'), m('Socket.IO', 'bytesPerSocket')),
      'memory per socket, gateway / raw ws': ratio(m('gateway', 'bytesPerSocket'), m('raw ws', 'bytesPerSocket')),
      'memory per socket, gateway with --max-semi-space-size=4 / Socket.IO': ratio(m('gateway, small young generation', 'bytesPerSocket'), m('Socket.IO', 'bytesPerSocket')),
      'memory per socket, both with --max-semi-space-size=4, gateway / Socket.IO': ratio(
        m('gateway, small young generation', 'bytesPerSocket'),
        m('Socket.IO, small young generation', 'bytesPerSocket'),
      ),
      'CPU per handshake, gateway with --max-semi-space-size=4 / gateway': ratio(m('gateway, small young generation', 'cpuMsPerHandshake'), m('gateway', 'cpuMsPerHandshake')),
      'CPU per handshake, gateway / Socket.IO': ratio(m('gateway', 'cpuMsPerHandshake'), m('Socket.IO', 'cpuMsPerHandshake')),
      'CPU per handshake, gateway / raw ws': ratio(m('gateway', 'cpuMsPerHandshake'), m('raw ws', 'cpuMsPerHandshake')),
      'handshakes per second, gateway / Socket.IO': ratio(m('gateway', 'handshakesPerSecond'), m('Socket.IO', 'handshakesPerSecond')),
    };
    summary.idle = ratios;
    const panel = (title: string, key: 'bytesPerSocket' | 'cpuMsPerHandshake' | 'handshakesPerSecond', fmt: (v: number) => string) => ({
      title,
      bars: results.map((r) => ({ label: r.contender, value: r[key].median, min: r[key].min, max: r[key].max, text: fmt(r[key].median), ours: r.ours })),
    });
    write(
      'idle',
      { date: new Date().toISOString(), size: args.size, rounds, ...size.idle, load: during, results, ratios },
      barChart(
        `Idle sockets: ${size.idle.count} per server, median of ${rounds} (whiskers: min–max)`,
        [
          panel('memory per idle socket (server RSS delta) — lower is better', 'bytesPerSocket', (v) => `${(v / 1024).toFixed(1)} KB`),
          panel('server CPU per handshake — lower is better', 'cpuMsPerHandshake', (v) => `${v.toFixed(3)} ms`),
          panel('handshakes per second (wall clock, shared machine)', 'handshakesPerSecond', (v) => `${Math.round(v)}/s`),
        ],
        `load average (1 min) during the run: ${during.min}–${during.max} on ${machineLoad().cores} cores`,
      ),
    );
  }

  if (only.includes('fanout')) {
    const load = loadSampler();
    log(`fanout: ${size.fanout.subscribers} subscribers × ${size.fanout.messages} messages, ${rounds} round(s)`);
    const results = await runFanout({ ...size.fanout, rounds, redisUrl: redis.url, redisPid: pidOfRedis, log });
    const during = load.stop();
    const by = new Map<string, FanoutResult>(results.map((r) => [r.contender, r]));
    const cpu = (name: string): number => by.get(name)!.deliveriesPerCpuSecond.median;
    const wall = (name: string): number => by.get(name)!.deliveriesPerSecond.median;
    const p50 = (name: string): number => by.get(name)!.halfSaturation.p50Ms.median;
    const ratios = {
      'deliveries per CPU-second, gateway embedded / Socket.IO 1 process': ratio(cpu('gateway, embedded'), cpu('Socket.IO, 1 process')),
      'deliveries per CPU-second, gateway 2 on Redis / Socket.IO + redis-adapter 2 (Redis CPU counted)': ratio(cpu('gateway, 2 on Redis'), cpu('Socket.IO + redis-adapter, 2')),
      'deliveries per CPU-second, gateway embedded / raw ws': ratio(cpu('gateway, embedded'), cpu('raw ws')),
      'deliveries per CPU-second, gateway embedded with --max-semi-space-size=4 / gateway embedded': ratio(cpu('gateway, embedded, small young gen'), cpu('gateway, embedded')),
      'deliveries per second, gateway embedded / Socket.IO 1 process': ratio(wall('gateway, embedded'), wall('Socket.IO, 1 process')),
      'deliveries per second, gateway 2 on Redis / Socket.IO 1 process': ratio(wall('gateway, 2 on Redis'), wall('Socket.IO, 1 process')),
      'deliveries per second, gateway 2 on Redis / gateway embedded': ratio(wall('gateway, 2 on Redis'), wall('gateway, embedded')),
      'p50 at half saturation, gateway 2 on Redis − Socket.IO 1 process (ms)': round(p50('gateway, 2 on Redis') - p50('Socket.IO, 1 process')),
      'p50 at half saturation, gateway 2 on Redis − Socket.IO + redis-adapter 2 (ms)': round(p50('gateway, 2 on Redis') - p50('Socket.IO + redis-adapter, 2')),
    };
    summary.fanout = ratios;
    const bars = (pick: (r: FanoutResult) => { median: number; min: number; max: number }, fmt: (v: number) => string) =>
      results.map((r) => ({ label: r.contender, value: pick(r).median, min: pick(r).min, max: pick(r).max, text: fmt(pick(r).median), ours: r.ours }));
    write(
      'fanout',
      { date: new Date().toISOString(), size: args.size, rounds, ...size.fanout, load: during, results, ratios },
      barChart(
        `Fan-out: 1 room × ${size.fanout.subscribers} subscribers, ${size.fanout.messages} messages; median of ${rounds} (whiskers: min–max)`,
        [
          { title: 'deliveries per server CPU-second (Redis CPU counted where used) — higher is better', bars: bars((r) => r.deliveriesPerCpuSecond, (v) => Math.round(v).toLocaleString('en')) },
          { title: 'deliveries per second (wall clock, shared machine)', bars: bars((r) => r.deliveriesPerSecond, (v) => Math.round(v).toLocaleString('en')) },
          { title: 'p50 latency at half of saturation — lower is better', bars: bars((r) => r.halfSaturation.p50Ms, (v) => `${v.toFixed(1)} ms`) },
          { title: 'p99 latency at half of saturation — lower is better', bars: bars((r) => r.halfSaturation.p99Ms, (v) => `${v.toFixed(1)} ms`) },
        ],
        `load average (1 min) during the run: ${during.min}–${during.max} on ${machineLoad().cores} cores`,
      ),
    );
  }

  if (only.includes('redis')) {
    const load = loadSampler();
    log(`redis: ${size.redis.publishes} publishes per contender, ${rounds} round(s)`);
    const results = await runRedisCost({ ...size.redis, rounds, redisUrl: redis.url, redisPid: pidOfRedis, log });
    const during = load.stop();
    const by = new Map<string, RedisCostResult>(results.map((r) => [r.contender, r]));
    const cpu = (name: string): number => by.get(name)!.redisCpuMsPer10k.median;
    const ratios = {
      'Redis CPU per publish, gateway / raw PUBLISH': ratio(cpu('gateway'), cpu('raw PUBLISH')),
      'Redis CPU per publish, gateway / Socket.IO + redis-adapter': ratio(cpu('gateway'), cpu('Socket.IO + redis-adapter')),
      'Redis commands per publish, gateway': by.get('gateway')!.commandsPerPublish.median,
    };
    summary.redis = ratios;
    write(
      'redis-cost',
      { date: new Date().toISOString(), size: args.size, rounds, ...size.redis, load: during, results, ratios },
      barChart(
        `Redis per publish: ${size.redis.publishes} publishes, 1 subscriber; median of ${rounds} (whiskers: min–max)`,
        [
          {
            title: 'redis-server CPU per 10k publishes — lower is better',
            bars: results.map((r) => ({ label: r.contender, value: r.redisCpuMsPer10k.median, min: r.redisCpuMsPer10k.min, max: r.redisCpuMsPer10k.max, text: `${r.redisCpuMsPer10k.median.toFixed(0)} ms`, ours: r.ours })),
          },
          {
            title: 'Redis commands per publish',
            bars: results.map((r) => ({ label: r.contender, value: r.commandsPerPublish.median, text: `${r.commandsPerPublish.median.toFixed(2)} ${JSON.stringify(r.commands)}`, ours: r.ours })),
          },
        ],
        `load average (1 min) during the run: ${during.min}–${during.max} on ${machineLoad().cores} cores`,
      ),
    );
  }

  if (only.includes('drain')) {
    const load = loadSampler();
    log(`drain: a pod holding ${size.drain.sockets} sockets, ${size.drain.survivors} survivors`);
    const results: DrainResult[] = await runDrain({ ...size.drain, redisUrl: redis.url, log });
    const during = load.stop();
    summary.drain = Object.fromEntries(
      results.map((r) => [
        r.contender,
        { peakReconnectsPerSecond: r.peakReconnectsPerSecond, peakMovesPerSecond: r.peakMovesPerSecond, budgetPerSecond: r.budgetPerSecond, victimExitMs: r.victimExit.afterMs, allBackMs: r.drainMs, lost: r.lost, behind: r.behind },
      ]),
    );
    const [drained] = results;
    write(
      'drain',
      { date: new Date().toISOString(), size: args.size, ...size.drain, load: during, results },
      barChart(
        `Drain of a pod holding ${size.drain.sockets} sockets onto ${size.drain.survivors} survivors (DRAIN_WINDOW_MS ${size.drain.windowMs})`,
        [
          {
            title: `busiest second (budget ${size.drain.budgetPerSecond}/s)`,
            bars: [
              { label: 'handshakes on the survivors', value: drained!.peakReconnectsPerSecond, text: `${drained!.peakReconnectsPerSecond}/s`, ours: true },
              { label: 'clients leaving the pod', value: drained!.peakMovesPerSecond, text: `${drained!.peakMovesPerSecond}/s`, ours: true },
              { label: 'rejoins seen by the clients', value: drained!.peakRejoinsSeenPerSecond, text: `${drained!.peakRejoinsSeenPerSecond}/s (client-bound)`, ours: false },
              { label: 'budget', value: size.drain.budgetPerSecond, text: `${size.drain.budgetPerSecond}/s`, ours: false },
            ],
          },
          {
            title: 'seconds from SIGTERM',
            bars: [
              { label: 'pod exited', value: drained!.victimExit.afterMs / 1000, text: `${(drained!.victimExit.afterMs / 1000).toFixed(1)} s (exit ${drained!.victimExit.code})`, ours: true },
              {
                label: 'every client rejoined',
                value: drained!.drainMs / 1000,
                text: `${(drained!.drainMs / 1000).toFixed(1)} s · lost ${drained!.lost} · not back ${drained!.behind}`,
                ours: true,
              },
            ],
          },
        ],
        `load average (1 min) during the run: ${during.min}–${during.max} on ${machineLoad().cores} cores`,
      ),
    );
  }

  if (only.includes('chaos')) {
    const load = loadSampler();
    const chaos = {
      ...size.chaos,
      ...(chaosGateway ? { gatewayClients: chaosGateway as ('sdk' | 'stock')[] } : {}),
      settings: { ...size.chaos.settings, ...(chaosClients === undefined ? {} : { clients: chaosClients }) },
    };
    const chaosRounds = args.rounds === undefined ? chaos.rounds : rounds;
    log(`chaos: ${chaos.settings.clients} clients on ${chaos.settings.replicas} pods, gateway vs vanilla Socket.IO, SIGTERM then SIGKILL, ${chaosRounds} round(s)`);
    const writeChaos = ({ results, errors }: ChaosBenchReport, roundsDone: number, during: LoadSummary): void => {
      summary.chaos = Object.fromEntries(
        results.map((r) => [
          `${r.contender}, ${r.action}`,
          { lostPercent: r.lostPercent.median, lostPercentWhileReconnecting: r.lostPercentWhileReconnecting.median, duplicatePercent: r.duplicatePercent.median, peakReconnectsPerSecond: r.peakReconnectsPerSecond.median, allBackMs: r.allBackMs?.median ?? null, notBack: r.notBack, neverCaughtUp: r.neverCaughtUp },
        ]),
      );
      const label = (r: ChaosContenderResult): string => `${r.contender.replace(' clients', '')} — ${r.action}`;
      const bars = (pick: (r: ChaosContenderResult) => { median: number; min: number; max: number } | null, fmt: (v: number) => string) =>
        results.map((r) => {
          const v = pick(r);
          return v === null ? { label: label(r), value: 0, text: 'not every client came back', ours: r.ours } : { label: label(r), value: v.median, min: v.min, max: v.max, text: fmt(v.median), ours: r.ours };
        });
      write(
        'chaos',
        { date: new Date().toISOString(), size: args.size, rounds: chaosRounds, roundsDone, gatewayClients: chaos.gatewayClients, settings: chaos.settings, load: during, errors, results },
        barChart(
          `Chaos: ${chaos.settings.clients} clients on ${chaos.settings.replicas} pods behind HAProxy, one pod SIGTERMed, then one SIGKILLed; median of ${roundsDone} (whiskers: min–max)`,
          [
            { title: 'messages lost, % of the deliveries owed — lower is better', bars: bars((r) => r.lostPercent, (v) => `${v.toFixed(2)} %`) },
            { title: 'messages duplicated, % of the deliveries owed — lower is better', bars: bars((r) => r.duplicatePercent, (v) => `${v.toFixed(2)} %`) },
            { title: 'peak reconnects per second on the survivors (clients of the ended pod)', bars: bars((r) => r.peakReconnectsPerSecond, (v) => `${Math.round(v)}/s`) },
            { title: 'seconds from the signal until every client of the pod is back', bars: bars((r) => r.allBackMs, (v) => `${(v / 1000).toFixed(1)} s`) },
          ],
          `load average (1 min) during the run: ${during.min}–${during.max} on ${machineLoad().cores} cores${errors.length ? ` · ${errors.length} side(s) of a round could not run (see the JSON)` : ''}`,
        ),
      );
    };
    const report = await runChaosBench({
      settings: chaos.settings,
      size: chaos.size,
      rounds: chaosRounds,
      gatewayClients: chaos.gatewayClients,
      log,
      onRound: (partial, done) => done < chaosRounds && writeChaos(partial, done, load.peek()),
    });
    writeChaos(report, chaosRounds, load.stop());
  }
} finally {
  await stopRedis();
}
summary.durationSeconds = Math.round((Date.now() - started) / 1000);
summary.machineAfter = machineLoad();
writeFileSync(`${out}/summary.json`, `${JSON.stringify(summary, null, 2)}\n`);
console.log(JSON.stringify(summary, null, 2));
log(`done in ${summary.durationSeconds} s; wrote ${out}/summary.json`);
