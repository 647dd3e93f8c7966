import { z } from 'zod';

/**
 * The drain plan: what a controller (app/controller) writes to Redis to set the pace of one pod's
 * drain. The gateway reads it when its paced phase starts and again about once a second while it
 * closes, so a rewritten plan (a re-divided budget) changes the pace mid-drain; when it is absent,
 * expired or malformed the gateway keeps its current pace (its local DRAIN_* configuration if it never
 * read one) — the controller optimises, it is never required for a clean drain. See docs/drain.md.
 *
 * Key: `${KEY_PREFIX}:{fleet}:drain:${pod}` (a plain string holding JSON). The `{fleet}` hash tag puts it
 * in the same Redis Cluster slot as the fleet stats. Written with `SET … EX` — see DRAIN_PLAN_TTL_SECONDS.
 */
export const drainPlanSchema = z.strictObject({
  /** Contract version; a gateway ignores a plan of another version. */
  v: z.literal(1),
  /** Socket closes per second (≥ 0.1). When set it wins over `windowMs`: the window is `sockets / rate`. */
  ratePerSecond: z
    .number()
    .min(0.1, 'must be at least 0.1 closes per second; for a slower drain set windowMs instead')
    .max(100_000)
    .optional(),
  /** Spread the closes over this long. */
  windowMs: z.number().int().positive().max(3_600_000).optional(),
  /** Upper bound of the `server:draining` hint; 0 turns the hint's jitter off. */
  jitterMs: z.number().int().nonnegative().max(3_600_000).optional(),
  /** Who wrote it and when (ms since the epoch), for logs and Events. */
  issuedBy: z.string().max(253).optional(),
  issuedAt: z.number().int().nonnegative().optional(),
});

export type DrainPlan = z.output<typeof drainPlanSchema>;

/** A TTL a writer should use: longer than any drain it governs, short enough not to outlive the pod's name. */
export const DRAIN_PLAN_TTL_SECONDS = 300;

export function drainPlanKey(keyPrefix: string, pod: string): string {
  return `${keyPrefix}:{fleet}:drain:${pod}`;
}

/** Parses a stored plan; throws with a message saying what is wrong. */
export function parseDrainPlan(raw: string): DrainPlan {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error(`drain plan is not JSON: ${raw.slice(0, 200)}`);
  }
  const result = drainPlanSchema.safeParse(json);
  if (!result.success) {
    throw new Error(`drain plan does not match the contract in docs/drain.md: ${result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return result.data;
}
