import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

/**
 * Leader election on a coordination.k8s.io Lease. @kubernetes/client-node 2.0 has no leader election
 * (client-go's lives in k8s.io/client-go/tools/leaderelection), so this is a small port of its loop:
 *
 * - acquire: every retry period, read the Lease; take it when it does not exist, is released (no
 *   holder) or has not changed for a whole lease duration *as observed locally* (so clock skew between
 *   replicas does not matter), writing with the resourceVersion read (a conflict means someone else won);
 * - renew: every retry period; when no renewal has succeeded for the renew deadline, leadership is lost;
 * - release on shutdown: holder cleared, so a standby takes over at its next retry instead of after a
 *   whole lease duration.
 */

export interface LeaderElectionOptions {
  readonly api: CoordinationV1Api;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly log: Logger;
  readonly now?: () => number;
}

export interface LeaderCallbacks {
  /** Called once when this replica becomes the leader. */
  onStartedLeading(): void;
  /** Called once when leadership is lost (not on a release): stop all work at once. */
  onStoppedLeading(): void;
}

interface Observed {
  readonly key: string;
  readonly at: number;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  return typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
}

export class LeaderElector {
  readonly #o: LeaderElectionOptions;
  readonly #now: () => number;
  readonly #stop = new AbortController();
  #observed: Observed | null = null;
  #leader = false;
  #lastRenew = 0;
  #loop: Promise<void> | null = null;

  constructor(options: LeaderElectionOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** Starts campaigning; returns at once. */
  start(callbacks: LeaderCallbacks): void {
    this.#loop ??= this.#run(callbacks);
  }

  /** Stops campaigning and, when leading, releases the Lease. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    if (this.#leader) await this.#release();
    this.#leader = false;
  }

  async #run(callbacks: LeaderCallbacks): Promise<void> {
    const { log, retryPeriodMs, renewDeadlineMs } = this.#o;
    const signal = this.#stop.signal;
    // Acquire.
    while (!signal.aborted && !this.#leader) {
      if (await this.#tryAcquireOrRenew()) {
        this.#leader = true;
        this.#lastRenew = this.#now();
        log.info({ lease: this.#o.name }, 'leader election: became the leader');
        callbacks.onStartedLeading();
        break;
      }
      await sleep(retryPeriodMs * (1 + Math.random() * 0.2), signal);
    }
    // Renew.
    while (!signal.aborted && this.#leader) {
      await sleep(retryPeriodMs, signal);
      if (signal.aborted) break;
      if (await this.#tryAcquireOrRenew()) {
        this.#lastRenew = this.#now();
      } else if (this.#now() - this.#lastRenew >= renewDeadlineMs) {
        this.#leader = false;
        log.error({ lease: this.#o.name, renewDeadlineMs }, 'leader election: could not renew the Lease in time; leadership lost');
        callbacks.onStoppedLeading();
      }
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity, leaseDurationMs, log } = this.#o;
    const now = this.#now();
    const durationSeconds = Math.max(1, Math.round(leaseDurationMs / 1_000));
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusCode(err) !== 404) {
        log.warn({ err: String(err) }, 'leader election: could not read the Lease');
        return false;
      }
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: new V1MicroTime(now),
              renewTime: new V1MicroTime(now),
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createErr) {
        if (statusCode(createErr) !== 409) log.warn({ err: String(createErr) }, 'leader election: could not create the Lease');
        return false;
      }
    }
    const spec = lease.spec ?? {};
    const key = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions, lease.metadata?.resourceVersion]);
    if (this.#observed?.key !== key) this.#observed = { key, at: now };
    const holder = spec.holderIdentity ?? '';
    const heldByOther = holder !== '' && holder !== identity;
    const otherDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1_000;
    if (heldByOther && this.#observed.at + otherDurationMs > now) return false;
    const mine = holder === identity;
    try {
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: mine && spec.acquireTime ? new V1MicroTime(spec.acquireTime) : new V1MicroTime(now),
            renewTime: new V1MicroTime(now),
            leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
          },
        },
      });
      if (!mine) log.info({ previous: holder || null }, 'leader election: took over the Lease');
      return true;
    } catch (err) {
      if (statusCode(err) !== 409) log.warn({ err: String(err) }, 'leader election: could not update the Lease');
      return false;
    }
  }

  async #release(): Promise<void> {
    const { api, namespace, name, identity, log } = this.#o;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime(this.#now()) },
        },
      });
      log.info({ lease: name }, 'leader election: released the Lease');
    } catch (err) {
      log.warn({ err: String(err) }, 'leader election: could not release the Lease; a standby takes over after the lease duration');
    }
  }
}
