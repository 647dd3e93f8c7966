// The drain of a pod holding SOCKETS sockets: three gateways on one Redis, every client on the victim
// (bench/drain-clients.ts, its own process), a publisher streaming into the clients' rooms through a
// survivor. SIGTERM to the victim starts its paced drain (DRAIN_WINDOW_MS); the clients move to the
// survivors as hinted. Reported: peak reconnects per second on the survivors (sliding 1 s) against the
// budget, time from SIGTERM until every client is back, and what was lost (gaps, late resets, seqs
// never reached) — which must be nothing.
import { type ChildProcess, fork } from 'node:child_process';
import { io as connect, type Socket } from 'socket.io-client';
import { startGateway } from '../scripts/fleet/gateway.ts';
import { waitFor } from '../scripts/fleet/ports.ts';
import { peakInWindow } from '../scripts/chaos/measure.ts';
import { GATEWAY_BENCH_ENV } from './idle.ts';
import { sleep, stopChild } from './lib.ts';

export interface DrainOptions {
  readonly sockets: number;
  readonly survivors: number;
  readonly windowMs: number;
  readonly budgetPerSecond: number;
  /** Processes the clients are spread over. */
  readonly clientProcesses: number;
  /** Messages published across the drain, spread over the clients' rooms. */
  readonly messages: number;
  readonly redisUrl: string;
  readonly log: (line: string) => void;
}

export interface DrainResult {
  readonly contender: string;
  readonly ours: boolean;
  readonly sockets: number;
  readonly joined: number;
  readonly backOnSurvivors: number;
  readonly budgetPerSecond: number;
  /** Handshakes the survivors accepted in the busiest second (their rt_connections_total, polled every 250 ms). */
  readonly peakReconnectsPerSecond: number;
  /** Clients leaving the victim in the busiest second: the pace the drain's hints set. */
  readonly peakMovesPerSecond: number;
  /** Rejoins completed in the busiest second as the clients' process saw them (bunched when it is starved). */
  readonly peakRejoinsSeenPerSecond: number;
  /** From SIGTERM until the last client rejoined its room on a survivor. */
  readonly drainMs: number;
  readonly victimExit: { code: number | null; signal: string | null; afterMs: number };
  readonly published: number;
  /** Seqs a client skipped: must be 0. */
  readonly lost: number;
  /** Clients that never reached their room's final seq (not back in time): must be 0. */
  readonly behind: number;
  readonly duplicates: number;
  readonly lateResets: number;
  readonly clientProcesses: number;
  /** Most open descriptors in one client process. */
  readonly clientFds: number;
}

const ROOMS = 100;
const NOTICE_MS = 500;

function ask<T>(child: ChildProcess, message: object, reply: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', listener);
      reject(new Error(`drain clients did not answer ${reply} in ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (m: { cmd: string }): void => {
      if (m.cmd !== reply) return;
      clearTimeout(timer);
      child.off('message', listener);
      resolve(m as T);
    };
    child.on('message', listener);
    child.send(message);
  });
}

/** Polls the survivors' accepted-connection counters every 250 ms: [epoch ms, total] samples. */
function acceptSampler(metricsUrls: readonly string[]): { stop(): Promise<[number, number][]> } {
  const samples: [number, number][] = [];
  let running = true;
  const poll = (async () => {
    while (running) {
      const at = Date.now();
      const totals = await Promise.all(
        metricsUrls.map(async (url) => {
          const text = await (await fetch(url)).text();
          return text
            .split('\n')
            .filter((line) => line.startsWith('rt_connections_total{'))
            .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
        }),
      ).catch(() => null);
      if (totals) samples.push([at, totals.reduce((a, b) => a + b, 0)]);
      await sleep(250);
    }
  })();
  return {
    async stop() {
      running = false;
      await poll;
      return samples;
    },
  };
}

/** The most a cumulative counter grew within any 1 s between samples. */
function peakFromCumulative(samples: readonly [number, number][]): number {
  let peak = 0;
  for (let i = 0; i < samples.length; i += 1) {
    for (let j = i + 1; j < samples.length && samples[j]![0] - samples[i]![0] <= 1_000; j += 1) peak = Math.max(peak, samples[j]![1] - samples[i]![1]);
  }
  return peak;
}

export async function runDrain(opts: DrainOptions): Promise<DrainResult[]> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const env = {
      ...GATEWAY_BENCH_ENV,
      ADAPTER: 'redis',
      REDIS_URL: opts.redisUrl,
      KEY_PREFIX: `drain${process.pid}`,
      DRAIN_NOTICE_DELAY_MS: String(NOTICE_MS),
      DRAIN_WINDOW_MS: String(opts.windowMs),
      DRAIN_JITTER_MS: String(opts.windowMs),
      SHUTDOWN_DEADLINE_MS: String(NOTICE_MS + opts.windowMs + 10_000),
    };
    const survivors: string[] = [];
    const survivorMetrics: string[] = [];
    for (let i = 0; i < opts.survivors; i += 1) {
      const [gateway, stop] = await startGateway({ env });
      cleanups.push(stop);
      survivors.push(gateway.url);
      survivorMetrics.push(`${gateway.internalUrl}/metrics`);
    }
    const [victim, stopVictim] = await startGateway({ env });
    cleanups.push(stopVictim);

    // Clients are split over several processes, so each event loop fires its hint timers on time.
    const clients: ChildProcess[] = [];
    for (let i = 0; i < opts.clientProcesses; i += 1) {
      const child = fork(new URL('./drain-clients.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      cleanups.push(() => stopChild(child));
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) => reject(new Error(`bench/drain-clients.ts exited with ${code}`)));
      });
      clients.push(child);
    }
    const askAll = <T>(message: (i: number) => object, reply: string, timeoutMs: number): Promise<T[]> =>
      Promise.all(clients.map((child, i) => ask<T>(child, message(i), reply, timeoutMs)));
    const shares = clients.map((_, i) => Math.floor(opts.sockets / clients.length) + (i < opts.sockets % clients.length ? 1 : 0));
    const connectedEach = await askAll<{ joined: number; failed: number; firstError: string | null; fds: number }>(
      (i) => ({ cmd: 'connect', url: victim.url, survivors, count: shares[i], rooms: ROOMS, concurrency: Math.max(5, Math.ceil(25 / clients.length)) }),
      'connected',
      60_000 + opts.sockets * 20,
    );
    const connected = {
      joined: connectedEach.reduce((sum, c) => sum + c.joined, 0),
      failed: connectedEach.reduce((sum, c) => sum + c.failed, 0),
      firstError: connectedEach.find((c) => c.firstError)?.firstError ?? null,
      fds: Math.max(...connectedEach.map((c) => c.fds)),
    };
    opts.log(`drain: ${connected.joined}/${opts.sockets} clients joined on the victim (${connected.failed} failed${connected.firstError ? `: ${connected.firstError}` : ''})`);

    const publisher: Socket = connect(survivors[0]!, { transports: ['websocket'], forceNew: true, auth: { userId: 'drain-publisher' } });
    await new Promise<void>((resolve, reject) => publisher.once('connect', resolve).once('connect_error', reject));
    const finalSeqs: Record<string, number> = {};
    let published = 0;
    const publishing = (async () => {
      const every = (NOTICE_MS + opts.windowMs) / opts.messages;
      for (let i = 0; i < opts.messages; i += 1) {
        const room = `chat:drain-${i % ROOMS}`;
        const ack = (await publisher.emitWithAck('chat:send', { room, text: `m${i}` })) as { ok: boolean; seq: number };
        if (ack.ok) {
          published += 1;
          finalSeqs[room] = Math.max(finalSeqs[room] ?? 0, ack.seq);
        }
        await sleep(every);
      }
    })();

    const accepts = acceptSampler(survivorMetrics);
    const sigtermAt = performance.now() + performance.timeOrigin;
    const victimExit = victim.stop('SIGTERM').then((exit) => ({ ...exit, afterMs: Math.round(performance.now() + performance.timeOrigin - sigtermAt) }));
    let lastLog = 0;
    await waitFor(
      'every client back on a survivor',
      async () => {
        // A busy client process answers late; a late answer is a skipped poll, not a failure.
        const status = { onSurvivors: (await askAll<{ onSurvivors: number }>(() => ({ cmd: 'status' }), 'status', 30_000)).reduce((sum, s) => sum + s.onSurvivors, 0) };
        if (Date.now() - lastLog > 2_000) {
          lastLog = Date.now();
          opts.log(`drain: ${status.onSurvivors}/${connected.joined} on survivors`);
        }
        return status.onSurvivors >= connected.joined;
      },
      opts.windowMs + 120_000,
      250,
    ).catch((err: unknown) => opts.log(`drain: ${(err as Error).message}`));
    await publishing;
    const exit = await victimExit;
    const acceptSamples = accepts.stop();
    publisher.disconnect();
    // Let the last live envelopes arrive before the clients check their seqs.
    await waitFor(
      'every room caught up',
      async () => {
        const each = await askAll<{ lastSeqs: Record<string, number> }>(() => ({ cmd: 'status' }), 'status', 10_000);
        return Object.entries(finalSeqs).every(([room, seq]) => each.every((status) => (status.lastSeqs[room] ?? Infinity) >= seq));
      },
      15_000,
      200,
    ).catch(() => undefined);
    type Report = { onSurvivors: number; reconnectTimes: number[]; moveStarts: number[]; lost: number; behind: number; duplicates: number; lateResets: number; fds: number };
    const reports = await askAll<Report>(() => ({ cmd: 'report', finalSeqs }), 'report', 30_000);
    const sum = (key: 'onSurvivors' | 'lost' | 'behind' | 'duplicates' | 'lateResets'): number => reports.reduce((total, r) => total + r[key], 0);
    const report = {
      onSurvivors: sum('onSurvivors'),
      reconnectTimes: reports.flatMap((r) => r.reconnectTimes),
      moveStarts: reports.flatMap((r) => r.moveStarts),
      lost: sum('lost'),
      behind: sum('behind'),
      duplicates: sum('duplicates'),
      lateResets: sum('lateResets'),
      fds: Math.max(...reports.map((r) => r.fds)),
    };
    const lastBack = report.reconnectTimes.length > 0 ? Math.max(...report.reconnectTimes) : sigtermAt;
    const result: DrainResult = {
      contender: 'gateway (paced drain, hinted clients)',
      ours: true,
      sockets: opts.sockets,
      joined: connected.joined,
      backOnSurvivors: report.onSurvivors,
      budgetPerSecond: opts.budgetPerSecond,
      peakReconnectsPerSecond: peakFromCumulative(await acceptSamples),
      peakMovesPerSecond: peakInWindow(report.moveStarts).peak,
      peakRejoinsSeenPerSecond: peakInWindow(report.reconnectTimes).peak,
      drainMs: Math.round(lastBack - sigtermAt),
      victimExit: { code: exit.code, signal: exit.signal, afterMs: exit.afterMs },
      published,
      lost: report.lost,
      behind: report.behind,
      duplicates: report.duplicates,
      lateResets: report.lateResets,
      clientProcesses: clients.length,
      clientFds: Math.max(connected.fds, report.fds),
    };
    opts.log(
      `drain: ${result.backOnSurvivors}/${result.joined} back in ${(result.drainMs / 1000).toFixed(1)} s, peak ${result.peakReconnectsPerSecond} handshakes/s on the survivors (budget ${opts.budgetPerSecond}/s; clients leaving ${result.peakMovesPerSecond}/s, rejoins seen ${result.peakRejoinsSeenPerSecond}/s), ` +
        `victim exit ${exit.code ?? exit.signal} after ${(exit.afterMs / 1000).toFixed(1)} s, published ${published}, lost ${result.lost}, behind ${result.behind}, duplicates ${result.duplicates}, late resets ${result.lateResets}`,
    );
    return [result];
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}
