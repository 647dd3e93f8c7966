import { LIMITS } from './limits.ts';
/**
 * How long a gateway pod takes to go away, end to end:
 *
 *   delete ─► preStop sleep ─► SIGTERM ─► notice delay (not ready, still serving) ─► paced closes over the
 *   window ─► exit ─► (margin) ─► terminationGracePeriodSeconds, when the kubelet would SIGKILL.
 *
 * The grace period counts from the start of preStop, so it is derived from the parts rather than set by hand.
 */
export interface DrainProps {
  /**
   * Seconds the kubelet sleeps before SIGTERM (`preStop: {sleep}`), so endpoints and the entry proxy stop
   * routing new connections here before the gateway starts to drain.
   * @default 5
   */
  readonly preStopSeconds?: number;
  /**
   * `DRAIN_NOTICE_DELAY_MS`: after SIGTERM the gateway reports not ready but keeps serving this long.
   * @default 2000
   */
  readonly noticeDelayMs?: number;
  /**
   * `DRAIN_WINDOW_MS`: paced socket closes are spread over this window.
   * @default 20000
   */
  readonly windowMs?: number;
  /**
   * `DRAIN_RATE_PER_SECOND`: socket closes per second; 0 spreads them evenly over the window.
   * @default 0
   */
  readonly ratePerSecond?: number;
  /**
   * `DRAIN_JITTER_MS`: clients are told to reconnect after a delay in [0, this], capped at the window.
   * @default 20000
   */
  readonly jitterMs?: number;
  /**
   * Seconds of slack between the gateway's own shutdown deadline and the kubelet's SIGKILL. At least 2:
   * the gateway's hard deadline (`SHUTDOWN_DEADLINE_MS`) is set one second before SIGKILL.
   * @default 5
   */
  readonly marginSeconds?: number;
  /**
   * Override the derived grace period (longer only; a shorter one is an error).
   * @default - preStopSeconds + ceil((noticeDelayMs + windowMs) / 1000) + marginSeconds
   */
  readonly terminationGracePeriodSeconds?: number;
}

/** Every drain number, resolved and checked. */
export interface DrainTiming {
  readonly preStopSeconds: number;
  readonly noticeDelayMs: number;
  readonly windowMs: number;
  readonly ratePerSecond: number;
  readonly jitterMs: number;
  readonly marginSeconds: number;
  /** The shortest grace period that lets a drain finish. */
  readonly minimumGracePeriodSeconds: number;
  readonly terminationGracePeriodSeconds: number;
  /** `SHUTDOWN_DEADLINE_MS`: from SIGTERM, one second before the kubelet's SIGKILL. */
  readonly shutdownDeadlineMs: number;
  /**
   * The Deployment's `minReadySeconds`: how long one drain takes (preStop + notice + window). A rolling
   * update replaces the next pod only after the new one has been ready this long, so at most one old pod
   * drains at a time and the survivors absorb one pod's reconnects at once.
   */
  readonly minReadySeconds: number;
}

export const DRAIN_DEFAULTS = {
  preStopSeconds: 5,
  noticeDelayMs: 2000,
  windowMs: 20_000,
  ratePerSecond: 0,
  jitterMs: 20000,
  marginSeconds: 5,
} as const;

function checkInteger(prop: keyof typeof LIMITS.drain, value: number): number {
  const min = LIMITS.drain[prop].minimum;
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`drain.${prop}=${value} must be an integer >= ${min}`);
  }
  return value;
}

export function resolveDrainTiming(props: DrainProps = {}): DrainTiming {
  const preStopSeconds = checkInteger('preStopSeconds', props.preStopSeconds ?? DRAIN_DEFAULTS.preStopSeconds);
  const noticeDelayMs = checkInteger('noticeDelayMs', props.noticeDelayMs ?? DRAIN_DEFAULTS.noticeDelayMs);
  const windowMs = checkInteger('windowMs', props.windowMs ?? DRAIN_DEFAULTS.windowMs);
  const ratePerSecond = checkInteger('ratePerSecond', props.ratePerSecond ?? DRAIN_DEFAULTS.ratePerSecond);
  const jitterMs = checkInteger('jitterMs', props.jitterMs ?? DRAIN_DEFAULTS.jitterMs);
  const marginSeconds = checkInteger('marginSeconds', props.marginSeconds ?? DRAIN_DEFAULTS.marginSeconds);
  const minimumGracePeriodSeconds = preStopSeconds + Math.ceil((noticeDelayMs + windowMs) / 1000) + marginSeconds;
  const requested = props.terminationGracePeriodSeconds;
  if (requested !== undefined && (!Number.isInteger(requested) || requested < minimumGracePeriodSeconds)) {
    throw new Error(
      `drain.terminationGracePeriodSeconds=${requested} is shorter than the drain needs: preStopSeconds (${preStopSeconds}) + ` +
        `ceil((noticeDelayMs ${noticeDelayMs} + windowMs ${windowMs}) / 1000) + marginSeconds (${marginSeconds}) = ` +
        `${minimumGracePeriodSeconds} s. Raise it, or leave it unset to derive it.`,
    );
  }
  const terminationGracePeriodSeconds = requested ?? minimumGracePeriodSeconds;
  const shutdownDeadlineMs = (terminationGracePeriodSeconds - preStopSeconds - 1) * 1000;
  const minReadySeconds = minimumGracePeriodSeconds - marginSeconds;
  return {
    preStopSeconds,
    noticeDelayMs,
    windowMs,
    ratePerSecond,
    jitterMs,
    marginSeconds,
    minimumGracePeriodSeconds,
    terminationGracePeriodSeconds,
    shutdownDeadlineMs,
    minReadySeconds,
  };
}

/**
 * The same derivation in Helm template syntax, for the generated chart (whose drain values are live
 * template values, not numbers known at generation time). Kept next to `resolveDrainTiming` on purpose:
 * the chart tests render non-default drain values with `helm template` and compare them with this
 * function's output, so the two cannot drift unnoticed.
 */
export const DRAIN_TIMING_HELM_HELPERS = `
{{/* The shortest grace period that lets a drain finish (see infra/drain-timing.ts). */}}
{{- define "realtime-gateway.minimumGracePeriodSeconds" -}}
{{- $d := .Values.drain -}}
{{- if lt (int $d.marginSeconds) 2 -}}
{{- fail (printf "drain.marginSeconds=%v must be an integer >= 2" $d.marginSeconds) -}}
{{- end -}}
{{- add (int $d.preStopSeconds) (div (add (int $d.noticeDelayMs) (int $d.windowMs) 999) 1000) (int $d.marginSeconds) -}}
{{- end -}}

{{- define "realtime-gateway.terminationGracePeriodSeconds" -}}
{{- $minimum := include "realtime-gateway.minimumGracePeriodSeconds" . | int -}}
{{- $requested := .Values.drain.terminationGracePeriodSeconds -}}
{{- if $requested -}}
{{- if lt (int $requested) $minimum -}}
{{- fail (printf "drain.terminationGracePeriodSeconds=%v is shorter than the drain needs (%d s = preStopSeconds + ceil((noticeDelayMs + windowMs) / 1000) + marginSeconds). Raise it, or leave it unset to derive it." $requested $minimum) -}}
{{- end -}}
{{- int $requested -}}
{{- else -}}
{{- $minimum -}}
{{- end -}}
{{- end -}}

{{/* minReadySeconds: one drain (preStop + notice + window), so a rolling update drains one pod at a time. */}}
{{- define "realtime-gateway.minReadySeconds" -}}
{{- sub (include "realtime-gateway.minimumGracePeriodSeconds" . | int) (int .Values.drain.marginSeconds) -}}
{{- end -}}

{{/* SHUTDOWN_DEADLINE_MS: from SIGTERM, one second before the kubelet's SIGKILL. */}}
{{- define "realtime-gateway.shutdownDeadlineMs" -}}
{{- mul (sub (sub (include "realtime-gateway.terminationGracePeriodSeconds" . | int) (int .Values.drain.preStopSeconds)) 1) 1000 -}}
{{- end -}}
`;
