// Chaos, side by side: the gateway fleet and a vanilla Socket.IO fleet, each behind the local fleet's
// HAProxy (cookie stickiness, leastconn, /readyz checks) on a real redis-server, each losing one pod to
// SIGTERM and then one to SIGKILL under a numbered stream. Per contender and action: messages lost and
// duplicated (% of the deliveries owed), peak reconnects per second on the survivors, time until every
// client is back.
//
// The gateway's side is the chaos suite itself (scripts/chaos/chaos.ts, local target): its SIGTERM and
// SIGKILL scenarios with the stock socket.io-client (connection state recovery) and, at full size, with
// the SDK. The vanilla side runs bench/peers/socketio-fleet.ts in the same fleet tooling
// (scripts/fleet/fleet.ts with `main`), with stock clients measured the way the chaos suite measures its
// stock clients: half WebSocket, half long-polling, default options, joining their rooms on every
// connect; the publisher numbers its messages in the payload, which the vanilla app passes on unread.
import { fileURLToPath } from 'node:url';
import { io as connect, type Socket } from 'socket.io-client';
import { runChaos, type ScenarioResult, type SizeSettings } from '../scripts/chaos/chaos.ts';
import { checkDeliveries, peakInWindow } from '../scripts/chaos/measure.ts';
import { type LocalFleet, type PodExit, startLocalFleet } from '../scripts/fleet/fleet.ts';
import { alternate, round, sleep, summarize, type Summary } from './lib.ts';

export type ChaosAction = 'SIGTERM' | 'SIGKILL';
export type GatewayClients = 'sdk' | 'stock';

export const VANILLA = 'vanilla Socket.IO fleet, stock clients';
export const GATEWAY_CONTENDERS: Record<GatewayClients, string> = {
  stock: 'gateway, stock clients + recovery',
  sdk: 'gateway, SDK clients',
};
/** The chaos suite's scenarios that are this bench's SIGTERM and SIGKILL, per gateway client. */
const GATEWAY_SCENARIOS: Record<GatewayClients, Record<ChaosAction, string>> = {
  stock: { SIGTERM: 'stock-graceful', SIGKILL: 'stock-sigkill' },
  sdk: { SIGTERM: 'graceful', SIGKILL: 'sigkill' },
};

export interface ChaosBenchOptions {
  /** Fleet size, clients, rooms, stream and drain: the chaos suite's settings (scripts/chaos/chaos.ts SIZES). */
  readonly settings: SizeSettings;
  /** The chaos suite's size name the gateway's run is labelled with. */
  readonly size: 'ci' | 'full';
  readonly rounds: number;
  /** Which clients the gateway's scenarios use. */
  readonly gatewayClients: readonly GatewayClients[];
  readonly log: (line: string) => void;
  /** Called after each round with the figures so far, so a long run that is stopped keeps what it measured. */
  readonly onRound?: (report: ChaosBenchReport, roundsDone: number) => void;
}

export interface ChaosBenchReport {
  readonly results: ChaosContenderResult[];
  /** A side of a round that could not run (e.g. clients that could not all connect on a starved machine). */
  readonly errors: string[];
}

/** One contender, one action, one round. */
export interface ChaosRun {
  readonly contender: string;
  readonly action: ChaosAction;
  readonly round: number;
  readonly clients: number;
  /** Clients on the pod that was ended (for the vanilla fleet: those whose connection dropped). */
  readonly victimClients: number;
  /** Stream messages acknowledged to the publisher. */
  readonly published: number;
  readonly publishFailures: number;
  /** Deliveries owed: every client, every message of its rooms after its first join up to the final marker. */
  readonly owed: number;
  readonly delivered: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly lostPercent: number;
  readonly duplicatePercent: number;
  readonly lostPerMovedClient: number;
  /** SDK clients: rooms reset from a snapshot after the first join (history did not cover an outage): misses the SDK papered over. */
  readonly lateResets: number;
  /** The victim's clients connected again elsewhere, and those that were not within the wait. */
  readonly reconnected: number;
  readonly notBack: number;
  /** Reconnects of the victim's clients in the busiest second (when their `connect` fired, as the chaos suite counts). */
  readonly peakReconnectsPerSecond: number;
  /** From the signal until the last of the victim's clients connected again. */
  readonly allBackMs: number | null;
  readonly victimExit: { code: number | null; signal: string | null; durationMs: number };
  /**
   * Vanilla fleet: clients connected and back in their rooms (every join acknowledged) that still did not
   * receive a room's final message within the wait; their misses are in `lost` too.
   */
  readonly neverCaughtUp?: number;
  /** The part of `lost` that those clients missed (the rest is what clients missed while reconnecting). */
  readonly lostByNeverCaughtUp?: number;
  /** Stock clients on the gateway: reconnects Socket.IO reported recovered, and those resynced. */
  readonly recovery?: { recovered: number; resynced: number };
  /** What went wrong, in the chaos suite's words (the vanilla fleet's expected losses are not failures). */
  readonly failures: string[];
}

export interface ChaosContenderResult {
  readonly contender: string;
  readonly action: ChaosAction;
  readonly ours: boolean;
  readonly lostPercent: Summary;
  readonly duplicatePercent: Summary;
  readonly peakReconnectsPerSecond: Summary;
  /** Null when in some round not every client came back. */
  readonly allBackMs: Summary | null;
  readonly lost: number;
  readonly duplicates: number;
  readonly notBack: number;
  /** Summed over rounds: see ChaosRun.neverCaughtUp. */
  readonly neverCaughtUp: number;
  /** Loss without what never-caught-up clients missed: what the reconnect gap alone cost. */
  readonly lostPercentWhileReconnecting: Summary;
  readonly runs: ChaosRun[];
}

const percent = (part: number, whole: number): number => (whole === 0 ? 0 : round((100 * part) / whole, 3));

/** What the chaos suite reports for one scenario, in this bench's terms. */
function fromScenario(s: ScenarioResult, contender: string, action: ChaosAction, roundIndex: number): ChaosRun {
  const { lost, duplicates, unexpected } = s.delivery;
  const owed = s.delivered - duplicates - unexpected + lost;
  return {
    contender,
    action,
    round: roundIndex,
    clients: s.clients,
    victimClients: s.victimClients,
    published: s.published,
    publishFailures: s.publishFailures,
    owed,
    delivered: s.delivered,
    lost,
    duplicates,
    lostPercent: percent(lost, owed),
    duplicatePercent: percent(duplicates, owed),
    lostPerMovedClient: s.victimClients === 0 ? 0 : round(lost / s.victimClients, 2),
    lateResets: s.delivery.lateResets,
    reconnected: s.reconnected,
    notBack: s.notReconnected,
    peakReconnectsPerSecond: s.peakReconnectsPerSecond,
    allBackMs: s.movedWithinMs,
    victimExit: { code: s.exit.code, signal: s.exit.signal, durationMs: s.exit.durationMs },
    ...(s.stockRecovery ? { recovery: s.stockRecovery } : {}),
    failures: s.failures,
  };
}

/**
 * Each scenario on a fleet of its own (the suite starts one per call): one that cannot run — on a starved
 * machine 1000 clients do not always connect within the suite's 60 s — is recorded and the others still run.
 */
async function runGateway(opts: ChaosBenchOptions, roundIndex: number, errors: string[]): Promise<ChaosRun[]> {
  const runs: ChaosRun[] = [];
  for (const kind of opts.gatewayClients) {
    for (const action of ['SIGTERM', 'SIGKILL'] as const) {
      const scenario = GATEWAY_SCENARIOS[kind][action];
      try {
        const report = await runChaos({ size: opts.size, target: 'local', settings: opts.settings, only: [scenario], log: (line) => opts.log(`  ${line}`) });
        const s = report.scenarios.find((r) => r.name === scenario);
        if (!s) throw new Error(`the chaos suite did not run ${scenario}`);
        runs.push(fromScenario(s, GATEWAY_CONTENDERS[kind], action, roundIndex));
      } catch (err) {
        errors.push(`round ${roundIndex + 1}, ${GATEWAY_CONTENDERS[kind]}, ${action} (${scenario}): ${(err as Error).message}`);
        opts.log(`chaos: ${GATEWAY_CONTENDERS[kind]}, ${action} could not run: ${(err as Error).message}`);
      }
    }
  }
  return runs;
}

/** A stock socket.io-client, default options, that joins its rooms on every connect and counts what it shows. */
interface VanillaClient {
  readonly socket: Socket;
  readonly rooms: readonly string[];
  readonly delivered: Map<string, number[]>;
  readonly connects: number[];
  readonly disconnects: number[];
  /** When every room's join was acknowledged after the latest connect; null while rejoining. */
  joinedAt: number | null;
}

function startVanillaClient(url: string, transport: 'websocket' | 'polling', rooms: readonly string[]): VanillaClient {
  // Node only: withCredentials sends HAProxy's sticky cookie, which long-polling needs (a browser does it by itself).
  const socket = connect(url, { transports: [transport], withCredentials: true, forceNew: true });
  const client: VanillaClient = { socket, rooms, delivered: new Map(rooms.map((room) => [room, []])), connects: [], disconnects: [], joinedAt: null };
  socket.on('connect', () => {
    const connectedAt = Date.now();
    client.connects.push(connectedAt);
    client.joinedAt = null;
    let pending = rooms.length;
    for (const room of rooms) {
      socket.emit('join', room, () => {
        pending -= 1;
        if (pending === 0 && client.connects.at(-1) === connectedAt) client.joinedAt = Date.now();
      });
    }
  });
  socket.on('disconnect', () => {
    client.disconnects.push(Date.now());
    client.joinedAt = null;
  });
  socket.on('message', (m: { room: string; n: number }) => client.delivered.get(m.room)?.push(m.n));
  return client;
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return `timed out after ${timeoutMs} ms waiting for ${what}`;
    await sleep(100);
  }
  return null;
}

async function vanillaScenario(fleet: LocalFleet, settings: SizeSettings, action: ChaosAction, roundIndex: number, log: (line: string) => void): Promise<ChaosRun> {
  await fleet.waitForReady(60_000);
  const prefix = `vanilla-${action}-${Date.now().toString(36)}`;
  const roomNames = Array.from({ length: settings.rooms }, (_, i) => `${prefix}-${i}`);
  const clients: VanillaClient[] = [];
  let publisher: Socket | null = null;
  let stream: NodeJS.Timeout | null = null;
  const failures: string[] = [];
  try {
    log(`  vanilla[${action}]: connecting ${settings.clients} clients`);
    for (let i = 0; i < settings.clients; i += 1) {
      // The chaos suite's population: the same rooms per client, half WebSocket, half long-polling, 200 handshakes/s.
      const rooms = [...new Set(Array.from({ length: settings.roomsPerClient }, (_, k) => roomNames[(i + k * 7) % roomNames.length]!))];
      clients.push(startVanillaClient(fleet.url, i % 2 === 0 ? 'websocket' : 'polling', rooms));
      if ((i + 1) % 20 === 0) await sleep(100);
    }
    const joined = await waitUntil('every client connected and joined', () => clients.every((c) => c.socket.connected && c.joinedAt !== null), 60_000);
    if (joined) throw new Error(`vanilla fleet: ${joined}`);

    // The publisher talks to a pod that stays, so what is lost is what the subscribers missed.
    const running = (await fleet.pods()).filter((p) => p.phase === 'Running').map((p) => p.name);
    const [victim, publisherPod] = running;
    if (!victim || !publisherPod) throw new Error(`vanilla fleet: fewer than 2 running pods (${running.join(', ')})`);
    publisher = connect(fleet.podUrl(publisherPod), { transports: ['websocket'], forceNew: true });
    await new Promise<void>((resolve, reject) => publisher!.once('connect', resolve).once('connect_error', reject));
    const next = new Map(roomNames.map((room) => [room, 0]));
    const acked = new Map(roomNames.map((room) => [room, 0]));
    let published = 0;
    let publishFailures = 0;
    const inFlight = new Set<Promise<void>>();
    const send = (room: string, n: number): Promise<void> => {
      const p = publisher!
        .timeout(10_000)
        .emitWithAck('send', { room, n, text: `stream ${n}` })
        .then(
          () => {
            published += 1;
            acked.set(room, Math.max(acked.get(room)!, n));
          },
          () => void (publishFailures += 1),
        );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      return p;
    };
    stream = setInterval(() => {
      for (const room of roomNames) {
        next.set(room, next.get(room)! + 1);
        void send(room, next.get(room)!);
      }
    }, 1_000 / settings.streamPerRoomPerSecond);
    await sleep(settings.warmupMs);

    const perClientBefore = clients.map((c) => c.disconnects.length);
    log(`  vanilla[${action}]: ${action} ${victim} (pods ${running.join(', ')})`);
    const actionAt = Date.now();
    const exit: PodExit = action === 'SIGTERM' ? await fleet.terminate(victim) : await fleet.kill(victim);
    log(`  vanilla[${action}]: ${victim} gone after ${exit.durationMs} ms (code=${exit.code} signal=${exit.signal})`);
    const back = await waitUntil('every client connected and back in its rooms', () => clients.every((c) => c.socket.connected && c.joinedAt !== null), 30_000);
    if (back) failures.push(back);
    await fleet.waitForReady(60_000);
    await sleep(1_000);

    clearInterval(stream);
    stream = null;
    await Promise.allSettled([...inFlight]);
    // One final message per room, so every client's count ends at a number it must have.
    await Promise.all(roomNames.map((room) => send(room, next.get(room)! + 1)));
    const finals = new Map(roomNames.map((room) => [room, next.get(room)! + 1]));
    const behind = (c: VanillaClient): boolean => c.rooms.some((room) => !c.delivered.get(room)!.includes(finals.get(room)!));
    const caughtUp = await waitUntil('every client to receive the final message of each room', () => !clients.some(behind), 10_000);
    const short = clients.filter(behind);
    if (caughtUp) {
      const sample = short.slice(0, 3).map((c) => `${c.socket.io.opts.transports![0]} connected=${c.socket.connected} connects=${c.connects.length} disconnects=${c.disconnects.length} last=${c.rooms.map((room) => `${c.delivered.get(room)!.at(-1) ?? 0}/${finals.get(room)}`).join(',')}`);
      failures.push(`${caughtUp}: ${short.length} clients short, e.g. ${sample.join('; ')}`);
    }
    if (publishFailures > 0) failures.push(`${publishFailures} stream messages were not acknowledged`);

    let lost = 0;
    let lostByNeverCaughtUp = 0;
    let duplicates = 0;
    let owed = 0;
    let delivered = 0;
    const neverCaughtUp = new Set(short.filter((c) => c.socket.connected && c.joinedAt !== null));
    for (const client of clients) {
      for (const room of client.rooms) {
        const seen = client.delivered.get(room)!;
        const check = checkDeliveries({ joinedAt: 0, delivered: seen }, finals.get(room)!);
        lost += check.lost;
        if (neverCaughtUp.has(client)) lostByNeverCaughtUp += check.lost;
        duplicates += check.duplicates;
        owed += finals.get(room)!;
        delivered += seen.length;
      }
    }
    const moved = clients.filter((c, i) => c.disconnects.length > perClientBefore[i]!);
    const backAts = moved.map((c) => c.connects.find((t) => t >= actionAt)).filter((t): t is number => t !== undefined);
    const run: ChaosRun = {
      contender: VANILLA,
      action,
      round: roundIndex,
      clients: clients.length,
      victimClients: moved.length,
      published,
      publishFailures,
      owed,
      delivered,
      lost,
      duplicates,
      lostPercent: percent(lost, owed),
      duplicatePercent: percent(duplicates, owed),
      lostPerMovedClient: moved.length === 0 ? 0 : round(lost / moved.length, 2),
      lateResets: 0,
      reconnected: backAts.length,
      notBack: moved.length - backAts.length,
      peakReconnectsPerSecond: peakInWindow(backAts, 1_000).peak,
      allBackMs: backAts.length === moved.length && backAts.length > 0 ? Math.max(...backAts) - actionAt : null,
      victimExit: { code: exit.code, signal: exit.signal, durationMs: exit.durationMs },
      neverCaughtUp: neverCaughtUp.size,
      lostByNeverCaughtUp,
      failures,
    };
    return run;
  } finally {
    if (stream) clearInterval(stream);
    publisher?.disconnect();
    for (const client of clients) client.socket.disconnect();
  }
}

async function runVanilla(opts: ChaosBenchOptions, roundIndex: number): Promise<ChaosRun[]> {
  const s = opts.settings;
  opts.log(`  vanilla: starting ${s.replicas} Socket.IO processes on redis-server behind HAProxy`);
  const [fleet, stopFleet] = await startLocalFleet({
    replicas: s.replicas,
    graceMs: s.drain.graceMs,
    // The chaos suite's edge for the gateway (scripts/chaos/targets.ts localTarget): cookie stickiness, leastconn.
    balance: 'leastconn',
    main: fileURLToPath(new URL('./peers/socketio-fleet.ts', import.meta.url)),
    podPrefix: 'sio',
  });
  try {
    const runs: ChaosRun[] = [];
    for (const action of ['SIGTERM', 'SIGKILL'] as const) runs.push(await vanillaScenario(fleet, s, action, roundIndex, opts.log));
    return runs;
  } finally {
    await stopFleet();
  }
}

export function runLine(r: ChaosRun): string {
  return (
    `${r.contender}, ${r.action}: lost ${r.lost} (${r.lostPercent} % of ${r.owed} owed), duplicates ${r.duplicates}${r.lateResets ? `, late resets ${r.lateResets}` : ''}, ` +
    `${r.reconnected}/${r.victimClients} moved clients back${r.allBackMs === null ? '' : ` within ${(r.allBackMs / 1000).toFixed(1)} s`}, peak ${r.peakReconnectsPerSecond}/s` +
    `${r.neverCaughtUp ? `, ${r.neverCaughtUp} back in their rooms but never caught up (${r.lostByNeverCaughtUp} of the lost)` : ''}${r.recovery ? `, recovered ${r.recovery.recovered} resynced ${r.recovery.resynced}` : ''}${r.failures.length ? ` — ${r.failures.join('; ')}` : ''}`
  );
}

export async function runChaosBench(opts: ChaosBenchOptions): Promise<ChaosBenchReport> {
  const runs: ChaosRun[] = [];
  const errors: string[] = [];
  const sides = [
    { name: 'gateway', run: (r: number) => runGateway(opts, r, errors) },
    { name: 'vanilla', run: (r: number) => runVanilla(opts, r) },
  ];
  const order = [...opts.gatewayClients.map((kind) => GATEWAY_CONTENDERS[kind]), VANILLA];
  for (let r = 0; r < opts.rounds; r += 1) {
    for (const side of alternate(sides, r)) {
      opts.log(`chaos: round ${r + 1}/${opts.rounds}, ${side.name}`);
      try {
        const these = await side.run(r);
        for (const run of these) opts.log(`chaos: ${runLine(run)}`);
        runs.push(...these);
      } catch (err) {
        // Recorded and reported: the other side and the next rounds still run.
        errors.push(`round ${r + 1}, ${side.name}: ${(err as Error).message}`);
        opts.log(`chaos: round ${r + 1}, ${side.name} could not run: ${(err as Error).message}`);
      }
    }
    opts.onRound?.({ results: aggregate(runs, order), errors }, r + 1);
  }
  return { results: aggregate(runs, order), errors };
}

/** Medians and spread over the rounds, per contender and action (those that ran at least once). */
function aggregate(runs: readonly ChaosRun[], order: readonly string[]): ChaosContenderResult[] {
  return order.flatMap((contender) =>
    (['SIGTERM', 'SIGKILL'] as const).flatMap((action) => {
      const mine = runs.filter((r) => r.contender === contender && r.action === action);
      if (mine.length === 0) return [];
      const backs = mine.map((r) => r.allBackMs);
      return [{
        contender,
        action,
        ours: contender !== VANILLA,
        lostPercent: summarize(mine.map((r) => r.lostPercent)),
        duplicatePercent: summarize(mine.map((r) => r.duplicatePercent)),
        peakReconnectsPerSecond: summarize(mine.map((r) => r.peakReconnectsPerSecond)),
        allBackMs: backs.every((b) => b !== null) ? summarize(backs as number[]) : null,
        lost: mine.reduce((sum, r) => sum + r.lost, 0),
        duplicates: mine.reduce((sum, r) => sum + r.duplicates, 0),
        notBack: mine.reduce((sum, r) => sum + r.notBack, 0),
        neverCaughtUp: mine.reduce((sum, r) => sum + (r.neverCaughtUp ?? 0), 0),
        lostPercentWhileReconnecting: summarize(mine.map((r) => percent(r.lost - (r.lostByNeverCaughtUp ?? 0), r.owed))),
        runs: mine,
      }];
    }),
  );
}
