import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { DrainPlan } from '../../app/protocol/drain-plan.ts';
import type { PodExit } from '../fleet/fleet.ts';
import { type ClientRecord, type DeliveryReport, Population, type PopulationOptions } from './load.ts';
import { peakInWindow, percentile } from './measure.ts';
import { renderChart } from './chart.ts';
import { type ChaosDrainSettings, type ChaosTarget, kindTarget, localTarget } from './targets.ts';
import { nodeTarget } from './node-target.ts';

export type ChaosSize = 'ci' | 'full';
export type ChaosTargetName = 'local' | 'kind' | 'node';

export interface SizeSettings {
  readonly replicas: number;
  readonly clients: number;
  readonly rooms: number;
  readonly roomsPerClient: number;
  readonly streamPerRoomPerSecond: number;
  readonly publisherShare: number;
  readonly publishEveryMs: number;
  readonly warmupMs: number;
  /**
   * Reconnects per second the surviving pods are meant to absorb. Each pod drains at half of it, so
   * two pods draining at once (a deletion during a rolling update) still fit, and so that the
   * bunching added by handshake latency (a few round trips over long-polling, a cold replacement
   * pod) and by every client sharing one event loop on two shared cores stays inside it.
   */
  readonly reconnectBudgetPerSecond: number;
  readonly drain: ChaosDrainSettings;
}

/** CI fits in well under 3 minutes on 2 cores; full is what `make chaos` reports in docs/chaos.md. */
export const SIZES: Record<ChaosSize, SizeSettings> = {
  ci: {
    replicas: 3,
    clients: 300,
    rooms: 10,
    roomsPerClient: 2,
    streamPerRoomPerSecond: 2,
    publisherShare: 0.1,
    publishEveryMs: 2_000,
    warmupMs: 2_000,
    reconnectBudgetPerSecond: 30,
    drain: { ratePerSecond: 15, noticeMs: 1_500, shutdownDeadlineMs: 12_000, graceMs: 14_000 },
  },
  full: {
    replicas: 4,
    clients: 1_000,
    rooms: 20,
    roomsPerClient: 3,
    streamPerRoomPerSecond: 5,
    publisherShare: 0.1,
    publishEveryMs: 2_000,
    warmupMs: 3_000,
    reconnectBudgetPerSecond: 60,
    drain: { ratePerSecond: 30, noticeMs: 1_500, shutdownDeadlineMs: 20_000, graceMs: 22_000 },
  },
};

interface ScenarioSpec {
  readonly name: string;
  readonly description: string;
  /** One pod ended (`terminate`, `kill`), or the whole fleet disturbed (`rollout`, `restart-backplane`). */
  readonly action: 'terminate' | 'kill' | 'rollout' | 'restart-backplane';
  /** Targets that can do it; unset: every target. */
  readonly targets?: readonly ChaosTargetName[];
  readonly client: PopulationOptions['client'];
  /** A drain plan written for the victim before the action (the contrast uses it to close everything at once). */
  readonly plan: DrainPlan | null;
  /** What the peak reconnect rate is expected to do against the budget. */
  readonly expectPeak: 'within-budget' | 'over-budget' | 'report-only';
  /** Who the clients are: the SDK (default) or the stock socket.io-client with default options (docs/stock-clients.md). */
  readonly population?: 'sdk' | 'stock';
}

export const SCENARIOS: readonly ScenarioSpec[] = [
  {
    name: 'graceful',
    description: 'SIGTERM (SIGKILL after the grace period): paced drain, drain hint and full-jitter backoff on',
    action: 'terminate',
    client: {},
    plan: null,
    expectPeak: 'within-budget',
  },
  {
    name: 'sigkill',
    description: 'immediate SIGKILL (node loss, --grace-period=0): no drain; clients see the transport close and come back with full-jitter backoff',
    action: 'kill',
    client: {},
    plan: null,
    expectPeak: 'report-only',
  },
  {
    name: 'no-hint-no-jitter',
    description: 'contrast: SIGTERM, but every socket closed at once (plan window 1 ms, no hint) and clients without hint or jitter — what a stock Socket.IO shutdown does',
    action: 'terminate',
    client: { honourDrainHint: false, backoff: { jitter: false } },
    plan: { v: 1, windowMs: 1, jitterMs: 0, issuedBy: 'chaos contrast run' },
    expectPeak: 'over-budget',
  },
  {
    name: 'stock-graceful',
    description: 'stock socket.io-client, default options: SIGTERM, paced drain; the clients ignore the hint and come back after their own backoff, restored by connection state recovery',
    action: 'terminate',
    // The local fleet only, so far: the node and kind runs keep their size and time.
    targets: ['local'],
    population: 'stock',
    client: {},
    plan: null,
    // The close rate sets the pace; the stock client's own backoff (0.5-1.5 s) adds a second of jitter, and
    // one load generator on two shared cores bunches what it records, so the peak is reported, and the
    // spread over the paced window is what the test holds it to.
    expectPeak: 'report-only',
  },
  {
    name: 'stock-sigkill',
    description: 'stock socket.io-client, default options: immediate SIGKILL; restored on the survivors by connection state recovery from the session the dead pod left in Redis',
    action: 'kill',
    // The local fleet only, so far: the node and kind runs keep their size and time.
    targets: ['local'],
    population: 'stock',
    client: {},
    plan: null,
    expectPeak: 'report-only',
  },
  {
    name: 'rolling-update',
    description: '`kubectl rollout restart` of the gateway Deployment under load: every pod replaced, each one draining',
    action: 'rollout',
    targets: ['node', 'kind'],
    client: {},
    plan: null,
    expectPeak: 'report-only',
  },
  {
    name: 'redis-restart',
    description: 'the Redis pod deleted mid-stream (its StatefulSet starts it again from its volume): publishes fail meanwhile, gateways resubscribe and resync rooms from history',
    action: 'restart-backplane',
    targets: ['node', 'kind'],
    client: {},
    plan: null,
    expectPeak: 'report-only',
  },
];

/** The scenarios a target runs, in order. */
export function scenariosFor(target: ChaosTargetName): readonly ScenarioSpec[] {
  return SCENARIOS.filter((spec) => spec.targets === undefined || spec.targets.includes(target));
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly action: ScenarioSpec['action'];
  readonly victim: string;
  readonly victimClients: number;
  readonly clients: number;
  readonly exit: PodExit;
  readonly delivery: DeliveryReport;
  readonly published: number;
  readonly publishFailures: number;
  readonly delivered: number;
  readonly reconnected: number;
  readonly notReconnected: number;
  /** Clients not on the victim that lost their connection anyway. */
  readonly collateralReconnects: number;
  readonly reconnectLatencyMs: { p50: number | null; p99: number | null; max: number | null };
  /** From the action to the last victim client being back. */
  readonly movedWithinMs: number | null;
  readonly peakReconnectsPerSecond: number;
  readonly budgetPerSecond: number;
  readonly withinBudget: boolean;
  /** Reconnects in the trailing second, every 100 ms from the action: [msSinceAction, count]. */
  readonly reconnectRate: [number, number][];
  /** Event-loop delay of the process running every client, from the action until all were back. */
  readonly loadGeneratorLagMs: { p50: number; p99: number; max: number };
  /** Stock populations: reconnects Socket.IO reported recovered, and those the application had to resync. */
  readonly stockRecovery?: { recovered: number; resynced: number };
  readonly failures: string[];
}

export interface ChaosReport {
  readonly generatedAt: string;
  readonly command: string;
  readonly size: ChaosSize;
  readonly target: string;
  readonly settings: SizeSettings;
  readonly durationMs: number;
  readonly scenarios: ScenarioResult[];
  readonly passed: boolean;
}

export interface RunChaosOptions {
  readonly size: ChaosSize;
  readonly target: ChaosTargetName;
  /** Where the JSON and SVG go; nothing is written when unset. */
  readonly outDir?: string;
  readonly command?: string;
  /** Budget for `--target kind` (the rate the chart's drain settings allow); local runs use the size's rate. */
  readonly budgetPerSecond?: number;
  readonly only?: readonly string[];
  /** Replaces the size's settings (the bench's smoke size); `size` then only names the run. */
  readonly settings?: SizeSettings;
  readonly log?: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runChaos(opts: RunChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const settings = opts.settings ?? SIZES[opts.size];
  const began = Date.now();
  log(`chaos: starting the ${opts.target} target (${opts.size} size)`);
  // CHAOS_POD_LOG=1 prints what the pods log about draining and exiting.
  const onPodOutput = process.env.CHAOS_POD_LOG
    ? (pod: string, line: string) => /drain|deadline|exit|shutting/.test(line) && log(`  ${pod}: ${line}`)
    : undefined;
  const target: ChaosTarget =
    opts.target === 'local'
      ? await localTarget({ replicas: settings.replicas, drain: settings.drain, ...(onPodOutput ? { onPodOutput } : {}) })
      : opts.target === 'node'
        ? await nodeTarget({ replicas: settings.replicas, drain: settings.drain, log })
        : await kindTarget();
  const budgetPerSecond = opts.budgetPerSecond ?? settings.reconnectBudgetPerSecond;
  const scenarios: ScenarioResult[] = [];
  try {
    log(`chaos: ${target.description}`);
    for (const spec of scenariosFor(opts.target)) {
      if (opts.only && !opts.only.includes(spec.name)) continue;
      const result = spec.action === 'rollout' || spec.action === 'restart-backplane'
        ? await runFleetDisruption(target, spec, settings, budgetPerSecond, log)
        : await runScenario(target, spec, settings, budgetPerSecond, opts.target, log);
      scenarios.push(result);
      log(summaryLine(result));
    }
  } finally {
    await target.close();
  }
  const report: ChaosReport = {
    generatedAt: new Date().toISOString(),
    command: opts.command ?? `node scripts/chaos/run.ts --size ${opts.size} --target ${opts.target}`,
    size: opts.size,
    target: target.description,
    settings,
    durationMs: Date.now() - began,
    scenarios,
    passed: scenarios.every((s) => s.failures.length === 0),
  };
  if (opts.outDir) {
    mkdirSync(opts.outDir, { recursive: true });
    // A run of the stock-client scenarios alone (test/chaos/stock-chaos.test.ts) keeps its own files.
    const stockOnly = scenarios.length > 0 && scenarios.every((s) => s.stockRecovery !== undefined);
    const base = join(opts.outDir, `chaos-${opts.size}-${opts.target}${stockOnly ? '-stock' : ''}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(`${base}.svg`, renderChart(report));
    log(`chaos: wrote ${base}.json and ${base}.svg`);
  }
  return report;
}

/** A fresh population on fresh rooms, connected, publishing, past its warm-up. */
async function loadedPopulation(target: ChaosTarget, spec: ScenarioSpec, settings: SizeSettings, log: (line: string) => void): Promise<Population> {
  await target.waitForReady(60_000);
  const population = new Population({
    url: target.url,
    clients: settings.clients,
    rooms: settings.rooms,
    roomsPerClient: settings.roomsPerClient,
    roomPrefix: `chaos-${spec.name}-${Date.now().toString(36)}`,
    streamPerRoomPerSecond: settings.streamPerRoomPerSecond,
    publisherShare: settings.publisherShare,
    publishEveryMs: settings.publishEveryMs,
    client: spec.client,
    kind: spec.population ?? 'sdk',
    connectRatePerSecond: 200,
    ...(target.getToken ? { getToken: target.getToken } : {}),
  });
  try {
    log(`chaos[${spec.name}]: connecting ${settings.clients} clients`);
    await population.connect();
    population.startTraffic();
    await sleep(settings.warmupMs);
    return population;
  } catch (error) {
    population.close();
    throw error;
  }
}

/** The timing fields of a result: reconnect latency and rate (every 100 ms from the action), peak, lag. */
function timings(o: {
  latencies: number[];
  backAts: number[];
  actionAt: number;
  peak: number;
  budgetPerSecond: number;
  lag: ReturnType<typeof monitorEventLoopDelay>;
}): Pick<ScenarioResult, 'reconnectLatencyMs' | 'movedWithinMs' | 'peakReconnectsPerSecond' | 'budgetPerSecond' | 'withinBudget' | 'reconnectRate' | 'loadGeneratorLagMs'> {
  const { latencies, backAts, actionAt, lag } = o;
  const end = backAts.length > 0 ? Math.max(...backAts) - actionAt + 1_500 : 1_000;
  const reconnectRate: [number, number][] = [];
  for (let t = 0; t <= end; t += 100) reconnectRate.push([t, backAts.filter((b) => b - actionAt > t - 1_000 && b - actionAt <= t).length]);
  return {
    reconnectLatencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.length ? Math.max(...latencies) : null },
    movedWithinMs: backAts.length ? Math.max(...backAts) - actionAt : null,
    peakReconnectsPerSecond: o.peak,
    budgetPerSecond: o.budgetPerSecond,
    withinBudget: o.peak <= o.budgetPerSecond,
    reconnectRate,
    loadGeneratorLagMs: { p50: Math.round(lag.percentile(50) / 1e6), p99: Math.round(lag.percentile(99) / 1e6), max: Math.round(lag.max / 1e6) },
  };
}

/** What the delivery check and the traffic counters say went wrong, in the report's words. */
function deliveryFailures(delivery: DeliveryReport, stats: { published: number; delivered: number }): string[] {
  const failures: string[] = [];
  if (delivery.lost > 0) failures.push(`${delivery.lost} messages lost (${delivery.examples.join('; ')})`);
  if (delivery.duplicates > 0) failures.push(`${delivery.duplicates} duplicates delivered to the application`);
  if (delivery.outOfOrder > 0 || delivery.unexpected > 0) failures.push(`${delivery.outOfOrder} out of order, ${delivery.unexpected} unexpected seqs`);
  if (stats.delivered === 0 || stats.published === 0) failures.push('no traffic flowed: nothing was published or delivered');
  return failures;
}

async function runScenario(
  target: ChaosTarget,
  spec: ScenarioSpec,
  settings: SizeSettings,
  budgetPerSecond: number,
  targetName: ChaosTargetName,
  log: (line: string) => void,
): Promise<ScenarioResult> {
  const population = await loadedPopulation(target, spec, settings, log);
  try {

    const running = new Set((await target.pods()).filter((p) => p.phase === 'Running').map((p) => p.name));
    const perPod = new Map<string, number>();
    for (const r of population.records) if (r.client.pod && running.has(r.client.pod)) perPod.set(r.client.pod, (perPod.get(r.client.pod) ?? 0) + 1);
    const [victim, victimClients] = [...perPod].sort((a, b) => b[1] - a[1])[0] ?? [];
    if (!victim) throw new Error(`no running pod holds a client; pods: ${[...running].join(', ')}`);
    const onVictim = new Set(population.records.filter((r) => r.client.pod === victim).map((r) => r.id));
    if (spec.plan) await target.setDrainPlan(victim, spec.plan);

    log(`chaos[${spec.name}]: ${spec.action} ${victim} (${victimClients} clients on it, ${JSON.stringify(Object.fromEntries(perPod))})`);
    // The load generator's own event-loop lag delays when its clients move and what they record.
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const actionAt = Date.now();
    const exit = spec.action === 'terminate' ? await target.terminate(victim) : await target.kill(victim);
    log(`chaos[${spec.name}]: ${victim} gone after ${exit.durationMs} ms (code=${exit.code} signal=${exit.signal}${exit.killedAfterGrace ? ', SIGKILL after grace' : ''})`);

    const failures: string[] = [];
    try {
      await population.waitAll('every client connected to a pod other than the victim', (r) => r.client.state === 'connected' && r.client.pod !== null && r.client.pod !== victim, 30_000);
    } catch (err) {
      failures.push((err as Error).message);
    }
    lag.disable();
    await target.waitForReady(60_000);
    await sleep(1_000);
    try {
      await population.quiesce();
    } catch (err) {
      failures.push((err as Error).message);
    }
    const delivery = population.checkDeliveries();

    const victimRecords = population.records.filter((r) => onVictim.has(r.id));
    const outagesAfter = (r: ClientRecord) => r.outages.filter((o) => o.lostAt >= actionAt - 5_000);
    const victimOutages = victimRecords.map((r) => outagesAfter(r)[0]).filter((o) => o !== undefined);
    const backAts = victimRecords.map((r) => r.connections.find((c) => c.at >= actionAt - 5_000 && c.pod !== victim)?.at).filter((t): t is number => t !== undefined);
    const latencies = victimOutages.filter((o) => o.backAt !== null).map((o) => o.backAt! - o.lostAt);
    const collateral = population.records.filter((r) => !onVictim.has(r.id) && outagesAfter(r).length > 0).length;
    const peak = peakInWindow(backAts, 1_000).peak;

    // CHAOS_DEBUG=DIR writes each moved client's timeline (hint, left, back, pods) for a closer look.
    if (process.env.CHAOS_DEBUG) {
      const rows = victimRecords.map((r) => ({
        id: r.id,
        t: r.transport,
        hintAt: r.hints.at(-1) ? r.hints.at(-1)!.at - actionAt : null,
        hint: r.hints.at(-1)?.reconnectAfterMs ?? null,
        lost: outagesAfter(r)[0] ? outagesAfter(r)[0]!.lostAt - actionAt : null,
        back: outagesAfter(r)[0]?.backAt ? outagesAfter(r)[0]!.backAt! - actionAt : null,
        errors: Object.fromEntries(r.errors),
        pods: r.connections.map((c) => `${c.pod}@${c.at - actionAt}`).join(' '),
      }));
      mkdirSync(process.env.CHAOS_DEBUG, { recursive: true });
      writeFileSync(join(process.env.CHAOS_DEBUG, `chaos-debug-${spec.name}.json`), JSON.stringify(rows.sort((a, b) => (a.hint ?? 0) - (b.hint ?? 0)), null, 1));
    }
    const reconnected = backAts.length;
    const stats = population.stats;
    failures.push(...deliveryFailures(delivery, stats));
    if (delivery.lateResets > 0) failures.push(`${delivery.lateResets} resets after the first join (history did not cover an outage)`);
    if (reconnected < victimRecords.length) failures.push(`${victimRecords.length - reconnected} of ${victimRecords.length} clients of ${victim} did not reconnect elsewhere`);
    if (spec.action === 'terminate' && targetName === 'local') {
      if (exit.code !== 0 || exit.killedAfterGrace) failures.push(`${victim} did not exit 0 by itself within the grace period: ${JSON.stringify(exit)}`);
    }
    if (spec.population === 'stock' && (stats.resynced ?? 0) > 0) failures.push(`${stats.resynced} stock-client reconnects were not recovered (the application had to resync)`);
    if (spec.expectPeak === 'within-budget' && peak > budgetPerSecond) failures.push(`peak reconnect rate ${peak}/s is over the budget of ${budgetPerSecond}/s`);
    if (spec.expectPeak === 'over-budget' && peak <= budgetPerSecond) {
      failures.push(`the contrast run did not show a storm (peak ${peak}/s within the budget ${budgetPerSecond}/s): the measurement cannot tell the runs apart`);
    }

    return {
      name: spec.name,
      description: spec.description,
      action: spec.action,
      victim,
      victimClients: victimClients!,
      clients: settings.clients,
      exit,
      delivery,
      published: stats.published,
      publishFailures: stats.publishFailures,
      delivered: stats.delivered,
      reconnected,
      notReconnected: victimRecords.length - reconnected,
      collateralReconnects: collateral,
      ...timings({ latencies, backAts, actionAt, peak, budgetPerSecond, lag }),
      ...(spec.population === 'stock' ? { stockRecovery: { recovered: stats.recovered ?? 0, resynced: stats.resynced ?? 0 } } : {}),
      failures,
    };
  } finally {
    population.close();
  }
}

/**
 * A disruption of the whole fleet rather than one pod: a rolling update replaces every gateway, a Redis
 * restart leaves the gateways up but without their backplane for a while. Every client is a "victim";
 * the same delivery checks apply (nothing lost, nothing duplicated), and every client must be connected
 * at the end — for a rolling update, to a pod that did not exist before.
 */
async function runFleetDisruption(
  target: ChaosTarget,
  spec: ScenarioSpec,
  settings: SizeSettings,
  budgetPerSecond: number,
  log: (line: string) => void,
): Promise<ScenarioResult> {
  const act = spec.action === 'rollout' ? target.rolloutRestart?.bind(target) : target.restartBackplane?.bind(target);
  if (!act) throw new Error(`the target cannot ${spec.action}: ${target.description}`);
  const population = await loadedPopulation(target, spec, settings, log);
  try {
    const before = new Set((await target.pods()).map((p) => p.name));
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const actionAt = Date.now();
    log(`chaos[${spec.name}]: ${spec.description}`);
    await act();
    const durationMs = Date.now() - actionAt;
    log(`chaos[${spec.name}]: done after ${durationMs} ms`);
    const failures: string[] = [];
    const settled = spec.action === 'rollout'
      ? (r: ClientRecord) => r.client.state === 'connected' && r.client.pod !== null && !before.has(r.client.pod)
      : (r: ClientRecord) => r.client.state === 'connected' && r.client.pod !== null;
    try {
      await population.waitAll(spec.action === 'rollout' ? 'every client on a new pod' : 'every client connected', settled, 60_000);
    } catch (err) {
      failures.push((err as Error).message);
    }
    lag.disable();
    await target.waitForReady(60_000);
    await sleep(1_000);
    try {
      await population.quiesce(60_000);
    } catch (err) {
      failures.push((err as Error).message);
    }
    const delivery = population.checkDeliveries();
    const outages = population.records.flatMap((r) => r.outages.filter((o) => o.lostAt >= actionAt - 5_000));
    const latencies = outages.filter((o) => o.backAt !== null).map((o) => o.backAt! - o.lostAt);
    const backAts = outages.map((o) => o.backAt).filter((t): t is number => t !== null);
    const peak = peakInWindow(backAts, 1_000).peak;
    const stats = population.stats;
    failures.push(...deliveryFailures(delivery, stats));
    const reconnectedClients = new Set(population.records.filter((r) => r.outages.some((o) => o.lostAt >= actionAt - 5_000 && o.backAt !== null)).map((r) => r.id)).size;
    return {
      name: spec.name,
      description: spec.description,
      action: spec.action,
      victim: spec.action === 'rollout' ? `every gateway pod (${before.size})` : 'the Redis pod',
      victimClients: settings.clients,
      clients: settings.clients,
      exit: { pod: spec.action === 'rollout' ? 'deployment' : 'redis', code: null, signal: null, killedAfterGrace: false, durationMs },
      delivery,
      published: stats.published,
      publishFailures: stats.publishFailures,
      delivered: stats.delivered,
      reconnected: reconnectedClients,
      notReconnected: population.records.filter((r) => !settled(r)).length,
      collateralReconnects: 0,
      ...timings({ latencies, backAts, actionAt, peak, budgetPerSecond, lag }),
      failures,
    };
  } finally {
    population.close();
  }
}

export function summaryLine(s: ScenarioResult): string {
  const lat = s.reconnectLatencyMs;
  return (
    `chaos[${s.name}]: ${s.failures.length === 0 ? 'PASS' : 'FAIL'} — lost ${s.delivery.lost}, duplicates ${s.delivery.duplicates}, ` +
    `reconnected ${s.reconnected}/${s.victimClients}, latency p50 ${lat.p50} ms p99 ${lat.p99} ms, ` +
    `peak ${s.peakReconnectsPerSecond}/s vs budget ${s.budgetPerSecond}/s, moved within ${s.movedWithinMs} ms, load-generator lag p99 ${s.loadGeneratorLagMs.p99} ms, ` +
    `${s.published} published, ${s.delivered} delivered${s.stockRecovery ? `, recovered ${s.stockRecovery.recovered} resynced ${s.stockRecovery.resynced}` : ''}${s.failures.length ? `\n  ${s.failures.join('\n  ')}` : ''}`
  );
}
