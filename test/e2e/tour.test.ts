import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/fleet/ports.ts';
import { chatLines, type Cli, counterOf, eventsOf, launchChromium, openTab, startCli } from './tour-cli.ts';

// docs/tour.md, steps 1–4, in Chromium, with the commands the tour gives: `make dev REPLICAS=2`
// (scripts/dev-fleet.ts), its `kill <pod>`, `make dev BACKPLANE=none`, `make bench-rungs`.

async function startDev(backplane: 'redis' | 'none'): Promise<{ cli: Cli; url: string; fleetView: string }> {
  const cli = await startCli('scripts/dev-fleet.ts', ['--replicas', '2', '--port', String(await freePort()), '--backplane', backplane]);
  const [, url] = await cli.waitFor(/Demo page \(through HAProxy\): (\S+?)\/?\n/, 60_000);
  const [, fleetView] = await cli.waitFor(/Fleet view \(internal port\):\s+(\S+?)\/?\s/);
  return { cli, url: url!, fleetView: fleetView! };
}

/** Tabs until two of them are on different pods (the edge balances each new tab's first request). */
async function tabsOnTwoPods(browser: Browser, url: string): Promise<[Page, Page]> {
  const tabs: { tab: Page; pod: string }[] = [];
  for (let i = 0; i < 6; i += 1) {
    const tab = await openTab(browser, url);
    await expect.poll(() => tab.locator('#pod').textContent()).toMatch(/^gw-\d+$/);
    // The pod shows before the room's state: a counter read earlier is NaN.
    await expect.poll(async () => Number.isFinite(await counterOf(tab))).toBe(true);
    const pod = (await tab.locator('#pod').textContent())!;
    const first = tabs.find((t) => t.pod !== pod);
    if (first) {
      for (const spare of tabs) if (spare !== first) await spare.tab.context().close();
      return [first.tab, tab];
    }
    tabs.push({ tab, pod });
  }
  throw new Error('six tabs all landed on one pod');
}

describe('the guided tour (docs/tour.md), steps 1–4', () => {
  let browser: Browser;
  let dev: Awaited<ReturnType<typeof startDev>>;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    dev = await startDev('redis');
    cleanups.push(() => dev.cli.stop());
    browser = await launchChromium();
    cleanups.push(() => browser.close());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('step 1: the live counter in two tabs', async () => {
    const [a, b] = [await openTab(browser, dev.url), await openTab(browser, dev.url)];
    await expect.poll(() => a.locator('#counter-value').textContent()).toMatch(/^\d+$/);
    const start = await counterOf(a);
    await expect.poll(() => counterOf(b)).toBe(start);
    await a.click('#increment');
    await b.click('#increment');
    for (const tab of [a, b]) await expect.poll(() => counterOf(tab)).toBe(start + 2);
    expect(await a.locator('#transport').textContent()).toBe('websocket');
    await Promise.all([a.context().close(), b.context().close()]);
  });

  it('step 2: the four rungs side by side, and what each costs (make bench-rungs)', async () => {
    const tab = await openTab(browser, dev.url);
    await tab.click('#ladder-start');
    await tab.click('#ladder-drive');
    const row = (rung: string, cell: string): Promise<string | null> => tab.locator(`#ladder tr[data-rung="${rung}"] .${cell}`).textContent();
    const transports = { 'short-poll': 'short-poll', 'long-poll': 'polling', sse: 'sse', websocket: 'websocket' };
    for (const [rung, transport] of Object.entries(transports)) {
      await expect.poll(() => row(rung, 'transport'), { timeout: 10_000 }).toBe(transport);
      await expect.poll(() => row(rung, 'latency'), { timeout: 15_000 }).toMatch(/^\d+ ms$/);
    }
    await expect.poll(async () => Number(await row('short-poll', 'requests')), { timeout: 15_000 }).toBeGreaterThanOrEqual(5);
    await tab.click('#ladder-drive');
    // Every rung converges on the same value; short polling within one Retry-After.
    const websocketValue = async (): Promise<string | null> => row('websocket', 'value');
    for (const rung of ['short-poll', 'long-poll', 'sse']) await expect.poll(async () => (await row(rung, 'value')) === (await websocketValue()), { timeout: 15_000 }).toBe(true);
    expect(Number(await row('long-poll', 'requests'))).toBeGreaterThanOrEqual(3);
    // A WebSocket and an SSE stream are one request each; short polling pays one per poll.
    expect(await row('websocket', 'requests')).toBe('1');
    expect(await row('sse', 'requests')).toBe('1');
    const ms = async (rung: string): Promise<number> => Number((await row(rung, 'latency'))!.replace(' ms', ''));
    expect(await ms('short-poll')).toBeGreaterThan(await ms('websocket'));
    await tab.context().close();

    // The tour's numbers come from `make bench-rungs`; a short run must deliver everything and write the chart.
    const out = mkdtempSync(join(tmpdir(), 'rt-rungs-'));
    const bench = await startCli('bench/rungs.ts', ['--clients', '2', '--seconds', '4', '--out', out]);
    await bench.waitFor(/wrote .*rungs\.svg/, 60_000);
    expect(bench.output()).toMatch(/measuring 4 rungs × 2 clients, 1 message\/s for 4 s/);
    const report = JSON.parse(readFileSync(join(out, 'rungs.json'), 'utf8')) as { results: { rung: string; requestsPerClientMinute: number; delivered: number; expected: number; bytesPerClientMinute: { total: number } }[] };
    expect(report.results.map((r) => r.rung)).toEqual(['short poll', 'long poll', 'SSE', 'WebSocket']);
    for (const r of report.results) {
      expect(r.delivered, r.rung).toBe(r.expected);
      expect(r.bytesPerClientMinute.total, r.rung).toBeGreaterThan(0);
    }
    const [shortPoll, , sse, websocket] = report.results;
    expect(shortPoll!.requestsPerClientMinute).toBeGreaterThan(sse!.requestsPerClientMinute);
    expect(websocket!.requestsPerClientMinute).toBe(0);
    expect(readFileSync(join(out, 'rungs.svg'), 'utf8')).toContain('<svg');
  });

  it('step 2: where only plain requests get through, the page falls back to short polling', async () => {
    const context = await browser.newContext();
    // What the tour does with DevTools' request blocking: nothing under /socket.io/ gets through.
    await context.route('**/socket.io/**', (route) => route.abort());
    const blocked = await context.newPage();
    await blocked.goto(dev.url);
    await expect.poll(() => blocked.locator('#transport').textContent(), { timeout: 20_000 }).toBe('short-poll');
    await blocked.locator('#state[data-state="connected"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => blocked.locator('#counter-value').textContent()).toMatch(/^\d+$/);
    const before = await counterOf(blocked);
    expect(await eventsOf(blocked)).toMatch(/state connected \(short-poll\)/);

    // It reads: another tab's increment arrives within one Retry-After (at most 10 s).
    const other = await openTab(browser, dev.url);
    await other.click('#increment');
    await expect.poll(() => counterOf(blocked), { timeout: 15_000 }).toBe(before + 1);
    // It cannot write: short polling only reads.
    await blocked.click('#increment');
    await expect.poll(() => blocked.locator('#notice').textContent()).toMatch(/short polling/);
    await Promise.all([context.close(), other.context().close()]);
  });

  it('step 3: chat, kill a gateway mid-chat, watch the tab reconnect and resync by seq, with the fleet view', async () => {
    const [victim, other] = await tabsOnTwoPods(browser, dev.url);
    const doomed = (await victim.locator('#pod').textContent())!;
    const view = await (await browser.newContext()).newPage();
    await view.goto(`${dev.fleetView}/`);
    await view.locator(`#fleet .pod[data-pod="${doomed}"]`).waitFor({ timeout: 15_000 });

    await victim.fill('#chat-input', 'before the kill');
    await victim.press('#chat-input', 'Enter');
    await expect.poll(() => chatLines(other)).toContainEqual(expect.stringContaining('before the kill'));

    const from = dev.cli.output().length;
    dev.cli.send(`kill ${doomed}`);
    await dev.cli.waitFor(new RegExp(`${doomed} killed: signal=SIGKILL`), 15_000, from);
    // Sent while the victim's tab is still finding another pod: it gets it on resume, by seq.
    await other.fill('#chat-input', 'while you were away');
    await other.press('#chat-input', 'Enter');

    await expect.poll(() => eventsOf(victim), { timeout: 15_000 }).toMatch(/connection lost/);
    await expect.poll(() => victim.locator('#pod').textContent(), { timeout: 20_000 }).toMatch(/^gw-\d+$/);
    expect(await victim.locator('#pod').textContent()).not.toBe(doomed);
    await victim.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => eventsOf(victim)).toMatch(/joined chat:lobby on gw-\d+: replay/);
    await expect.poll(() => chatLines(victim)).toContainEqual(expect.stringContaining('while you were away'));
    const lines = await chatLines(victim);
    expect(lines.filter((l) => l.includes('while you were away'))).toHaveLength(1);
    expect(lines.findIndex((l) => l.includes('before the kill'))).toBeLessThan(lines.findIndex((l) => l.includes('while you were away')));

    // The fleet view: the replacement the "ReplicaSet" started shows up with the surviving pod.
    const [, replacement] = await dev.cli.waitFor(/\[fleet\] started (gw-\d+)/, 30_000, from);
    await view.locator(`#fleet .pod[data-pod="${replacement}"]`).waitFor({ timeout: 20_000 });
    await Promise.all([victim.context().close(), other.context().close(), view.context().close()]);
  });

  it('step 4: without a shared backplane a message never crosses pods (make dev BACKPLANE=none); with Redis it does', async () => {
    const lonely = await startDev('none');
    cleanups.push(() => lonely.cli.stop());
    expect(lonely.cli.output()).toMatch(/WITHOUT a shared backplane/);
    const [a, b] = await tabsOnTwoPods(browser, lonely.url);
    const [startA, startB] = [await counterOf(a), await counterOf(b)];
    await a.click('#increment');
    await a.fill('#chat-input', 'only my pod hears this');
    await a.press('#chat-input', 'Enter');
    await expect.poll(() => counterOf(a)).toBe(startA + 1);
    await expect.poll(() => chatLines(a)).toContainEqual(expect.stringContaining('only my pod hears this'));
    // Long enough for any delivery to have happened: the same path takes milliseconds with Redis.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await counterOf(b)).toBe(startB);
    expect(await chatLines(b)).not.toContainEqual(expect.stringContaining('only my pod hears this'));
    await Promise.all([a.context().close(), b.context().close()]);
    await lonely.cli.stop();

    // The same on the Redis fleet: both pods see everything.
    const [c, d] = await tabsOnTwoPods(browser, dev.url);
    await expect.poll(async () => (await counterOf(c)) === (await counterOf(d))).toBe(true);
    const start = await counterOf(c);
    await c.click('#increment');
    await c.fill('#chat-input', 'every pod hears this');
    await c.press('#chat-input', 'Enter');
    await expect.poll(() => counterOf(d)).toBe(start + 1);
    await expect.poll(() => chatLines(d)).toContainEqual(expect.stringContaining('every pod hears this'));
    await Promise.all([c.context().close(), d.context().close()]);
  });
});
