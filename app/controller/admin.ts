import type { V1Pod } from '@kubernetes/client-node';
import type { GatewayDrainPhase } from './planner.ts';

/**
 * Calls a gateway pod's admin endpoint (docs/drain.md) on its internal port: the pod's IP and the
 * container port named `spec.internalPortName` (`internal` by default), exactly as a Service would
 * resolve a named targetPort. No route or Ingress exposes that port; a NetworkPolicy admits the controller.
 */

export interface DrainStatusReply {
  readonly phase: GatewayDrainPhase;
  readonly remaining: number;
  readonly trigger: string | null;
}

export interface AdminClient {
  /** `GET /admin/drain`. Throws when the pod cannot be reached or answers otherwise than 200. */
  status(url: string): Promise<DrainStatusReply>;
  /** `POST /admin/drain` (idempotent: a drain under way is left alone). */
  startDrain(url: string): Promise<DrainStatusReply>;
}

/** `http://<podIP>:<internal port>` of a pod, or null when it has no IP or no such container port. */
export function adminUrlOf(pod: V1Pod, portName: string): string | null {
  const ip = pod.status?.podIP;
  if (!ip) return null;
  for (const container of pod.spec?.containers ?? []) {
    const port = container.ports?.find((p) => p.name === portName);
    if (port) return `http://${ip.includes(':') ? `[${ip}]` : ip}:${port.containerPort}`;
  }
  return null;
}

const PHASES = new Set<GatewayDrainPhase>(['serving', 'notice', 'closing', 'drained']);

export function createAdminClient(token: string, timeoutMs: number): AdminClient {
  const call = async (url: string, method: 'GET' | 'POST'): Promise<DrainStatusReply> => {
    const res = await fetch(`${url}/admin/drain`, {
      method,
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status !== 200 && res.status !== 202) throw new Error(`${method} ${url}/admin/drain answered ${res.status}: ${text.slice(0, 200)}`);
    let body: { drain?: { phase?: unknown; remaining?: unknown; trigger?: unknown } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error(`${method} ${url}/admin/drain answered with something other than JSON: ${text.slice(0, 200)}`);
    }
    const phase = body.drain?.phase;
    if (typeof phase !== 'string' || !PHASES.has(phase as GatewayDrainPhase)) {
      throw new Error(`${method} ${url}/admin/drain: unexpected drain phase ${JSON.stringify(phase)}`);
    }
    return {
      phase: phase as GatewayDrainPhase,
      remaining: typeof body.drain?.remaining === 'number' ? body.drain.remaining : 0,
      trigger: typeof body.drain?.trigger === 'string' ? body.drain.trigger : null,
    };
  };
  return {
    status: (url) => call(url, 'GET'),
    startDrain: (url) => call(url, 'POST'),
  };
}
