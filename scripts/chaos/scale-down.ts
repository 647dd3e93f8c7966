// The chaos suite's `scale-down` scenario: one scale-down driven by the controller (`kubectl scale sgw`)
// and one plain Deployment scale-down (`kubectl scale deployment`, the controller stopped), in the same run,
// on a real API server + kube-controller-manager with gateway pods run by scripts/pod-runner, under a steady
// numbered stream, measured with the same client metrics as the other scenarios: lost, duplicates, moved
// clients back elsewhere, reconnect p50/p99, peak reconnects per second on the survivors.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGatewayClient, type GatewayClient } from '../../app/client/index.ts';
import { createRedisBackplane } from '../../app/gateway/backplane/redis.ts';
import { startControlPlane } from '../cluster/control-plane.ts';
import { waitFor } from '../fleet/ports.ts';
import { startRedis } from '../fleet/redis.ts';
import {
  applyWorld,
  DEPLOYMENT,
  GATEWAY_SELECTOR,
  JWT_SECRET,
  NAMESPACE,
  serviceAccountKubeconfig,
  startControllerProcess,
  worldDir,
  worldManifests,
  type ControllerProcess,
} from '../pod-runner/controller-world.ts';
import { startPodRunner } from '../pod-runner/pod-runner.ts';
import { mintToken } from '../tokens.ts';
import { checkDeliveries, peakInWindow, percentile } from './measure.ts';

export interface ScaleDownSettings {
  readonly replicas: number;
  readonly clients: number;
  /** spec.drain.reconnectBudgetPerSecond, and the pods' local DRAIN_RATE_PER_SECOND (a pod alone may use it all). */
  readonly budgetPerSecond: number;
}

export const SCALE_DOWN_SIZES = {
  ci: { replicas: 4, clients: 120, budgetPerSecond: 15 },
  full: { replicas: 4, clients: 400, budgetPerSecond: 40 },
} as const satisfies Record<string, ScaleDownSettings>;

export interface ScaleDownRun {
  readonly name: 'controller' | 'deployment';
  readonly description: string;
  readonly victim: string;
  readonly victimClients: number;
  /** Sockets per serving pod just before the scale-down. */
  readonly socketsBefore: Record<string, number>;
  readonly victimWasEmptiest: boolean;
  /** Pods that got a deletion timestamp during the run: exactly one is right. */
  readonly deletedPods: string[];
  readonly lost: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  readonly reconnected: number;
  readonly reconnectLatencyMs: { readonly p50: number | null; readonly p99: number | null };
  readonly peakReconnectsPerSecond: number;
  readonly budgetPerSecond: number;
  readonly durationMs: number;
}

export interface ScaleDownReport {
  readonly generatedAt: string;
  readonly settings: ScaleDownSettings;
  readonly runs: ScaleDownRun[];
}

interface Tracked {
  readonly client: GatewayClient;
  readonly hellos: { pod: string; at: number }[];
  readonly outages: { lostAt: number; backAt: number | null }[];
  readonly delivered: number[];
  joinedAt: number | null;
}

const ROOM = 'chat:scale-down-chaos';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runScaleDownChaos(settings: ScaleDownSettings, log: (line: string) => void = () => {}, outDir?: string): Promise<ScaleDownReport> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const controllers: ControllerProcess[] = [];
  const clients: Tracked[] = [];
  let stream: NodeJS.Timeout | null = null;
  try {
    log('scale-down: starting kube-apiserver, kube-controller-manager, redis-server');
    const [plane, stopPlane] = await startControlPlane({ controllerManager: true, installCrds: false });
    cleanups.push(stopPlane);
    const [redis, stopRedis] = await startRedis();
    cleanups.push(stopRedis);
    const [dir, removeDir] = worldDir();
    cleanups.push(async () => removeDir());
    const budget = settings.budgetPerSecond;
    await applyWorld(plane, worldManifests(redis.url, { budget, localRate: budget, replicas: settings.replicas }));
    const runner = await startPodRunner({ kubeconfig: plane.kubeconfig, namespace: NAMESPACE, selector: GATEWAY_SELECTOR, probePeriodMs: 250 });
    cleanups.push(() => runner.stop());
    const kubeconfig = await serviceAccountKubeconfig(plane, dir);
    for (const name of ['ctl-0', 'ctl-1']) controllers.push(await startControllerProcess({ name, kubeconfig, redisUrl: redis.url }));
    cleanups.push(async () => Promise.all(controllers.map((c) => c.stop('SIGKILL'))));
    // Random, as kube-proxy's iptables mode balances: pods end up with uneven socket counts, as in life.
    const service = await runner.service('http', 'random');
    await runner.waitForReady(settings.replicas, 60_000);
    const publisher = createRedisBackplane({ url: redis.url, name: 'scale-down-chaos' });
    cleanups.push(() => publisher.close());
    await waitFor('the publisher on Redis', () => publisher.isReady());

    const kubectl = (...args: string[]) => plane.kubectl([...args, '-n', NAMESPACE]);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const pods = async (): Promise<any[]> => (JSON.parse((await kubectl('get', 'pods', '-l', 'app.kubernetes.io/component=gateway', '-o', 'json')).stdout) as { items: any[] }).items;

    const connect = async (count: number) => {
      for (let i = 0; i < count; i += 1) {
        const token = await mintToken({ secret: JWT_SECRET, sub: `chaos-${clients.length}`, ttlSeconds: 3_600 });
        const client = createGatewayClient({ url: service.url, token, transports: ['websocket'], rooms: [ROOM] });
        const t: Tracked = { client, hellos: [], outages: [], delivered: [], joinedAt: null };
        client.on('hello', ({ pod }) => {
          t.hellos.push({ pod, at: Date.now() });
          const open = t.outages.at(-1);
          if (open && open.backAt === null) open.backAt = Date.now();
        });
        client.on('state', (state, previous) => {
          if ((previous === 'connected' || previous === 'draining') && state === 'reconnecting') t.outages.push({ lostAt: Date.now(), backAt: null });
        });
        client.on('joined', ({ room, seq }) => {
          if (room === ROOM && t.joinedAt === null) t.joinedAt = seq;
        });
        client.on('reset', ({ room, seq }) => {
          if (room === ROOM && t.joinedAt === null) t.joinedAt = seq;
        });
        client.on('message', (e) => {
          if (e.room === ROOM) t.delivered.push(e.seq);
        });
        client.on('error', () => {});
        clients.push(t);
        if (i % 20 === 19) await sleep(100);
      }
      await waitFor(`${clients.length} clients connected`, () => clients.every((c) => c.client.state === 'connected' && c.joinedAt !== null), 60_000);
    };
    await connect(settings.clients);
    log(`scale-down: ${settings.replicas} pods, ${clients.length} SDK clients (WebSocket), budget ${budget}/s`);
    stream = setInterval(() => {
      void publisher.publish({ room: ROOM, type: 'chat:message', payload: { text: 'tick' }, from: 'chaos' }).catch(() => {});
    }, 100);
    await sleep(1_000);

    const runs: ScaleDownRun[] = [];
    const measure = async (name: ScaleDownRun['name'], description: string, act: () => Promise<void>, replicasAfter: number): Promise<ScaleDownRun> => {
      const socketsBefore: Record<string, number> = Object.fromEntries(runner.pods().filter((p) => p.ready && !p.terminating).map((p) => [p.name, 0]));
      for (const c of clients) {
        const pod = c.hellos.at(-1)?.pod;
        if (pod && pod in socketsBefore) socketsBefore[pod]! += 1;
      }
      const before = new Set((await pods()).filter((p) => p.metadata.deletionTimestamp).map((p) => p.metadata.name as string));
      const deleted: string[] = [];
      const from = Date.now();
      const acceptsFrom = service.accepts.length;
      await act();
      const victim = await waitFor(`${name}: a pod deleted`, async () => {
        for (const p of await pods()) {
          if (p.metadata.deletionTimestamp && !before.has(p.metadata.name) && !deleted.includes(p.metadata.name)) deleted.push(p.metadata.name);
        }
        return deleted[0];
      }, 120_000, 200);
      const onVictim = clients.filter((c) => c.hellos.filter((h) => h.at < from).at(-1)?.pod === victim);
      await waitFor(`${name}: every client of ${victim} back elsewhere`, () => onVictim.every((c) => c.client.state === 'connected' && c.hellos.at(-1)!.pod !== victim), 120_000, 200);
      await waitFor(`${name}: ${replicasAfter} ready pods`, async () => (await pods()).filter((p) => !p.metadata.deletionTimestamp).length === replicasAfter, 60_000, 200);
      await sleep(1_000);
      for (const p of await pods()) if (p.metadata.deletionTimestamp && !before.has(p.metadata.name) && !deleted.includes(p.metadata.name)) deleted.push(p.metadata.name);
      const marker = await publisher.publish({ room: ROOM, type: 'chat:message', payload: { text: 'marker' }, from: 'chaos' });
      await waitFor(`${name}: every client has the marker`, () => clients.every((c) => (c.client.lastSeq(ROOM) ?? 0) >= marker.seq), 30_000);
      const total = { lost: 0, duplicates: 0, outOfOrder: 0 };
      for (const c of clients) {
        const check = checkDeliveries({ joinedAt: c.joinedAt!, delivered: c.delivered.filter((s) => s <= marker.seq) }, marker.seq);
        total.lost += check.lost;
        total.duplicates += check.duplicates;
        total.outOfOrder += check.outOfOrder;
      }
      if (process.env.SCALE_DOWN_DEBUG) {
        for (const c of onVictim.slice(0, 4)) log(`  debug ${name}: hellos ${JSON.stringify(c.hellos.map((h) => [h.pod.slice(-5), h.at - from]))} outages ${JSON.stringify(c.outages.map((o) => [o.lostAt - from, o.backAt === null ? null : o.backAt - from]))}`);
        const toVictim = service.accepts.slice(acceptsFrom).filter((a) => a.pod === victim).map((a) => a.at - from);
        log(`  debug ${name}: accepts routed to the victim after the action: ${toVictim.length} ${JSON.stringify(toVictim.slice(0, 20))}`);
      }
      const latencies = onVictim.flatMap((c) => c.outages.filter((o) => o.lostAt >= from && o.backAt !== null).map((o) => o.backAt! - o.lostAt));
      const survivorsAccepts = service.accepts.slice(acceptsFrom).filter((a) => a.pod !== victim).map((a) => a.at);
      const emptiest = Math.min(...Object.values(socketsBefore));
      return {
        name,
        description,
        victim,
        victimClients: onVictim.length,
        socketsBefore,
        victimWasEmptiest: socketsBefore[victim] === emptiest,
        deletedPods: deleted,
        ...total,
        reconnected: onVictim.filter((c) => c.hellos.at(-1)!.pod !== victim).length,
        reconnectLatencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
        peakReconnectsPerSecond: peakInWindow(survivorsAccepts, 1_000).peak,
        budgetPerSecond: budget,
        durationMs: Date.now() - from,
      };
    };

    runs.push(
      await measure(
        'controller',
        'kubectl scale socketgateway: the controller drains the emptiest pod at the budget, then the ReplicaSet deletes exactly it',
        async () => void (await kubectl('scale', 'socketgateway', DEPLOYMENT, `--replicas=${settings.replicas - 1}`)),
        settings.replicas - 1,
      ),
    );
    log(summary(runs.at(-1)!));
    // Controller off: the plain Deployment scale-down every HPA does without it.
    for (const c of controllers) await c.stop('SIGTERM');
    runs.push(
      await measure(
        'deployment',
        'kubectl scale deployment (no controller): the ReplicaSet picks the victim, SIGTERM drains it with the pod\'s local settings',
        async () => void (await kubectl('scale', 'deployment', DEPLOYMENT, `--replicas=${settings.replicas - 2}`)),
        settings.replicas - 2,
      ),
    );
    log(summary(runs.at(-1)!));
    const report: ScaleDownReport = { generatedAt: new Date().toISOString(), settings, runs };
    if (outDir) {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, `scale-down-${settings.clients}.json`), `${JSON.stringify(report, null, 2)}\n`);
    }
    return report;
  } finally {
    if (stream) clearInterval(stream);
    for (const c of clients) c.client.close();
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
}

export function summary(r: ScaleDownRun): string {
  const sockets = Object.entries(r.socketsBefore).map(([pod, n]) => `${pod.slice(-5)}:${n}`).join(' ');
  return (
    `${r.name.padEnd(10)} victim ${r.victim.slice(-5)} (${r.victimClients} sockets; before ${sockets}; emptiest: ${r.victimWasEmptiest}) ` +
    `deleted ${r.deletedPods.length} | lost ${r.lost} dup ${r.duplicates} | back ${r.reconnected}/${r.victimClients} | ` +
    `reconnect p50/p99 ${r.reconnectLatencyMs.p50}/${r.reconnectLatencyMs.p99} ms | peak ${r.peakReconnectsPerSecond}/s (budget ${r.budgetPerSecond})`
  );
}
