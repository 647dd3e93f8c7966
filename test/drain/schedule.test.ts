import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Server } from 'socket.io';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { closeReserveMs, type DrainController, installDrain, scheduleDrain } from '../../app/gateway/drain.ts';
import { type DrainPlan, drainPlanKey, parseDrainPlan } from '../../app/protocol/drain-plan.ts';
import type { Gateway } from '../../app/gateway/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';

const settings = { ratePerSecond: 0, windowMs: 20_000, jitterMs: 20_000 };

describe('scheduleDrain (the paced phase, planned without a clock)', () => {
  it('spreads closes evenly over the window and hints over [0, jitter)', () => {
    const s = scheduleDrain(4, settings, null);
    expect(s).toMatchObject({ sockets: 4, windowMs: 20_000, jitterMs: 20_000, ratePerSecond: 0.2, source: 'config' });
    expect(s.slots).toEqual([
      { hintMs: 0, closeAtMs: 5_000 },
      { hintMs: 5_000, closeAtMs: 10_000 },
      { hintMs: 10_000, closeAtMs: 15_000 },
      { hintMs: 15_000, closeAtMs: 20_000 },
    ]);
  });

  it('takes the window from a rate when one is configured', () => {
    const s = scheduleDrain(50, { ...settings, ratePerSecond: 25 }, null);
    expect(s.windowMs).toBe(2_000);
    expect(s.jitterMs).toBe(2_000); // never longer than the window
    expect(s.ratePerSecond).toBe(25);
  });

  it("lets the controller's plan override rate, window and jitter", () => {
    expect(scheduleDrain(10, { ...settings, ratePerSecond: 25 }, { v: 1, windowMs: 4_000 })).toMatchObject({ windowMs: 4_000, source: 'plan' });
    expect(scheduleDrain(10, settings, { v: 1, ratePerSecond: 5 })).toMatchObject({ windowMs: 2_000, ratePerSecond: 5 });
    expect(scheduleDrain(10, settings, { v: 1, ratePerSecond: 5, windowMs: 60_000 }).windowMs).toBe(2_000);
    expect(scheduleDrain(10, settings, { v: 1, jitterMs: 0 }).slots.every((slot) => slot.hintMs === 0)).toBe(true);
  });

  it('re-planned mid-drain: a window counts from the start of the closing phase, a rate from now', () => {
    // 4 s into the drain, a 10 s window leaves 6 s; re-reading the same plan never stretches the drain.
    expect(scheduleDrain(10, settings, { v: 1, windowMs: 10_000 }, Infinity, 4_000).windowMs).toBe(6_000);
    expect(scheduleDrain(10, settings, null, Infinity, 5_000).windowMs).toBe(15_000);
    expect(scheduleDrain(10, settings, { v: 1, windowMs: 3_000 }, Infinity, 4_000).windowMs).toBe(0);
    // A rate applies to the sockets left, whatever has elapsed.
    expect(scheduleDrain(10, settings, { v: 1, ratePerSecond: 5 }, Infinity, 4_000)).toMatchObject({ windowMs: 2_000, ratePerSecond: 5 });
    expect(scheduleDrain(10, { ...settings, ratePerSecond: 10 }, null, Infinity, 4_000).windowMs).toBe(1_000);
  });

  it('shortens the window to the time left before the shutdown deadline, down to closing at once', () => {
    expect(scheduleDrain(10, settings, null, 3_000).windowMs).toBe(3_000);
    const atOnce = scheduleDrain(10, settings, null, -50);
    expect(atOnce.windowMs).toBe(0);
    expect(atOnce.slots.every((slot) => slot.closeAtMs === 0 && slot.hintMs === 0)).toBe(true);
  });

  it('never closes a socket before its own hint, never past the window, and keeps close order = hint order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2_000 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 0, max: 60_000 }),
        fc.option(fc.integer({ min: 0, max: 60_000 }), { nil: undefined }),
        (sockets, rate, windowMs, jitterMs, budget) => {
          const s = scheduleDrain(sockets, { ratePerSecond: rate, windowMs, jitterMs }, null, budget);
          expect(s.slots).toHaveLength(sockets);
          expect(s.jitterMs).toBeLessThanOrEqual(s.windowMs);
          if (budget !== undefined) expect(s.windowMs).toBeLessThanOrEqual(budget);
          s.slots.forEach((slot, i) => {
            expect(slot.hintMs).toBeGreaterThanOrEqual(0);
            expect(slot.hintMs).toBeLessThanOrEqual(slot.closeAtMs);
            expect(slot.closeAtMs).toBeLessThanOrEqual(s.windowMs);
            if (i > 0) expect(slot.closeAtMs).toBeGreaterThanOrEqual(s.slots[i - 1]!.closeAtMs);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('puts at most ceil(rate) closes and hints in any one second', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: 200 }), (sockets, rate) => {
        const s = scheduleDrain(sockets, { ratePerSecond: rate, windowMs: 1, jitterMs: 1_000_000 }, null);
        for (const times of [s.slots.map((x) => x.closeAtMs), s.slots.map((x) => x.hintMs)]) {
          for (let i = 0; i < times.length; i += 1) {
            const inSecond = times.filter((t) => t >= times[i]! && t < times[i]! + 1_000).length;
            expect(inSecond).toBeLessThanOrEqual(Math.ceil(rate));
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('keeps a reserve before the deadline for closing Redis and HTTP', () => {
    expect(closeReserveMs(28_000)).toBe(2_000);
    expect(closeReserveMs(5_000)).toBe(500);
    expect(closeReserveMs(1_000)).toBe(250);
  });
});

describe('the drain plan contract', () => {
  it('has one key per pod in the fleet hash slot', () => {
    expect(drainPlanKey('rt', 'gw-7')).toBe('rt:{fleet}:drain:gw-7');
  });

  it('accepts a valid plan and names what is wrong with a bad one', () => {
    expect(parseDrainPlan('{"v":1,"ratePerSecond":25,"issuedBy":"controller"}')).toEqual({ v: 1, ratePerSecond: 25, issuedBy: 'controller' });
    expect(() => parseDrainPlan('{"v":1,"ratePerSecond":-3}')).toThrow(/ratePerSecond/);
    expect(() => parseDrainPlan('{"v":2}')).toThrow(/v:/);
    expect(() => parseDrainPlan('{"v":1,"window":3}')).toThrow(/window/);
    expect(() => parseDrainPlan('not json')).toThrow(/not JSON/);
  });

  it('refuses a rate so low that its window would overflow the timers, and says what to use instead', () => {
    expect(() => parseDrainPlan('{"v":1,"ratePerSecond":1e-9}')).toThrow(/ratePerSecond: must be at least 0\.1 closes per second; .*windowMs/);
    expect(parseDrainPlan('{"v":1,"ratePerSecond":0.1}')).toEqual({ v: 1, ratePerSecond: 0.1 });
  });
});

/**
 * installDrain on a real Socket.IO server with the rest of the gateway stood in: the drain plan read
 * is a promise the test settles, so "the last socket leaves while Redis answers" happens on cue.
 */
describe('installDrain ends when no connection is left', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function drainWithOneClient(windowMs: number, readDrainPlan: () => Promise<DrainPlan | null>): Promise<{ drain: DrainController; client: ClientSocket }> {
    const http = createServer();
    const io = new Server(http);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const metric = { set() {}, inc() {} };
    const quiet = { info() {}, warn() {}, debug() {} };
    const gateway = {
      config: { POD_NAME: 'p1', DRAIN_NOTICE_DELAY_MS: 0, DRAIN_WINDOW_MS: windowMs, DRAIN_RATE_PER_SECOND: 0, DRAIN_JITTER_MS: windowMs, SHUTDOWN_DEADLINE_MS: 28_000 },
      io,
      log: quiet,
      metrics: { drainRemainingSockets: metric, drainPlannedRate: metric, drainCloses: metric, drainInProgress: metric, ready: metric },
      backplane: { readDrainPlan, writeFleetStat: async () => {} },
      state: { draining: false },
      handshakeGuards: [],
      admissionGuards: [],
      sseGuards: [],
      sseStreams: new Set(),
      internalRoutes: [],
    } as unknown as Gateway;
    const drain = installDrain(gateway);
    const client = connectClient(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
    cleanups.push(() => io.close(), () => void client.close(), () => drain.stop());
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    return { drain, client };
  }

  it('when the last socket leaves while the drain plan is being read', async () => {
    let planRequested = false;
    let answerPlan: (plan: DrainPlan | null) => void = () => {};
    const { drain, client } = await drainWithOneClient(1_000, () => {
      planRequested = true;
      return new Promise((resolve) => (answerPlan = resolve));
    });
    let resolved = false;
    void drain.start('admin').then(() => (resolved = true));
    await waitFor('the drain plan to be read', () => planRequested);
    client.disconnect();
    await waitFor('the server to see the socket go', () => drain.status().remaining === 0);
    answerPlan(null);
    await waitFor('start() to resolve', () => resolved);
    expect(drain.status()).toMatchObject({ phase: 'drained', remaining: 0 });
  });

  it('when every socket left on its hint, without waiting out the window', async () => {
    // A window far longer than waitFor's limit: start() resolves only if the drain stops waiting for closes it no longer needs.
    const { drain, client } = await drainWithOneClient(600_000, async () => ({ v: 1, jitterMs: 0 }));
    client.on('server:draining', () => client.disconnect());
    let resolved = false;
    void drain.start('admin').then(() => (resolved = true));
    await waitFor('start() to resolve', () => resolved);
    expect(drain.status()).toMatchObject({ phase: 'drained', remaining: 0, closed: 0 });
  });
});
