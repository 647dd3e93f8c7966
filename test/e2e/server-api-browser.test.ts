import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalFleet, startLocalFleet } from '../../scripts/fleet/fleet.ts';
import { launchChromium } from '../helpers/browser.ts';

// A backend in another language publishes through the server API — `curl` to one pod's internal port,
// then the standard-library Python script (scripts/server-api/publish.py) through the fleet's internal
// entry — and the demo page in real Chromium, on whichever pod HAProxy picked, shows every message in order.

const run = promisify(execFile);
const API_KEY = 'e2e-api-key-0123456789abcdef0123456789';
const PUBLISH_PY = fileURLToPath(new URL('../../scripts/server-api/publish.py', import.meta.url));

describe('a backend publishing with curl and Python, a browser receiving', () => {
  let browser: Browser;
  let fleet: LocalFleet;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    const keys = join(mkdtempSync(join(tmpdir(), 'rt-api-')), 'keys');
    writeFileSync(keys, `${API_KEY}\n`);
    const [started, stopFleet] = await startLocalFleet({ replicas: 2, env: { API_KEYS_FILE: keys, FLEET_STATS_INTERVAL_MS: '500' } });
    fleet = started;
    cleanups.push(stopFleet);
    browser = await launchChromium();
    cleanups.push(() => browser.close());
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('shows messages published by curl and by a Python script, in order, on the demo page', async () => {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
    await page.goto(fleet.url);
    await page.locator('#state[data-state="connected"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => page.locator('#counter-value').textContent()).toMatch(/^\d+$/);
    const pagePod = (await page.locator('#pod').textContent())!;
    const otherPod = (await fleet.pods()).map((pod) => pod.name).find((pod) => pod !== pagePod) ?? pagePod;

    const seqs: number[] = [];
    for (let i = 1; i <= 5; i += 1) {
      const body = JSON.stringify({ room: 'chat:lobby', type: 'chat:message', payload: { from: 'curl', text: `curl #${i}` } });
      const { stdout } = await run('curl', ['-sS', '--fail-with-body', '-X', 'POST', '-H', `Authorization: Bearer ${API_KEY}`, '-H', 'Content-Type: application/json', '-d', body, `${fleet.podInternalUrl(otherPod)}/api/publish`]);
      seqs.push((JSON.parse(stdout) as { seq: number }).seq);
    }
    for (let i = 1; i <= 5; i += 1) {
      const { stdout } = await run('python3', [PUBLISH_PY, fleet.internalUrl, 'chat:lobby', 'chat:message', JSON.stringify({ from: 'python', text: `python #${i}` }), `py-${i}`], {
        env: { ...process.env, RT_API_KEY: API_KEY },
      });
      seqs.push((JSON.parse(stdout) as { seq: number }).seq);
    }
    // The Python script's retry of its last message, same idempotency key: the same seq, nothing new shown.
    const { stdout: retried } = await run('python3', [PUBLISH_PY, fleet.internalUrl, 'chat:lobby', 'chat:message', JSON.stringify({ from: 'python', text: 'python #5' }), 'py-5'], {
      env: { ...process.env, RT_API_KEY: API_KEY },
    });
    expect(JSON.parse(retried)).toMatchObject({ ok: true, duplicate: true, seq: seqs.at(-1) });
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));

    const expected = [...[1, 2, 3, 4, 5].map((i) => `curl: curl #${i}`), ...[1, 2, 3, 4, 5].map((i) => `python: python #${i}`)];
    const lines = async (): Promise<string[]> => (await page.locator('#chat-log > div').allTextContents()).filter((line) => /^(curl|python): /.test(line));
    await expect.poll(lines, { timeout: 10_000 }).toEqual(expected);

    // A wrong key: curl sees the protocol's error shape and the page shows nothing new.
    const refused = await run('curl', ['-sS', '-X', 'POST', '-H', 'Authorization: Bearer wrong-key-wrong-key-wrong-key-wrong', '-d', '{"room":"chat:lobby","type":"chat:message","payload":{"from":"curl","text":"nope"}}', `${fleet.podInternalUrl(otherPod)}/api/publish`]);
    expect(JSON.parse(refused.stdout)).toMatchObject({ ok: false, error: { code: 'api_key_invalid' } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await lines()).toEqual(expected);
  });
});
