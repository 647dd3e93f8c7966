import type { DrainPlan } from '../protocol/drain-plan.ts';
import { MIN_POD_DELETION_COST, type DrainPolicy, type SocketGatewaySpec } from './socket-gateway.ts';

/**
 * The controller's decisions, as pure functions of what it observed: no clock, no I/O. The reconciler
 * (reconciler.ts) gathers a PlannerInput from the API server, Redis and the pods' admin endpoints,
 * calls planReconcile, and carries out the plan. Unit-tested in test/controller/planner.test.ts.
 */

/** The gateway's drain phase as `GET /admin/drain` reports it (docs/drain.md). */
export type GatewayDrainPhase = 'serving' | 'notice' | 'closing' | 'drained';

/** A controller drain, as recorded in the pod's annotations (socket-gateway.ts ANNOTATIONS). */
export interface DrainClaim {
  readonly startedAt: number;
  readonly deadlineAt: number;
  /** Sockets when the drain started. */
  readonly sockets: number;
  readonly completedAt: number | null;
  readonly outcome: 'Completed' | 'TimedOut' | null;
  /** When the controller lowered the Deployment's replicas so the ReplicaSet deletes it. */
  readonly releasedAt: number | null;
}

/** One pod of the gateway Deployment, as the controller sees it. */
export interface PodView {
  readonly name: string;
  readonly createdAt: number;
  /** spec.nodeName is set. */
  readonly scheduled: boolean;
  readonly phase: string;
  /** The Ready condition is True. */
  readonly ready: boolean;
  /** metadata.deletionTimestamp is set: someone deleted it and the kubelet is ending it. */
  readonly deleting: boolean;
  /** `http://<pod IP>:<internal port>`; null when the pod has no IP or no internal port. */
  readonly adminUrl: string | null;
  /** The `pod-template-hash` label (which ReplicaSet owns it). */
  readonly templateHash: string | null;
  readonly deletionCost: number | null;
  readonly claim: DrainClaim | null;
  /** Connected sockets: the drain status for drained pods, fleet stats otherwise; null when unknown. */
  readonly sockets: number | null;
  /** From `GET /admin/drain`, asked only for pods the controller drains; null when not asked or unreachable. */
  readonly drainPhase: GatewayDrainPhase | null;
}

export interface PlannerInput {
  readonly now: number;
  readonly spec: SocketGatewaySpec;
  /** The Deployment's spec.replicas. */
  readonly deploymentReplicas: number;
  readonly pods: readonly PodView[];
  /** Fleet stats could be read from Redis (an outage must never look like an empty fleet). */
  readonly fleetAvailable: boolean;
  /** Healthy pods the PodDisruptionBudgets covering these pods require (pdbFloor); 0 without one. */
  readonly pdbFloor: number;
}

export interface StartDrain {
  readonly pod: string;
  readonly sockets: number;
  readonly deadlineAt: number;
}

export interface CompleteDrain {
  readonly pod: string;
  readonly outcome: 'Completed' | 'TimedOut';
  readonly socketsMoved: number;
  readonly durationMs: number;
  /** Sockets still open when a drain timed out. */
  readonly remaining: number | null;
}

export interface DrainRate {
  readonly pod: string;
  readonly ratePerSecond: number;
  /** `scale-down`: the controller drains it. `deleted`: something else deleted it and SIGTERM drains it. */
  readonly reason: 'scale-down' | 'deleted';
  /** The pod's budget share was not enough to empty it within the window, so the rate is higher. */
  readonly overBudget: boolean;
}

export type BlockReason = 'MinReadyPods' | 'PodDisruptionBudget' | 'FleetStatsUnavailable' | 'NoCandidate';
export type ReleaseBlockReason = 'PodsNotRunning' | 'RolloutInProgress' | 'DrainedPodStillReady' | 'DeletionCostTie' | 'DeletionCostPending';

export interface ReconcilePlan {
  /** What the Deployment's spec.replicas must be. */
  readonly deploymentReplicas: number;
  /** Pods to drain now (victims, emptiest first). */
  readonly start: readonly StartDrain[];
  /** Claimed pods whose gateway does not report a drain yet: (re)send `POST /admin/drain` (idempotent). */
  readonly ensureStarted: readonly string[];
  /** Drains that ended (empty, or timed out): mark for deletion. */
  readonly complete: readonly CompleteDrain[];
  /** Claimed pods whose gateway still serves: a scale-up took them back before their drain began. */
  readonly cancel: readonly string[];
  /** Drained pods the ReplicaSet deletes once replicas are lowered to deploymentReplicas (mark them released). */
  readonly release: readonly string[];
  /** The drain plan rate of every draining pod (the budget divided among them). */
  readonly rates: readonly DrainRate[];
  readonly budgetInUse: number;
  /** Why a scale-down could not start every drain it needs. */
  readonly blocked: { readonly reason: BlockReason; readonly message: string } | null;
  /** Why drained pods are kept (the ReplicaSet might delete another pod if replicas were lowered now). */
  readonly releaseBlocked: { readonly reason: ReleaseBlockReason; readonly message: string } | null;
  /** Reconcile again after this long even without a watch event; null: wait for events. */
  readonly requeueAfterMs: number | null;
}

/** How often to look at pods while something drains (drain status, plan rewrites, completion). */
export const DRAIN_POLL_MS = 1_000;
/** How often to retry a scale-down that waits on a floor or on Redis. */
export const BLOCKED_RETRY_MS = 5_000;
/** The drain-plan contract's lowest rate (app/protocol/drain-plan.ts). */
export const MIN_PLAN_RATE = 0.1;

/** A drain ends at the latest at start + window + margin. */
export function drainDeadline(startedAt: number, policy: DrainPolicy): number {
  return startedAt + (policy.windowSeconds + policy.marginSeconds) * 1_000;
}

/**
 * Victims: the pods with the fewest sockets; ties go to the newest pod (its clients connected most
 * recently, so the cohort is the smallest to move), then by name so the choice is deterministic.
 */
export function chooseVictims(candidates: readonly PodView[], count: number): PodView[] {
  return [...candidates]
    .sort((a, b) => (a.sockets ?? Infinity) - (b.sockets ?? Infinity) || b.createdAt - a.createdAt || a.name.localeCompare(b.name))
    .slice(0, Math.max(0, count));
}

/** An equal share of the fleet budget for each of `draining` pods (never below the contract's minimum). */
export function budgetShare(budgetPerSecond: number, draining: number): number {
  if (draining <= 0) return budgetPerSecond;
  return Math.max(MIN_PLAN_RATE, round2(budgetPerSecond / draining));
}

/**
 * A controller drain's rate: its share, raised when the share cannot empty the pod before the window
 * ends (a drain must end; the window wins over the budget, and the status says so).
 */
export function scaleDownRate(share: number, sockets: number, windowEndsAt: number, now: number): { ratePerSecond: number; overBudget: boolean } {
  const secondsLeft = Math.max(1, (windowEndsAt - now) / 1_000);
  const needed = round2(sockets / secondsLeft);
  return needed > share ? { ratePerSecond: Math.max(MIN_PLAN_RATE, needed), overBudget: true } : { ratePerSecond: share, overBudget: false };
}

/** The drain plan (docs/drain.md) for a rate: the hint spans the window, so hinted clients keep the pace. */
export function drainPlanFor(policy: DrainPolicy, ratePerSecond: number, issuedBy: string, now: number): DrainPlan {
  const windowMs = policy.windowSeconds * 1_000;
  return {
    v: 1,
    ratePerSecond,
    windowMs,
    jitterMs: policy.hintBoundSeconds === undefined ? windowMs : policy.hintBoundSeconds * 1_000,
    issuedBy,
    issuedAt: now,
  };
}

/** A PodDisruptionBudget's spec, as much as the floor needs. */
export interface PdbSpec {
  readonly minAvailable?: number | string;
  readonly maxUnavailable?: number | string;
}

/**
 * Healthy pods the PDBs require with `expected` pods wanted, computed the way the disruption
 * controller does (percentages of minAvailable and of maxUnavailable round up). The strictest PDB wins.
 */
export function pdbFloor(pdbs: readonly PdbSpec[], expected: number): number {
  let floor = 0;
  const scaled = (value: number | string): number => {
    if (typeof value === 'number') return value;
    const match = /^(\d+)%$/.exec(value);
    if (match) return Math.ceil((Number(match[1]) * expected) / 100);
    const n = Number(value);
    return Number.isInteger(n) ? n : 0;
  };
  for (const pdb of pdbs) {
    if (pdb.minAvailable !== undefined) floor = Math.max(floor, scaled(pdb.minAvailable));
    else if (pdb.maxUnavailable !== undefined) floor = Math.max(floor, expected - scaled(pdb.maxUnavailable));
  }
  return Math.max(0, floor);
}

/**
 * Is a controller drain over? The gateway says so (`drained`), or it is closing and has no socket left.
 * A pod whose admin endpoint cannot be reached never counts as done: it times out instead.
 */
export function drainDone(pod: PodView): boolean {
  return pod.drainPhase === 'drained' || (pod.drainPhase === 'closing' && pod.sockets === 0);
}

/**
 * Whether lowering the Deployment's replicas now makes the ReplicaSet delete exactly the drained pods.
 * Its victim order (kubernetes/pkg/controller ActivePods): unscheduled, then Pending < Unknown < Running,
 * then not-ready before ready, then the lower pod-deletion-cost. So every other active pod must be
 * scheduled, Running, not less ready than a drained pod, and above the minimum cost.
 */
export function releaseCheck(
  drained: readonly PodView[],
  others: readonly PodView[],
): { readonly reason: ReleaseBlockReason; readonly message: string } | null {
  if (drained.length === 0) return null;
  const missingCost = drained.filter((p) => p.deletionCost !== MIN_POD_DELETION_COST);
  if (missingCost.length > 0) {
    return { reason: 'DeletionCostPending', message: `waiting for the deletion cost on ${names(missingCost)}` };
  }
  const notRunning = others.filter((p) => !p.scheduled || p.phase !== 'Running');
  if (notRunning.length > 0) {
    return { reason: 'PodsNotRunning', message: `the ReplicaSet would delete ${names(notRunning)} first (not running yet)` };
  }
  const hashes = new Set([...drained, ...others].map((p) => p.templateHash));
  if (hashes.size > 1) {
    return { reason: 'RolloutInProgress', message: 'pods of more than one ReplicaSet: waiting for the rollout to finish' };
  }
  if (drained.some((p) => p.ready)) {
    const notReady = others.filter((p) => !p.ready);
    if (notReady.length > 0) {
      return { reason: 'DrainedPodStillReady', message: `a drained pod still reports ready while ${names(notReady)} does not` };
    }
  }
  const tie = others.filter((p) => p.deletionCost === MIN_POD_DELETION_COST);
  if (tie.length > 0) {
    return { reason: 'DeletionCostTie', message: `${names(tie)} also has the minimum pod-deletion-cost` };
  }
  return null;
}

/**
 * One reconcile's decisions. The Deployment's replicas are always
 *   serving pods wanted + pods draining + drained pods not yet safe to release,
 * so a scale-up raises it at once, a scale-down only lowers it once a drained pod is the one the
 * ReplicaSet will delete, and a replica the Deployment has beyond that becomes a drain first.
 */
export function planReconcile(input: PlannerInput): ReconcilePlan {
  const { now, spec, pods } = input;
  const policy = spec.drain;
  const active = pods.filter((p) => !p.deleting);
  const claimedAll = active.filter((p) => p.claim !== null && p.claim.completedAt === null);
  // Drained pods not yet handed to the ReplicaSet; released ones are no longer counted in its replicas.
  const drainedBefore = active.filter((p) => p.claim?.completedAt != null && p.claim.releasedAt === null);
  const released = active.filter((p) => p.claim?.releasedAt != null);

  // 1. Drains that ended: empty, or past their deadline.
  const complete: CompleteDrain[] = [];
  for (const pod of claimedAll) {
    const claim = pod.claim!;
    const done = drainDone(pod);
    if (done || now >= claim.deadlineAt) {
      complete.push({
        pod: pod.name,
        outcome: done ? 'Completed' : 'TimedOut',
        socketsMoved: done ? claim.sockets : Math.max(0, claim.sockets - (pod.sockets ?? 0)),
        durationMs: Math.max(0, now - claim.startedAt),
        remaining: done ? 0 : pod.sockets,
      });
    }
  }
  const completedNames = new Set(complete.map((c) => c.pod));
  let claimed = claimedAll.filter((p) => !completedNames.has(p.name));

  // 2. Serving slots: what the Deployment holds beyond drains.
  let servingSlots = Math.max(0, input.deploymentReplicas - claimedAll.length - drainedBefore.length);
  const desired = spec.replicas;
  let start: StartDrain[] = [];
  let cancel: string[] = [];
  let blocked: ReconcilePlan['blocked'] = null;
  let servingAfter: number;

  if (desired >= servingSlots) {
    // Scale-up (or steady): a claimed pod whose gateway has not begun draining goes back to serving.
    const surplus = desired - servingSlots;
    cancel = claimed.filter((p) => p.drainPhase === 'serving').slice(0, surplus).map((p) => p.name);
    servingSlots += cancel.length;
    claimed = claimed.filter((p) => !cancel.includes(p.name));
    servingAfter = desired;
  } else {
    const need = servingSlots - desired;
    const serving = active.filter((p) => p.claim === null);
    const healthy = serving.filter((p) => p.ready).length;
    const floor = Math.max(spec.minReadyPods, input.pdbFloor);
    const allowed = Math.max(0, healthy - floor);
    const candidates = serving.filter((p) => p.ready && p.scheduled && p.phase === 'Running' && p.adminUrl !== null && p.sockets !== null);
    let count = Math.min(need, allowed, candidates.length);
    if (!input.fleetAvailable) {
      count = 0;
      blocked = { reason: 'FleetStatsUnavailable', message: 'fleet stats cannot be read from Redis: scale-down waits (an outage is not an empty fleet)' };
    } else if (count < need) {
      if (allowed < need && allowed <= candidates.length) {
        const byPdb = input.pdbFloor > spec.minReadyPods;
        blocked = {
          reason: byPdb ? 'PodDisruptionBudget' : 'MinReadyPods',
          message: `${healthy} ready serving pods, ${floor} must stay ready (${byPdb ? 'PodDisruptionBudget' : 'minReadyPods'}): ` +
            `${count} of ${need} drains may start now`,
        };
      } else {
        blocked = { reason: 'NoCandidate', message: `${candidates.length} pods are ready with known socket counts; ${need} drains wanted` };
      }
    }
    start = chooseVictims(candidates, count).map((p) => ({ pod: p.name, sockets: p.sockets ?? 0, deadlineAt: drainDeadline(now, policy) }));
    servingAfter = servingSlots - start.length;
  }

  // 3. The budget, divided among every pod draining now: controller drains and deleted pods.
  // A deleted pod drains until fleet stats show it empty; unknown counts as draining (conservative),
  // except for a pod the controller already drained (its entry disappears when the process exits).
  const deletingDraining = pods.filter((p) => p.deleting && ((p.sockets ?? 0) > 0 || (p.sockets === null && p.phase === 'Running' && p.claim?.completedAt == null)));
  const drainingCount = claimed.length + start.length + deletingDraining.length;
  const share = budgetShare(policy.reconnectBudgetPerSecond, drainingCount);
  const rates: DrainRate[] = [];
  for (const pod of claimed) {
    const windowEndsAt = pod.claim!.startedAt + policy.windowSeconds * 1_000;
    rates.push({ pod: pod.name, reason: 'scale-down', ...scaleDownRate(share, pod.sockets ?? pod.claim!.sockets, windowEndsAt, now) });
  }
  for (const s of start) {
    rates.push({ pod: s.pod, reason: 'scale-down', ...scaleDownRate(share, s.sockets, now + policy.windowSeconds * 1_000, now) });
  }
  for (const pod of deletingDraining) rates.push({ pod: pod.name, reason: 'deleted', ratePerSecond: share, overBudget: false });
  const budgetInUse = round2(rates.reduce((sum, r) => sum + r.ratePerSecond, 0));

  // 4. Which drained pods the ReplicaSet may delete now.
  // Everything else the ReplicaSet could pick instead: serving, draining and just-completed pods.
  const releaseBlocked = releaseCheck(drainedBefore, active.filter((p) => !drainedBefore.includes(p) && !released.includes(p)));
  const kept = releaseBlocked ? drainedBefore.length : 0;
  const deploymentReplicas = servingAfter + claimed.length + start.length + complete.length + kept;

  const ensureStarted = [...claimed.filter((p) => p.drainPhase === null || p.drainPhase === 'serving').map((p) => p.name), ...start.map((s) => s.pod)];
  const busy = claimed.length + start.length + complete.length + deletingDraining.length + drainedBefore.length > 0;
  const requeueAfterMs = busy ? DRAIN_POLL_MS : blocked ? BLOCKED_RETRY_MS : null;

  const release = releaseBlocked ? [] : drainedBefore.map((p) => p.name);
  return { deploymentReplicas, start, ensureStarted, complete, cancel, release, rates, budgetInUse, blocked, releaseBlocked, requeueAfterMs };
}

function names(pods: readonly PodView[]): string {
  return pods.map((p) => p.name).join(', ');
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
