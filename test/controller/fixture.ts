// The controller suite's world: a real kube-apiserver + kube-controller-manager, a real redis-server,
// the blueprint's own Gateway and ScaleDownController constructs applied to it, gateway pods run as real
// processes by the pod runner (scripts/pod-runner), the controller as real processes authenticated with
// its generated ServiceAccount's token only, and real SDK clients through a Service-like proxy.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Chart } from 'cdk8s';
import { createGatewayClient, type GatewayClient } from '../../app/client/index.ts';
import { checkDeliveries } from '../../scripts/chaos/measure.ts';
import { startControlPlane, type ControlPlane } from '../../scripts/cluster/control-plane.ts';
import { freePort, waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis, type RedisServer } from '../../scripts/fleet/redis.ts';
import { startPodRunner, type PodRunner, type ServiceProxy } from '../../scripts/pod-runner/pod-runner.ts';
import { Gateway } from '../../infra/gateway.ts';
import { ScaleDownController } from '../../infra/scale-down-controller.ts';
import type { Manifest } from '../../infra/synth.ts';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import { startPublisher } from '../helpers/publisher.ts';
import { hs256Token } from '../helpers/tokens.ts';

export const NAMESPACE = 'rt';
export const DEPLOYMENT = 'gw';
// The profiles' name, so the Role's Lease name matches EXPECTED_PERMISSIONS.controller in test/cluster/rbac.ts.
export const CONTROLLER = 'realtime-gateway-controller';
export const ROOM = 'chat:controller-suite';
const JWT_SECRET = 'controller-suite-jwt-secret-0123456789abcdef';
const ADMIN_TOKEN = 'controller-suite-admin-token-0123';

export interface FixtureOptions {
  /** spec.drain.reconnectBudgetPerSecond of the SocketGateway. */
  readonly budget: number;
  /** The gateways' local DRAIN_RATE_PER_SECOND (what a pod drains at with no plan). */
  readonly localRate: number;
}

export interface ControllerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly metricsUrl: string;
  output(): string;
  readonly exited: Promise<number | null>;
}

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
  message?: string;
  regarding?: { kind: string; name: string };
  involvedObject?: { kind: string; name: string };
  reportingInstance?: string;
  reportingComponent?: string;
}

/** The manifests the suite applies: the constructs the profiles use, at test-friendly timings. */
export function suiteManifests(redisUrl: string, options: FixtureOptions): Manifest[] {
  const app = new App({ outdir: '/nonexistent' });
  const chart = new Chart(app, 'suite', { namespace: NAMESPACE, disableResourceNameHashes: true });
  const identity = { name: 'realtime-gateway', instance: 'suite', version: 'test', managedBy: 'controller-suite' };
  const redis = { adapter: 'redis' as const, secretName: 'gw-redis', urlKey: 'url', passwordKey: 'password' };
  new Gateway(chart, 'Gateway', {
    app: identity,
    name: DEPLOYMENT,
    image: 'not-pulled:pod-runner-runs-the-command',
    redis,
    auth: { secretName: 'gw-auth' },
    autoscaled: true,
    drain: { preStopSeconds: 1, noticeDelayMs: 1_000, windowMs: 20_000, ratePerSecond: options.localRate, jitterMs: 600_000, marginSeconds: 3 },
    settings: { LOG_LEVEL: 'warn', FLEET_STATS_INTERVAL_MS: '500', MAX_CONNECTIONS_PER_SECOND: '2000' },
  });
  new ScaleDownController(chart, 'Controller', {
    app: identity,
    image: 'not-pulled:the-suite-runs-the-controller-itself',
    deploymentName: DEPLOYMENT,
    redis,
    adminToken: { secretName: 'gw-auth', key: 'admin-token' },
    name: CONTROLLER,
    gatewayReplicas: 1,
    minReadyPods: 1,
    drain: { reconnectBudgetPerSecond: options.budget, windowSeconds: 30, marginSeconds: 10 },
    leaseDurationSeconds: 4,
  });
  const objects = chart.toJson() as Manifest[];
  // The suite's own Secrets (the profiles generate theirs): the real redis-server and known tokens.
  objects.unshift(
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gw-redis', namespace: NAMESPACE }, stringData: { url: redisUrl } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gw-auth', namespace: NAMESPACE }, stringData: { 'jwt-secret': JWT_SECRET, 'admin-token': ADMIN_TOKEN } },
  );
  return objects.map(withInternalPort);
}

/**
 * Until the Gateway construct declares the internal port (issue 10, gateway side), add it here the way the
 * construct will: a container port named `internal` and INTERNAL_PORT. A no-op once the construct has it.
 */
function withInternalPort(object: Manifest): Manifest {
  if (object.kind !== 'Deployment' || object.metadata.name !== DEPLOYMENT) return object;
  const copy = structuredClone(object) as Manifest & { spec: { template: { spec: { containers: { ports: { name: string; containerPort: number }[]; env: { name: string; value?: string }[] }[] } } } };
  const container = copy.spec.template.spec.containers[0]!;
  if (!container.ports.some((p) => p.name === 'internal')) {
    container.ports.push({ name: 'internal', containerPort: 9090 });
    container.env.push({ name: 'INTERNAL_PORT', value: '9090' });
  }
  return copy;
}

export class ControllerSuite {
  plane!: ControlPlane;
  redis!: RedisServer;
  runner!: PodRunner;
  service!: ServiceProxy;
  publisher!: Backplane;
  readonly controllers: ControllerProcess[] = [];
  readonly clients: TrackedClient[] = [];
  readonly options: FixtureOptions;
  #cleanups: (() => Promise<unknown>)[] = [];
  #dir = mkdtempSync(join(tmpdir(), 'controller-suite-'));
  #saKubeconfig = '';
  #published = 0;
  #lastSeq = 0;
  #streamTimer: NodeJS.Timeout | null = null;
  #deletedPods: string[] = [];

  constructor(options: FixtureOptions) {
    this.options = options;
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
    await this.kubectl(['create', 'namespace', NAMESPACE]);
  }

  /** Applies the suite's manifests: the CRD first (established), then everything else, as the admin. */
  async apply(): Promise<Manifest[]> {
    const objects = suiteManifests(this.redis.url, this.options);
    const list = (items: Manifest[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
    const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
    await this.kubectl(['apply', '--server-side', '-f', '-'], list(crds));
    await this.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    await this.kubectl(['apply', '--server-side', '-f', '-'], list(objects.filter((o) => o.kind !== 'CustomResourceDefinition')));
    return objects;
  }

  /** Runs gateway pods as processes and puts a Service in front of their public port. */
  async startPods(): Promise<void> {
    this.runner = await startPodRunner({
      kubeconfig: this.plane.kubeconfig,
      namespace: NAMESPACE,
      selector: { 'app.kubernetes.io/component': 'gateway' },
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

  /** A kubeconfig with the controller ServiceAccount's token and nothing else. */
  async serviceAccountKubeconfig(): Promise<string> {
    if (this.#saKubeconfig) return this.#saKubeconfig;
    const { stdout } = await this.kubectl(['create', 'token', CONTROLLER, '-n', NAMESPACE, '--duration=2h']);
    const admin = readFileSync(this.plane.kubeconfig, 'utf8');
    const ca = /certificate-authority-data: (\S+)/.exec(admin)![1];
    const file = join(this.#dir, 'controller.kubeconfig');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: plane',
        '  cluster:',
        `    server: ${this.plane.server}`,
        `    certificate-authority-data: ${ca}`,
        'users:',
        `- name: ${CONTROLLER}`,
        '  user:',
        `    token: ${stdout.trim()}`,
        'contexts:',
        '- name: controller',
        '  context:',
        '    cluster: plane',
        `    user: ${CONTROLLER}`,
        `    namespace: ${NAMESPACE}`,
        'current-context: controller',
        '',
      ].join('\n'),
    );
    this.#saKubeconfig = file;
    return file;
  }

  /** Starts one controller replica (app/controller/main.ts) as the ServiceAccount. */
  async startController(name: string): Promise<ControllerProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, ['app/controller/main.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        KUBECONFIG: await this.serviceAccountKubeconfig(),
        POD_NAME: name,
        POD_NAMESPACE: NAMESPACE,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        REDIS_URL: this.redis.url,
        ADMIN_TOKEN,
        LEASE_NAME: CONTROLLER,
        LEASE_DURATION_SECONDS: '4',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const controller: ControllerProcess = { name, child, metricsUrl: `http://127.0.0.1:${port}/metrics`, output: () => output, exited };
    this.controllers.push(controller);
    await waitFor(`controller ${name} /healthz`, async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok, 15_000).catch(
      (err: Error) => {
        throw new Error(`${err.message}\n${output}`);
      },
    );
    return controller;
  }

  async stopController(controller: ControllerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (controller.child.exitCode === null && controller.child.signalCode === null) controller.child.kill(signal);
    return controller.exited;
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
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Controller and gateway logs, for failure messages. */
  logs(): string {
    const controllers = this.controllers.map((c) => `--- controller ${c.name} ---\n${c.output().slice(-4_000)}`);
    const pods = (this.runner?.pods() ?? []).map((p) => `--- pod ${p.name} ---\n${p.output().slice(-1_500)}`);
    return [...controllers, ...pods].join('\n');
  }
}
