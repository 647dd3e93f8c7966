// The chaos suite on the real node (`--target node`): a node of its own (scripts/node/), the chart
// installed with the size's drain settings and the HAProxy entry, and pods ended for real by kubectl —
// the kind target's code (kubectlTarget) with one addition: a SIGKILL of the container itself, since
// `kubectl delete --grace-period=0 --force` only removes the API object and the kubelet would still
// send SIGTERM first.
import { helmInstallBlueprint } from '../node/blueprint.ts';
import { buildNodeImages } from '../node/images.ts';
import { startNode } from '../node/node.ts';
import type { PodExit } from '../fleet/fleet.ts';
import { type ChaosDrainSettings, type ChaosTarget, kubectlTarget } from './targets.ts';

const NAMESPACE = 'chaos';
const RELEASE = 'chaos';
const NODE_PORT = 30090;

export async function nodeTarget(opts: { replicas: number; drain: ChaosDrainSettings; log: (line: string) => void }): Promise<ChaosTarget> {
  const images = await buildNodeImages({ log: opts.log });
  const [node, stopNode] = await startNode({ images: images.map((image) => image.archive), log: opts.log });
  try {
    opts.log(`chaos: helm install of the chart (${opts.replicas} gateways, drain at ${opts.drain.ratePerSecond}/s) with the HAProxy entry`);
    const deployment = await helmInstallBlueprint(node, {
      release: RELEASE,
      namespace: NAMESPACE,
      nodePort: NODE_PORT,
      values: {
        'autoscaling.mode': 'none',
        replicaCount: String(opts.replicas),
        // Pod deletions only: the scale-down controller has its own scenario and suite.
        'controller.enabled': 'false',
        // Longer than HAProxy needs to mark a pod DOWN (2 checks × 1 s), so no handshake lands on it after.
        'drain.noticeDelayMs': String(Math.max(opts.drain.noticeMs, 2_500)),
        'drain.ratePerSecond': String(opts.drain.ratePerSecond),
        'drain.windowMs': String(Math.min(20_000, opts.drain.shutdownDeadlineMs - opts.drain.noticeMs - 1_000)),
        // The hint spans the whole paced window (it is capped at the window), so hinted clients move at the rate.
        'drain.jitterMs': '600000',
        'settings.FLEET_STATS_INTERVAL_MS': '1000',
        // The load generator opens hundreds of connections from one address in a few seconds.
        'settings.MAX_CONNECTIONS_PER_SECOND': '2000',
        'settings.RATE_LIMIT_PER_SECOND': '50',
        'settings.RATE_LIMIT_BURST': '100',
      },
      log: opts.log,
    });
    const target = await kubectlTarget({
      name: 'node',
      kubeconfig: node.kubeconfig,
      kubectl: `${node.binDir}/kubectl`,
      namespace: NAMESPACE,
      gatewaySelector: deployment.gatewaySelector,
      redisSelector: deployment.redisSelector,
      url: deployment.entryUrl,
    });
    // The entry learns pods through DNS and health checks a moment after they are Ready; a population
    // connected before it knows them all would pile onto one pod.
    const entryServesAll = async (timeoutMs: number) => {
      const expected = (await target.pods()).filter((p) => p.phase === 'Running').map((p) => p.name);
      const seen = new Set<string>();
      const deadline = Date.now() + timeoutMs;
      while (expected.some((pod) => !seen.has(pod))) {
        if (Date.now() > deadline) throw new Error(`the entry ${deployment.entryUrl} reached only ${[...seen].join(', ') || 'no pod'} of ${expected.join(', ')} within ${timeoutMs} ms`);
        const body = await fetch(`${deployment.entryUrl}/readyz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.json() as Promise<{ pod?: string }>, (): { pod?: string } => ({}));
        if (body.pod) seen.add(body.pod);
        else await new Promise((r) => setTimeout(r, 200));
      }
    };
    await entryServesAll(60_000);
    return {
      ...target,
      description: `${target.description}; real node ${node.server}`,
      async waitForReady(timeoutMs = 120_000) {
        await target.waitForReady(timeoutMs);
        await entryServesAll(timeoutMs);
      },
      async kill(pod: string): Promise<PodExit> {
        const began = Date.now();
        const status = JSON.parse((await node.kubectl(['-n', NAMESPACE, 'get', 'pod', pod, '-o', 'json'])).stdout) as {
          status: { containerStatuses?: { containerID?: string }[] };
        };
        for (const container of status.status.containerStatuses ?? []) {
          const id = container.containerID?.replace(/^containerd:\/\//, '');
          if (id) await node.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => {});
        }
        await node.kubectl(['-n', NAMESPACE, 'delete', 'pod', pod, '--grace-period=0', '--force', '--wait=true']);
        return { pod, code: null, signal: 'SIGKILL', killedAfterGrace: false, durationMs: Date.now() - began };
      },
      async close() {
        await target.close();
        await stopNode();
      },
    };
  } catch (error) {
    await stopNode();
    throw error;
  }
}
