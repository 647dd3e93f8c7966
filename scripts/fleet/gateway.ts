import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './ports.ts';

const MAIN = fileURLToPath(new URL('../../app/gateway/main.ts', import.meta.url));

export interface GatewayProcess {
  readonly pod: string;
  /** The public port: Socket.IO, SSE, the demo page, `/healthz`, `/readyz`. */
  readonly port: number;
  readonly url: string;
  /** The internal port (INTERNAL_PORT): `/metrics`, `/fleet`, `/admin/drain`, probes, the fleet view. */
  readonly internalPort: number;
  readonly internalUrl: string;
  readonly child: ChildProcess;
  /** Everything the process wrote, for assertions and for failure messages. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartGatewayOptions {
  readonly env?: Record<string, string>;
  /** Wait for /readyz to answer 200 (default) or only for /healthz. */
  readonly waitUntil?: 'ready' | 'alive';
  readonly pod?: string;
  readonly port?: number;
  readonly internalPort?: number;
  /**
   * The script to run instead of the gateway (it must serve `/readyz` on PORT and INTERNAL_PORT): the
   * bench's vanilla Socket.IO fleet (bench/peers/socketio-fleet.ts) runs behind the same edge this way.
   */
  readonly main?: string;
}

let podCounter = 0;

/** A real gateway child process on two free loopback ports (public and internal): `[gateway, cleanup]`. */
export async function startGateway(opts: StartGatewayOptions = {}): Promise<[GatewayProcess, () => Promise<void>]> {
  const port = opts.port ?? (await freePort());
  let internalPort = opts.internalPort ?? (await freePort());
  while (internalPort === port) internalPort = await freePort();
  podCounter += 1;
  const pod = opts.pod ?? `gw-${process.pid}-${podCounter}`;
  const child = spawn(process.execPath, [opts.main ?? MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      INTERNAL_PORT: String(internalPort),
      POD_NAME: pod,
      LOG_LEVEL: 'warn',
      AUTH_MODE: 'none',
      FLEET_STATS_INTERVAL_MS: '500',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  const internalUrl = `http://127.0.0.1:${internalPort}`;
  const gateway: GatewayProcess = {
    pod,
    port,
    url,
    internalPort,
    internalUrl,
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  // Asked on the internal port, as the kubelet does; the public port listens first, so it is up too.
  const path = (opts.waitUntil ?? 'ready') === 'ready' ? '/readyz' : '/healthz';
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  try {
    await waitFor(`gateway ${pod} ${path}`, async () => {
      if (exitedEarly) throw new Error(`gateway exited during start-up:\n${output}`);
      const res = await fetch(internalUrl + path).catch(() => null);
      return res?.ok;
    });
  } catch (err) {
    await gateway.stop('SIGKILL');
    throw new Error(`${(err as Error).message}\n--- gateway output ---\n${output}`);
  }
  return [gateway, async () => void (await gateway.stop('SIGKILL'))];
}
