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
  readonly peakReconnectsPerSecond: number;
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
    for (let i = 0; i < opts.survivors; i += 1) {
      const [gateway, stop] = await startGateway({ env });
      cleanups.push(stop);
      survivors.push(gateway.url);
    }
    const [victim, stopVictim] = await startGateway({ env });
    cleanups.push(stopVictim);

    const clients = fork(new URL('./drain-clients.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    cleanups.push(() => stopChild(clients));
    await new Promise<void>((resolve, reject) => {
      clients.once('message', () => resolve());
      clients.once('exit', (code) => reject(new Error(`bench/drain-clients.ts exited with ${code}`)));
    });
    const connected = await ask<{ joined: number; failed: number; firstError: string | null; fds: number }>(
      clients,
      { cmd: 'connect', url: victim.url, survivors, count: opts.sockets, rooms: ROOMS, concurrency: 25 },
      'connected',
      60_000 + opts.sockets * 20,
    );
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

    const sigtermAt = performance.now() + performance.timeOrigin;
    const victimExit = victim.stop('SIGTERM').then((exit) => ({ ...exit, afterMs: Math.round(performance.now() + performance.timeOrigin - sigtermAt) }));
    let lastLog = 0;
    await waitFor(
      'every client back on a survivor',
      async () => {
        // A busy client process answers late; a late answer is a skipped poll, not a failure.
        const status = await ask<{ onSurvivors: number }>(clients, { cmd: 'status' }, 'status', 30_000);
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
    publisher.disconnect();
    // Let the last live envelopes arrive before the clients check their seqs.
    await waitFor(
      'every room caught up',
      async () => {
        const status = await ask<{ lastSeqs: Record<string, number> }>(clients, { cmd: 'status' }, 'status', 10_000);
        return Object.entries(finalSeqs).every(([room, seq]) => (status.lastSeqs[room] ?? -1) >= seq);
      },
      15_000,
      200,
    ).catch(() => undefined);
    const report = await ask<{ onSurvivors: number; reconnectTimes: number[]; lost: number; behind: number; duplicates: number; lateResets: number; fds: number }>(
      clients,
      { cmd: 'report', finalSeqs },
      'report',
      30_000,
    );
    const lastBack = report.reconnectTimes.length > 0 ? Math.max(...report.reconnectTimes) : sigtermAt;
    const result: DrainResult = {
      contender: 'gateway (paced drain, hinted clients)',
      ours: true,
      sockets: opts.sockets,
      joined: connected.joined,
      backOnSurvivors: report.onSurvivors,
      budgetPerSecond: opts.budgetPerSecond,
      peakReconnectsPerSecond: peakInWindow(report.reconnectTimes).peak,
      drainMs: Math.round(lastBack - sigtermAt),
      victimExit: { code: exit.code, signal: exit.signal, afterMs: exit.afterMs },
      published,
      lost: report.lost,
      behind: report.behind,
      duplicates: report.duplicates,
      lateResets: report.lateResets,
      clientFds: Math.max(connected.fds, report.fds),
    };
    opts.log(
      `drain: ${result.backOnSurvivors}/${result.joined} back in ${(result.drainMs / 1000).toFixed(1)} s, peak ${result.peakReconnectsPerSecond}/s (budget ${opts.budgetPerSecond}/s), ` +
        `victim exit ${exit.code ?? exit.signal} after ${(exit.afterMs / 1000).toFixed(1)} s, published ${published}, lost ${result.lost}, behind ${result.behind}, duplicates ${result.duplicates}, late resets ${result.lateResets}`,
    );
    return [result];
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}
