// A real single-node Kubernetes on this machine, without Docker: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and kube-proxy (built by `make tools`), Debian's
// containerd, runc and CNI plugins, images imported from archives built here. docs/real-node.md explains
// every setting; the workarounds this machine needs are marked "REAL-NODE n".
//
//   const [node, stop] = await startNode({ images: [...archives] });
//   await node.kubectl(['get', 'nodes']);
//   await stop();                       // undoes every host change, also after a failed start
//
// Every change to the host is written to a state file *before* it is made, so `make node-down` (another
// process, or after a crash) undoes exactly what was done. The state file is also the machine-wide lock.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync,
} from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import {
  type ControlPlane, type KubectlOptions, defaultBinDir, freePorts, installCrds, installOptionalCrds, run,
} from '../cluster/control-plane.ts';
import { Pki } from '../cluster/pki.ts';
import { imageRefs } from './images.ts';
import {
  bridgePorts, cgroupPids, deleteLink, deleteNftTable, HOST_PATHS, isOurProcess, kubepodsCgroups, mountsUnder, processesIn, nftTables, readSysctls, removeCgroupTree, restoreSysctls, signal, unmount, waitGone,
} from './host.ts';

/** Fixed names and addresses: only one node can run per machine, and the state file locks it. */
export const NODE = {
  name: 'rtgw-node',
  /** A bridge with no ports holding the node IP (REAL-NODE 3: no loopback node IPs, no dummy links). */
  hostBridge: 'rtgw-host0',
  ip: '10.245.0.1',
  /** The CNI bridge the pods' veths attach to. */
  podBridge: 'rtgw-pods0',
  podCidr: '10.244.0.0/24',
  podGateway: '10.244.0.1',
  serviceCidr: '10.96.0.0/16',
  apiServiceIp: '10.96.0.1',
  dnsServiceIp: '10.96.0.10',
  apiPort: 6443,
  kubeletPort: 10250,
  clusterDomain: 'cluster.local',
  /** An nftables table of our own: drops pod traffic that is not pod-to-pod or pod-to-host. */
  isolationTable: 'inet rtgw_node_isolation',
} as const;

export const DEFAULT_NODE_DIR = process.env.NODE_DIR ?? '/var/tmp/rtgw-node';
export const LOCK_FILE = '/run/lock/rtgw-node.json';

const SYSTEM_TOOLS = ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'ip', 'nft', 'iptables', 'sysctl', 'openssl', 'umount'];
const CNI_PLUGINS = ['bridge', 'host-local', 'portmap', 'loopback'];
const CNI_BIN_DIR = '/usr/lib/cni';
const NODE_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'kubectl'];

export interface NodeOptions {
  /** OCI image archives to import into containerd (must include the pause image). */
  images: string[];
  binDir?: string;
  /** Where certificates, data, logs and containerd's store live. Default /var/tmp/rtgw-node. */
  dir?: string;
  /** Install CoreDNS and metrics-server from bin/ (their images must be among `images`). Default true. */
  addons?: boolean;
  /** Install the Gateway API and KEDA CRDs from bin/crds. Default true. */
  installCrds?: boolean;
  /** Who holds the lock: a test (a stale lock of a dead test is cleaned up) or the CLI. Default 'test'. */
  owner?: 'test' | 'cli';
  /** Progress lines ("waiting for …"). Default: console.log. */
  log?: (line: string) => void;
}

export interface Node extends ControlPlane {
  name: string;
  ip: string;
  /** Where logs of each component are: `<dir>/logs/<component>.log`. */
  logDir: string;
  /** Runs `ctr` against the node's containerd in the `k8s.io` namespace (the kubelet's). */
  ctr(args: string[]): Promise<string>;
}

export type StopNode = () => Promise<void>;

interface RecordedProcess {
  name: string;
  pid: number;
  executable: string;
}

/** Everything the node has changed, written before each change (the lock file's content). */
interface NodeState {
  owner: 'test' | 'cli';
  ownerPid: number;
  startedAt: string;
  dir: string;
  binDir: string;
  processes: RecordedProcess[];
  sysctls: Record<string, string>;
  /** HOST_PATHS that did not exist before: removed at teardown. */
  createdPaths: string[];
  /** nftables tables that existed before (kept); any other table is ours (iptables-nft creates them). */
  nftTablesBefore: string[];
  links: string[];
}

export class NodeError extends Error {}

/** Throws a NodeError naming everything missing and how to get it. */
export function assertNodePrerequisites(binDir: string): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('the node needs root (containerd, runc, network namespaces, cgroups)');
  const missingBins = NODE_BINARIES.filter((name) => !existsSync(join(binDir, name)));
  if (missingBins.length) problems.push(`${missingBins.join(', ')} missing in ${binDir}: run \`make tools\``);
  const missingTools = SYSTEM_TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  if (missingTools.length) problems.push(`${missingTools.join(', ')} not on PATH: run \`make system-deps\` (Debian: containerd runc iptables nftables iproute2)`);
  const missingCni = CNI_PLUGINS.filter((plugin) => !existsSync(join(CNI_BIN_DIR, plugin)));
  if (missingCni.length) problems.push(`CNI plugins ${missingCni.join(', ')} missing in ${CNI_BIN_DIR}: apt-get install containernetworking-plugins`);
  if (problems.length) throw new NodeError(`The real node cannot start:\n  - ${problems.join('\n  - ')}`);
}

function readState(): NodeState | undefined {
  if (!existsSync(LOCK_FILE)) return undefined;
  try {
    return JSON.parse(readFileSync(LOCK_FILE, 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

function writeState(state: NodeState): void {
  writeFileSync(`${LOCK_FILE}.tmp`, JSON.stringify(state, null, 2));
  // rename is atomic: a crash never leaves a half-written record.
  spawnSync('mv', ['-f', `${LOCK_FILE}.tmp`, LOCK_FILE]);
}

/** Takes the machine-wide lock or explains who holds it. A dead test's lock is torn down first. */
async function acquireLock(initial: NodeState, log: (line: string) => void): Promise<void> {
  mkdirSync('/run/lock', { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(LOCK_FILE, 'wx');
    } catch {
      const holder = readState();
      const alive = holder && existsSync(`/proc/${holder.ownerPid}`);
      if (holder && !alive && holder.owner === 'test') {
        log(`a node left behind by a test that died (pid ${holder.ownerPid}) is in the way: tearing it down first`);
        await teardown(log);
        continue;
      }
      const who = holder
        ? `started ${holder.startedAt} by ${holder.owner === 'cli' ? '`make node-up`' : `a test (pid ${holder.ownerPid})`}, state in ${holder.dir}`
        : 'unreadable lock';
      throw new NodeError(
        `A real node is already running on this machine (${who}). Only one can run at a time: ` +
          `use it (KUBECONFIG=${holder?.dir ?? DEFAULT_NODE_DIR}/admin.kubeconfig) or stop it with \`make node-down\`.`,
      );
    }
    writeSync(fd, JSON.stringify(initial, null, 2));
    closeSync(fd);
    return;
  }
  throw new NodeError(`could not take the node lock ${LOCK_FILE}`);
}

export async function startNode(options: NodeOptions): Promise<[Node, StopNode]> {
  const binDir = options.binDir ?? defaultBinDir;
  const dir = options.dir ?? DEFAULT_NODE_DIR;
  const log = options.log ?? ((line: string) => console.log(line));
  assertNodePrerequisites(binDir);
  const missingImages = options.images.filter((archive) => !existsSync(archive));
  if (missingImages.length) throw new NodeError(`image archives not found: ${missingImages.join(', ')} (build them with scripts/node/build-images.ts)`);

  const state: NodeState = {
    owner: options.owner ?? 'test',
    ownerPid: process.pid,
    startedAt: new Date().toISOString(),
    dir,
    binDir,
    processes: [],
    sysctls: readSysctls(),
    createdPaths: HOST_PATHS.filter((path) => !existsSync(path)),
    nftTablesBefore: nftTables(),
    links: [],
  };
  await acquireLock(state, log);

  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const checkInterrupt = () => {
    if (interrupted) throw new NodeError('interrupted (Ctrl-C): tearing the node down');
  };

  const stop: StopNode = () => teardown(log);
  try {
    const node = await bringUp(state, options, log, checkInterrupt);
    return [node, stop];
  } catch (error) {
    log(`node start failed: ${(error as Error).message.split('\n')[0]}`);
    await teardown(log);
    throw error;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

async function bringUp(
  state: NodeState,
  options: NodeOptions,
  log: (line: string) => void,
  checkInterrupt: () => void,
): Promise<Node> {
  const { dir, binDir } = state;
  const started = Date.now();
  const step = (what: string) => {
    checkInterrupt();
    log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${what}`);
  };
  rmSync(dir, { recursive: true, force: true });
  const logDir = join(dir, 'logs');
  for (const sub of ['pki', 'logs', 'etcd', 'containerd', 'cni/net.d', 'cni/ipam', 'kubelet', 'pod-logs']) {
    mkdirSync(join(dir, sub), { recursive: true });
  }
  const logTail = (component: string, lines = 40) => {
    const file = join(logDir, `${component}.log`);
    return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)';
  };

  const launch = (name: string, executable: string, args: string[], env: NodeJS.ProcessEnv = process.env) => {
    const out = openSync(join(logDir, `${name}.log`), 'a');
    // Detached: the node outlives `make node-up`; teardown stops each process by its recorded PID.
    const child = spawn(executable, args, { cwd: dir, stdio: ['ignore', out, out], detached: true, env });
    closeSync(out);
    if (child.pid === undefined) throw new NodeError(`${name} did not start (${executable})`);
    child.unref();
    state.processes.push({ name, pid: child.pid, executable });
    writeState(state);
    return child.pid;
  };
  const alive = (name: string) => {
    const proc = state.processes.find((p) => p.name === name);
    return proc !== undefined && isOurProcess(proc.pid, proc.executable);
  };
  const waitUntil = async (what: string, components: string[], timeoutMs: number, check: () => Promise<boolean>) => {
    step(`waiting for ${what}`);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      checkInterrupt();
      const dead = components.find((name) => !alive(name));
      if (dead) throw new NodeError(`${dead} exited while waiting for ${what}. Last lines of ${logDir}/${dead}.log:\n${logTail(dead)}`);
      if (await check().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    const last = components.at(-1) ?? 'kube-apiserver';
    throw new NodeError(`timed out after ${timeoutMs / 1000} s waiting for ${what}. Last lines of ${logDir}/${last}.log:\n${logTail(last)}`);
  };
  const sh = (command: string, args: string[], what: string) => {
    const result = spawnSync(command, args, { encoding: 'utf8' });
    if (result.status !== 0) throw new NodeError(`${what} failed: ${command} ${args.join(' ')}: ${(result.stderr || result.stdout).trim()}`);
    return result.stdout;
  };

  // --- host network (REAL-NODE 3) -------------------------------------------------------------------
  step(`network: bridge ${NODE.hostBridge} with node IP ${NODE.ip}/32, Service CIDR ${NODE.serviceCidr} routed into it`);
  state.links.push(NODE.hostBridge, NODE.podBridge);
  writeState(state);
  sh('ip', ['link', 'add', NODE.hostBridge, 'type', 'bridge'], 'creating the node bridge');
  sh('ip', ['addr', 'add', `${NODE.ip}/32`, 'dev', NODE.hostBridge], 'adding the node IP');
  sh('ip', ['link', 'set', NODE.hostBridge, 'up'], 'bringing the node bridge up');
  // A packet to a Service IP that kube-proxy did not DNAT dies on the port-less bridge instead of
  // taking the default route off the machine.
  sh('ip', ['route', 'add', NODE.serviceCidr, 'dev', NODE.hostBridge], 'routing the Service CIDR');
  isolatePods();

  // --- certificates -----------------------------------------------------------------------------------
  step('certificates');
  const pki = new Pki(join(dir, 'pki'), 'rtgw-node-ca');
  const server = `https://${NODE.ip}:${NODE.apiPort}`;
  const apiserverCert = pki.sign({
    name: 'apiserver', subject: '/CN=kube-apiserver', usage: 'server',
    altNames: [`IP:${NODE.ip}`, `IP:${NODE.apiServiceIp}`, 'IP:127.0.0.1', 'DNS:kubernetes', 'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc', `DNS:kubernetes.default.svc.${NODE.clusterDomain}`],
  });
  const admin = pki.sign({ name: 'admin', subject: '/O=system:masters/CN=rtgw-node-admin', usage: 'client' });
  // The node's own identity: NodeRestriction lets it touch only its Node and its pods.
  const kubeletClient = pki.sign({ name: 'kubelet-client', subject: `/O=system:nodes/CN=system:node:${NODE.name}`, usage: 'client' });
  const kubeletServing = pki.sign({ name: 'kubelet-serving', subject: `/CN=${NODE.name}`, usage: 'server', altNames: [`IP:${NODE.ip}`, `DNS:${NODE.name}`] });
  const apiserverToKubelet = pki.sign({ name: 'apiserver-kubelet-client', subject: '/O=system:masters/CN=kube-apiserver-kubelet-client', usage: 'client' });
  const frontProxy = pki.sign({ name: 'front-proxy-client', subject: '/CN=front-proxy-client', usage: 'client' });
  const proxy = pki.sign({ name: 'kube-proxy', subject: '/CN=system:kube-proxy', usage: 'client' });
  const scheduler = pki.sign({ name: 'kube-scheduler', subject: '/CN=system:kube-scheduler', usage: 'client' });
  const controllerManager = pki.sign({ name: 'kube-controller-manager', subject: '/CN=system:kube-controller-manager', usage: 'client' });
  const sa = pki.serviceAccountKeys();
  const kubeconfig = pki.kubeconfig(join(dir, 'admin.kubeconfig'), server, admin);
  const kubeconfigs = {
    kubelet: pki.kubeconfig(join(dir, 'kubelet.kubeconfig'), server, kubeletClient, `system:node:${NODE.name}`),
    proxy: pki.kubeconfig(join(dir, 'kube-proxy.kubeconfig'), server, proxy, 'system:kube-proxy'),
    scheduler: pki.kubeconfig(join(dir, 'kube-scheduler.kubeconfig'), server, scheduler, 'system:kube-scheduler'),
    controllerManager: pki.kubeconfig(join(dir, 'kube-controller-manager.kubeconfig'), server, controllerManager, 'system:kube-controller-manager'),
  };

  // --- etcd and the API server ---------------------------------------------------------------------
  const [etcdClientPort, etcdPeerPort, kcmPort, schedulerPort, proxyHealthPort, proxyMetricsPort, kubeletHealthPort] = (await freePorts(7)) as [number, number, number, number, number, number, number];
  step('etcd');
  launch('etcd', join(binDir, 'etcd'), [
    '--name=rtgw-node',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClientPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClientPort}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-cluster=rtgw-node=http://127.0.0.1:${etcdPeerPort}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  step('kube-apiserver');
  launch('kube-apiserver', join(binDir, 'kube-apiserver'), [
    `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
    // Bound to the node IP so pods reach it through the `kubernetes` Service (REAL-NODE "Settings").
    `--bind-address=${NODE.ip}`,
    `--advertise-address=${NODE.ip}`,
    `--secure-port=${NODE.apiPort}`,
    `--cert-dir=${join(dir, 'pki', 'apiserver-generated')}`,
    `--tls-cert-file=${apiserverCert.cert}`,
    `--tls-private-key-file=${apiserverCert.key}`,
    `--client-ca-file=${pki.caCert}`,
    `--kubelet-client-certificate=${apiserverToKubelet.cert}`,
    `--kubelet-client-key=${apiserverToKubelet.key}`,
    `--kubelet-certificate-authority=${pki.caCert}`,
    // REAL-NODE 4: dial the kubelet by IP, never by a hostname the VM's DNS would be asked for.
    '--kubelet-preferred-address-types=InternalIP',
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${sa.publicKey}`,
    `--service-account-signing-key-file=${sa.privateKey}`,
    `--service-cluster-ip-range=${NODE.serviceCidr}`,
    '--service-node-port-range=30000-32767',
    // The aggregation layer, for metrics-server's APIService; routed to endpoint IPs directly.
    `--requestheader-client-ca-file=${pki.caCert}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-username-headers=X-Remote-User',
    `--proxy-client-cert-file=${frontProxy.cert}`,
    `--proxy-client-key-file=${frontProxy.key}`,
    '--enable-aggregator-routing=true',
    '--allow-privileged=true',
    '--profiling=false',
  ]);
  const apiGet = (path: string) => httpsStatus(`${server}${path}`, pki.caCert, admin.cert, admin.key);
  await waitUntil('kube-apiserver /readyz', ['etcd', 'kube-apiserver'], 60_000, async () => (await apiGet('/readyz')) === 200);

  const kubectl: Node['kubectl'] = async (args, kubectlOptions: KubectlOptions = {}) => {
    const fullArgs = [`--kubeconfig=${kubeconfig}`, ...args];
    if (kubectlOptions.as) fullArgs.push(`--as=${kubectlOptions.as}`);
    const result = await run(join(binDir, 'kubectl'), fullArgs, kubectlOptions.input);
    if (result.code !== 0 && !kubectlOptions.allowFailure) {
      throw new NodeError(`kubectl ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr || result.stdout}`);
    }
    return result;
  };

  // --- containerd (REAL-NODE 1, settings) ----------------------------------------------------------------
  step('containerd');
  const containerdDir = join(dir, 'containerd');
  const socket = join(containerdDir, 'containerd.sock');
  writeFileSync(join(containerdDir, 'config.toml'), containerdConfig(containerdDir, socket, join(dir, 'cni/net.d')));
  writeFileSync(join(dir, 'cni/net.d/10-rtgw.conflist'), cniConfig(join(dir, 'cni/ipam')));
  launch('containerd', commandPath('containerd'), ['--config', join(containerdDir, 'config.toml')]);
  const ctr = async (args: string[]) => {
    const result = await run(commandPath('ctr'), ['--address', socket, '--namespace', 'k8s.io', ...args]);
    if (result.code !== 0) throw new NodeError(`ctr ${args.join(' ')} failed: ${(result.stderr || result.stdout).trim()}`);
    return result.stdout;
  };
  await waitUntil('containerd socket', ['containerd'], 30_000, async () => {
    return existsSync(socket) && (await run(commandPath('ctr'), ['--address', socket, 'version'])).code === 0;
  });
  for (const archive of options.images) {
    step(`importing image ${archive.split('/').pop()}`);
    await ctr(['images', 'import', archive]).catch((error: Error) => {
      throw new NodeError(`importing the image archive ${archive} failed: ${error.message}`);
    });
  }

  // --- controllers, scheduler, kube-proxy, kubelet -------------------------------------------------------
  step('kube-controller-manager, kube-scheduler');
  launch('kube-controller-manager', join(binDir, 'kube-controller-manager'), [
    `--kubeconfig=${kubeconfigs.controllerManager}`,
    `--authentication-kubeconfig=${kubeconfigs.controllerManager}`,
    `--authorization-kubeconfig=${kubeconfigs.controllerManager}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${kcmPort}`,
    `--cert-dir=${join(dir, 'pki', 'kcm-generated')}`,
    '--leader-elect=false',
    '--use-service-account-credentials=true',
    `--service-account-private-key-file=${sa.privateKey}`,
    `--root-ca-file=${pki.caCert}`,
    `--cluster-signing-cert-file=${pki.caCert}`,
    `--cluster-signing-key-file=${pki.caKey}`,
    `--service-cluster-ip-range=${NODE.serviceCidr}`,
    '--horizontal-pod-autoscaler-sync-period=5s',
  ]);
  launch('kube-scheduler', join(binDir, 'kube-scheduler'), [
    `--kubeconfig=${kubeconfigs.scheduler}`,
    `--authentication-kubeconfig=${kubeconfigs.scheduler}`,
    `--authorization-kubeconfig=${kubeconfigs.scheduler}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${schedulerPort}`,
    '--leader-elect=false',
  ]);
  step('kube-proxy (iptables mode)');
  writeFileSync(join(dir, 'kube-proxy.yaml'), `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${kubeconfigs.proxy}
mode: iptables
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:${proxyHealthPort}
metricsBindAddress: 127.0.0.1:${proxyMetricsPort}
hostnameOverride: ${NODE.name}
clusterCIDR: ${NODE.podCidr}
nodePortAddresses: ["${NODE.ip}/32"]
# The conntrack sysctls are not writable here; 0 leaves them alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`);
  launch('kube-proxy', join(binDir, 'kube-proxy'), [`--config=${join(dir, 'kube-proxy.yaml')}`]);

  step('kubelet');
  // Pods get only cluster DNS: no search domains or servers of the host, so no query leaves the machine.
  writeFileSync(join(dir, 'resolv.conf'), '');
  writeFileSync(join(dir, 'kubelet.yaml'), kubeletConfig({
    socket, caCert: pki.caCert, serving: kubeletServing, healthPort: kubeletHealthPort,
    podLogsDir: join(dir, 'pod-logs'), resolvConf: join(dir, 'resolv.conf'),
  }));
  launch('kubelet', join(binDir, 'kubelet'), [
    `--config=${join(dir, 'kubelet.yaml')}`,
    `--kubeconfig=${kubeconfigs.kubelet}`,
    `--root-dir=${join(dir, 'kubelet')}`,
    `--cert-dir=${join(dir, 'pki', 'kubelet-generated')}`,
    `--hostname-override=${NODE.name}`,
    `--node-ip=${NODE.ip}`,
  ]);
  await waitUntil(`node ${NODE.name} Ready`, ['containerd', 'kubelet', 'kube-proxy', 'kube-scheduler', 'kube-controller-manager'], 90_000, async () => {
    const result = await kubectl(['get', 'node', NODE.name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], { allowFailure: true });
    return result.code === 0 && result.stdout.trim() === 'True';
  });

  const node: Node = {
    name: NODE.name,
    ip: NODE.ip,
    server,
    kubeconfig,
    dir,
    binDir,
    logDir,
    kubectl,
    ctr,
    serviceAccount: (namespace, name) => `system:serviceaccount:${namespace}:${name}`,
    logTail,
  };

  await waitUntil('the default ServiceAccount', ['kube-controller-manager'], 30_000, async () => {
    return (await kubectl(['-n', 'default', 'get', 'serviceaccount', 'default'], { allowFailure: true })).code === 0;
  });
  if (options.installCrds ?? true) {
    step('CRDs (Gateway API experimental channel, KEDA; Envoy Gateway: the kind profile carries a BackendTrafficPolicy)');
    await installCrds(node);
    await installOptionalCrds(node, ['envoy-gateway']);
  }
  if (options.addons ?? true) {
    const { installAddons } = await import('./addons.ts');
    await installAddons(node, step);
  }
  step(`node ready: ${server}`);
  return node;
}

/** Full path of a tool on PATH (for PID checks against /proc/<pid>/exe). */
function commandPath(name: string): string {
  const result = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = result.stdout.trim();
  if (!path) throw new NodeError(`${name} is not on PATH: run \`make system-deps\``);
  return spawnSync('readlink', ['-f', path], { encoding: 'utf8' }).stdout.trim();
}

/**
 * Pods reach each other and the host only: a forward-hook chain in a table of our own drops anything that
 * enters or leaves the pod bridge unless it stays on it. A drop in any base chain is final, so rules
 * kube-proxy or the CNI plugins add elsewhere cannot open a way out.
 */
function isolatePods(): void {
  const [family, table] = NODE.isolationTable.split(' ');
  const rules = `table ${family} ${table} {
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname "${NODE.podBridge}" oifname "${NODE.podBridge}" accept
    iifname "${NODE.podBridge}" drop
    oifname "${NODE.podBridge}" drop
  }
}
`;
  const result = spawnSync('nft', ['-f', '-'], { input: rules, encoding: 'utf8' });
  if (result.status !== 0) throw new NodeError(`installing the pod isolation rules failed: ${result.stderr.trim()}`);
}

function containerdConfig(root: string, socket: string, cniConfDir: string): string {
  // containerd 1.6 (Debian): config version 2. Everything under the node's directory.
  return `version = 2
root = "${join(root, 'root')}"
state = "${join(root, 'state')}"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${imageRefs().pause}"
  # REAL-NODE 1: root here lacks CAP_SYS_RESOURCE, so a negative oom_score_adj is refused.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${cniConfDir}"
    max_conf_num = 1
`;
}

function cniConfig(ipamDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'rtgw-pods',
    plugins: [
      {
        type: 'bridge',
        bridge: NODE.podBridge,
        isGateway: true,
        // No masquerading: pod traffic never needs to leave the machine, and must not.
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          dataDir: ipamDir,
          ranges: [[{ subnet: NODE.podCidr, gateway: NODE.podGateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2);
}

function kubeletConfig(o: {
  socket: string; caCert: string; serving: { cert: string; key: string }; healthPort: number; podLogsDir: string; resolvConf: string;
}): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE.ip}
port: ${NODE.kubeletPort}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${o.healthPort}
tlsCertFile: ${o.serving.cert}
tlsPrivateKeyFile: ${o.serving.key}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${o.caCert}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://${o.socket}
imageServiceEndpoint: unix://${o.socket}
cgroupDriver: cgroupfs
# REAL-NODE 2: this host has cgroup v1 controllers; 1.37 refuses them unless told otherwise.
failCgroupV1: false
failSwapOn: false
# REAL-NODE 1: a negative score is refused without CAP_SYS_RESOURCE.
oomScoreAdj: 0
podLogsDir: ${o.podLogsDir}
clusterDNS: ["${NODE.dnsServiceIp}"]
clusterDomain: ${NODE.clusterDomain}
resolvConf: ${o.resolvConf}
serializeImagePulls: false
maxPods: 110
# The disk is shared with everything else on the machine: evict only when it is really full.
evictionHard:
  memory.available: "200Mi"
  nodefs.available: "2%"
  imagefs.available: "2%"
  nodefs.inodesFree: "2%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`;
}

function httpsStatus(url: string, ca: string, cert: string, key: string): Promise<number> {
  return new Promise((resolvePromise) => {
    const req = request(url, { ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key), timeout: 2_000 }, (res) => {
      res.resume();
      resolvePromise(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolvePromise(0));
    req.end();
  });
}

/**
 * Undoes everything the state file records, in reverse order, and keeps going past failures (each one is
 * reported at the end). Safe to call twice, and from another process (`make node-down`).
 */
export async function teardown(log: (line: string) => void = (line) => console.log(line)): Promise<void> {
  const state = readState();
  if (!state) {
    log('no node is running (no lock file): nothing to tear down');
    return;
  }
  const problems: string[] = [];
  const note = (problem: string | undefined) => problem && problems.push(problem);
  const started = Date.now();
  const step = (what: string) => log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] teardown: ${what}`);

  const stopProcess = async (name: string, graceMs: number) => {
    for (const proc of state.processes.filter((p) => p.name === name)) {
      if (!isOurProcess(proc.pid, proc.executable)) continue;
      signal(proc.pid, 'SIGTERM');
      if ((await waitGone([proc.pid], graceMs)).length > 0) {
        signal(proc.pid, 'SIGKILL');
        await waitGone([proc.pid], 2_000);
      }
    }
  };

  // The kubelet first, so it does not restart the containers we stop next.
  step('stopping kubelet');
  await stopProcess('kubelet', 5_000);

  // Container processes and their shims: the PIDs containerd wrote in its state dir, and the processes
  // the kernel lists in the kubepods cgroups.
  step('stopping containers');
  const taskDir = join(state.dir, 'containerd', 'state', 'io.containerd.runtime.v2.task');
  // Shims outlive containerd by design; they work in their task's bundle directory under our state dir.
  const shimPids = [...new Set([...pidFiles(taskDir, 'shim.pid'), ...processesIn(join(state.dir, 'containerd'))])];
  const podPids = [...pidFiles(taskDir, 'init.pid'), ...kubepodsCgroups().flatMap(cgroupPids)];
  for (const pid of podPids) signal(pid, 'SIGKILL');
  await waitGone(podPids, 5_000);
  for (const pid of shimPids) signal(pid, 'SIGTERM');
  if ((await waitGone(shimPids, 3_000)).length > 0) for (const pid of shimPids) signal(pid, 'SIGKILL');
  await waitGone(shimPids, 2_000);

  step('stopping containerd, kube-proxy, kube-scheduler, kube-controller-manager');
  await stopProcess('containerd', 5_000);
  await stopProcess('kube-proxy', 3_000);
  await stopProcess('kube-scheduler', 3_000);
  await stopProcess('kube-controller-manager', 3_000);
  await stopProcess('kube-apiserver', 5_000);
  await stopProcess('etcd', 5_000);

  const stragglers = processesIn(state.dir).filter((pid) => !state.processes.some((p) => p.pid === pid));
  for (const pid of stragglers) signal(pid, 'SIGKILL');
  for (const pid of await waitGone(stragglers, 3_000)) problems.push(`process ${pid} in ${state.dir} did not stop`);

  step('unmounting container filesystems, network namespaces and volumes');
  const mountRoots = [state.dir, ...state.createdPaths.filter((path) => path === '/run/containerd' || path === '/var/lib/kubelet' || path.endsWith('netns'))];
  for (let pass = 0; pass < 3; pass++) {
    const mounts = mountsUnder(mountRoots);
    if (mounts.length === 0) break;
    for (const mount of mounts) {
      const problem = unmount(mount);
      if (pass === 2) note(problem);
    }
  }

  step('removing cgroups (rmdir, depth first; no hierarchy is unmounted)');
  for (const dir of kubepodsCgroups()) note(removeCgroupTree(dir));

  step('removing network links');
  for (const bridge of [...state.links].reverse()) {
    for (const port of bridgePorts(bridge)) note(deleteLink(port));
    note(deleteLink(bridge));
  }

  step('removing nftables/iptables rules (kube-proxy, kubelet, CNI portmap, pod isolation)');
  for (const table of nftTables()) {
    if (!state.nftTablesBefore.includes(table)) note(deleteNftTable(table));
  }

  step('restoring sysctls');
  problems.push(...restoreSysctls(state.sysctls));

  step('removing files');
  for (const path of state.createdPaths) {
    if (mountsUnder([path]).length > 0) {
      problems.push(`${path} still has mounts; left in place`);
      continue;
    }
    rmSync(path, { recursive: true, force: true });
  }
  if (mountsUnder([state.dir]).length === 0) rmSync(state.dir, { recursive: true, force: true });
  else problems.push(`${state.dir} still has mounts; left in place`);

  const leftovers = state.processes.filter((proc) => isOurProcess(proc.pid, proc.executable));
  for (const proc of leftovers) problems.push(`${proc.name} (pid ${proc.pid}) is still running`);
  if (leftovers.length === 0 && !HOST_PATHS.some((path) => state.createdPaths.includes(path) && existsSync(path))) {
    rmSync(LOCK_FILE, { force: true });
  }
  if (problems.length) {
    throw new NodeError(`teardown finished with problems (the lock ${LOCK_FILE} records what is left):\n  - ${problems.join('\n  - ')}`);
  }
  step(`done; the host is as it was (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** PIDs from files with the given name anywhere under dir (containerd's shim.pid / init.pid). */
function pidFiles(dir: string, fileName: string): number[] {
  const pids: number[] = [];
  const walk = (path: string, depth: number) => {
    if (depth > 4 || !existsSync(path)) return;
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full, depth + 1);
      else if (entry.name === fileName) {
        const pid = Number(readFileSync(full, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 1) pids.push(pid);
      }
    }
  };
  walk(dir, 0);
  return pids;
}

/** Whether a node is running (the lock exists), and what it recorded. */
export function nodeStatus(): { running: boolean; dir?: string; startedAt?: string; owner?: string; kubeconfig?: string } {
  const state = readState();
  if (!state) return { running: false };
  return { running: true, dir: state.dir, startedAt: state.startedAt, owner: state.owner, kubeconfig: join(state.dir, 'admin.kubeconfig') };
}

