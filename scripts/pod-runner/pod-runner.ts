// A process "kubelet" for the control-plane tests: it registers a Node, binds the pods of a namespace
// to it (there is no scheduler), runs each pod's container command as a local process, and reports the
// pod's status the way a kubelet does — Running with a pod IP, the readiness probe from the pod spec,
// preStop sleep + SIGTERM + SIGKILL after the grace period on deletion, the final delete when the process
// is gone. It is NOT a kubelet (no containers, images, volumes or cgroups; one process per pod, the
// first container only) — scripts/node/ runs a real one. What it buys: the controller suite runs real
// gateway processes behind a real API server in seconds. See docs/controller.md.
//
// Pod IPs: every pod gets its own loopback address, 127.<a>.<b>.<n> (Linux routes all of 127/8 to lo),
// and its process listens there (HOST=<pod IP>) on the container ports the pod spec declares. So a
// client of the pod — the drain controller calling `<pod IP>:<port named internal>` — finds it exactly
// as it would in a cluster, with no test-only annotation.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  V1MicroTime,
  makeInformer,
  setHeaderOptions,
  type V1Container,
  type V1Pod,
  type V1PodCondition,
  type V1Probe,
} from '@kubernetes/client-node';

const repoRoot = resolve(import.meta.dirname, '../..');
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface PodRunnerOptions {
  /** An admin kubeconfig (the harness acts for the kubelet, the scheduler and kube-proxy). */
  readonly kubeconfig: string;
  readonly namespace: string;
  /** Only pods with these labels; default every pod of the namespace. */
  readonly selector?: Readonly<Record<string, string>>;
  /**
   * Environment set after the pod spec's own (`null` removes a variable), e.g. a REDIS_URL the process
   * can reach. HOST is always the pod IP.
   */
  readonly env?: Readonly<Record<string, string | null>>;
  /** Node name. @default pod-runner-<random> */
  readonly nodeName?: string;
  /** Probe every this often instead of the probe's periodSeconds (tests want fast readiness). */
  readonly probePeriodMs?: number;
  /** Each line a pod's process writes. */
  readonly onOutput?: (pod: string, line: string) => void;
}

export interface RunningPod {
  readonly name: string;
  readonly uid: string;
  readonly ip: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly ready: boolean;
  readonly terminating: boolean;
  readonly pid: number | undefined;
  /** Everything the process wrote. */
  output(): string;
}

export interface ServiceProxy {
  readonly url: string;
  readonly port: number;
  /** Connections accepted per pod (what "accepts per second on the survivors" is measured from). */
  readonly accepts: readonly { readonly pod: string; readonly at: number }[];
  close(): Promise<void>;
}

export interface PodRunner {
  readonly nodeName: string;
  pods(): RunningPod[];
  /**
   * A kube-proxy-like TCP Service in front of the ready, non-terminating pods' `portName`: each new
   * connection goes to one of them (random, as iptables mode does; or least connections).
   */
  service(portName: string, balance?: 'random' | 'leastconn'): Promise<ServiceProxy>;
  /** Waits until `count` pods run and are ready. */
  waitForReady(count: number, timeoutMs?: number): Promise<RunningPod[]>;
  stop(): Promise<void>;
}

interface PodState {
  name: string;
  uid: string;
  ip: string;
  ports: Record<string, number>;
  child: ChildProcess | null;
  output: string;
  ready: boolean;
  readyStreak: { ok: number; fail: number };
  terminating: boolean;
  restarts: number;
  startedAt: Date;
  probeTimer: NodeJS.Timeout | null;
  pod: V1Pod;
  gone: boolean;
  connections: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPodRunner(options: PodRunnerOptions): Promise<PodRunner> {
  const kc = new KubeConfig();
  kc.loadFromFile(options.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const coordination = kc.makeApiClient(CoordinationV1Api);
  const namespace = options.namespace;
  const nodeName = options.nodeName ?? `pod-runner-${randomInt(1e6, 1e7)}`;
  const ipBase = `127.${randomInt(100, 250)}.${randomInt(1, 250)}`;
  let nextIp = 2;
  const states = new Map<string, PodState>();
  const proxies: Server[] = [];
  let stopped = false;

  // ---- the Node, kept Ready by a Lease heartbeat like a kubelet's ----
  await core.createNode({
    body: {
      metadata: { name: nodeName, labels: { 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux' } },
    },
  });
  const nodeStatus = async () => {
    const now = new Date();
    await core.patchNodeStatus(
      {
        name: nodeName,
        body: {
          status: {
            capacity: { cpu: '8', memory: '16Gi', pods: '110' },
            allocatable: { cpu: '8', memory: '16Gi', pods: '110' },
            conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'pod-runner (scripts/pod-runner)', lastHeartbeatTime: now, lastTransitionTime: now }],
            addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: nodeName }],
            nodeInfo: {
              architecture: 'amd64', bootID: '', containerRuntimeVersion: 'process://pod-runner', kernelVersion: '', kubeProxyVersion: '',
              kubeletVersion: 'pod-runner', machineID: '', operatingSystem: 'linux', osImage: 'pod-runner', systemUUID: '',
            },
          },
        },
      },
      mergePatch,
    );
  };
  await nodeStatus();
  const renewLease = async () => {
    const now = new V1MicroTime();
    try {
      const lease = await coordination.readNamespacedLease({ name: nodeName, namespace: 'kube-node-lease' });
      await coordination.replaceNamespacedLease({ name: nodeName, namespace: 'kube-node-lease', body: { ...lease, spec: { ...lease.spec, renewTime: now } } });
    } catch {
      await coordination
        .createNamespacedLease({
          namespace: 'kube-node-lease',
          body: { metadata: { name: nodeName }, spec: { holderIdentity: nodeName, leaseDurationSeconds: 40, renewTime: now } },
        })
        .catch(() => {});
    }
  };
  await renewLease();
  const heartbeat = setInterval(() => {
    void renewLease();
    void nodeStatus().catch(() => {});
  }, 10_000);

  const selected = (pod: V1Pod) => Object.entries(options.selector ?? {}).every(([k, v]) => pod.metadata?.labels?.[k] === v);

  // ---- status ----
  const patchStatus = async (state: PodState, phase: string, running: boolean, exit?: { code: number | null; signal: string | null }) => {
    const now = new Date();
    const cond = (type: string, ok: boolean): V1PodCondition => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now });
    const container = state.pod.spec!.containers[0]!;
    const body = {
      status: {
        phase,
        hostIP: '127.0.0.1',
        hostIPs: [{ ip: '127.0.0.1' }],
        podIP: state.ip,
        podIPs: [{ ip: state.ip }],
        startTime: state.startedAt,
        conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', state.ready && running), cond('Ready', state.ready && running)],
        containerStatuses: [
          {
            name: container.name,
            image: container.image ?? '',
            imageID: '',
            containerID: `process://${state.child?.pid ?? 0}`,
            ready: state.ready && running,
            started: running,
            restartCount: state.restarts,
            state: running
              ? { running: { startedAt: state.startedAt } }
              : { terminated: { exitCode: exit?.code ?? 137, signal: undefined, reason: exit?.signal ? `Signal ${exit.signal}` : 'Completed', finishedAt: now, startedAt: state.startedAt } },
          },
        ],
      },
    };
    try {
      await core.patchNamespacedPodStatus({ name: state.name, namespace, body }, mergePatch);
    } catch {
      // The pod may be gone already.
    }
  };

  // ---- env, as the kubelet resolves it ----
  const resolveEnv = async (pod: V1Pod, container: V1Container, ip: string): Promise<Record<string, string>> => {
    const env: Record<string, string> = {};
    const configMaps = new Map<string, Record<string, string>>();
    const secrets = new Map<string, Record<string, string>>();
    const configMap = async (name: string) => {
      if (!configMaps.has(name)) configMaps.set(name, (await core.readNamespacedConfigMap({ name, namespace })).data ?? {});
      return configMaps.get(name)!;
    };
    const secret = async (name: string) => {
      if (!secrets.has(name)) {
        const data = (await core.readNamespacedSecret({ name, namespace })).data ?? {};
        secrets.set(name, Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])));
      }
      return secrets.get(name)!;
    };
    for (const from of container.envFrom ?? []) {
      if (from.configMapRef) Object.assign(env, await configMap(from.configMapRef.name!).catch(() => ({})));
      if (from.secretRef) Object.assign(env, await secret(from.secretRef.name!).catch(() => ({})));
    }
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      const ref = e.valueFrom;
      if (!ref) continue;
      if (ref.fieldRef) {
        const fields: Record<string, string> = {
          'metadata.name': pod.metadata!.name!,
          'metadata.namespace': namespace,
          'metadata.uid': pod.metadata!.uid!,
          'spec.nodeName': nodeName,
          'spec.serviceAccountName': pod.spec?.serviceAccountName ?? 'default',
          'status.podIP': ip,
          'status.hostIP': '127.0.0.1',
        };
        const value = fields[ref.fieldRef.fieldPath];
        if (value !== undefined) env[e.name] = value;
      } else if (ref.secretKeyRef) {
        const value = (await secret(ref.secretKeyRef.name!).catch(() => ({}) as Record<string, string>))[ref.secretKeyRef.key];
        if (value !== undefined) env[e.name] = value;
        else if (!ref.secretKeyRef.optional) throw new Error(`secret ${ref.secretKeyRef.name} key ${ref.secretKeyRef.key} not found`);
      } else if (ref.configMapKeyRef) {
        const value = (await configMap(ref.configMapKeyRef.name!).catch(() => ({}) as Record<string, string>))[ref.configMapKeyRef.key];
        if (value !== undefined) env[e.name] = value;
      }
    }
    for (const [k, v] of Object.entries(options.env ?? {})) {
      if (v === null) delete env[k];
      else env[k] = v;
    }
    env.HOST = ip;
    env.PATH = process.env.PATH ?? '';
    return env;
  };

  // ---- the readiness probe of the pod spec ----
  const probe = async (state: PodState, spec: V1Probe): Promise<boolean> => {
    const get = spec.httpGet;
    if (!get) return true;
    const port = typeof get.port === 'number' ? get.port : (state.ports[get.port] ?? Number(get.port));
    try {
      const res = await fetch(`http://${state.ip}:${port}${get.path ?? '/'}`, { signal: AbortSignal.timeout((spec.timeoutSeconds ?? 1) * 1_000) });
      await res.arrayBuffer();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  };

  const startProbing = (state: PodState) => {
    const spec = state.pod.spec!.containers[0]!.readinessProbe;
    const period = options.probePeriodMs ?? (spec?.periodSeconds ?? 10) * 1_000;
    const tick = async () => {
      if (state.gone || !state.child) return;
      const ok = spec ? await probe(state, spec) : true;
      if (ok) {
        state.readyStreak = { ok: state.readyStreak.ok + 1, fail: 0 };
      } else {
        state.readyStreak = { ok: 0, fail: state.readyStreak.fail + 1 };
      }
      const ready = state.ready
        ? state.readyStreak.fail < (spec?.failureThreshold ?? 3)
        : state.readyStreak.ok >= (spec?.successThreshold ?? 1);
      if (ready !== state.ready && !state.gone) {
        state.ready = ready;
        await patchStatus(state, 'Running', true);
      }
      if (!state.gone) state.probeTimer = setTimeout(() => void tick(), period);
    };
    state.probeTimer = setTimeout(() => void tick(), Math.min(period, 200));
  };

  const launch = async (state: PodState) => {
    const container = state.pod.spec!.containers[0]!;
    const argv = [...(container.command ?? []), ...(container.args ?? [])];
    if (argv.length === 0) throw new Error(`pod ${state.name}: the container has no command (the pod runner runs commands, not images)`);
    const command = argv[0] === 'node' ? process.execPath : argv[0]!;
    const env = await resolveEnv(state.pod, container, state.ip);
    const child = spawn(command, argv.slice(1), { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    state.child = child;
    state.startedAt = new Date();
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      state.output += text;
      if (state.output.length > 2_000_000) state.output = state.output.slice(-1_000_000);
      if (options.onOutput) for (const line of text.split('\n')) if (line) options.onOutput(state.name, line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => void onExit(state, child, code, signal));
    await patchStatus(state, 'Running', true);
    startProbing(state);
  };

  const note = (state: PodState, text: string) => {
    const line = `[pod-runner] ${new Date().toISOString()} ${text}`;
    state.output += `${line}\n`;
    options.onOutput?.(state.name, line);
  };
  const finalDelete = async (state: PodState) => {
    try {
      await core.deleteNamespacedPod({ name: state.name, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid: state.uid } } });
      note(state, 'deleted the pod object');
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code !== 404 && code !== 409) note(state, `final delete failed: ${String(err).slice(0, 300)}`);
    }
  };

  const onExit = async (state: PodState, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null) => {
    note(state, `process exited (code ${code}, signal ${signal})`);
    if (state.child !== child) return;
    state.child = null;
    state.ready = false;
    if (state.probeTimer) clearTimeout(state.probeTimer);
    if (state.terminating || stopped) {
      await patchStatus(state, code === 0 ? 'Succeeded' : 'Failed', false, { code, signal });
      // The kubelet's last word: the API object goes once the containers are gone.
      await finalDelete(state);
      return;
    }
    // restartPolicy Always: the kubelet restarts the container (with a short backoff here).
    state.restarts += 1;
    await patchStatus(state, 'Running', false, { code, signal });
    await sleep(1_000);
    if (!state.terminating && !state.gone && !stopped) await launch(state).catch(() => {});
  };

  const terminate = async (state: PodState, pod: V1Pod) => {
    if (state.terminating) return;
    state.terminating = true;
    const graceMs = (pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30) * 1_000;
    const began = Date.now();
    const preStop = pod.spec?.containers[0]?.lifecycle?.preStop?.sleep?.seconds;
    note(state, `deleted: preStop sleep ${preStop ?? 0} s, grace ${graceMs / 1_000} s`);
    if (preStop && state.child) await sleep(Math.min(preStop * 1_000, graceMs));
    const child = state.child;
    if (!child) {
      await finalDelete(state);
      return;
    }
    note(state, 'SIGTERM');
    child.kill('SIGTERM');
    const left = Math.max(0, graceMs - (Date.now() - began));
    const timer = setTimeout(() => {
      note(state, 'grace period over: SIGKILL');
      child.kill('SIGKILL');
    }, left);
    child.once('exit', () => clearTimeout(timer));
  };

  const admit = async (pod: V1Pod) => {
    const name = pod.metadata!.name!;
    if (!selected(pod) || states.has(name) || stopped) return;
    if (pod.metadata?.deletionTimestamp) return;
    if (!pod.spec?.nodeName) {
      await core
        .createNamespacedPodBinding({ name, namespace, body: { metadata: { name }, target: { apiVersion: 'v1', kind: 'Node', name: nodeName } } })
        .catch(() => {});
      return; // the bound pod comes back as an update
    }
    if (pod.spec.nodeName !== nodeName) return;
    const ports: Record<string, number> = {};
    for (const p of pod.spec.containers[0]?.ports ?? []) if (p.name) ports[p.name] = p.containerPort;
    const state: PodState = {
      name, uid: pod.metadata!.uid!, ip: `${ipBase}.${nextIp++}`, ports, child: null, output: '', ready: false,
      readyStreak: { ok: 0, fail: 0 }, terminating: false, restarts: 0, startedAt: new Date(), probeTimer: null, pod, gone: false, connections: 0,
    };
    if (nextIp > 254) throw new Error('pod-runner: out of pod IPs');
    states.set(name, state);
    try {
      await launch(state);
    } catch (err) {
      state.output += `pod-runner: could not start: ${(err as Error).message}\n`;
      await patchStatus(state, 'Failed', false, { code: 127, signal: null });
    }
  };

  const informer = makeInformer<V1Pod>(kc, `/api/v1/namespaces/${namespace}/pods`, () => core.listNamespacedPod({ namespace }));
  const onPod = (pod: V1Pod) => {
    const state = states.get(pod.metadata!.name!);
    if (state && state.uid === pod.metadata?.uid) {
      state.pod = pod;
      if (pod.metadata?.deletionTimestamp) void terminate(state, pod);
      return;
    }
    void admit(pod);
  };
  informer.on('add', onPod);
  informer.on('update', onPod);
  informer.on('delete', (pod) => {
    const state = states.get(pod.metadata!.name!);
    if (!state || state.uid !== pod.metadata?.uid) return;
    state.gone = true;
    if (state.probeTimer) clearTimeout(state.probeTimer);
    state.child?.kill('SIGKILL'); // a force delete: the kubelet kills what is left
    states.delete(state.name);
  });
  informer.on('error', () => {
    if (!stopped) setTimeout(() => void informer.start(), 1_000);
  });
  await informer.start();

  const view = (s: PodState): RunningPod => ({
    name: s.name, uid: s.uid, ip: s.ip, ports: s.ports, ready: s.ready, terminating: s.terminating, pid: s.child?.pid, output: () => s.output,
  });

  return {
    nodeName,
    pods: () => [...states.values()].map(view),
    async service(portName, balance = 'random') {
      const accepts: { pod: string; at: number }[] = [];
      const server = createServer((client: Socket) => {
        const backends = [...states.values()].filter((s) => s.ready && !s.terminating && s.child && s.ports[portName] !== undefined);
        if (backends.length === 0) return client.destroy();
        const target =
          balance === 'leastconn'
            ? backends.reduce((a, b) => (b.connections < a.connections ? b : a))
            : backends[randomInt(backends.length)]!;
        target.connections += 1;
        accepts.push({ pod: target.name, at: Date.now() });
        const upstream = connect(target.ports[portName]!, target.ip);
        const done = () => {
          target.connections = Math.max(0, target.connections - 1);
        };
        upstream.once('close', done);
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      proxies.push(server);
      const port = (server.address() as { port: number }).port;
      return {
        url: `http://127.0.0.1:${port}`,
        port,
        accepts,
        close: () => new Promise<void>((r) => server.close(() => r())),
      };
    },
    async waitForReady(count, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ready = [...states.values()].filter((s) => s.ready && !s.terminating);
        if (ready.length >= count) return ready.map(view);
        if (Date.now() > deadline) {
          const detail = [...states.values()].map((s) => `${s.name}: ready=${s.ready} terminating=${s.terminating}\n${s.output.slice(-800)}`).join('\n');
          throw new Error(`pod-runner: ${ready.length} of ${count} pods ready after ${timeoutMs} ms\n${detail}`);
        }
        await sleep(100);
      }
    },
    async stop() {
      stopped = true;
      clearInterval(heartbeat);
      await informer.stop();
      for (const server of proxies) server.close();
      const exits = [...states.values()].map((s) => {
        s.gone = true;
        if (s.probeTimer) clearTimeout(s.probeTimer);
        const child = s.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGKILL');
        return exited;
      });
      await Promise.all(exits);
      await core.deleteNode({ name: nodeName }).catch(() => {});
    },
  };
}
