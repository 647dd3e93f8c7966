// A real Kubernetes control plane on loopback for tests: etcd + kube-apiserver (+ kube-controller-manager),
// built by `make tools` into ./bin. No kubelet and no nodes, so pods are created but stay Pending.
//
//   const [plane, stop] = await startControlPlane({ controllerManager: true });
//   await plane.kubectl(['get', 'namespaces']);
//   await plane.kubectl(['auth', 'can-i', '--list'], { as: plane.serviceAccount('ns', 'name') });
//   await stop();
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Pki } from './pki.ts';

const execFileAsync = promisify(execFile);

export const repoRoot = resolve(import.meta.dirname, '../..');
export const defaultBinDir = process.env.LOCALBIN ?? join(repoRoot, 'bin');

/** A version pinned in scripts/tools.sh (the one place versions are written down), e.g. KUBERNETES_VERSION. */
export function pinnedVersion(variable: string): string {
  const script = readFileSync(join(repoRoot, 'scripts/tools.sh'), 'utf8');
  const match = new RegExp(`^${variable}=(\\S+)`, 'm').exec(script);
  if (!match?.[1]) throw new Error(`${variable} not found in scripts/tools.sh`);
  return match[1];
}

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager (Deployments → ReplicaSets → Pods, HPA, namespace deletion, SA tokens). */
  controllerManager?: boolean;
  /** Install the Gateway API and KEDA CRDs from bin/crds and wait until they are established. Default true. */
  installCrds?: boolean;
  /** Where `make tools` put the binaries. Default ./bin (or $LOCALBIN). */
  binDir?: string;
}

export interface KubectlOptions {
  /** Text for stdin (use with `-f -`). */
  input?: string;
  /** Impersonate this user, e.g. plane.serviceAccount('ns', 'name'). */
  as?: string;
  /** Resolve with the result instead of throwing when kubectl exits non-zero. */
  allowFailure?: boolean;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  /** Path of an admin (system:masters) kubeconfig. */
  kubeconfig: string;
  /** Temporary directory with certificates, etcd data and one log file per process. */
  dir: string;
  binDir: string;
  kubectl(args: string[], options?: KubectlOptions): Promise<KubectlResult>;
  /** Username that impersonates a service account (the API server adds its groups). */
  serviceAccount(namespace: string, name: string): string;
  /** The last lines of a component's log (etcd, kube-apiserver, kube-controller-manager), for error messages. */
  logTail(component: string, lines?: number): string;
}

export type StopControlPlane = () => Promise<void>;

const REQUIRED_BINARIES = ['etcd', 'kube-apiserver', 'kubectl'];

/** Throws an Error naming what is missing and saying to run `make tools`. */
export function assertToolsInstalled(binDir: string, controllerManager: boolean): void {
  const needed = controllerManager ? [...REQUIRED_BINARIES, 'kube-controller-manager'] : REQUIRED_BINARIES;
  const missing = needed.filter((name) => !existsSync(join(binDir, name)));
  const crdDir = join(binDir, 'crds');
  if (!existsSync(crdDir)) missing.push('crds/');
  if (missing.length > 0) {
    throw new Error(
      `The control-plane tests need ${missing.join(', ')} in ${binDir}: run \`make tools\` ` +
        '(builds pinned kube-apiserver, kube-controller-manager, kubectl, etcd and helm from the Go module proxy).',
    );
  }
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<[ControlPlane, StopControlPlane]> {
  const binDir = options.binDir ?? defaultBinDir;
  const controllerManager = options.controllerManager ?? false;
  assertToolsInstalled(binDir, controllerManager);

  const dir = mkdtempSync(join(tmpdir(), 'control-plane-'));
  const processes: { name: string; child: ChildProcess }[] = [];
  let stopped = false;

  const killAll = (signal: NodeJS.Signals) => {
    for (const { child } of processes) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  // If the test process dies without calling stop, do not leave an API server behind.
  const onExit = () => killAll('SIGKILL');
  process.once('exit', onExit);

  const stop: StopControlPlane = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    // Reverse order: controllers first, etcd last, so nothing logs errors about a vanished dependency.
    for (const { child } of [...processes].reverse()) await terminate(child);
    rmSync(dir, { recursive: true, force: true });
  };

  const logTail = (component: string, lines = 30) => {
    const file = join(dir, `${component}.log`);
    if (!existsSync(file)) return '(no log)';
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  };

  const launch = (name: string, args: string[]) => {
    const log = openSync(join(dir, `${name}.log`), 'a');
    const child = spawn(join(binDir, name), args, { cwd: dir, stdio: ['ignore', log, log] });
    closeSync(log);
    processes.push({ name, child });
    return child;
  };

  try {
    const pki = generateCertificates(dir);
    const [etcdClientPort, etcdPeerPort, apiPort] = await freePorts(3);
    const server = `https://127.0.0.1:${apiPort}`;

    const etcd = launch('etcd', [
      '--name=control-plane',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClientPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClientPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=control-plane=http://127.0.0.1:${etcdPeerPort}`,
      // Test data is thrown away: skipping fsync makes every write (and startup) much faster.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);

    const apiserver = launch('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClientPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
      `--service-account-key-file=${pki.serviceAccountPublicKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      // Loopback cannot be an endpoint of the `kubernetes` Service; nothing here needs that Service routed.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
    ]);

    const kubeconfig = join(dir, 'admin.kubeconfig');
    pki.pki.kubeconfig(kubeconfig, server, pki.admin);

    const plane: ControlPlane = {
      server,
      kubeconfig,
      dir,
      binDir,
      serviceAccount: (namespace, name) => `system:serviceaccount:${namespace}:${name}`,
      logTail,
      kubectl: async (args, kubectlOptions = {}) => {
        const fullArgs = [`--kubeconfig=${kubeconfig}`, ...args];
        if (kubectlOptions.as) fullArgs.push(`--as=${kubectlOptions.as}`);
        const result = await run(join(binDir, 'kubectl'), fullArgs, kubectlOptions.input);
        if (result.code !== 0 && !kubectlOptions.allowFailure) {
          throw new Error(`kubectl ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr || result.stdout}`);
        }
        return result;
      },
    };

    await waitFor('kube-apiserver /readyz', 60_000, [etcd, apiserver], logTail, async () => {
      return (await httpsGet(`${server}/readyz`, pki)) === 200;
    });

    if (controllerManager) {
      launch('kube-controller-manager', [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${(await freePorts(1))[0]}`,
        `--cert-dir=${join(dir, 'controller-manager-certs')}`,
        '--leader-elect=false',
        `--service-account-private-key-file=${pki.serviceAccountKey}`,
        `--root-ca-file=${pki.caCert}`,
        '--cluster-signing-cert-file=' + pki.caCert,
        '--cluster-signing-key-file=' + pki.caKey,
        // The HPA controller normally waits 30 s between syncs; tests want to see its status sooner.
        '--horizontal-pod-autoscaler-sync-period=2s',
      ]);
    }

    if (options.installCrds ?? true) await installCrds(plane);
    return [plane, stop];
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Applies every CRD in bin/crds (server-side: the big Gateway API CRDs exceed the client-side annotation limit). */
export async function installCrds(plane: ControlPlane): Promise<void> {
  const crdRoot = join(plane.binDir, 'crds');
  const dirs = readdirSync(crdRoot, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(crdRoot, entry.name));
  await plane.kubectl(['apply', '--server-side', ...dirs.flatMap((d) => ['-f', d])]);
  await plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
}

/**
 * Applies CRDs from bin/crds-optional/<name> (`make tools`): other projects' APIs the blueprint renders
 * objects of (Envoy Gateway's policies, the Prometheus Operator's ServiceMonitor), installed only by the
 * tests that need them — the Envoy Gateway ones are 2.5 MB.
 */
export async function installOptionalCrds(plane: ControlPlane, names: readonly string[]): Promise<void> {
  const dirs = names.map((name) => join(plane.binDir, 'crds-optional', name));
  const missing = dirs.filter((dir) => !existsSync(dir));
  if (missing.length > 0) throw new Error(`${missing.join(', ')} missing: run \`make tools\` (fetches them from their Go modules)`);
  await plane.kubectl(['apply', '--server-side', ...dirs.flatMap((d) => ['-f', d])]);
  await plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
}

/** A throwaway CA, the API server's serving certificate, an admin client certificate and the SA signing key. */
function generateCertificates(dir: string) {
  const pki = new Pki(dir, 'control-plane-test-ca');
  const serving = pki.sign({ name: 'apiserver', subject: '/CN=kube-apiserver', usage: 'server',
    altNames: ['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes.default.svc'] });
  // O=system:masters is the group the default RBAC policy grants everything to.
  const admin = pki.sign({ name: 'admin', subject: '/O=system:masters/CN=control-plane-admin', usage: 'client' });
  const sa = pki.serviceAccountKeys();
  return {
    pki,
    caCert: pki.caCert,
    caKey: pki.caKey,
    servingCert: serving.cert,
    servingKey: serving.key,
    admin,
    adminCert: admin.cert,
    adminKey: admin.key,
    serviceAccountKey: sa.privateKey,
    serviceAccountPublicKey: sa.publicKey,
  };
}

type Certificates = ReturnType<typeof generateCertificates>;

export function run(command: string, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** Runs a command and returns stdout; throws with stderr on failure. For tools other than kubectl (node, helm). */
export async function runChecked(command: string, args: string[], cwd = repoRoot): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const failure = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed:\n${failure.stderr || failure.message}`);
  }
}

export async function freePorts(count: number): Promise<number[]> {
  // Hold every listener open until all ports are known so the same port is not handed out twice.
  const servers = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<ReturnType<typeof createServer>>((resolvePromise, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolvePromise(server));
      }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected listener address');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((r) => server.close(r))));
  return ports;
}

function httpsGet(url: string, pki: Certificates): Promise<number> {
  return new Promise((resolvePromise) => {
    const req = request(url, {
      ca: readFileSync(pki.caCert),
      cert: readFileSync(pki.adminCert),
      key: readFileSync(pki.adminKey),
      timeout: 2_000,
    }, (res) => {
      res.resume();
      resolvePromise(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolvePromise(0));
    req.end();
  });
}

async function waitFor(
  what: string,
  timeoutMs: number,
  mustStayUp: ChildProcess[],
  logTail: (component: string) => string,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const child of mustStayUp) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const name = child.spawnfile.split('/').pop() ?? 'process';
        throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}:\n${logTail(name)}`);
      }
    }
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${logTail('kube-apiserver')}`);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
