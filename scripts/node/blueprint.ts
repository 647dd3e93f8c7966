// Deploys the blueprint on the real node the two ways users will: `helm install` of the generated chart,
// and the synthesized kind profile through scripts/deploy-profile.sh (the steps `make up` runs after it has
// a cluster). Envoy Gateway cannot be built here, so the entry is HAProxy (infra/haproxy-entry.ts) on a
// NodePort of the node IP: the chart's own `entry.kind=haproxy`, and for the kind profile (whose entry is
// Envoy's) the same construct added next to it, as a user composing the constructs would.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { App, Chart } from 'cdk8s';
import { stringify } from 'yaml';
import { HaproxyEntry } from '../../infra/haproxy-entry.ts';
import { repoRoot } from '../cluster/control-plane.ts';
import { imageRefs } from './images.ts';
import { podDiagnostics } from './addons.ts';
import type { Node } from './node.ts';

export interface BlueprintOnNode {
  namespace: string;
  /** Helm release or the profile's instance name (`app.kubernetes.io/instance`). */
  instance: string;
  gatewaySelector: string;
  redisSelector: string;
  /** The HAProxy entry on the node IP, e.g. http://10.245.0.1:30081 */
  entryUrl: string;
}

const APP_NAME = 'realtime-gateway';

function selectors(instance: string) {
  const base = `app.kubernetes.io/name=${APP_NAME},app.kubernetes.io/instance=${instance}`;
  return { gatewaySelector: `${base},app.kubernetes.io/component=gateway`, redisSelector: `${base},app.kubernetes.io/component=redis` };
}

/** Runs a command with output to `log` (progress for people), failing with its tail. */
function runLogged(command: string, args: string[], env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    const take = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        lines.push(line);
        log(line);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${lines.slice(-25).join('\n')}`))));
  });
}

function toolEnv(node: Node): NodeJS.ProcessEnv {
  return { ...process.env, KUBECONFIG: node.kubeconfig, PATH: `${join(repoRoot, 'node_modules/.bin')}:${node.binDir}:${process.env.PATH}` };
}

/** `helm install` of charts/realtime-gateway with the images built here and the chart's HAProxy entry on a NodePort. */
export async function helmInstallBlueprint(
  node: Node,
  opts: { release: string; namespace: string; nodePort: number; values?: Record<string, string>; log?: (line: string) => void },
): Promise<BlueprintOnNode> {
  const log = opts.log ?? (() => {});
  const images = imageRefs();
  const [repository, tag] = images.gateway.split(':') as [string, string];
  const [haproxyRepository, haproxyTag] = images.haproxy.split(':') as [string, string];
  const values: Record<string, string> = {
    'image.repository': repository,
    'image.tag': tag,
    'image.pullPolicy': 'Never',
    'redis.internal.image': images.redis,
    'entry.kind': 'haproxy',
    'entry.haproxy.image.repository': haproxyRepository,
    'entry.haproxy.image.tag': haproxyTag,
    'entry.haproxy.image.pullPolicy': 'Never',
    'entry.haproxy.serviceType': 'NodePort',
    'entry.haproxy.nodePort': String(opts.nodePort),
    ...opts.values,
  };
  await runLogged(join(node.binDir, 'helm'), [
    'install', opts.release, join(repoRoot, 'charts', APP_NAME), '--namespace', opts.namespace, '--create-namespace',
    ...Object.entries(values).flatMap(([key, value]) => ['--set', `${key}=${value}`]),
    '--wait', '--timeout', '5m',
  ], toolEnv(node), log).catch(async (error: Error) => {
    throw new Error(`${error.message}\n${await podDiagnostics(node, opts.namespace)}`);
  });
  const entryUrl = `http://${node.ip}:${opts.nodePort}`;
  await waitForEntry(node, entryUrl, opts.namespace);
  return { namespace: opts.namespace, instance: opts.release, entryUrl, ...selectors(opts.release) };
}

/** The kind profile, deployed by scripts/deploy-profile.sh (what `make up` runs), then the node entry. */
export async function deployKindProfile(node: Node, opts: { nodePort: number; log?: (line: string) => void }): Promise<BlueprintOnNode> {
  const env = { ...toolEnv(node), PROFILE: 'kind', REDIS_IMG: imageRefs().redis, IMG: imageRefs().gateway };
  await runLogged('bash', [join(repoRoot, 'scripts/deploy-profile.sh')], env, opts.log ?? (() => {})).catch(async (error: Error) => {
    throw new Error(`${error.message}\n${await podDiagnostics(node, 'realtime-gateway')}`);
  });
  return deployNodeEntry(node, { namespace: 'realtime-gateway', instance: APP_NAME, nodePort: opts.nodePort });
}

/** Synthesizes the HaproxyEntry construct for a deployed blueprint and applies it; waits until it is ready. */
export async function deployNodeEntry(
  node: Node,
  opts: { namespace: string; instance: string; nodePort: number },
): Promise<BlueprintOnNode> {
  const { gatewaySelector } = selectors(opts.instance);
  const services = JSON.parse((await node.kubectl(['-n', opts.namespace, 'get', 'services', '-l', gatewaySelector, '-o', 'json'])).stdout) as {
    items: { metadata: { name: string }; spec: { ports: { name?: string; port: number }[]; selector: Record<string, string> } }[];
  };
  const service = services.items[0]?.spec;
  const gatewayService = services.items[0]?.metadata.name;
  if (!service || !gatewayService) throw new Error(`no gateway Service matches ${gatewaySelector} in namespace ${opts.namespace}`);
  const publicPort = (service.ports.find((p) => p.name === 'http') ?? service.ports[0])!.port;
  const app = new App({ outdir: '/nonexistent' });
  const chart = new Chart(app, 'node-entry', { namespace: opts.namespace, disableResourceNameHashes: true });
  const entry = new HaproxyEntry(chart, 'Entry', {
    app: { name: APP_NAME, instance: opts.instance, version: 'node', managedBy: 'rtgw-node' },
    name: `${opts.instance}-node-entry`,
    backend: { serviceName: gatewayService, port: publicPort },
    backendPodSelector: service.selector,
    image: imageRefs().haproxy,
    imagePullPolicy: 'Never',
    serviceType: 'NodePort',
    nodePort: opts.nodePort,
  });
  const yaml = chart.toJson().map((object) => stringify(object, { lineWidth: 0 })).join('---\n');
  await node.kubectl(['apply', '-f', '-'], { input: yaml });
  await node.kubectl(['-n', opts.namespace, 'rollout', 'status', `deployment/${entry.name}`, '--timeout=120s']).catch(async (error: Error) => {
    throw new Error(`${error.message}\n${await podDiagnostics(node, opts.namespace)}`);
  });
  const entryUrl = `http://${node.ip}:${opts.nodePort}`;
  await waitForEntry(node, entryUrl, opts.namespace);
  return { namespace: opts.namespace, instance: opts.instance, entryUrl, ...selectors(opts.instance) };
}

/** Ready means HAProxy runs; serving means it resolved the gateway pods and one passed its check. */
async function waitForEntry(node: Node, entryUrl: string, namespace: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await fetch(`${entryUrl}/readyz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`the entry ${entryUrl} did not reach a ready gateway within 60 s\n${await podDiagnostics(node, namespace)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
