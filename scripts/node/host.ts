// What the real node changes on the host, and how to take each change back. Everything here acts on
// records (a PID written down, a path that did not exist, a sysctl's old value), never on names found
// by searching: the machine runs other things that must not be touched.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Sysctls the kubelet or the CNI bridge plugin change (REAL-NODE.md, "Host side effects"). */
export const TOUCHED_SYSCTLS = [
  'vm.overcommit_memory',
  'kernel.panic',
  'kernel.panic_on_oops',
  'net.ipv4.ip_forward',
  'net.bridge.bridge-nf-call-iptables',
  'net.bridge.bridge-nf-call-ip6tables',
  'net.ipv4.conf.all.route_localnet',
  'net.ipv4.vs.conntrack',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
] as const;

/** Paths outside the node's own directory that containerd, the CNI plugins and the kubelet create. */
export const HOST_PATHS = [
  '/run/containerd',
  '/var/lib/cni',
  '/var/log/containers',
  '/var/log/pods',
  '/var/lib/kubelet',
  '/var/run/netns',
  '/run/netns',
  '/etc/cni',
  '/opt/cni',
] as const;

/** The cgroup v1 hierarchies and the v2 mount the kubelet creates `kubepods` under. */
export const CGROUP_ROOT = '/sys/fs/cgroup';

export function readSysctls(keys: readonly string[] = TOUCHED_SYSCTLS): Record<string, string> {
  const values: Record<string, string> = {};
  for (const key of keys) {
    const file = join('/proc/sys', ...key.split('.'));
    if (existsSync(file)) values[key] = readFileSync(file, 'utf8').trim();
  }
  return values;
}

export function restoreSysctls(values: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const current = readSysctls([key])[key];
    if (current === undefined || current === value) continue;
    const result = spawnSync('sysctl', ['-q', '-w', `${key}=${value}`], { encoding: 'utf8' });
    if (result.status !== 0) problems.push(`sysctl ${key}=${value}: ${result.stderr.trim()}`);
  }
  return problems;
}

export function existingPaths(paths: readonly string[] = HOST_PATHS): string[] {
  return paths.filter((path) => existsSync(path));
}

/** nftables tables as `family name` (iptables-nft keeps its rules in tables like `ip filter`). */
export function nftTables(): string[] {
  const out = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  return out.split('\n').map((line) => line.replace(/^table\s+/, '').trim()).filter(Boolean).sort();
}

/** The whole ruleset of one table, for before/after comparison. */
export function nftTable(table: string): string {
  return execFileSync('nft', ['list', 'table', ...table.split(' ')], { encoding: 'utf8' });
}

export function deleteNftTable(table: string): string | undefined {
  const result = spawnSync('nft', ['delete', 'table', ...table.split(' ')], { encoding: 'utf8' });
  return result.status === 0 ? undefined : `nft delete table ${table}: ${result.stderr.trim()}`;
}

/** True when the process exists and runs the given executable (guards against a recycled PID). */
export function isOurProcess(pid: number, executable?: string): boolean {
  try {
    if (!executable) return existsSync(`/proc/${pid}`);
    const exe = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
    return exe === executable;
  } catch {
    return false;
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Waits until none of the PIDs exist, up to timeoutMs; returns those still alive. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter((pid) => existsSync(`/proc/${pid}`) && !isZombie(pid));
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    alive = alive.filter((pid) => existsSync(`/proc/${pid}`) && !isZombie(pid));
  }
  return alive;
}

function isZombie(pid: number): boolean {
  try {
    return / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ''));
  } catch {
    return false;
  }
}

/** Every `kubepods` cgroup directory, one per hierarchy that has it. */
export function kubepodsCgroups(): string[] {
  if (!existsSync(CGROUP_ROOT)) return [];
  return readdirSync(CGROUP_ROOT)
    .map((hierarchy) => join(CGROUP_ROOT, hierarchy, 'kubepods'))
    .filter((dir) => existsSync(dir));
}

/** PIDs in a cgroup subtree: processes of pods, recorded by the kernel. */
export function cgroupPids(dir: string): number[] {
  const pids = new Set<number>();
  const walk = (path: string) => {
    try {
      for (const line of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.add(Number(line));
      for (const entry of readdirSync(path, { withFileTypes: true })) if (entry.isDirectory()) walk(join(path, entry.name));
    } catch {
      // removed while walking
    }
  };
  walk(dir);
  return [...pids];
}

/** rmdir depth first; cgroup directories cannot be removed with rm -r, and are never unmounted. */
export function removeCgroupTree(dir: string): string | undefined {
  const walk = (path: string): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) if (entry.isDirectory()) walk(join(path, entry.name));
    rmdirSync(path);
  };
  try {
    if (existsSync(dir)) walk(dir);
    return undefined;
  } catch (error) {
    return `rmdir ${dir}: ${(error as Error).message}`;
  }
}

/** Mount points at or under any of the prefixes, deepest first. */
export function mountsUnder(prefixes: string[]): string[] {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\040/g, ' '));
  return mounts
    .filter((mount) => prefixes.some((prefix) => mount === prefix || mount.startsWith(`${prefix}/`)))
    .sort((a, b) => b.length - a.length);
}

export function unmount(path: string): string | undefined {
  let result = spawnSync('umount', [path], { encoding: 'utf8' });
  if (result.status !== 0) result = spawnSync('umount', ['-l', path], { encoding: 'utf8' });
  return result.status === 0 ? undefined : `umount ${path}: ${result.stderr.trim()}`;
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Interfaces enslaved to a bridge (the veths of pods that are gone but whose netns lingered). */
export function bridgePorts(bridge: string): string[] {
  const dir = `/sys/class/net/${bridge}/brif`;
  return existsSync(dir) ? readdirSync(dir) : [];
}

export function deleteLink(name: string): string | undefined {
  if (!linkExists(name)) return undefined;
  const result = spawnSync('ip', ['link', 'delete', name], { encoding: 'utf8' });
  // A veth vanishes on its own once its pod's network namespace is gone.
  if (result.status === 0 || !linkExists(name)) return undefined;
  return `ip link delete ${name}: ${result.stderr.trim()}`;
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * PIDs whose working directory is at or under `dir`: containerd's shims run in their task's bundle
 * directory under the node's state dir and outlive containerd by design, so this is how the kernel
 * records them as the node's.
 */
export function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`).replace(/ \(deleted\)$/, '');
      if (cwd === dir || cwd.startsWith(`${dir}/`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** A comparable picture of everything the node may change, for the teardown test. */
export interface HostSnapshot {
  sysctls: Record<string, string>;
  links: string[];
  addresses: string[];
  routes: string[];
  nft: string[];
  paths: string[];
  mounts: string[];
  cgroups: string[];
  listeners: string[];
  /** Processes working in the node's directories (shims, containers): none once it is gone. */
  processes: number[];
}

export function snapshotHost(nodeDirs: readonly string[] = ['/var/tmp/rtgw-node', '/run/containerd']): HostSnapshot {
  const lines = (command: string, args: string[]) =>
    execFileSync(command, args, { encoding: 'utf8' }).split('\n').map((line) => line.trim()).filter(Boolean).sort();
  return {
    sysctls: readSysctls(),
    links: lines('ip', ['-o', 'link', 'show']).map((line) => line.replace(/^\d+:\s*/, '').split(/[:@]/)[0]!.trim()),
    addresses: lines('ip', ['-o', 'addr', 'show']).map((line) => line.replace(/^\d+:\s*/, '').replace(/valid_lft.*$/, '').trim()),
    routes: lines('ip', ['route', 'show', 'table', 'all']),
    nft: nftTables().map((table) => `${table}\n${nftTable(table)}`),
    paths: existingPaths(),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((line) => line.split(' ')[4]!).sort(),
    cgroups: kubepodsCgroups(),
    // Only the node's own fixed endpoints: test runners open other ports at the same time.
    listeners: lines('ss', ['-Hltn']).map((line) => line.split(/\s+/)[3]!).filter((address) => address.startsWith('10.245.')),
    processes: nodeDirs.flatMap(processesIn).sort((a, b) => a - b),
  };
}
