// A containerd of the test's own, to import and run the images built here without touching the node's
// (/run/containerd, /var/lib/containerd are the harness's). Its root, state and socket live under a temp
// dir, and it runs in a mount namespace of its own with a private tmpfs on /run: containerd 1.6 puts shim
// sockets (/run/containerd/s), runc state and ctr's FIFOs under /run/containerd whatever its config says,
// so they land in that tmpfs and vanish with the namespace. ctr is run inside the same namespace
// (nsenter), so its FIFOs are where the shim looks. Processes are stopped by the PID recorded at start.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Host network (for the gateway's /healthz); otherwise a network namespace with only loopback. */
  readonly netHost?: boolean;
  readonly stdin?: string;
  readonly timeoutMs?: number;
}

export interface RunningContainer {
  readonly id: string;
  /** The container's init process on the host (for /proc/<pid>/status). */
  pid(): Promise<number>;
  /** Sends a signal through containerd. */
  signal(sig: string): Promise<void>;
  /** Resolves with the container's exit code (`ctr run` exits with it). */
  readonly exited: Promise<RunResult>;
}

export interface PrivateContainerd {
  readonly dir: string;
  readonly namespace: string;
  ctr(args: readonly string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<RunResult>;
  /** `ctr run --rm` to completion. */
  run(image: string, id: string, opts?: RunOptions): Promise<RunResult>;
  /** `ctr run --rm` in the background; stop it with `signal`. */
  start(image: string, id: string, opts?: RunOptions): RunningContainer;
  stop(): Promise<void>;
}

/** What the test needs on the machine; a missing piece fails with what to install, never a silent skip. */
export function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('the image tests run containers with containerd and runc: run them as root');
  const missing: string[] = [];
  for (const [command, pkg] of [
    ['containerd', 'containerd'],
    ['ctr', 'containerd'],
    ['runc', 'runc'],
    ['unshare', 'util-linux'],
    ['nsenter', 'util-linux'],
    ['mount', 'mount'],
  ] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    } catch {
      missing.push(`${command} (apt-get install ${pkg})`);
    }
  }
  if (missing.length) throw new Error(`missing for the image tests: ${missing.join(', ')} — scripts/system-deps.sh installs them`);
}

export async function startPrivateContainerd(namespace = 'k8s.io'): Promise<PrivateContainerd> {
  checkPrerequisites();
  const dir = mkdtempSync(join(tmpdir(), 'rg-containerd-'));
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  // Config version 2 is containerd 1.6's. CRI is off: this containerd only imports and runs with ctr.
  writeFileSync(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  const logFile = join(dir, 'containerd.log');
  const log = openSync(logFile, 'a');
  const daemon: ChildProcess = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o mode=0755,size=64m tmpfs /run && exec containerd --config "$1"', 'sh', config],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  const pid = daemon.pid!;
  writeFileSync(join(dir, 'containerd.pid'), `${pid}\n`);
  let daemonExit: number | null | undefined;
  daemon.on('exit', (code) => (daemonExit = code));
  const cgroupParent = `rg-image-test-${process.pid}`;
  const tail = () => readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');

  const exec = (args: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}): { child: ChildProcess; result: Promise<RunResult> } => {
    const child = spawn('nsenter', ['--target', String(pid), '--mount', '--', 'ctr', '--address', socket, '-n', namespace, ...args], {
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    const result = new Promise<RunResult>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
    return { child, result };
  };
  const ctr = (args: readonly string[], opts: { stdin?: string; timeoutMs?: number } = {}) => exec(args, { timeoutMs: 60_000, ...opts }).result;

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (daemonExit !== undefined) throw new Error(`containerd exited (${daemonExit}) while starting:\n${tail()}`);
    if ((await ctr(['version'], { timeoutMs: 5_000 })).code === 0) break;
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      throw new Error(`containerd did not answer on ${socket} within 20 s:\n${tail()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  const runArgs = (image: string, id: string, o: RunOptions): string[] => [
    'run',
    '--rm',
    '--cgroup',
    `/${cgroupParent}/${id}`,
    ...(o.netHost ? ['--net-host'] : []),
    ...Object.entries(o.env ?? {}).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    image,
    id,
    ...(o.args ?? []),
  ];

  return {
    dir,
    namespace,
    ctr,
    run: (image, id, o = {}) => exec(runArgs(image, id, o), { timeoutMs: o.timeoutMs ?? 60_000, ...(o.stdin !== undefined ? { stdin: o.stdin } : {}) }).result,
    start(image, id, o = {}) {
      const { result } = exec(runArgs(image, id, o), { timeoutMs: o.timeoutMs ?? 120_000 });
      return {
        id,
        exited: result,
        async pid() {
          for (let i = 0; i < 100; i += 1) {
            const line = (await ctr(['task', 'ls'])).stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
            const [, taskPid, status] = line?.split(/\s+/) ?? [];
            if (status === 'RUNNING' && Number(taskPid) > 0) return Number(taskPid);
            await new Promise((r) => setTimeout(r, 100));
          }
          throw new Error(`container ${id} is not running`);
        },
        async signal(sig) {
          const r = await ctr(['task', 'kill', '--signal', sig, id]);
          if (r.code !== 0) throw new Error(`ctr task kill ${sig} ${id}: ${r.stderr}`);
        },
      };
    },
    async stop() {
      try {
        // Tasks first, so every shim exits with its container; then containerd itself.
        const tasks = (await ctr(['task', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
        for (const id of tasks) {
          await ctr(['task', 'kill', '--signal', 'SIGKILL', id]);
          await ctr(['task', 'delete', '--force', id]);
        }
        for (const id of (await ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean)) await ctr(['containers', 'rm', id]);
      } finally {
        if (daemonExit === undefined) {
          process.kill(pid, 'SIGTERM');
          for (let i = 0; i < 50 && daemonExit === undefined; i += 1) await new Promise((r) => setTimeout(r, 100));
          if (daemonExit === undefined) process.kill(pid, 'SIGKILL');
        }
        // runc removes each container's cgroup; the parent is ours to remove, in every hierarchy.
        const left: string[] = [];
        for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
          try {
            rmdirSync(join('/sys/fs/cgroup', hierarchy, cgroupParent));
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code !== 'ENOENT' && code !== 'ENOTDIR') left.push(`/sys/fs/cgroup/${hierarchy}/${cgroupParent}: ${code}`);
          }
        }
        rmSync(dir, { recursive: true, force: true });
        if (left.length) console.error(`private containerd: could not remove ${left.join(', ')}`);
      }
    },
  };
}
