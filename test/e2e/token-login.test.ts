import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { launchChromium } from '../helpers/browser.ts';
import { hs256Token, TEST_SECRET } from '../helpers/tokens.ts';

// On Kubernetes the gateway runs AUTH_MODE=jwt and `make up` prints the page URL with `#token=<jwt>`:
// the page must log in with that token and be refused without one.

describe('the demo page on a JWT-protected gateway', () => {
  let browser: Browser;
  let gateway: GatewayProcess;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    const [started, stop] = await startGateway({ env: { AUTH_MODE: 'jwt', JWT_SECRET: TEST_SECRET } });
    gateway = started;
    cleanups.push(stop);
    browser = await launchChromium();
    cleanups.push(() => browser.close());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('logs in with the token from the URL fragment and shows its subject', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${gateway.url}/#token=${await hs256Token({ sub: 'alice', expiresIn: 600 })}`);
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    // Polls wait up to 10 s, not vitest's 1 s default: the suite shares two cores with other suites.
    await expect.poll(() => page.locator('#user').textContent(), { timeout: 10_000 }).toBe('alice');
    await expect.poll(() => page.locator('#counter-value').textContent(), { timeout: 10_000 }).toMatch(/^\d+$/);
    const before = Number(await page.locator('#counter-value').textContent());
    await page.click('#increment');
    await expect.poll(() => page.locator('#counter-value').textContent(), { timeout: 10_000 }).toBe(String(before + 1));
    await page.context().close();
  });

  it('is refused without a token and says why', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(gateway.url);
    await expect.poll(() => page.locator('#notice').textContent(), { timeout: 10_000 }).toContain('JWT is required');
    expect(await page.locator('#state').getAttribute('data-state')).not.toBe('connected');
    await page.context().close();
  });
});
