// The controller suite's world: a real kube-apiserver + kube-controller-manager, a real redis-server,
// the blueprint's own Gateway and ScaleDownController constructs applied to it, gateway pods run as real
// processes by the pod runner (scripts/pod-runner), the controller as real processes authenticated with
// its generated ServiceAccount's token only, and real SDK clients through a Service-like proxy.
import { createGatewayClient, type GatewayClient } from '../../app/client/index.ts';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import { checkDeliveries } from '../../scripts/chaos/measure.ts';
import { startControlPlane, type ControlPlane } from '../../scripts/cluster/control-plane.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis, type RedisServer } from '../../scripts/fleet/redis.ts';
import {
  applyWorld,
  CONTROLLER,
  DEPLOYMENT,
  GATEWAY_SELECTOR,
  JWT_SECRET,
  NAMESPACE,
  serviceAccountKubeconfig,
  startControllerProcess,
  worldDir,
  worldManifests,
  type ControllerProcess,
  type WorldOptions,
} from '../../scripts/pod-runner/controller-world.ts';
import { startPodRunner, type PodRunner, type ServiceProxy } from '../../scripts/pod-runner/pod-runner.ts';
import type { Manifest } from '../../infra/synth.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { hs256Token } from '../helpers/tokens.ts';

export { CONTROLLER, DEPLOYMENT, NAMESPACE };
export const ROOM = 'chat:controller-suite';

export interface TrackedClient {
  readonly client: GatewayClient;
  readonly pods: string[];
  readonly delivered: number[];
  joinedAt: number | null;
}

export interface KubeEvent {
  metadata: { name: string };
  reason: string;
  note?: string;
  regarding?: { kind: string; name: string };
  reportingInstance?: string;
}

export function suiteManifests(redisUrl: string, options: WorldOptions): Manifest[] {
  return worldManifests(redisUrl, options);
}

export class ControllerSuite {
  plane!: ControlPlane;
  redis!: RedisServer;
  runner!: PodRunner;
  service!: ServiceProxy;
  publisher!: Backplane;
  readonly controllers: ControllerProcess[] = [];
  readonly clients: TrackedClient[] = [];
  readonly options: WorldOptions;
  #cleanups: (() => Promise<unknown>)[] = [];
  #dir: string;
  #removeDir: () => void;
  #saKubeconfig = '';
  #published = 0;
  #lastSeq = 0;
  #streamTimer: NodeJS.Timeout | null = null;
  #deletedPods: string[] = [];

  constructor(options: WorldOptions) {
    this.options = options;
    [this.#dir, this.#removeDir] = worldDir();
  }

  get serviceAccount(): string {
    return this.plane.serviceAccount(NAMESPACE, CONTROLLER);
  }

  /** Pods that were deleted (a deletionTimestamp appeared), in order: what the ReplicaSet (or a test) removed. */
  get deletedPods(): readonly string[] {
    return this.#deletedPods;
  }

  async start(): Promise<void> {
    const [plane, stopPlane] = await startControlPlane({ controllerManager: true, installCrds: false });
    this.plane = plane;
    this.#cleanups.push(stopPlane);
    const [redis, stopRedis] = await startRedis();
    this.redis = redis;
    this.#cleanups.push(stopRedis);
  }

  /** Applies the world's manifests: the CRD first (established), then everything else, as the admin. */
  async apply(): Promise<Manifest[]> {
    const objects = worldManifests(this.redis.url, this.options);
    await applyWorld(this.plane, objects);
    return objects;
  }

  /** Runs gateway pods as processes and puts a Service in front of their public port. */
  async startPods(): Promise<void> {
    this.runner = await startPodRunner({
      kubeconfig: this.plane.kubeconfig,
      namespace: NAMESPACE,
      selector: GATEWAY_SELECTOR,
      probePeriodMs: 250,
    });
    this.#cleanups.push(() => this.runner.stop());
    this.service = await this.runner.service('http', 'leastconn');
    const [publisher, stopPublisher] = await startPublisher(this.redis.url);
    this.publisher = publisher;
    this.#cleanups.push(stopPublisher);
    void this.#watchDeletions();
  }

  async #watchDeletions(): Promise<void> {
    // Every pod that gets a deletionTimestamp (the ReplicaSet or a test deleted it), in order.
    const seen = new Set<string>();
    while (!this.#stopping) {
      try {
        for (const pod of await this.pods()) {
          if (pod.metadata.deletionTimestamp && !seen.has(pod.metadata.name)) {
            seen.add(pod.metadata.name);
            this.#deletedPods.push(pod.metadata.name);
          }
        }
      } catch {
        // The control plane is going away.
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  #stopping = false;

  /** Starts one controller replica (app/controller/main.ts) as the ServiceAccount. */
  async startController(name: string): Promise<ControllerProcess> {
    this.#saKubeconfig ||= await serviceAccountKubeconfig(this.plane, this.#dir);
    const controller = await startControllerProcess({ name, kubeconfig: this.#saKubeconfig, redisUrl: this.redis.url });
    this.controllers.push(controller);
    return controller;
  }

  async stopController(controller: ControllerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    return controller.stop(signal);
  }

  async kubectl(args: string[], input?: string, as?: string) {
    return this.plane.kubectl(args, { input, as });
  }

  async json<T = Record<string, unknown>>(args: string[]): Promise<T> {
    return JSON.parse((await this.kubectl([...args, '-o', 'json', '-n', NAMESPACE])).stdout) as T;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async socketGateway(): Promise<any> {
    return this.json(['get', 'socketgateway', DEPLOYMENT]);
  }

  async deploymentReplicas(): Promise<number> {
    return ((await this.json<{ spec: { replicas: number } }>(['get', 'deployment', DEPLOYMENT])).spec.replicas);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async pods(): Promise<any[]> {
    return (await this.json<{ items: unknown[] }>(['get', 'pods', '-l', 'app.kubernetes.io/component=gateway'])).items;
  }

  async scale(replicas: number): Promise<void> {
    await this.kubectl(['scale', 'socketgateway', DEPLOYMENT, '-n', NAMESPACE, `--replicas=${replicas}`]);
  }

  /** Events (events.k8s.io/v1) not in `before` (names of events seen earlier), oldest first. */
  async events(before: ReadonlySet<string> = new Set()): Promise<KubeEvent[]> {
    const items = (await this.json<{ items: (KubeEvent & { eventTime?: string })[] }>(['get', 'events.v1.events.k8s.io'])).items;
    return items.filter((e) => !before.has(e.metadata.name)).sort((a, b) => String(a.eventTime).localeCompare(String(b.eventTime)));
  }

  /** Names of every Event now: pass to events() to see only what comes after. */
  async eventMark(): Promise<Set<string>> {
    return new Set((await this.events()).map((e) => e.metadata.name));
  }

  /** Connects `count` SDK clients (WebSocket) through the Service; they follow the suite's room. */
  async connectClients(count: number): Promise<TrackedClient[]> {
    const batch: TrackedClient[] = [];
    for (let i = 0; i < count; i += 1) {
      const id = this.clients.length + batch.length;
      const token = await hs256Token({ sub: `client-${id}`, expiresIn: 3_600 }, JWT_SECRET);
      const client = createGatewayClient({ url: this.service.url, token, transports: ['websocket'], rooms: [ROOM] });
      const tracked: TrackedClient = { client, pods: [], delivered: [], joinedAt: null };
      client.on('hello', ({ pod }) => tracked.pods.push(pod));
      client.on('joined', ({ room, seq }) => {
        if (room === ROOM && tracked.joinedAt === null) tracked.joinedAt = seq;
      });
      client.on('reset', ({ room, seq }) => {
        if (room === ROOM && tracked.joinedAt === null) tracked.joinedAt = seq;
      });
      client.on('message', (e) => {
        if (e.room === ROOM) tracked.delivered.push(e.seq);
      });
      client.on('error', () => {});
      batch.push(tracked);
    }
    this.clients.push(...batch);
    await waitFor(`${count} clients connected and joined`, () => batch.every((c) => c.client.state === 'connected' && c.joinedAt !== null), 30_000);
    return batch;
  }

  /** Sockets per ready, serving pod, as the clients see them (their current pod); 0 for a pod without clients. */
  clientsByPod(): Map<string, number> {
    const counts = new Map<string, number>(this.runner.pods().filter((p) => p.ready && !p.terminating).map((p) => [p.name, 0]));
    for (const c of this.clients) {
      if (c.client.state !== 'connected' && c.client.state !== 'draining') continue;
      const pod = c.pods.at(-1)!;
      if (counts.has(pod)) counts.set(pod, counts.get(pod)! + 1);
    }
    return counts;
  }

  /** A numbered stream into the suite's room (10 messages per second). */
  startStream(): void {
    this.#streamTimer = setInterval(() => {
      void this.publisher
        .publish({ room: ROOM, type: 'chat:message', payload: { text: `#${this.#published}` }, from: 'suite' })
        .then((e) => {
          this.#published += 1;
          this.#lastSeq = Math.max(this.#lastSeq, e.seq);
        })
        .catch(() => {});
    }, 100);
  }

  /**
   * Publishes a marker, waits until every client has it, and checks every client's deliveries since it
   * joined up to the marker: lost and duplicated seqs (the stream keeps running).
   */
  async checkDeliveries(): Promise<{ lost: number; duplicates: number; outOfOrder: number; clients: number; published: number }> {
    const marker = await this.publisher.publish({ room: ROOM, type: 'chat:message', payload: { text: 'marker' }, from: 'suite' });
    await waitFor('every client to receive the marker', () => this.clients.every((c) => (c.client.lastSeq(ROOM) ?? 0) >= marker.seq), 30_000);
    const total = { lost: 0, duplicates: 0, outOfOrder: 0 };
    for (const c of this.clients) {
      const upToMarker = c.delivered.filter((seq) => seq <= marker.seq);
      const check = checkDeliveries({ joinedAt: c.joinedAt!, delivered: upToMarker }, marker.seq);
      total.lost += check.lost;
      total.duplicates += check.duplicates;
      total.outOfOrder += check.outOfOrder;
    }
    return { ...total, clients: this.clients.length, published: this.#published };
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#streamTimer) clearInterval(this.#streamTimer);
    for (const c of this.clients) c.client.close();
    for (const c of this.controllers) await this.stopController(c, 'SIGKILL');
    for (const cleanup of this.#cleanups.reverse()) await cleanup().catch(() => {});
    this.#removeDir();
  }

  /** Controller and gateway logs, for failure messages. */
  logs(): string {
    const controllers = this.controllers.map((c) => `--- controller ${c.name} ---\n${c.output().slice(-4_000)}`);
    const pods = (this.runner?.pods() ?? []).map((p) => `--- pod ${p.name} ---\n${p.output().slice(-1_500)}`);
    return [...controllers, ...pods].join('\n');
  }
}
