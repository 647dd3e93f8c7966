import type { KubernetesObject, ObjectCache, V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { FleetStat } from '../protocol/fleet.ts';
import { adminUrlOf, type AdminClient, type DrainStatusReply } from './admin.ts';
import type { FleetStore } from './fleet.ts';
import { matchesSelector, mergePatch, selectorString, statusCode, type Caches, type KubeClients, type RecordEvent } from './kube.ts';
import type { ControllerMetrics } from './metrics.ts';
import {
  drainPlanFor,
  pdbFloor,
  planReconcile,
  type DrainClaim,
  type PdbSpec,
  type PodView,
  type ReconcilePlan,
} from './planner.ts';
import type { ReconcileResult } from './queue.ts';
import {
  ANNOTATIONS,
  API_GROUP,
  API_VERSION,
  KIND,
  MIN_POD_DELETION_COST,
  PLURAL,
  parseSpec,
  type Condition,
  type PodStatusEntry,
  type ScaleDownRecord,
  type SocketGateway,
  type SocketGatewaySpec,
  type SocketGatewayStatus,
} from './socket-gateway.ts';

/**
 * One reconcile of one SocketGateway: observe (caches, Redis fleet stats, the admin endpoint of pods
 * being drained), plan (planner.ts, pure), act, in an order that keeps a failover safe:
 *
 *   1. finished drains: pod annotated Drained + minimum pod-deletion-cost;
 *   2. new drains: the pod's claim annotation first (the durable record that makes a new leader
 *      continue this drain instead of choosing another pod), then its drain plan in Redis, then
 *      `POST /admin/drain` (idempotent, re-sent until the gateway reports a drain);
 *   3. every draining pod's plan rewritten when its share of the budget changed;
 *   4. the Deployment's replicas (raised at once; lowered only when the ReplicaSet will delete exactly
 *      the drained pods), then drained pods marked released;
 *   5. status and Events.
 *
 * After each write it waits until the informer cache shows it, so the next reconcile never acts on
 * a state older than its own writes (no second victim because a claim was not visible yet).
 */

export interface ReconcilerDeps {
  readonly clients: KubeClients;
  readonly caches: Caches;
  readonly fleet: FleetStore;
  readonly admin: AdminClient;
  readonly record: RecordEvent;
  readonly metrics: ControllerMetrics;
  readonly log: Logger;
  /** This replica's identity (issuedBy of drain plans, reportingInstance of Events). */
  readonly identity: string;
  readonly now?: () => number;
}

interface WrittenPlan {
  readonly rate: number;
  readonly at: number;
}

/** Rewrite a plan at least this often, so a long drain never outlives the plan's TTL (300 s). */
const PLAN_REFRESH_MS = 60_000;

export function createReconciler(deps: ReconcilerDeps): (key: string) => Promise<ReconcileResult> {
  const { clients, caches, fleet, admin, record, metrics, log, identity } = deps;
  const now = deps.now ?? Date.now;
  const written = new Map<string, Map<string, WrittenPlan>>();
  const scaledDownEvents = new Set<string>();

  return async function reconcile(key: string): Promise<ReconcileResult> {
    const started = now();
    const [namespace, name] = key.split('/') as [string, string];
    const sg = caches.socketGateways.get(name, namespace) as (SocketGateway & KubernetesObject) | undefined;
    if (!sg) {
      written.delete(key);
      return {};
    }
    const end = metrics.reconcileSeconds.startTimer();
    try {
      const result = await reconcileOne(sg, namespace, key);
      metrics.reconciles.inc({ result: 'ok' });
      return result;
    } catch (err) {
      metrics.reconciles.inc({ result: 'error' });
      throw err;
    } finally {
      end();
      log.debug({ key, ms: now() - started }, 'reconciled');
    }
  };

  async function reconcileOne(sg: SocketGateway, namespace: string, key: string): Promise<ReconcileResult> {
    const sgRef = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, name: sg.metadata.name, namespace, uid: sg.metadata.uid };
    const labels = { socketgateway: sg.metadata.name };
    let spec: SocketGatewaySpec;
    try {
      spec = parseSpec(sg.spec);
    } catch (err) {
      await writeStatus(sg, { conditions: [condition(sg, 'Ready', 'False', 'InvalidSpec', (err as Error).message)] });
      return {};
    }
    metrics.budget.set(labels, spec.drain.reconnectBudgetPerSecond);

    const deployment = caches.deployments.get(spec.deploymentName, namespace);
    if (!deployment) {
      await writeStatus(sg, {
        observedGeneration: sg.metadata.generation,
        conditions: [condition(sg, 'Ready', 'False', 'DeploymentNotFound', `Deployment ${spec.deploymentName} does not exist in ${namespace}`)],
      });
      return { requeueAfterMs: 10_000 };
    }
    const selector = deployment.spec?.selector;
    const pods = caches.pods.list(namespace).filter((p) => matchesSelector(selector, p.metadata?.labels));
    const templateLabels = deployment.spec?.template.metadata?.labels;
    const pdbs = caches.pdbs
      .list(namespace)
      .filter((pdb) => matchesSelector(pdb.spec?.selector, templateLabels))
      .map((pdb): PdbSpec => ({ minAvailable: pdb.spec?.minAvailable, maxUnavailable: pdb.spec?.maxUnavailable }));
    const deploymentReplicas = deployment.spec?.replicas ?? 1;

    // Observe: fleet stats (all pods, one MGET) and the drain status of pods the controller drains.
    let stats: Map<string, FleetStat> | null = null;
    try {
      stats = await fleet.readStats(pods.map((p) => p.metadata!.name!));
    } catch (err) {
      log.warn({ err: String(err), socketgateway: sg.metadata.name }, 'fleet stats cannot be read from Redis');
    }
    const drainStatus = new Map<string, DrainStatusReply>();
    await Promise.all(
      pods
        .filter((p) => claimOf(p) !== null && !p.metadata?.deletionTimestamp && claimOf(p)!.completedAt === null)
        .map(async (p) => {
          const url = adminUrlOf(p, spec.internalPortName);
          if (!url) return;
          try {
            drainStatus.set(p.metadata!.name!, await admin.status(url));
          } catch (err) {
            log.warn({ pod: p.metadata!.name, err: String(err) }, 'drain status: admin endpoint unreachable');
          }
        }),
    );
    const views = pods.map((p) => podView(p, spec, stats, drainStatus));
    const plan = planReconcile({
      now: now(),
      spec,
      deploymentReplicas,
      pods: views,
      fleetAvailable: stats !== null,
      pdbFloor: pdbFloor(pdbs, deploymentReplicas),
    });
    const byName = new Map(pods.map((p) => [p.metadata!.name!, p]));
    const plansWritten = written.get(key) ?? new Map<string, WrittenPlan>();
    written.set(key, plansWritten);
    let lastScaleDown: ScaleDownRecord | undefined = sg.status?.lastScaleDown;

    // 1. Finished drains.
    for (const done of plan.complete) {
      const pod = byName.get(done.pod)!;
      await patchPod(pod, {
        [ANNOTATIONS.drainCompletedAt]: new Date(now()).toISOString(),
        [ANNOTATIONS.drainOutcome]: done.outcome,
        [ANNOTATIONS.podDeletionCost]: String(MIN_POD_DELETION_COST),
      });
      plansWritten.delete(done.pod);
      await fleet.deletePlan(done.pod).catch(() => {});
      const seconds = Math.round(done.durationMs / 100) / 10;
      lastScaleDown = { pod: done.pod, socketsMoved: done.socketsMoved, durationSeconds: seconds, outcome: done.outcome, completedAt: new Date(now()).toISOString() };
      if (done.outcome === 'Completed') {
        metrics.drains.inc({ ...labels, event: 'completed' });
        const note = `drained ${done.pod}: ${done.socketsMoved} sockets moved in ${seconds} s`;
        await both(sgRef, pod, 'Normal', 'DrainCompleted', note);
        log.info({ pod: done.pod, sockets: done.socketsMoved, seconds }, 'drain completed');
      } else {
        metrics.drains.inc({ ...labels, event: 'timed_out' });
        const note = `${done.pod} still had ${done.remaining ?? 'an unknown number of'} sockets after ${seconds} s (window ${spec.drain.windowSeconds} s + margin ${spec.drain.marginSeconds} s); removing it anyway, its SIGTERM closes the rest`;
        await both(sgRef, pod, 'Warning', 'DrainTimedOut', note);
        log.warn({ pod: done.pod, remaining: done.remaining, seconds }, 'drain timed out');
      }
    }

    // A scale-up took back claimed pods that had not begun draining.
    for (const podName of plan.cancel) {
      const pod = byName.get(podName)!;
      await patchPod(pod, {
        [ANNOTATIONS.drainStartedAt]: null,
        [ANNOTATIONS.drainDeadline]: null,
        [ANNOTATIONS.drainSockets]: null,
      });
      plansWritten.delete(podName);
      await fleet.deletePlan(podName).catch(() => {});
      metrics.drains.inc({ ...labels, event: 'cancelled' });
      await both(sgRef, pod, 'Normal', 'DrainCancelled', `scale-up to ${spec.replicas} before ${podName} began draining: it keeps serving`);
    }

    // 2. New drains: claim first.
    const rates = new Map(plan.rates.map((r) => [r.pod, r]));
    for (const s of plan.start) {
      const pod = byName.get(s.pod)!;
      await patchPod(pod, {
        [ANNOTATIONS.drainStartedAt]: new Date(now()).toISOString(),
        [ANNOTATIONS.drainDeadline]: new Date(s.deadlineAt).toISOString(),
        [ANNOTATIONS.drainSockets]: String(s.sockets),
      });
      metrics.drains.inc({ ...labels, event: 'started' });
      const rate = rates.get(s.pod);
      const over = rate?.overBudget ? ` (raised above its budget share to finish within ${spec.drain.windowSeconds} s)` : '';
      await both(sgRef, pod, 'Normal', 'DrainStarted', `scale-down to ${spec.replicas}: draining ${s.pod} (${s.sockets} sockets, the fewest) at ${rate?.ratePerSecond ?? '?'} closes/s${over}`);
      log.info({ pod: s.pod, sockets: s.sockets, ratePerSecond: rate?.ratePerSecond }, 'drain started');
    }

    // 3. Plans: every draining pod's share of the budget (written before a drain is started).
    for (const r of plan.rates) {
      const previous = plansWritten.get(r.pod);
      if (previous && previous.rate === r.ratePerSecond && now() - previous.at < PLAN_REFRESH_MS) continue;
      try {
        await fleet.writePlan(r.pod, drainPlanFor(spec.drain, r.ratePerSecond, identity, now()));
        plansWritten.set(r.pod, { rate: r.ratePerSecond, at: now() });
        metrics.planWrites.inc(labels);
        if (previous) log.info({ pod: r.pod, from: previous.rate, to: r.ratePerSecond, reason: r.reason }, 'drain plan rewritten: budget re-divided');
      } catch (err) {
        log.warn({ pod: r.pod, err: String(err) }, 'drain plan not written (Redis); the gateway uses its local drain settings');
      }
    }
    for (const podName of [...plansWritten.keys()]) if (!rates.has(podName)) plansWritten.delete(podName);

    // ... then the drains themselves (idempotent).
    for (const podName of plan.ensureStarted) {
      const pod = byName.get(podName)!;
      const url = adminUrlOf(pod, spec.internalPortName);
      if (!url) {
        log.warn({ pod: podName, port: spec.internalPortName }, 'cannot start the drain: the pod has no IP or no such container port');
        continue;
      }
      try {
        const reply = await admin.startDrain(url);
        drainStatus.set(podName, reply);
      } catch (err) {
        log.warn({ pod: podName, err: String(err) }, 'POST /admin/drain failed; retrying on the next reconcile');
      }
    }

    // 4. The Deployment.
    if (plan.deploymentReplicas !== deploymentReplicas) {
      await scaleDeployment(deployment, plan.deploymentReplicas);
      log.info({ deployment: spec.deploymentName, from: deploymentReplicas, to: plan.deploymentReplicas }, 'deployment scaled');
      if (plan.deploymentReplicas > deploymentReplicas) {
        await record(sgRef, 'Normal', 'ScaledUp', 'Scale', `Deployment ${spec.deploymentName} raised from ${deploymentReplicas} to ${plan.deploymentReplicas} replicas`);
      }
    }
    if (plan.deploymentReplicas <= deploymentReplicas) {
      for (const podName of plan.release) {
        const pod = byName.get(podName)!;
        await patchPod(pod, { [ANNOTATIONS.drainReleasedAt]: new Date(now()).toISOString() }, true);
        const uid = pod.metadata?.uid ?? podName;
        if (scaledDownEvents.has(uid)) continue;
        scaledDownEvents.add(uid);
        metrics.scaleDowns.inc(labels);
        await both(sgRef, pod, 'Normal', 'ScaledDown', `Deployment ${spec.deploymentName} lowered to ${plan.deploymentReplicas} replicas; the ReplicaSet deletes the drained pod ${podName}`);
      }
    }

    // 5. Status.
    metrics.budgetInUse.set(labels, plan.budgetInUse);
    metrics.drainingPods.set(labels, plan.rates.length);
    await writeStatus(sg, statusOf(sg, spec, deployment, views, plan, drainStatus, lastScaleDown));
    return { requeueAfterMs: plan.requeueAfterMs };
  }

  async function both(sgRef: Parameters<RecordEvent>[0], pod: V1Pod, type: 'Normal' | 'Warning', reason: Parameters<RecordEvent>[2], note: string): Promise<void> {
    const action = reason === 'ScaledDown' ? 'Scale' : 'Drain';
    await record(sgRef, type, reason, action, note);
    await record(
      { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, uid: pod.metadata?.uid },
      type,
      reason,
      action,
      note,
    );
  }

  async function patchPod(pod: V1Pod, annotations: Record<string, string | null>, ignoreMissing = false): Promise<void> {
    try {
      const updated = await clients.core.patchNamespacedPod(
        { name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: { metadata: { annotations } } },
        mergePatch,
      );
      await cacheCaughtUp(caches.pods, updated);
    } catch (err) {
      if (ignoreMissing && statusCode(err) === 404) return;
      throw err;
    }
  }

  async function scaleDeployment(deployment: V1Deployment, replicas: number): Promise<void> {
    const scale = await clients.apps.patchNamespacedDeploymentScale(
      { name: deployment.metadata!.name!, namespace: deployment.metadata!.namespace!, body: { spec: { replicas } } },
      mergePatch,
    );
    await cacheCaughtUp(caches.deployments, { metadata: { ...deployment.metadata, resourceVersion: scale.metadata?.resourceVersion } });
  }

  async function writeStatus(sg: SocketGateway, status: SocketGatewayStatus): Promise<void> {
    const current = sg.status ?? {};
    if (sameStatus(current, status)) return;
    try {
      const updated = (await clients.custom.patchNamespacedCustomObjectStatus(
        { group: API_GROUP, version: API_VERSION, namespace: sg.metadata.namespace, plural: PLURAL, name: sg.metadata.name, body: { status } },
        mergePatch,
      )) as KubernetesObject;
      await cacheCaughtUp(caches.socketGateways as unknown as ObjectCache<KubernetesObject>, updated);
    } catch (err) {
      if (statusCode(err) === 404) return;
      throw err;
    }
  }

  function statusOf(
    sg: SocketGateway,
    spec: SocketGatewaySpec,
    deployment: V1Deployment,
    views: readonly PodView[],
    plan: ReconcilePlan,
    drainStatus: Map<string, DrainStatusReply>,
    lastScaleDown: ScaleDownRecord | undefined,
  ): SocketGatewayStatus {
    const rates = new Map(plan.rates.map((r) => [r.pod, r.ratePerSecond]));
    const started = new Set(plan.start.map((s) => s.pod));
    const completed = new Set(plan.complete.map((c) => c.pod));
    const cancelled = new Set(plan.cancel);
    const pods: PodStatusEntry[] = views
      .map((v): PodStatusEntry => {
        const draining = (v.claim !== null && v.claim.completedAt === null && !completed.has(v.name) && !cancelled.has(v.name)) || started.has(v.name);
        const drained = v.claim?.completedAt != null || completed.has(v.name);
        const state = v.deleting ? 'Terminating' : drained ? 'Drained' : draining ? 'Draining' : v.ready ? 'Serving' : 'Starting';
        const sockets = drainStatus.get(v.name)?.remaining ?? v.sockets;
        return {
          name: v.name,
          state,
          ready: v.ready,
          ...(sockets !== null && sockets !== undefined ? { sockets } : {}),
          ...(rates.has(v.name) ? { drainRatePerSecond: rates.get(v.name)! } : {}),
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
    const serving = pods.filter((p) => p.state === 'Serving' || p.state === 'Starting');
    const readyServing = serving.filter((p) => p.ready).length;
    const draining = plan.rates;
    const conditions: Condition[] = [
      readyServing >= spec.replicas && serving.length === spec.replicas
        ? condition(sg, 'Ready', 'True', 'AtDesiredReplicas', `${readyServing} ready serving pods`)
        : condition(
            sg,
            'Ready',
            'False',
            serving.length > spec.replicas ? 'ScalingDown' : 'ScalingUp',
            `${readyServing} ready of ${serving.length} serving pods; ${spec.replicas} wanted`,
          ),
      draining.length > 0
        ? condition(sg, 'Draining', 'True', 'PodsDraining', draining.map((r) => `${r.pod} (${r.reason}) at ${r.ratePerSecond}/s`).join(', '))
        : condition(sg, 'Draining', 'False', 'NoDrains', 'no pod is draining'),
      plan.blocked
        ? condition(sg, 'ScaleDownBlocked', 'True', plan.blocked.reason, plan.blocked.message)
        : plan.releaseBlocked
          ? condition(sg, 'ScaleDownBlocked', 'True', plan.releaseBlocked.reason, plan.releaseBlocked.message)
          : condition(sg, 'ScaleDownBlocked', 'False', 'NotBlocked', 'nothing waits'),
    ];
    return {
      observedGeneration: sg.metadata.generation,
      replicas: serving.length,
      readyReplicas: readyServing,
      drainingReplicas: draining.length,
      selector: selectorString(deployment.spec?.selector),
      deploymentReplicas: plan.deploymentReplicas,
      budgetInUsePerSecond: plan.budgetInUse,
      pods,
      ...(lastScaleDown ? { lastScaleDown } : {}),
      conditions,
    };
  }

  function condition(sg: SocketGateway, type: string, status: Condition['status'], reason: string, message: string): Condition {
    const previous = sg.status?.conditions?.find((c) => c.type === type);
    const lastTransitionTime = previous && previous.status === status ? previous.lastTransitionTime : new Date(now()).toISOString().replace(/\.\d+Z$/, 'Z');
    return { type, status, reason, message, lastTransitionTime, observedGeneration: sg.metadata.generation };
  }
}

/** Would writing `next` change `current`? (Key order does not matter; fields `next` leaves out stay.) */
function sameStatus(current: SocketGatewayStatus, next: SocketGatewayStatus): boolean {
  return stableJson({ ...current, ...next }) === stableJson(current);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Waits until the informer's copy of `object` is at least as new as the version a write returned. */
async function cacheCaughtUp<T extends KubernetesObject>(cache: ObjectCache<T>, object: KubernetesObject, timeoutMs = 5_000): Promise<void> {
  const want = Number(object.metadata?.resourceVersion);
  if (!Number.isFinite(want)) return;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const cached = cache.get(object.metadata!.name!, object.metadata!.namespace);
    if (!cached || Number(cached.metadata?.resourceVersion) >= want) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function claimOf(pod: V1Pod): DrainClaim | null {
  const a = pod.metadata?.annotations ?? {};
  const startedAt = Date.parse(a[ANNOTATIONS.drainStartedAt] ?? '');
  if (!Number.isFinite(startedAt)) return null;
  const deadlineAt = Date.parse(a[ANNOTATIONS.drainDeadline] ?? '');
  const completedAt = Date.parse(a[ANNOTATIONS.drainCompletedAt] ?? '');
  const releasedAt = Date.parse(a[ANNOTATIONS.drainReleasedAt] ?? '');
  const outcome = a[ANNOTATIONS.drainOutcome];
  return {
    startedAt,
    deadlineAt: Number.isFinite(deadlineAt) ? deadlineAt : startedAt,
    sockets: Number(a[ANNOTATIONS.drainSockets] ?? 0) || 0,
    completedAt: Number.isFinite(completedAt) ? completedAt : null,
    outcome: outcome === 'Completed' || outcome === 'TimedOut' ? outcome : null,
    releasedAt: Number.isFinite(releasedAt) ? releasedAt : null,
  };
}

function podView(pod: V1Pod, spec: SocketGatewaySpec, stats: Map<string, FleetStat> | null, drainStatus: Map<string, DrainStatusReply>): PodView {
  const name = pod.metadata!.name!;
  const cost = Number(pod.metadata?.annotations?.[ANNOTATIONS.podDeletionCost]);
  const reply = drainStatus.get(name);
  const stat = stats?.get(name);
  return {
    name,
    createdAt: Date.parse(String(pod.metadata?.creationTimestamp ?? '')) || 0,
    scheduled: Boolean(pod.spec?.nodeName),
    phase: pod.status?.phase ?? 'Pending',
    ready: (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    deleting: Boolean(pod.metadata?.deletionTimestamp),
    adminUrl: adminUrlOf(pod, spec.internalPortName),
    templateHash: pod.metadata?.labels?.['pod-template-hash'] ?? null,
    deletionCost: Number.isInteger(cost) && pod.metadata?.annotations?.[ANNOTATIONS.podDeletionCost] !== undefined ? cost : null,
    claim: claimOf(pod),
    sockets: reply ? reply.remaining : stat ? stat.sockets : null,
    drainPhase: reply ? reply.phase : null,
  };
}
