import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/fleet/ports.ts';
import { metricValue } from '../helpers/process-memory.ts';
import { chatLines, type Cli, eventsOf, launchChromium, openTab, startCli } from './tour-cli.ts';

// docs/tour.md, step 5, in Chromium, with `make tour-limits` (scripts/tour-limits.ts) and its
// `token <seconds>` and `flood` commands: an expired token, a heartbeat timeout, a slow consumer.

/** What a paused debugger (or a frozen tab) does: the page's JavaScript runs nothing for `ms`. */
const freeze = (page: Page, ms: number): Promise<void> =>
  page.evaluate((duration) => {
    const until = Date.now() + duration;
    while (Date.now() < until) {
      // busy: no timer, no socket handler, no pong runs meanwhile
    }
  }, ms);

describe('the guided tour (docs/tour.md), step 5: what the client sees at the limits', () => {
  let browser: Browser;
  let cli: Cli;
  let page: string;
  let longPollPage: string;
  let metrics: string;
  let expiring: Page;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    cli = await startCli('scripts/tour-limits.ts', ['--port', String(await freePort())]);
    cleanups.push(() => cli.stop());
    [, page] = (await cli.waitFor(/Page \(token valid for 1 hour\):\s+(\S+)/, 60_000)) as [string, string];
    [, longPollPage] = (await cli.waitFor(/Same page, long-polling:\s+(\S+)/)) as [string, string];
    [, metrics] = (await cli.waitFor(/Metrics \(internal port\):\s+(\S+)\/metrics/)) as [string, string];
    browser = await launchChromium();
    cleanups.push(() => browser.close());
    // The expiring token is minted first, so its 10 s run out while the other two checks run.
    const from = cli.output().length;
    cli.send('token 10');
    const [, url] = await cli.waitFor(/page with a token expiring in 10 s: (\S+)/, 10_000, from);
    expiring = await openTab(browser, url!);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('a heartbeat timeout: a tab that stops answering pings is dropped, then reconnects and resumes', async () => {
    const tab = await openTab(browser, page);
    await expect.poll(() => tab.locator('#transport').textContent()).toBe('websocket');
    await freeze(tab, 5_000);
    await expect.poll(() => eventsOf(tab), { timeout: 10_000 }).toMatch(/connection lost/);
    await tab.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => eventsOf(tab)).toMatch(/joined chat:lobby on limits: replay/);
    expect(await metricValue(metrics, 'rt_disconnections_total', { reason: 'ping timeout' })).toBeGreaterThanOrEqual(1);
    await tab.context().close();
  });

  it('a slow consumer: a long-polling tab that stops reading is cut past 64 KiB, then resumes every message once', async () => {
    const tab = await openTab(browser, longPollPage);
    await expect.poll(() => tab.locator('#transport').textContent()).toBe('polling');
    const before = (await chatLines(tab)).length;
    const from = cli.output().length;
    const frozen = freeze(tab, 3_000);
    cli.send('flood');
    await cli.waitFor(/flooded chat:lobby: 150 messages/, 10_000, from);
    await frozen;
    await expect.poll(() => metricValue(metrics, 'rt_slow_consumer_disconnections_total'), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    await expect.poll(() => eventsOf(tab), { timeout: 15_000 }).toMatch(/connection lost/);
    await tab.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    // Resumed by seq: the flood is on the page once, in full (the snapshot keeps the newest 50 on a reset).
    await expect.poll(async () => (await chatLines(tab)).filter((l) => l.startsWith('flood-')).length, { timeout: 15_000 }).toBe(150);
    expect((await chatLines(tab)).length).toBe(before + 150);
    await tab.context().close();
  });

  it('an expired token: the gateway asks for a fresh one, the page has none to give, and the connection ends for good', async () => {
    await expect.poll(() => eventsOf(expiring), { timeout: 20_000 }).toMatch(/gateway closing the connection: token_expired/);
    await expiring.locator('#state[data-state="closed"]').waitFor({ timeout: 10_000 });
    expect(await eventsOf(expiring)).toMatch(/auth:refresh/);
    // Opening the same URL again: the handshake itself is refused.
    const again = await openTab(browser, expiring.url(), false);
    await expect.poll(() => again.locator('#notice').textContent(), { timeout: 10_000 }).toMatch(/expired/);
    await again.locator('#state[data-state="closed"]').waitFor({ timeout: 10_000 });
  });
});
