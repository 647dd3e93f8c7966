import { describe, expect, it } from 'vitest';
import {
  budgetShare,
  chooseVictims,
  drainDeadline,
  drainPlanFor,
  pdbFloor,
  planReconcile,
  releaseCheck,
  scaleDownRate,
  type DrainClaim,
  type PlannerInput,
  type PodView,
} from '../../app/controller/planner.ts';
import { drainPlanSchema } from '../../app/protocol/drain-plan.ts';
import { MIN_POD_DELETION_COST, parseSpec } from '../../app/controller/socket-gateway.ts';

const NOW = 1_800_000_000_000;

function pod(name: string, over: Partial<PodView> = {}): PodView {
  return {
    name,
    createdAt: NOW - 60_000,
    scheduled: true,
    phase: 'Running',
    ready: true,
    deleting: false,
    adminUrl: `http://127.0.0.1:9090/${name}`,
    templateHash: 'abc',
    deletionCost: null,
    claim: null,
    sockets: 10,
    drainPhase: null,
    ...over,
  };
}

function claim(over: Partial<DrainClaim> = {}): DrainClaim {
  return { startedAt: NOW - 5_000, deadlineAt: NOW + 60_000, sockets: 10, completedAt: null, outcome: null, releasedAt: null, ...over };
}

function input(over: Partial<PlannerInput> & { replicas?: number; budget?: number; minReadyPods?: number } = {}): PlannerInput {
  const { replicas = 3, budget = 30, minReadyPods = 1, ...rest } = over;
  return {
    now: NOW,
    spec: parseSpec({ replicas, deploymentName: 'gw', minReadyPods, drain: { reconnectBudgetPerSecond: budget, windowSeconds: 60, marginSeconds: 10 } }),
    deploymentReplicas: 3,
    pods: [pod('a', { sockets: 40 }), pod('b', { sockets: 25 }), pod('c', { sockets: 10 })],
    fleetAvailable: true,
    pdbFloor: 0,
    ...rest,
  };
}

describe('victim choice', () => {
  it('takes the pods with the fewest sockets, newest first on a tie, then by name', () => {
    const pods = [
      pod('old', { sockets: 5, createdAt: 1 }),
      pod('new', { sockets: 5, createdAt: 2 }),
      pod('busy', { sockets: 50 }),
      pod('b-twin', { sockets: 5, createdAt: 2 }),
    ];
    expect(chooseVictims(pods, 1).map((p) => p.name)).toEqual(['b-twin']);
    expect(chooseVictims(pods, 3).map((p) => p.name)).toEqual(['b-twin', 'new', 'old']);
    expect(chooseVictims(pods, 0)).toEqual([]);
  });

  it('scale-down 3 → 2 drains the emptiest pod and keeps the Deployment at 3 until it is empty', () => {
    const plan = planReconcile(input({ replicas: 2 }));
    expect(plan.start.map((s) => s.pod)).toEqual(['c']);
    expect(plan.start[0]).toMatchObject({ sockets: 10, deadlineAt: NOW + 70_000 });
    expect(plan.ensureStarted).toEqual(['c']);
    expect(plan.deploymentReplicas).toBe(3);
    expect(plan.rates).toEqual([{ pod: 'c', reason: 'scale-down', ratePerSecond: 30, overBudget: false }]);
    expect(plan.requeueAfterMs).toBe(1_000);
  });

  it('never picks a pod that is not ready, not running, without an admin port or without fleet stats', () => {
    const plan = planReconcile(
      input({
        replicas: 2,
        deploymentReplicas: 6,
        pods: [
          pod('a', { sockets: 40 }),
          pod('b', { sockets: 30 }),
          pod('starting', { sockets: 0, ready: false }),
          pod('pending', { sockets: 0, phase: 'Pending', ready: false }),
          pod('no-port', { sockets: 0, adminUrl: null }),
          pod('no-stats', { sockets: null }),
        ],
      }),
    );
    expect(plan.start.map((s) => s.pod)).toEqual(['b', 'a']);
    expect(plan.blocked?.reason).toBe('NoCandidate');
  });
});

describe('budget division', () => {
  it('divides the fleet budget equally and never goes below the contract minimum', () => {
    expect(budgetShare(60, 1)).toBe(60);
    expect(budgetShare(60, 2)).toBe(30);
    expect(budgetShare(10, 3)).toBe(3.33);
    expect(budgetShare(0.2, 5)).toBe(0.1);
  });

  it('raises a scale-down drain above its share only when the share cannot empty it within the window', () => {
    expect(scaleDownRate(10, 100, NOW + 60_000, NOW)).toEqual({ ratePerSecond: 10, overBudget: false });
    expect(scaleDownRate(10, 1_200, NOW + 60_000, NOW)).toEqual({ ratePerSecond: 20, overBudget: true });
  });

  it('two pods deleted by something else share the budget; a controller drain makes it three ways', () => {
    const deleting = [pod('a', { sockets: 40 }), pod('x', { deleting: true, sockets: 20 }), pod('y', { deleting: true, sockets: 15 })];
    const two = planReconcile(input({ replicas: 1, deploymentReplicas: 1, pods: deleting }));
    expect(two.rates).toEqual([
      { pod: 'x', reason: 'deleted', ratePerSecond: 15, overBudget: false },
      { pod: 'y', reason: 'deleted', ratePerSecond: 15, overBudget: false },
    ]);
    expect(two.budgetInUse).toBe(30);

    const three = planReconcile(
      input({
        replicas: 2,
        deploymentReplicas: 3,
        pods: [pod('a'), pod('b'), pod('c', { claim: claim(), drainPhase: 'closing', sockets: 6 }), pod('x', { deleting: true, sockets: 9 }), pod('y', { deleting: true, sockets: null })],
      }),
    );
    expect(three.rates.map((r) => [r.pod, r.ratePerSecond])).toEqual([['c', 10], ['x', 10], ['y', 10]]);
    expect(three.budgetInUse).toBe(30);
  });

  it('a deleted pod that is empty, or that the controller already drained, takes no share', () => {
    const plan = planReconcile(
      input({
        replicas: 2,
        deploymentReplicas: 2,
        pods: [pod('a'), pod('b'), pod('x', { deleting: true, sockets: 0 }), pod('y', { deleting: true, sockets: null, claim: claim({ completedAt: NOW - 1, releasedAt: NOW - 1 }) })],
      }),
    );
    expect(plan.rates).toEqual([]);
    expect(plan.budgetInUse).toBe(0);
  });

  it('the drain plan follows the contract: the hint spans the window unless a bound is set', () => {
    const spec = parseSpec({ replicas: 1, deploymentName: 'gw', drain: { windowSeconds: 30 } });
    const plan = drainPlanFor(spec.drain, 12.5, 'ctl-1', NOW);
    expect(drainPlanSchema.parse(plan)).toEqual({ v: 1, ratePerSecond: 12.5, windowMs: 30_000, jitterMs: 30_000, issuedBy: 'ctl-1', issuedAt: NOW });
    const bounded = parseSpec({ replicas: 1, deploymentName: 'gw', drain: { windowSeconds: 30, hintBoundSeconds: 5 } });
    expect(drainPlanFor(bounded.drain, 1, 'ctl-1', NOW).jitterMs).toBe(5_000);
  });
});

describe('floors', () => {
  it('never starts a drain that leaves fewer ready serving pods than minReadyPods', () => {
    const plan = planReconcile(input({ replicas: 0, minReadyPods: 2 }));
    expect(plan.start.map((s) => s.pod)).toEqual(['c']);
    expect(plan.blocked).toMatchObject({ reason: 'MinReadyPods' });
    expect(plan.deploymentReplicas).toBe(3);
  });

  it('respects the PodDisruptionBudget floor: with maxUnavailable 1, one drain at a time', () => {
    expect(pdbFloor([{ maxUnavailable: 1 }], 3)).toBe(2);
    expect(pdbFloor([{ minAvailable: '50%' }], 3)).toBe(2);
    expect(pdbFloor([{ maxUnavailable: '50%' }], 3)).toBe(1);
    expect(pdbFloor([{ minAvailable: 1 }, { maxUnavailable: 1 }], 5)).toBe(4);
    expect(pdbFloor([], 5)).toBe(0);
    const first = planReconcile(input({ replicas: 1, pdbFloor: 2 }));
    expect(first.start.map((s) => s.pod)).toEqual(['c']);
    expect(first.blocked).toMatchObject({ reason: 'PodDisruptionBudget' });
    const second = planReconcile(
      input({ replicas: 1, pdbFloor: 2, pods: [pod('a'), pod('b'), pod('c', { claim: claim(), ready: false, drainPhase: 'closing', sockets: 4 })] }),
    );
    expect(second.start).toEqual([]);
    expect(second.blocked).toMatchObject({ reason: 'PodDisruptionBudget' });
  });

  it('waits when fleet stats cannot be read: an outage is not an empty fleet; scale-up still happens', () => {
    const down = planReconcile(input({ replicas: 2, fleetAvailable: false }));
    expect(down.start).toEqual([]);
    expect(down.blocked?.reason).toBe('FleetStatsUnavailable');
    expect(down.deploymentReplicas).toBe(3);
    expect(planReconcile(input({ replicas: 5, fleetAvailable: false })).deploymentReplicas).toBe(5);
  });
});

describe('drain lifecycle', () => {
  const draining = (over: Partial<PodView> = {}) => pod('c', { claim: claim(), ready: false, drainPhase: 'closing', sockets: 4, ...over });

  it('a drain in progress starts no second one and keeps the Deployment', () => {
    const plan = planReconcile(input({ replicas: 2, pods: [pod('a'), pod('b'), draining()] }));
    expect(plan.start).toEqual([]);
    expect(plan.ensureStarted).toEqual([]);
    expect(plan.deploymentReplicas).toBe(3);
    expect(plan.rates.map((r) => r.pod)).toEqual(['c']);
  });

  it('re-sends the admin call for a claimed pod whose gateway does not report a drain (a new leader after a crash)', () => {
    const plan = planReconcile(input({ replicas: 2, pods: [pod('a'), pod('b'), draining({ drainPhase: null, ready: true, sockets: 10 })] }));
    expect(plan.start).toEqual([]);
    expect(plan.ensureStarted).toEqual(['c']);
  });

  it('an empty pod completes; the replicas are lowered only once its deletion cost is visible', () => {
    const done = planReconcile(input({ replicas: 2, pods: [pod('a'), pod('b'), draining({ drainPhase: 'drained', sockets: 0 })] }));
    expect(done.complete).toEqual([{ pod: 'c', outcome: 'Completed', socketsMoved: 10, durationMs: 5_000, remaining: 0 }]);
    expect(done.deploymentReplicas).toBe(3);
    const drained = draining({ drainPhase: 'drained', sockets: 0, deletionCost: MIN_POD_DELETION_COST, claim: claim({ completedAt: NOW - 100, outcome: 'Completed' }) });
    const release = planReconcile(input({ replicas: 2, pods: [pod('a'), pod('b'), drained] }));
    expect(release.release).toEqual(['c']);
    expect(release.releaseBlocked).toBeNull();
    expect(release.deploymentReplicas).toBe(2);
    // After the release the Deployment is at 2; until the ReplicaSet deletes it, nothing changes.
    const released = { ...drained, claim: claim({ completedAt: NOW - 100, outcome: 'Completed', releasedAt: NOW - 50 }) };
    const after = planReconcile(input({ replicas: 2, deploymentReplicas: 2, pods: [pod('a'), pod('b'), released] }));
    expect(after).toMatchObject({ deploymentReplicas: 2, start: [], release: [], rates: [] });
  });

  it('a drain past its deadline times out and is removed anyway', () => {
    const plan = planReconcile(input({ replicas: 2, pods: [pod('a'), pod('b'), draining({ claim: claim({ deadlineAt: NOW - 1 }), sockets: 3 })] }));
    expect(plan.complete).toEqual([{ pod: 'c', outcome: 'TimedOut', socketsMoved: 7, durationMs: 5_000, remaining: 3 }]);
    expect(drainDeadline(NOW, parseSpec({ replicas: 1, deploymentName: 'x' }).drain)).toBe(NOW + 135_000);
  });

  it('an unreachable admin endpoint never counts as empty', () => {
    const plan = planReconcile(input({ replicas: 2, pods: [pod('a'), pod('b'), draining({ drainPhase: null, sockets: 0 })] }));
    expect(plan.complete).toEqual([]);
  });

  it('a Deployment scaled up by hand beyond the resource is brought back through a drain, not by lowering it', () => {
    const plan = planReconcile(input({ replicas: 2, deploymentReplicas: 3 }));
    expect(plan.start.map((s) => s.pod)).toEqual(['c']);
    expect(plan.deploymentReplicas).toBe(3);
  });
});

describe('release safety (the ReplicaSet must delete exactly the drained pod)', () => {
  const drained = pod('c', { ready: false, deletionCost: MIN_POD_DELETION_COST, claim: claim({ completedAt: NOW, outcome: 'Completed' }) });

  it('is safe when every other pod is scheduled, running and at least as ready', () => {
    expect(releaseCheck([drained], [pod('a'), pod('b')])).toBeNull();
    expect(releaseCheck([drained], [pod('a'), pod('b', { ready: false })])).toBeNull();
  });

  it('waits for pending or unscheduled pods, a rollout, a missing cost or a cost tie', () => {
    expect(releaseCheck([drained], [pod('a'), pod('new', { phase: 'Pending', ready: false })])?.reason).toBe('PodsNotRunning');
    expect(releaseCheck([drained], [pod('a'), pod('new', { scheduled: false })])?.reason).toBe('PodsNotRunning');
    expect(releaseCheck([drained], [pod('a'), pod('b', { templateHash: 'def' })])?.reason).toBe('RolloutInProgress');
    expect(releaseCheck([{ ...drained, deletionCost: null }], [pod('a')])?.reason).toBe('DeletionCostPending');
    expect(releaseCheck([{ ...drained, ready: true }], [pod('a', { ready: false })])?.reason).toBe('DrainedPodStillReady');
    expect(releaseCheck([drained], [pod('a', { deletionCost: MIN_POD_DELETION_COST })])?.reason).toBe('DeletionCostTie');
  });

  it('keeps the drained pod counted while the release waits', () => {
    const plan = planReconcile(input({ replicas: 3, pods: [pod('a'), pod('b'), pod('new', { phase: 'Pending', ready: false, sockets: null }), drained], deploymentReplicas: 4 }));
    expect(plan.releaseBlocked?.reason).toBe('PodsNotRunning');
    expect(plan.release).toEqual([]);
    expect(plan.deploymentReplicas).toBe(4);
  });
});

describe('scale-up and cancellation', () => {
  it('raises the Deployment at once', () => {
    const plan = planReconcile(input({ replicas: 5 }));
    expect(plan).toMatchObject({ deploymentReplicas: 5, start: [], cancel: [] });
  });

  it('a scale-up during a drain adds new pods at once; the draining pod finishes and is removed', () => {
    const pods = [pod('a'), pod('b'), pod('c', { claim: claim(), ready: false, drainPhase: 'closing', sockets: 4 })];
    const plan = planReconcile(input({ replicas: 3, pods }));
    expect(plan.cancel).toEqual([]);
    expect(plan.deploymentReplicas).toBe(4);
    expect(plan.rates.map((r) => r.pod)).toEqual(['c']);
  });

  it('cancels a claimed drain the gateway has not begun (it still serves)', () => {
    const pods = [pod('a'), pod('b'), pod('c', { claim: claim(), drainPhase: 'serving', sockets: 10 })];
    const plan = planReconcile(input({ replicas: 3, pods }));
    expect(plan.cancel).toEqual(['c']);
    expect(plan.deploymentReplicas).toBe(3);
    expect(plan.rates).toEqual([]);
    expect(plan.ensureStarted).toEqual([]);
  });
});
