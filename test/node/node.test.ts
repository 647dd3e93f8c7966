// The real node itself: it comes up, runs pods with the networking users expect, keeps pod traffic on the
// machine, refuses a second start, and its teardown leaves the host exactly as it found it.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNodeImages } from '../../scripts/node/images.ts';
import { type HostSnapshot, snapshotHost } from '../../scripts/node/host.ts';
import { NODE, type Node, NodeError, startNode, type StopNode } from '../../scripts/node/node.ts';
import { imageRefs } from '../../scripts/node/images.ts';
import { OutsideHost } from './outside-host.ts';

let node: Node;
let stop: StopNode | undefined;
let before: HostSnapshot;
let outside: OutsideHost;

const busyboxLike = imageRefs().gateway;

async function podIp(namespace: string, name: string): Promise<string> {
  return (await node.kubectl(['-n', namespace, 'get', 'pod', name, '-o', 'jsonpath={.status.podIP}'])).stdout.trim();
}

/** Runs a short Node.js snippet in a throwaway pod (the gateway image has node) and returns its output. */
async function runInPod(name: string, script: string): Promise<string> {
  await node.kubectl(['-n', 'default', 'run', name, `--image=${busyboxLike}`, '--image-pull-policy=Never', '--restart=Never',
    '--command', '--', 'node', '-e', script]);
  await node.kubectl(['-n', 'default', 'wait', '--for=jsonpath={.status.phase}=Succeeded', '--timeout=60s', `pod/${name}`], { allowFailure: true });
  const logs = await node.kubectl(['-n', 'default', 'logs', name]);
  await node.kubectl(['-n', 'default', 'delete', 'pod', name, '--wait=false']);
  return logs.stdout.trim();
}

describe('the real node', () => {
  beforeAll(async () => {
    outside = OutsideHost.create();
    before = snapshotHost();
    const images = await buildNodeImages({ log: () => {} });
    [node, stop] = await startNode({ images: images.map((image) => image.archive), log: () => {} });
  }, 600_000);

  afterAll(async () => {
    await stop?.();
    outside?.remove();
  }, 120_000);

  it('is Ready and runs pods from images built here, with DNS and metrics add-ons', async () => {
    const nodes = JSON.parse((await node.kubectl(['get', 'nodes', '-o', 'json'])).stdout);
    expect(nodes.items).toHaveLength(1);
    const addresses = nodes.items[0].status.addresses;
    expect(addresses).toContainEqual({ type: 'InternalIP', address: NODE.ip });
    const pods = JSON.parse((await node.kubectl(['-n', 'kube-system', 'get', 'pods', '-o', 'json'])).stdout);
    expect(pods.items.map((pod: { status: { phase: string } }) => pod.status.phase)).toEqual(expect.arrayContaining(['Running']));
    // metrics-server scraped the kubelet with the cluster CA: the HPA will have numbers.
    await expect.poll(async () => (await node.kubectl(['top', 'node'], { allowFailure: true })).code, { timeout: 60_000, interval: 2_000 }).toBe(0);
  });

  it('a second start on the same machine is refused with a clear message', async () => {
    await expect(startNode({ images: [], log: () => {} })).rejects.toThrow(NodeError);
    await expect(startNode({ images: [], log: () => {} })).rejects.toThrow(/already running.*make node-down/);
  });

  it('reaches pods from the host, pod to pod, through ClusterIP and NodePort Services and cluster DNS', async () => {
    await node.kubectl(['-n', 'default', 'apply', '-f', '-'], { input: echoServer });
    await node.kubectl(['-n', 'default', 'wait', '--for=condition=Ready', '--timeout=60s', 'pod/echo']);
    const ip = await podIp('default', 'echo');
    expect(ip).toMatch(/^10\.244\.0\./);
    expect(await httpGet(`http://${ip}:8080/`)).toBe('echo');
    // kube-proxy writes the NodePort rule a moment after the Service appears, as on any cluster.
    await expect.poll(() => httpGet(`http://${NODE.ip}:30080/`).catch((e: Error) => e.message), { timeout: 15_000 }).toBe('echo');
    const fromPod = await runInPod('client', `
      const dns = require('node:dns').promises;
      (async () => {
        const viaService = await (await fetch('http://echo.default.svc.cluster.local:80/')).text();
        const viaPodIp = await (await fetch('http://${ip}:8080/')).text();
        const [apiIp] = await dns.resolve4('kubernetes.default.svc.cluster.local');
        console.log(JSON.stringify({ viaService, viaPodIp, apiIp }));
      })().catch((e) => console.log(JSON.stringify({ error: String(e) })));`);
    expect(JSON.parse(fromPod)).toEqual({ viaService: 'echo', viaPodIp: 'echo', apiIp: NODE.apiServiceIp });
  });

  it('kubectl logs, exec and delete (SIGTERM reaches the container)', async () => {
    const exec = await node.kubectl(['-n', 'default', 'exec', 'echo', '--', 'node', '-e', 'console.log(process.getuid())']);
    expect(exec.stdout.trim()).toBe('1000');
    // Follow the logs while the pod is deleted, as a person would: the server prints what it received.
    const follow = spawn(`${node.binDir}/kubectl`, [`--kubeconfig=${node.kubeconfig}`, '-n', 'default', 'logs', '-f', 'echo']);
    let logs = '';
    follow.stdout.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    await new Promise((r) => setTimeout(r, 1_000));
    await node.kubectl(['-n', 'default', 'delete', 'pod', 'echo', '--wait=true', '--timeout=60s']);
    await expect.poll(() => logs, { timeout: 10_000 }).toContain('got SIGTERM');
    follow.kill();
  });

  it('pods reach each other and the host only: traffic to another host is dropped on the machine', async () => {
    // A test host of our own (a network namespace behind a veth): reachable from the host itself …
    expect(outside.reachableFromHost()).toBe(true);
    // … but a pod's packets to it are dropped by the node's isolation rules before they leave the pod bridge.
    const result = await runInPod('escape', `
      const net = require('node:net');
      const socket = net.connect({ host: '${outside.address}', port: ${outside.port}, timeout: 3000 });
      socket.on('connect', () => { console.log('connected'); process.exit(0); });
      socket.on('timeout', () => { console.log('timeout'); process.exit(0); });
      socket.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });`);
    expect(result).not.toBe('connected');
    expect(outside.connectionsSeen()).toBe(0);
  });

  it('teardown leaves the host as it found it', async () => {
    await stop!();
    stop = undefined;
    const after = snapshotHost();
    expect(after).toEqual(before);
  }, 120_000);
});

const echoServer = `
apiVersion: v1
kind: Pod
metadata: { name: echo, labels: { app: echo } }
spec:
  terminationGracePeriodSeconds: 10
  securityContext: { runAsNonRoot: true, runAsUser: 1000 }
  containers:
  - name: echo
    image: ${busyboxLike}
    imagePullPolicy: Never
    command: [node, -e]
    args:
    - |
      const server = require('node:http').createServer((req, res) => res.end('echo')).listen(8080);
      process.on('SIGTERM', () => { console.log('got SIGTERM'); server.close(); process.exit(0); });
    ports: [{ containerPort: 8080 }]
    readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: echo }
spec:
  selector: { app: echo }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-nodeport }
spec:
  type: NodePort
  selector: { app: echo }
  ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }]
`;

async function httpGet(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return response.text();
}
