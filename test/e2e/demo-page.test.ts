import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalFleet, startLocalFleet } from '../../scripts/fleet/fleet.ts';
import { launchChromium } from '../helpers/browser.ts';

// The demo page in real Chromium, served through the local fleet's HAProxy: two tabs share the
// live counter; the fleet view — on the internal port, never the public one — shows a pod draining
// while its clients move.

const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

describe('the demo page in Chromium', () => {
  let browser: Browser;
  let fleet: LocalFleet;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    const [started, stopFleet] = await startLocalFleet({
      replicas: 2,
      env: {
        ADMIN_TOKEN,
        FLEET_STATS_INTERVAL_MS: '500',
        // Slow enough to watch: the pod stays "draining" for a few seconds before it is empty.
        DRAIN_NOTICE_DELAY_MS: '1500',
        DRAIN_WINDOW_MS: '4000',
        DRAIN_JITTER_MS: '4000',
      },
    });
    fleet = started;
    cleanups.push(stopFleet);
    browser = await launchChromium();
    cleanups.push(() => browser.close());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  async function openTab(): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
    await page.goto(fleet.url);
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => page.locator('#counter-value').textContent()).toMatch(/^\d+$/);
    return page;
  }

  const counter = async (page: Page): Promise<number> => Number(await page.locator('#counter-value').textContent());

  /** The fleet view, from the fleet's internal port (HAProxy's internal frontend, like the Service's `internal` port). */
  async function openFleetView(): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error(`fleet view error: ${err.message}`));
    await page.goto(`${fleet.internalUrl}/`);
    await page.locator('#status[data-ok="true"]').waitFor({ timeout: 15_000 });
    return page;
  }

  it('two tabs of the counter update together', async () => {
    const [a, b] = [await openTab(), await openTab()];
    const start = await counter(a);
    expect(await counter(b)).toBe(start);
    await a.click('#increment');
    await a.click('#increment');
    await b.click('#increment');
    for (const page of [a, b]) await expect.poll(() => counter(page), { timeout: 5_000 }).toBe(start + 3);
    // Each tab names the pod it is on, and the fleet view lists both pods with their sockets.
    for (const page of [a, b]) await expect.poll(() => page.locator('#pod').textContent()).toMatch(/^gw-\d+$/);
    const view = await openFleetView();
    await expect.poll(() => view.locator('#fleet .pod').count(), { timeout: 5_000 }).toBe(2);
    // The public entry serves no fleet stats: the page cannot read them, and neither can anyone else.
    expect((await fetch(`${fleet.url}/fleet`)).status).toBe(404);
    expect((await fetch(`${fleet.url}/metrics`)).status).toBe(404);
    await Promise.all([a.context().close(), b.context().close(), view.context().close()]);
  });

  it('the fleet view shows a pod draining while its tab moves to another pod, and the counter keeps working', async () => {
    const watcher = await openFleetView();
    const mover = await openTab();
    const victim = (await mover.locator('#pod').textContent())!;
    const start = await counter(mover);

    const res = await fetch(`${fleet.podInternalUrl(victim)}/admin/drain`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(202);

    // The fleet view turns the victim's card to draining.
    await watcher.locator(`#fleet .pod[data-pod="${victim}"][data-draining="true"]`).waitFor({ timeout: 5_000 });
    expect(await watcher.locator(`#fleet .pod[data-pod="${victim}"] .state`).textContent()).toBe('draining');
    await watcher.screenshot({ path: process.env.E2E_SCREENSHOT ?? '/tmp/rt-e2e-draining.png' });
    // The tab on the victim is told, moves to the other pod and resumes; the fleet view sees the victim empty.
    await expect.poll(() => mover.locator('#pod').textContent(), { timeout: 15_000 }).not.toBe(victim);
    await mover.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => watcher.locator(`#fleet .pod[data-pod="${victim}"] .sockets`).textContent(), { timeout: 10_000 }).toBe('0');

    await mover.click('#increment');
    await expect.poll(() => counter(mover), { timeout: 5_000 }).toBe(start + 1);
  });
});
