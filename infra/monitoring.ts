import { ApiObject, type ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import { objectLabels, type AppIdentity } from './labels.ts';
import { mergeExtra } from './pod-extensions.ts';

/** The Prometheus Operator's API (monitoring.coreos.com/v1): ServiceMonitor and PrometheusRule. */
export const PROMETHEUS_OPERATOR_API = 'monitoring.coreos.com/v1';

export interface GatewayMonitoringProps {
  readonly app: AppIdentity;
  /** Base name of the objects (the gateway's). */
  readonly name: string;
  /** Labels of the gateway Service (the ServiceMonitor selects it). */
  readonly serviceSelector: Readonly<Record<string, string>>;
  /** Name of the Service port serving `/metrics` (the internal port). */
  readonly metricsPortName: string;
  /** Namespace of the gateway, which the alert expressions are scoped to. */
  readonly namespace: string;
  /** The pods' grace period: a drain in progress longer than this cannot finish. */
  readonly terminationGracePeriodSeconds: number;
  /**
   * Create a ServiceMonitor.
   * @default true
   */
  readonly serviceMonitor?: boolean;
  /**
   * Scrape interval.
   * @default '30s'
   */
  readonly interval?: string;
  /**
   * Labels your Prometheus selects ServiceMonitors by (e.g. `release: kube-prometheus-stack`).
   * @default - none
   */
  readonly serviceMonitorLabels?: Readonly<Record<string, string>>;
  /**
   * Create a PrometheusRule with the alerts of docs/operations.md.
   * @default true
   */
  readonly prometheusRule?: boolean;
  /**
   * Labels your Prometheus selects PrometheusRules by.
   * @default - none
   */
  readonly prometheusRuleLabels?: Readonly<Record<string, string>>;
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { readonly severity: 'critical' | 'warning' | 'info' };
  readonly annotations: { readonly summary: string; readonly description: string; readonly runbook_url?: string };
}

/** The alerts docs/operations.md describes ("Alerts worth having"), scoped to one installation's pods. */
export function gatewayAlerts(job: string, namespace: string, terminationGracePeriodSeconds: number): AlertRule[] {
  const scope = `namespace="${namespace}", job="${job}"`;
  const runbook = 'docs/operations.md';
  return [
    {
      alert: 'RealtimeGatewayBackplaneDown',
      expr: `max by (pod) (1 - rt_backplane_up{${scope}}) == 1`,
      for: '30s',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'A gateway pod lost its Redis backplane',
        description: '{{ $labels.pod }}: publishes fail with backplane_unavailable and /readyz is 503; clients keep their sockets. See "Redis goes away".',
        runbook_url: runbook,
      },
    },
    {
      alert: 'RealtimeGatewayOverCapacity',
      expr: `sum by (pod) (rate(rt_handshake_refusals_total{${scope}, code="over_capacity"}[5m])) > 0`,
      for: '5m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Handshakes refused with over_capacity',
        description: '{{ $labels.pod }} is at MAX_CONNECTIONS or MAX_CONNECTIONS_PER_SECOND: scale out.',
        runbook_url: runbook,
      },
    },
    {
      alert: 'RealtimeGatewayPingTimeouts',
      // More than 5 % of the sockets timing out within 5 minutes.
      expr: `sum(increase(rt_disconnections_total{${scope}, reason="ping timeout"}[5m])) / clamp_min(sum(rt_connected_sockets{${scope}}), 1) > 0.05`,
      for: '10m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Ping timeouts spiking',
        description: 'More heartbeat timeouts than usual: a proxy or network idle timeout below PING_INTERVAL_MS + PING_TIMEOUT_MS (35 s by default)?',
        runbook_url: runbook,
      },
    },
    {
      alert: 'RealtimeGatewayRateLimited',
      expr: `sum(rate(rt_messages_in_total{${scope}, outcome="rate_limited"}[5m])) > 1`,
      for: '15m',
      labels: { severity: 'info' },
      annotations: { summary: 'Clients publish faster than the per-socket limit', description: 'A client bug or abuse: rate_limited acks for 15 minutes.', runbook_url: runbook },
    },
    {
      alert: 'RealtimeGatewaySlowConsumers',
      expr: `sum(rate(rt_slow_consumer_disconnections_total{${scope}}[5m])) > 0.1`,
      for: '15m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Sockets closed as slow consumers',
        description: 'Clients on poor links, or a room too busy for its readers (see rt_congested_sockets, rt_coalesced_updates_total).',
        runbook_url: runbook,
      },
    },
    {
      alert: 'RealtimeGatewayDrainStuck',
      expr: `max by (pod) (rt_drain_in_progress{${scope}}) == 1`,
      for: `${terminationGracePeriodSeconds}s`,
      labels: { severity: 'warning' },
      annotations: {
        summary: 'A drain outlived the grace period',
        description: '{{ $labels.pod }} has drained for longer than terminationGracePeriodSeconds: check rt_drain_remaining_sockets and rt_drain_closes_total{how="forced"}.',
        runbook_url: runbook,
      },
    },
    {
      alert: 'RealtimeGatewayEventLoopLag',
      expr: `max by (pod) (nodejs_eventloop_lag_p99_seconds{${scope}}) > 0.05`,
      for: '10m',
      labels: { severity: 'warning' },
      annotations: { summary: 'Event loop lag p99 above 50 ms', description: '{{ $labels.pod }} is CPU-bound: scale out, or lower the per-pod connection target.', runbook_url: runbook },
    },
  ];
}

/**
 * Prometheus Operator objects for the gateway: a ServiceMonitor scraping the internal port's `/metrics`
 * (admit Prometheus' namespace to that port: `internal.metricsNamespace`) and a PrometheusRule with the
 * alerts of docs/operations.md. Both are handles, for patches.
 */
export class GatewayMonitoring extends Construct {
  readonly serviceMonitor?: ApiObject;
  readonly prometheusRule?: ApiObject;

  constructor(scope: Construct, id: string, props: GatewayMonitoringProps) {
    super(scope, id);
    const labels = objectLabels(props.app, 'monitoring');
    if (props.serviceMonitor ?? true) {
      this.serviceMonitor = new ApiObject(this, 'ServiceMonitor', {
        apiVersion: PROMETHEUS_OPERATOR_API,
        kind: 'ServiceMonitor',
        metadata: { name: props.name, labels: mergeExtra(labels, props.serviceMonitorLabels, 'serviceMonitorLabels') },
        spec: {
          selector: { matchLabels: { ...props.serviceSelector } },
          endpoints: [{ port: props.metricsPortName, path: '/metrics', interval: props.interval ?? '30s' }],
        },
      } as ApiObjectProps);
    }
    if (props.prometheusRule ?? true) {
      this.prometheusRule = new ApiObject(this, 'PrometheusRule', {
        apiVersion: PROMETHEUS_OPERATOR_API,
        kind: 'PrometheusRule',
        metadata: { name: props.name, labels: mergeExtra(labels, props.prometheusRuleLabels, 'prometheusRuleLabels') },
        spec: { groups: [{ name: 'realtime-gateway', rules: gatewayAlerts(props.name, props.namespace, props.terminationGracePeriodSeconds) }] },
      } as ApiObjectProps);
    }
  }
}
