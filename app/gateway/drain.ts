import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'socket.io';
import { controlEnvelope, ProtocolError } from '../protocol/index.ts';
import type { DrainPlan } from '../protocol/drain-plan.ts';
import type { Gateway } from './gateway.ts';
import { formatSse } from './sse.ts';
import { AdmissionRefusal } from './limits.ts';

/**
 * Graceful drain (contract 3 of DESIGN.md, docs/drain.md):
 *
 *   serving ──start()──► notice ──DRAIN_NOTICE_DELAY_MS──► closing ──empty──► drained
 *             readiness fails       still serving,           handshakes and SSE requests refused,
 *             at once               the edge notices         every socket and SSE stream gets
 *                                                            `server:draining`, paced closes
 *
 * Started by SIGTERM (main.ts, with a hard deadline) or by `POST /admin/drain` (no deadline; the
 * process stays up, empty and not ready, until the pod is deleted).
 */
export type DrainPhase = 'serving' | 'notice' | 'closing' | 'drained';
export type DrainTrigger = 'SIGTERM' | 'admin';

export interface DrainSettings {
  /** Closes per second; > 0 wins over `windowMs`. */
  readonly ratePerSecond: number;
  readonly windowMs: number;
  readonly jitterMs: number;
}

/** One socket's place in the drain: its hint and when the gateway closes it, both from the start of `closing`. */
export interface DrainSlot {
  readonly hintMs: number;
  readonly closeAtMs: number;
}

export interface DrainSchedule {
  readonly sockets: number;
  /** Closes are spread over [0, windowMs]. */
  readonly windowMs: number;
  /** Hints are spread over [0, jitterMs) — at most the window. */
  readonly jitterMs: number;
  readonly ratePerSecond: number;
  readonly source: 'plan' | 'config';
  /** In close order. */
  readonly slots: readonly DrainSlot[];
}

/**
 * Plans the paced phase for `sockets` sockets. Pure: no clock, no randomness (the caller shuffles).
 *
 * Slot i gets the hint `i · jitter / n` and is closed at `(i + 1) · window / n`: hints sit on an even
 * grid, so clients that honour them arrive at survivors at exactly `n / jitter` per second, and the
 * gateway's close (the backstop for clients that ignore the hint) comes at or after the hint of the
 * same slot. Dealing the slots to sockets in random order is what makes each socket's hint a random
 * draw from [0, jitter). `budgetMs` (time left before the shutdown deadline) shortens the window.
 *
 * `elapsedMs` is how long the closing phase has run (a re-plan mid-drain): a window counts from the
 * start of the closing phase, so re-reading the same plan never stretches the drain; a rate applies
 * to the sockets left, from now.
 */
export function scheduleDrain(
  sockets: number,
  settings: DrainSettings,
  plan: DrainPlan | null,
  budgetMs: number = Infinity,
  elapsedMs: number = 0,
): DrainSchedule {
  const rate = plan?.ratePerSecond ?? (plan?.windowMs ? 0 : settings.ratePerSecond);
  let windowMs = rate > 0 ? Math.ceil((sockets / rate) * 1000) : (plan?.windowMs ?? settings.windowMs) - Math.max(0, elapsedMs);
  windowMs = Math.max(0, Math.min(windowMs, Math.floor(budgetMs)));
  const jitterMs = Math.min(plan?.jitterMs ?? settings.jitterMs, windowMs);
  const slots: DrainSlot[] = [];
  for (let i = 0; i < sockets; i += 1) {
    slots.push({ hintMs: Math.floor((i * jitterMs) / sockets), closeAtMs: Math.ceil(((i + 1) * windowMs) / sockets) });
  }
  return {
    sockets,
    windowMs,
    jitterMs,
    ratePerSecond: windowMs > 0 ? (sockets * 1000) / windowMs : sockets > 0 ? Infinity : 0,
    source: plan ? 'plan' : 'config',
    slots,
  };
}

export interface DrainStatus {
  readonly pod: string;
  readonly phase: DrainPhase;
  readonly trigger: DrainTrigger | null;
  readonly startedAt: number | null;
  /** Epoch ms by which the process must be gone (SIGTERM only). */
  readonly deadlineAt: number | null;
  readonly schedule: Omit<DrainSchedule, 'slots'> | null;
  readonly closed: number;
  readonly forced: number;
  readonly remaining: number;
}

export interface DrainController {
  status(): DrainStatus;
  /** Starts the drain (idempotent); resolves once no socket is left. */
  start(trigger: DrainTrigger): Promise<void>;
  /**
   * The SIGTERM path: starts the drain if needed and makes sure every socket is closed by
   * `deadlineAt` minus a reserve for closing Redis; squeezes a drain already under way.
   */
  finishBy(deadlineAt: number): Promise<void>;
  /** Cancels timers (the gateway is closing anyway). */
  stop(): void;
}

export interface DrainOptions {
  /** @default Math.random */
  readonly random?: () => number;
}

/** How often a draining gateway reads its plan again (docs/drain.md). */
export const PLAN_REFRESH_MS = 1_000;
/** A plan read that takes longer is given up (the pace stays as it is). */
const PLAN_READ_TIMEOUT_MS = 1_000;

/** Whether two plans set the same pace (who wrote them and when does not matter). */
function samePace(a: DrainPlan, b: DrainPlan | null): boolean {
  return b !== null && a.ratePerSecond === b.ratePerSecond && a.windowMs === b.windowMs && a.jitterMs === b.jitterMs;
}

/** Time kept after the last forced close for `gateway.close()` (Redis QUIT, HTTP close) before the deadline. */
export function closeReserveMs(shutdownDeadlineMs: number): number {
  return Math.min(2_000, Math.max(250, Math.floor(shutdownDeadlineMs * 0.1)));
}

/** One connection the drain moves: a Socket.IO socket or an SSE stream; both take a slot of the schedule. */
interface Leaver {
  hint(reconnectAfterMs: number): void;
  close(how: 'paced' | 'forced'): void;
  readonly open: boolean;
}

/** setTimeout fires after 1 ms for delays past 2^31-1 ms; the pacer re-checks due times, so waking early is harmless. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Drain timers never keep the process alive on their own; the HTTP server does while it listens. */
function timer(fn: () => void, ms: number): NodeJS.Timeout {
  const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
  t.unref();
  return t;
}

/** Adds the drain sequence, its handshake guard and `POST /admin/drain` to a gateway. */
export function installDrain(gateway: Gateway, options: DrainOptions = {}): DrainController {
  const { config, io, log, metrics, backplane, state } = gateway;
  const random = options.random ?? Math.random;
  const pod = config.POD_NAME;
  let phase: DrainPhase = 'serving';
  let trigger: DrainTrigger | null = null;
  let startedAt: number | null = null;
  let deadlineAt: number | null = null;
  let schedule: DrainSchedule | null = null;
  let closed = 0;
  let forced = 0;
  let drained: Promise<void> | null = null;
  let noticeTimer: NodeJS.Timeout | null = null;
  let wakeNotice: (() => void) | null = null;
  let pacerTimer: NodeJS.Timeout | null = null;
  let deadlineTimer: NodeJS.Timeout | null = null;
  /** Sockets and streams waiting for their paced close, in close order, with absolute close times. */
  let queue: { leaver: Leaver; closeAt: number }[] = [];
  const emptyWaiters: (() => void)[] = [];
  /** The controller's plan the current schedule came from, if any. */
  let lastPlan: DrainPlan | null = null;
  /** When the first schedule was made (a window counts from here). */
  let closingAt: number | null = null;
  let planTimer: NodeJS.Timeout | null = null;
  /** The last reason a plan could not be used, so a lasting problem is logged once, not every second. */
  let lastPlanProblem: string | null = null;

  const remaining = (): number => io.of('/').sockets.size + gateway.sseStreams.size;
  const latestEnd = (): number => (deadlineAt === null ? Infinity : deadlineAt - closeReserveMs(config.SHUTDOWN_DEADLINE_MS));

  // At the transport (HTTP 503 + Retry-After): the stock client retries by itself, the SDK reads the code.
  gateway.admissionGuards.push(() => {
    if (phase === 'closing' || phase === 'drained') {
      throw new AdmissionRefusal(503, 'draining', `pod ${pod} is draining; connect again (the edge sends you to another pod)`, 1_000);
    }
  });
  // Checked with no await before the stream is registered, so no stream slips in after the plan is made.
  gateway.sseGuards.push(() => {
    if (phase === 'closing' || phase === 'drained') {
      throw new ProtocolError('draining', `pod ${pod} is draining; reconnect with Last-Event-ID (the edge sends you to another pod)`, 1_000);
    }
  });

  io.on('connection', (socket) => {
    // While serving, nothing is counted: a socket gets its listener when the drain starts (run()), so an
    // idle socket of a serving pod keeps one listener fewer (docs/decisions/0018-per-connection-state.md).
    if (phase === 'serving') return;
    socket.on('disconnect', onLeft);
    // A handshake that passed the guard just before the paced phase began: move it on at once.
    if (phase === 'closing' || phase === 'drained') {
      socket.emit('server:draining', controlEnvelope('server:draining', null, { pod, reconnectAfterMs: 0 }));
      closeSocket(socket, 'paced');
    }
  });

  function onLeft(): void {
    if (phase === 'serving') return;
    metrics.drainRemainingSockets.set(remaining());
    if (remaining() === 0) settleEmpty();
  }

  function settleEmpty(): void {
    if (phase !== 'closing' || remaining() > 0) return;
    // What is still queued left by itself (honoured its hint): nothing to wait for.
    queue = [];
    if (pacerTimer) clearTimeout(pacerTimer);
    pacerTimer = null;
    if (planTimer) clearTimeout(planTimer);
    planTimer = null;
    phase = 'drained';
    metrics.drainRemainingSockets.set(0);
    metrics.drainPlannedRate.set(0);
    log.info({ closed, forced, tookMs: Date.now() - (startedAt ?? Date.now()) }, 'drain: no socket left');
    for (const resolve of emptyWaiters.splice(0)) resolve();
  }

  /** Closes the transport, not the Socket.IO session: the stock client reconnects on `transport close`. */
  function closeSocket(socket: Socket, how: 'paced' | 'forced'): void {
    leave(socketLeaver(socket), how);
  }

  function leave(leaver: Leaver, how: 'paced' | 'forced'): void {
    if (!leaver.open) return;
    if (how === 'forced') forced += 1;
    else closed += 1;
    metrics.drainCloses.inc({ how });
    leaver.close(how);
  }

  const hintEnvelope = (reconnectAfterMs: number) => controlEnvelope('server:draining', null, { pod, reconnectAfterMs });

  function socketLeaver(socket: Socket): Leaver {
    return {
      hint: (ms) => socket.emit('server:draining', hintEnvelope(ms)),
      close: (how) => socket.conn.close(how === 'forced'),
      get open() {
        return socket.connected;
      },
    };
  }

  /**
   * The same hint as a control event (no `id:`, so the browser's Last-Event-ID stays the last seq) with
   * `retry:` set to it; ending the stream makes EventSource reconnect after it and resume from history.
   */
  function streamLeaver(stream: ServerResponse): Leaver {
    stream.once('close', onLeft);
    return {
      hint: (ms) => void (stream.writableEnded || stream.write(formatSse(hintEnvelope(ms), ms))),
      close: (how) => (how === 'forced' ? stream.destroy() : stream.end()),
      get open() {
        return !stream.writableEnded && !stream.destroyed;
      },
    };
  }

  const openConnections = (): Leaver[] => [...[...io.of('/').sockets.values()].map(socketLeaver), ...[...gateway.sseStreams].map(streamLeaver)];

  function plan(leavers: Leaver[], driven: DrainPlan | null, now = Date.now()): void {
    const settings = { ratePerSecond: config.DRAIN_RATE_PER_SECOND, windowMs: config.DRAIN_WINDOW_MS, jitterMs: config.DRAIN_JITTER_MS };
    schedule = scheduleDrain(leavers.length, settings, driven, latestEnd() - now, now - (closingAt ?? now));
    // Fisher–Yates: the close order (and so each connection's hint) is random; see docs/drain.md for why.
    for (let i = leavers.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [leavers[i], leavers[j]] = [leavers[j]!, leavers[i]!];
    }
    queue = leavers.map((leaver, i) => {
      const slot = schedule!.slots[i]!;
      leaver.hint(slot.hintMs);
      return { leaver, closeAt: now + slot.closeAtMs };
    });
    metrics.drainPlannedRate.set(Number.isFinite(schedule.ratePerSecond) ? schedule.ratePerSecond : leavers.length);
    const { slots: _slots, ...summary } = schedule;
    log.info({ ...summary, sseStreams: gateway.sseStreams.size, driven: driven ?? undefined }, 'drain: closing sockets at a paced rate');
    pace();
  }

  function pace(): void {
    if (pacerTimer) clearTimeout(pacerTimer);
    pacerTimer = null;
    const now = Date.now();
    let due = 0;
    while (due < queue.length && queue[due]!.closeAt <= now) due += 1;
    for (const { leaver } of queue.splice(0, due)) leave(leaver, 'paced');
    metrics.drainRemainingSockets.set(remaining());
    if (queue.length > 0) pacerTimer = timer(pace, queue[0]!.closeAt - now);
    else settleEmpty();
  }

  /** SIGTERM after (or during) an unhurried drain: re-plan what is left so it ends by the deadline. */
  function squeeze(): void {
    const end = latestEnd();
    if (phase !== 'closing' || queue.length === 0 || queue.at(-1)!.closeAt <= end) return;
    const left = queue.map((q) => q.leaver).filter((l) => l.open);
    log.warn({ sockets: left.length, deadlineAt }, 'drain: deadline set; re-planning the remaining closes to end before it');
    plan(left, lastPlan);
  }

  function forceCloseAll(): void {
    if (phase === 'drained') return;
    if (phase === 'notice') {
      // The plan made next gets no time left, so it closes everything at once.
      if (noticeTimer) clearTimeout(noticeTimer);
      wakeNotice?.();
      return;
    }
    queue = [];
    const left = openConnections().filter((l) => l.open);
    if (left.length > 0) log.warn({ sockets: left.length }, 'drain: deadline reached; closing what is left at once');
    for (const leaver of left) leave(leaver, 'forced');
    settleEmpty();
  }

  /** The stored plan; null when there is none or it cannot be used (unreadable, malformed: logged once per new reason). */
  async function readPlan(): Promise<DrainPlan | null> {
    try {
      const found = await Promise.race([
        backplane.readDrainPlan(pod),
        new Promise<never>((_, reject) => timer(() => reject(new Error(`no answer within ${PLAN_READ_TIMEOUT_MS} ms`)), PLAN_READ_TIMEOUT_MS)),
      ]);
      lastPlanProblem = null;
      return found;
    } catch (err) {
      const problem = (err as Error).message;
      if (problem !== lastPlanProblem) {
        const keeps = lastPlan ? 'keeping the current pace' : 'pacing from local DRAIN_* settings';
        log.warn({ err: problem }, `drain: could not use a drain plan from Redis; ${keeps}`);
      }
      lastPlanProblem = problem;
      return null;
    }
  }

  /**
   * While closing, the plan is read again about once a second: a controller that re-divides the fleet's
   * budget (another pod started draining, or finished) rewrites it, and the new pace applies to the
   * sockets left — with fresh hints, so clients that honour them move at the new rate too. A plan
   * that is gone, expired or malformed changes nothing: the current pace goes on.
   */
  function watchPlan(): void {
    if (planTimer) clearTimeout(planTimer);
    planTimer = timer(() => {
      planTimer = null;
      void (async () => {
        if (phase !== 'closing') return;
        const next = await readPlan();
        if (phase !== 'closing') return;
        if (next && !samePace(next, lastPlan)) {
          const left = queue.map((q) => q.leaver).filter((l) => l.open);
          log.info({ sockets: left.length, previous: lastPlan ?? undefined, driven: next }, 'drain: the drain plan changed; re-planning the remaining closes');
          lastPlan = next;
          if (left.length > 0) plan(left, next);
        }
        watchPlan();
      })();
    }, PLAN_REFRESH_MS);
  }

  async function run(): Promise<void> {
    phase = 'notice';
    for (const socket of io.of('/').sockets.values()) socket.on('disconnect', onLeft);
    state.draining = true;
    startedAt = Date.now();
    metrics.drainInProgress.set(1);
    metrics.ready.set(0);
    metrics.drainRemainingSockets.set(remaining());
    log.info({ trigger, sockets: remaining(), noticeMs: config.DRAIN_NOTICE_DELAY_MS, deadlineAt }, 'drain: started; readiness fails, still serving while the edge notices');
    void backplane
      .writeFleetStat({ pod, sockets: io.engine.clientsCount, ready: false, draining: true, updatedAt: Date.now() })
      .catch(() => {});
    await new Promise<void>((resolve) => {
      wakeNotice = resolve;
      noticeTimer = timer(resolve, Math.min(config.DRAIN_NOTICE_DELAY_MS, latestEnd() - Date.now()));
    });
    wakeNotice = null;
    phase = 'closing';
    // Waited for before reading the plan: the last socket may leave while Redis answers.
    const empty = new Promise<void>((resolve) => emptyWaiters.push(resolve));
    const driven = await readPlan();
    lastPlan = driven;
    if (phase === 'closing') {
      // One instant for both, so the first plan has the whole window (nothing has elapsed yet).
      closingAt = Date.now();
      plan(openConnections(), driven, closingAt);
      if (phase === 'closing') watchPlan();
    }
    await empty;
  }

  function armDeadline(): void {
    if (deadlineTimer) clearTimeout(deadlineTimer);
    deadlineTimer = timer(forceCloseAll, latestEnd() - Date.now());
  }

  const controller: DrainController = {
    status: () => ({
      pod,
      phase,
      trigger,
      startedAt,
      deadlineAt,
      schedule: schedule && (({ slots: _slots, ...summary }) => summary)(schedule),
      closed,
      forced,
      remaining: remaining(),
    }),
    start(by) {
      if (drained) return drained;
      trigger = by;
      drained = run();
      return drained;
    },
    finishBy(at) {
      deadlineAt = Math.min(deadlineAt ?? Infinity, at);
      const done = controller.start('SIGTERM');
      if (phase === 'notice' && noticeTimer && wakeNotice) {
        // A drain started earlier (admin) may have a notice that outlasts the deadline: shorten it.
        clearTimeout(noticeTimer);
        noticeTimer = timer(wakeNotice, Math.min(config.DRAIN_NOTICE_DELAY_MS - (Date.now() - startedAt!), latestEnd() - Date.now()));
      }
      squeeze();
      armDeadline();
      return done;
    },
    stop() {
      for (const t of [noticeTimer, pacerTimer, deadlineTimer, planTimer]) if (t) clearTimeout(t);
      metrics.drainInProgress.set(0);
    },
  };

  gateway.internalRoutes.push((req, res, url) => adminRoute(req, res, url, config.ADMIN_TOKEN, controller));
  return controller;
}

/** `POST /admin/drain` starts a drain (202 + status); `GET` shows it. 404 without ADMIN_TOKEN, 401 on a bad token. */
function adminRoute(req: IncomingMessage, res: ServerResponse, url: URL, adminToken: string | undefined, drain: DrainController): boolean {
  if (url.pathname !== '/admin/drain' || !adminToken) return false;
  const json = (status: number, body: unknown, headers: Record<string, string> = {}): true => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));
    return true;
  };
  if (!bearerMatches(req.headers.authorization, adminToken)) {
    return json(401, { ok: false, error: { code: 'forbidden', message: 'send `Authorization: Bearer <ADMIN_TOKEN>`' } }, { 'www-authenticate': 'Bearer' });
  }
  if (req.method === 'GET') return json(200, { ok: true, drain: drain.status() });
  if (req.method !== 'POST') return json(405, { ok: false, error: { code: 'bad_request', message: 'use POST to start a drain, GET to see it' } }, { allow: 'GET, POST' });
  void drain.start('admin');
  return json(202, { ok: true, drain: drain.status() });
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!match) return false;
  // Compare digests: equal length, so timingSafeEqual never throws and leaks no length.
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(match[1]!.trim()), digest(token));
}
