// A small world for the scale-down controller: the blueprint's Gateway and ScaleDownController constructs
// at quick timings, applied to a real API server, gateway pods run by the pod runner, and controller
// processes that authenticate with the generated ServiceAccount's token only. Used by the controller suite
// (test/controller) and by `make controller-local`.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { App, Chart } from 'cdk8s';
import type { ControlPlane } from '../cluster/control-plane.ts';
import { freePort, waitFor } from '../fleet/ports.ts';
import { Gateway } from '../../infra/gateway.ts';
import { ScaleDownController } from '../../infra/scale-down-controller.ts';
import type { Manifest } from '../../infra/synth.ts';

export const NAMESPACE = 'rt';
export const DEPLOYMENT = 'gw';
/** The profiles' name, so the Role's Lease name matches EXPECTED_PERMISSIONS.controller in test/cluster/rbac.ts. */
export const CONTROLLER = 'realtime-gateway-controller';
export const JWT_SECRET = 'controller-world-jwt-secret-0123456789abcdef';
export const ADMIN_TOKEN = 'controller-world-admin-token-0123';
export const GATEWAY_SELECTOR = { 'app.kubernetes.io/component': 'gateway' } as const;

const repoRoot = resolve(import.meta.dirname, '../..');

export interface WorldOptions {
  /** spec.drain.reconnectBudgetPerSecond of the SocketGateway. */
  readonly budget: number;
  /** The gateways' local DRAIN_RATE_PER_SECOND: what a pod drains at without a plan. */
  readonly localRate: number;
  /** Initial spec.replicas of the SocketGateway. @default 1 */
  readonly replicas?: number;
  /** Controller lease duration. @default 4 */
  readonly leaseDurationSeconds?: number;
}

/** The manifests: the constructs the profiles use, at quick timings, plus the Secrets they expect. */
export function worldManifests(redisUrl: string, options: WorldOptions): Manifest[] {
  const app = new App({ outdir: '/nonexistent' });
  const chart = new Chart(app, 'world', { namespace: NAMESPACE, disableResourceNameHashes: true });
  const identity = { name: 'realtime-gateway', instance: 'world', version: 'dev', managedBy: 'pod-runner' };
  const redis = { adapter: 'redis' as const, secretName: 'gw-redis', urlKey: 'url', passwordKey: 'password' };
  new Gateway(chart, 'Gateway', {
    app: identity,
    name: DEPLOYMENT,
    image: 'not-pulled:the-pod-runner-runs-the-command',
    redis,
    auth: { secretName: 'gw-auth' },
    autoscaled: true,
    drain: { preStopSeconds: 1, noticeDelayMs: 1_000, windowMs: 20_000, ratePerSecond: options.localRate, jitterMs: 600_000, marginSeconds: 3 },
    settings: { LOG_LEVEL: 'warn', FLEET_STATS_INTERVAL_MS: '500', MAX_CONNECTIONS_PER_SECOND: '2000' },
  });
  new ScaleDownController(chart, 'Controller', {
    app: identity,
    image: 'not-pulled:the-controller-runs-as-a-process',
    deploymentName: DEPLOYMENT,
    redis,
    adminToken: { secretName: 'gw-auth', key: 'admin-token' },
    name: CONTROLLER,
    gatewayReplicas: options.replicas ?? 1,
    minReadyPods: 1,
    drain: { reconnectBudgetPerSecond: options.budget, windowSeconds: 30, marginSeconds: 10 },
    leaseDurationSeconds: options.leaseDurationSeconds ?? 4,
  });
  // The controller runs as processes here (with its ServiceAccount's token), so its Deployment is left out:
  // the pod runner only runs gateway pods, and two Pending controller pods would only confuse.
  const objects = (chart.toJson() as Manifest[]).filter((o) => !(o.kind === 'Deployment' && o.metadata.name === CONTROLLER));
  // The world's own Secrets (the profiles generate theirs): the real redis-server and known tokens.
  objects.unshift(
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gw-redis', namespace: NAMESPACE }, stringData: { url: redisUrl } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gw-auth', namespace: NAMESPACE }, stringData: { 'jwt-secret': JWT_SECRET, 'admin-token': ADMIN_TOKEN } },
  );
  return objects;
}

/** Creates the namespace and applies the manifests: the CRD first (established), then everything else. */
export async function applyWorld(plane: ControlPlane, objects: Manifest[]): Promise<void> {
  const list = (items: Manifest[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
  await plane.kubectl(['create', 'namespace', NAMESPACE], { allowFailure: true });
  const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
  await plane.kubectl(['apply', '--server-side', '-f', '-'], { input: list(crds) });
  await plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await plane.kubectl(['apply', '--server-side', '-f', '-'], { input: list(objects.filter((o) => o.kind !== 'CustomResourceDefinition')) });
}

/** A kubeconfig holding a token of the controller's ServiceAccount and nothing else (`kubectl create token`). */
export async function serviceAccountKubeconfig(plane: ControlPlane, dir: string): Promise<string> {
  const { stdout } = await plane.kubectl(['create', 'token', CONTROLLER, '-n', NAMESPACE, '--duration=2h']);
  const ca = /certificate-authority-data: (\S+)/.exec(readFileSync(plane.kubeconfig, 'utf8'))![1];
  const file = join(dir, 'controller.kubeconfig');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: plane
  cluster:
    server: ${plane.server}
    certificate-authority-data: ${ca}
users:
- name: ${CONTROLLER}
  user:
    token: ${stdout.trim()}
contexts:
- name: controller
  context:
    cluster: plane
    user: ${CONTROLLER}
    namespace: ${NAMESPACE}
current-context: controller
`,
  );
  return file;
}

export interface ControllerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly metricsUrl: string;
  output(): string;
  readonly exited: Promise<number | null>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts one controller replica (app/controller/main.ts) with that kubeconfig; resolves once /healthz answers. */
export async function startControllerProcess(opts: {
  name: string;
  kubeconfig: string;
  redisUrl: string;
  leaseDurationSeconds?: number;
  onOutput?: (line: string) => void;
}): Promise<ControllerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['app/controller/main.ts'], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      KUBECONFIG: opts.kubeconfig,
      POD_NAME: opts.name,
      POD_NAMESPACE: NAMESPACE,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      REDIS_URL: opts.redisUrl,
      ADMIN_TOKEN,
      LEASE_NAME: CONTROLLER,
      LEASE_DURATION_SECONDS: String(opts.leaseDurationSeconds ?? 4),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const onData = (chunk: Buffer) => {
    const text = chunk.toString();
    output += text;
    if (opts.onOutput) for (const line of text.split('\n')) if (line) opts.onOutput(line);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const controller: ControllerProcess = {
    name: opts.name,
    child,
    metricsUrl: `http://127.0.0.1:${port}/metrics`,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  try {
    await waitFor(`controller ${opts.name} /healthz`, async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok, 15_000);
  } catch (err) {
    await controller.stop('SIGKILL');
    throw new Error(`${(err as Error).message}\n${output}`);
  }
  return controller;
}

/** A temp dir for kubeconfigs, removed by the returned cleanup. */
export function worldDir(): [string, () => void] {
  const dir = mkdtempSync(join(tmpdir(), 'controller-world-'));
  return [dir, () => rmSync(dir, { recursive: true, force: true })];
}
