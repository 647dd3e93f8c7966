// A /readyz slowed by event-loop lag must not mark a gateway DOWN: the local fleet's HAProxy checks every
// 500 ms, and without `timeout check` a check times out at that interval. A real HAProxy in front of a server
// whose /readyz answers after 900 ms (slower than the interval, well inside the 2 s check timeout).
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHaproxy, type Haproxy } from '../../scripts/fleet/haproxy.ts';
import { freePort } from '../../scripts/fleet/ports.ts';

const SLOW_READYZ_MS = 900;

describe('the local fleet HAProxy with a slow /readyz', () => {
  let server: Server;
  let haproxy: Haproxy;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    const port = await freePort();
    server = createServer((req, res) => {
      if (req.url === '/readyz') setTimeout(() => res.writeHead(200).end('{"ready":true}'), SLOW_READYZ_MS);
      else res.writeHead(200).end('ok');
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    [haproxy, stop] = await startHaproxy({ slots: [{ name: 'gw1', port }], checkIntervalMs: 500 });
  });

  afterAll(async () => {
    await stop?.();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('keeps the server UP through 8 slow checks (fall 2 would need only two timed-out ones)', async () => {
    expect(haproxy.config).toMatch(/^\s*timeout check 2s$/m);
    const states: string[] = [];
    const until = Date.now() + 4_000 + 8 * SLOW_READYZ_MS;
    // First check result: UP once a slow check has passed.
    while (Date.now() < until) {
      states.push((await haproxy.servers()).find((s) => s.name === 'gw1')!.state);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(states.length).toBeGreaterThan(20);
    expect(states.filter((s) => s === 'DOWN'), haproxy.output()).toEqual([]);
  });
});
