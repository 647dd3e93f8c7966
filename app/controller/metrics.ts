import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The controller's Prometheus metrics (`rtc_*`), served on /metrics. Listed in docs/controller.md. */
export function createControllerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labels = ['socketgateway'] as const;
  return {
    registry,
    leader: new Gauge({ name: 'rtc_leader', help: '1 while this replica holds the Lease', registers: [registry] }),
    reconciles: new Counter({
      name: 'rtc_reconciles_total',
      help: 'Reconciles by result (ok, error)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    reconcileSeconds: new Histogram({
      name: 'rtc_reconcile_duration_seconds',
      help: 'Time one reconcile takes',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    drains: new Counter({
      name: 'rtc_drains_total',
      help: 'Controller drains by event (started, completed, timed_out, cancelled)',
      labelNames: [...labels, 'event'] as const,
      registers: [registry],
    }),
    scaleDowns: new Counter({ name: 'rtc_scale_downs_total', help: 'Drained pods handed to the ReplicaSet for deletion', labelNames: labels, registers: [registry] }),
    budget: new Gauge({ name: 'rtc_budget_per_second', help: 'The fleet reconnect budget (spec.drain.reconnectBudgetPerSecond)', labelNames: labels, registers: [registry] }),
    budgetInUse: new Gauge({ name: 'rtc_budget_in_use_per_second', help: 'Sum of the drain-plan rates of every pod draining now', labelNames: labels, registers: [registry] }),
    drainingPods: new Gauge({ name: 'rtc_draining_pods', help: 'Pods draining now (controller drains and deleted pods)', labelNames: labels, registers: [registry] }),
    planWrites: new Counter({ name: 'rtc_drain_plan_writes_total', help: 'Drain plans written to Redis', labelNames: labels, registers: [registry] }),
    informerErrors: new Counter({ name: 'rtc_watch_errors_total', help: 'Watch or list failures (each restarts the informer with backoff)', labelNames: ['kind'] as const, registers: [registry] }),
  };
}

export type ControllerMetrics = ReturnType<typeof createControllerMetrics>;
