import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';

// The tour's commands as a user runs them: a CLI (`make dev`'s scripts/dev-fleet.ts, `make tour-limits`)
// in a child process, its printed URLs parsed, commands typed on its stdin.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Cli {
  readonly child: ChildProcess;
  output(): string;
  /** Types a command, as on the terminal. */
  send(line: string): void;
  /** Waits until the output (from `from` on) matches, and returns the match. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  /** SIGTERM (the CLI cleans up what it started), SIGKILL after 15 s. */
  stop(): Promise<void>;
}

export async function startCli(script: string, args: string[]): Promise<Cli> {
  const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cli: Cli = {
    child,
    output: () => output,
    send: (line) => void child.stdin!.write(`${line}\n`),
    async waitFor(pattern, timeoutMs = 30_000, from = 0) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = output.slice(from).match(pattern);
        if (match) return match;
        if (child.exitCode !== null) throw new Error(`${script} exited (${child.exitCode}) before printing ${pattern}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`${script} did not print ${pattern} within ${timeoutMs} ms:\n${output.slice(-3000)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    },
  };
  return cli;
}

export { launchChromium } from '../helpers/browser.ts';

/** A new tab (its own browser context: own cookies, own sticky pod) on `url`, connected. */
export async function openTab(browser: Browser, url: string, connected = true): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await page.goto(url);
  if (connected) await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
  return page;
}

export const counterOf = async (page: Page): Promise<number> => Number(await page.locator('#counter-value').textContent());
export const chatLines = async (page: Page): Promise<string[]> => page.locator('#chat-log > div').allTextContents();
export const eventsOf = async (page: Page): Promise<string> => (await page.locator('#events').allTextContents()).join('\n');
