// A test host of our own outside the node: a network namespace behind a veth pair, with a TCP listener
// that counts connections. Pods must not reach it; the host can. Nothing here leaves the machine.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NAMESPACE = 'rtgw-outside';
const HOST_VETH = 'rtgw-out0';

export class OutsideHost {
  readonly address = '198.18.0.2';
  readonly port = 7777;
  private readonly dir: string;
  private listener: ChildProcess | undefined;
  private hostConnections = 0;
  private baseline = 0;
  /** `ip netns add` creates and mounts /run/netns; undo that too if it was not there. */
  private readonly createdNetnsDir = !existsSync('/run/netns');

  private constructor(dir: string) {
    this.dir = dir;
  }

  static create(): OutsideHost {
    const host = new OutsideHost(mkdtempSync(join(tmpdir(), 'outside-host-')));
    const ip = (...args: string[]) => {
      const result = spawnSync('ip', args, { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
    };
    ip('netns', 'add', NAMESPACE);
    ip('link', 'add', HOST_VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NAMESPACE);
    // No IPv6 link-local addresses: their duplicate-address detection would change the host's state mid-test.
    ip('link', 'set', HOST_VETH, 'addrgenmode', 'none');
    ip('-n', NAMESPACE, 'link', 'set', 'eth0', 'addrgenmode', 'none');
    ip('addr', 'add', '198.18.0.1/30', 'dev', HOST_VETH);
    ip('link', 'set', HOST_VETH, 'up');
    ip('-n', NAMESPACE, 'addr', 'add', `${host.address}/30`, 'dev', 'eth0');
    ip('-n', NAMESPACE, 'link', 'set', 'eth0', 'up');
    ip('-n', NAMESPACE, 'link', 'set', 'lo', 'up');
    ip('-n', NAMESPACE, 'route', 'add', 'default', 'via', '198.18.0.1');
    const log = join(host.dir, 'connections');
    host.listener = spawn('ip', ['netns', 'exec', NAMESPACE, process.execPath, '-e', `
      const fs = require('node:fs');
      require('node:net').createServer((socket) => { fs.appendFileSync(${JSON.stringify(log)}, 'x'); socket.end('hello'); })
        .listen(${host.port}, '0.0.0.0');`], { stdio: 'ignore' });
    const deadline = Date.now() + 5_000;
    while (!host.reachableFromHost(false) && Date.now() < deadline) spawnSync('sleep', ['0.1']);
    host.baseline = host.count();
    return host;
  }

  /** A connection from the host itself (counted separately from what pods manage). */
  reachableFromHost(count = true): boolean {
    const result = spawnSync(process.execPath, ['-e', `
      const s = require('node:net').connect(${this.port}, '${this.address}');
      s.on('data', () => process.exit(0)); s.on('error', () => process.exit(1)); setTimeout(() => process.exit(1), 2000);`]);
    if (result.status === 0 && count) this.hostConnections++;
    return result.status === 0;
  }

  /** Connections that did not come from reachableFromHost(). */
  connectionsSeen(): number {
    return this.count() - this.baseline - this.hostConnections;
  }

  private count(): number {
    const file = join(this.dir, 'connections');
    return existsSync(file) ? readFileSync(file, 'utf8').length : 0;
  }

  remove(): void {
    if (this.listener?.pid) {
      // `ip netns exec` replaces itself with node: the recorded PID is the listener.
      try {
        process.kill(this.listener.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    spawnSync('ip', ['link', 'delete', HOST_VETH]);
    spawnSync('ip', ['netns', 'delete', NAMESPACE]);
    if (this.createdNetnsDir) {
      spawnSync('umount', ['/run/netns']);
      rmSync('/run/netns', { recursive: true, force: true });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
