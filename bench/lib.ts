// Shared pieces of the benchmark suite: CPU and memory of other processes from /proc, the machine's
// load, medians and spread over rounds, forking peers and the client swarm, and a hand-rolled SVG bar chart.
import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { freePort } from '../scripts/fleet/ports.ts';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ is 100 on every Linux ABI). */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** CPU seconds of several processes together. */
export function totalCpu(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

/** Resident set size of a process in bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(match[1]) * 1024;
}

/** Open file descriptors of a process (each socket is one). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The 1-minute load average and the number of cores, to print beside every figure. */
export function machineLoad(): { loadavg1: number; loadavg5: number; cores: number } {
  const [one, five] = readFileSync('/proc/loadavg', 'utf8').split(' ');
  const cores = readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;
  return { loadavg1: Number(one), loadavg5: Number(five), cores };
}

/** Samples /proc/loadavg every second while a bench runs: min, median, max of the 1-minute figure. */
export function loadSampler(): { peek(): LoadSummary; stop(): LoadSummary } {
  const samples: number[] = [machineLoad().loadavg1];
  const timer = setInterval(() => samples.push(machineLoad().loadavg1), 1_000).unref();
  const peek = (): LoadSummary => ({ min: Math.min(...samples), median: median(samples), max: Math.max(...samples), samples: samples.length });
  return {
    peek,
    stop() {
      clearInterval(timer);
      return peek();
    },
  };
}

export interface LoadSummary {
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly samples: number;
}

/** redis-server's pid, so its CPU can be counted for the contenders that use it. */
export async function redisPid(url: string): Promise<number> {
  const client = new Redis(url);
  try {
    const info = await client.info('server');
    return Number(/process_id:(\d+)/.exec(info)![1]);
  } finally {
    client.disconnect();
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median of the rounds with their min and max, and the spread as (max − min) / median. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly spread: number;
  readonly rounds: readonly number[];
}

export function summarize(values: readonly number[]): Summary {
  const m = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { median: round(m), min: round(min), max: round(max), spread: m === 0 ? 0 : round((max - min) / m, 3), rounds: values.map((v) => round(v)) };
}

export function round(value: number, digits = 4): number {
  if (!Number.isFinite(value)) return value;
  const magnitude = Math.abs(value) >= 1 ? Math.min(digits, 2) : digits;
  return Number(value.toFixed(magnitude));
}

/** The nearest-rank percentile of sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Rotates `items` by `round`, so each contender takes each position in turn (alternated, not always first). */
export function alternate<T>(items: readonly T[], roundIndex: number): T[] {
  const k = roundIndex % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export interface Forked {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

/** Forks a bench peer server (bench/peers/*) on a free port; resolves once it says it listens. */
export async function forkPeer(file: URL, env: Record<string, string> = {}, execArgv: string[] = []): Promise<Forked> {
  const port = await freePort();
  const child = fork(file, { env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`${file.pathname} exited with ${code}`)));
  });
  return { child, pid: child.pid!, port, stop: () => stopChild(child) };
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface Bar {
  readonly label: string;
  readonly value: number;
  /** Min and max over the rounds, drawn as a whisker. */
  readonly min?: number;
  readonly max?: number;
  readonly text: string;
  readonly ours: boolean;
}

/** One horizontal bar chart per panel, stacked: what every bench writes as its SVG. */
export function barChart(title: string, panels: readonly { title: string; bars: readonly Bar[] }[], footnote: string): string {
  const width = 820;
  const left = 250;
  const barHeight = 22;
  const usable = width - left - 220;
  let y = 34;
  const parts: string[] = [`<text x="12" y="22" font-weight="bold">${escapeXml(title)}</text>`];
  for (const panel of panels) {
    y += 12;
    parts.push(`<text x="12" y="${y + 4}" font-weight="bold" fill="#333">${escapeXml(panel.title)}</text>`);
    y += 12;
    const max = Math.max(...panel.bars.map((b) => b.max ?? b.value), 1e-12);
    for (const bar of panel.bars) {
      const w = Math.max(2, (usable * bar.value) / max);
      parts.push(`<text x="${left - 8}" y="${y + 16}" text-anchor="end">${escapeXml(bar.label)}</text>`);
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${bar.ours ? '#3a7bd5' : '#9aa5b8'}"/>`);
      if (bar.min !== undefined && bar.max !== undefined) {
        const x1 = left + (usable * bar.min) / max;
        const x2 = left + (usable * bar.max) / max;
        const mid = y + barHeight / 2;
        parts.push(`<path d="M${x1.toFixed(1)} ${mid}H${x2.toFixed(1)}M${x1.toFixed(1)} ${mid - 5}V${mid + 5}M${x2.toFixed(1)} ${mid - 5}V${mid + 5}" stroke="#222" fill="none"/>`);
      }
      parts.push(`<text x="${left + Math.max(w, (usable * (bar.max ?? 0)) / max) + 8}" y="${y + 16}">${escapeXml(bar.text)}</text>`);
      y += barHeight + 8;
    }
  }
  y += 8;
  parts.push(`<text x="12" y="${y + 10}" font-size="11" fill="#555">${escapeXml(footnote)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 22}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
${parts.join('\n')}
</svg>
`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
