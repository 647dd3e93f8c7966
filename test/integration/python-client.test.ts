import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backplane } from '../../app/gateway/backplane/backplane.ts';
import { checkDeliveries } from '../../scripts/chaos/measure.ts';
import { type LocalFleet, startLocalFleet } from '../../scripts/fleet/fleet.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startPublisher } from '../helpers/publisher.ts';

// A non-JavaScript stock client (examples/python/stock_client.py: Debian's python3-socketio, default
// options) through HAProxy while its pod drains: the library reconnects by itself, the example joins
// again with its last seq, and it sees every message once and in order.
const PYTHON = '/usr/bin/python3';

interface Line {
  event: string;
  pod?: string;
  room?: string;
  seq?: number;
}

describe('python-socketio stock client (examples/python)', () => {
  let fleet: LocalFleet;
  let stopFleet: () => Promise<void>;
  let publisher: Backplane;
  let stopPublisher: () => Promise<void>;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run scripts/system-deps.sh (python3-socketio and friends)`);
    [fleet, stopFleet] = await startLocalFleet({
      replicas: 2,
      graceMs: 10_000,
      env: { DRAIN_NOTICE_DELAY_MS: '1200', DRAIN_WINDOW_MS: '2000', DRAIN_JITTER_MS: '2000', SHUTDOWN_DEADLINE_MS: '8000' },
    });
    [publisher, stopPublisher] = await startPublisher(fleet.redisUrl);
  }, 60_000);
  afterAll(async () => {
    child?.stdin?.end();
    child?.kill();
    await stopPublisher?.();
    await stopFleet?.();
  });

  it('connects, is drained, comes back on the other pod and misses nothing', async () => {
    const room = 'chat:python-example';
    const lines: Line[] = [];
    let stderr = '';
    child = spawn(PYTHON, ['examples/python/stock_client.py', fleet.url, room], { env: { PATH: '/usr/bin:/bin', USER_ID: 'py-1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line) as Line));
    const joined = await waitFor(`the python client joined (stderr: ${stderr})`, () => lines.find((l) => l.event === 'joined'), 20_000);
    const pod = lines.find((l) => l.event === 'connected')!.pod!;

    let stop = false;
    let last = 0;
    const stream = (async () => {
      for (let i = 0; !stop && i < 1_000; i += 1) {
        last = (await publisher.publish({ room, type: 'chat:message', payload: { from: 'stream', text: `m${i}` }, from: 'stream' })).seq;
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    expect(await fleet.terminate(pod)).toMatchObject({ code: 0, killedAfterGrace: false });
    await waitFor('the python client on the other pod', () => lines.some((l) => l.event === 'connected' && l.pod !== pod), 20_000);
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await stream;
    await waitFor('the python client has the last message', () => lines.some((l) => l.event === 'message' && l.seq === last), 15_000);

    const delivered = lines.filter((l) => l.event === 'message').map((l) => l.seq!);
    expect(lines.some((l) => l.event === 'disconnected')).toBe(true);
    // The first join (no lastSeq yet) starts from a reset snapshot; the rejoin after the drain must replay.
    expect(lines.filter((l) => l.event === 'reset')).toHaveLength(1);
    expect(lines.filter((l) => l.event === 'joined').map((l) => (l as { resume?: string }).resume)).toEqual(['fresh', 'replay']);
    expect(checkDeliveries({ joinedAt: joined.seq!, delivered }, last)).toEqual({ lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0 });
  });
});
