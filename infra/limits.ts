/**
 * Bounds the constructs enforce on their props, in one place: the constructs check them at synth, and the
 * chart's values.schema.json (infra/chart/schema.ts) is generated from the same numbers, so `helm install`
 * refuses exactly what the constructs refuse.
 */
export interface NumberLimit {
  readonly minimum?: number;
  readonly maximum?: number;
  /** Fractional values allowed (else integers only). */
  readonly fractional?: boolean;
}

export const LIMITS = {
  port: { minimum: 1, maximum: 65_535 },
  nodePort: { minimum: 30_000, maximum: 32_767 },
  replicas: { minimum: 1 },
  minReplicas: { minimum: 1 },
  scaleUpPods: { minimum: 1 },
  /** One pod per period; scale-down must stay slower than scale-up (15 s periods). */
  scaleDownPeriodSeconds: { minimum: 15 },
  /** A short window flaps pods. */
  scaleDownStabilizationSeconds: { minimum: 60 },
  utilizationPercentage: { minimum: 1 },
  socketsPerPod: { minimum: 1 },
  haproxyMaxServers: { minimum: 1, maximum: 1000 },
  haproxyMaxConnections: { minimum: 1 },
  ingressTimeoutSeconds: { minimum: 1 },
  /** The controller derives its renew deadline and retry period from it. */
  leaseDurationSeconds: { minimum: 3 },
  minReadyPods: { minimum: 0 },
  reconnectBudgetPerSecond: { minimum: 0.2, fractional: true },
  controllerDrainWindowSeconds: { minimum: 1 },
  controllerDrainMarginSeconds: { minimum: 0 },
  drain: {
    preStopSeconds: { minimum: 0 },
    noticeDelayMs: { minimum: 0 },
    /** DRAIN_WINDOW_MS is a positive integer (app/gateway/config.ts): 0 crash-loops the pods. */
    windowMs: { minimum: 1 },
    ratePerSecond: { minimum: 0 },
    jitterMs: { minimum: 0 },
    /** The gateway's hard deadline is one second before SIGKILL. */
    marginSeconds: { minimum: 2 },
  },
} as const satisfies Record<string, NumberLimit | Record<string, NumberLimit>>;

/** RFC 6265 cookie-name token characters. */
export const COOKIE_NAME_PATTERN = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$";

/** Values of a sticky cookie's `SameSite` attribute, as browsers and ingress-nginx spell them. */
export const COOKIE_SAME_SITE_VALUES = ['Lax', 'Strict', 'None'] as const;
export type CookieSameSite = (typeof COOKIE_SAME_SITE_VALUES)[number];

/**
 * Checks a sticky cookie's attributes as the entries set them: `SameSite=None` without `Secure` is dropped by
 * browsers (long-polling then loses its pod). The value itself is typed, like the constructs' other enums
 * (values.schema.json checks it for the chart, whose generator passes a template placeholder here).
 */
export function checkCookieAttributes(secure: boolean, sameSite: string): void {
  if (sameSite === 'None' && !secure) {
    throw new Error('cookieSameSite=None needs cookieSecure=true: browsers drop a SameSite=None cookie that is not Secure');
  }
}
