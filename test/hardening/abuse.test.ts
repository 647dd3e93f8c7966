import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusalOfTransportError } from '../../app/client/index.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { metricValue, processMemory } from '../helpers/process-memory.ts';
import { connectRaw, type RawSocketIo } from '../helpers/raw-socketio.ts';
import { hs256Token, TEST_SECRET } from '../helpers/tokens.ts';

// Resource abuse against one real gateway process with JWT auth, on the memory and on the Redis
// backplane: each attack runs while a legitimate client keeps publishing, and must leave the
// gateway's memory under the ceiling, the legitimate client's ack latency within the factor, new
// legitimate clients connecting, and the abusive connection with the documented code
// (docs/security.md, "Resource bounds").

const MiB = 1024 * 1024;
/** The gateway's RSS (VmRSS, and the peak VmHWM) may grow at most this much over the warmed-up baseline, across every attack. */
const RSS_CEILING_OVER_BASELINE = 160 * MiB;
/** During an attack, the legitimate client's median ack latency stays under FACTOR × baseline + FLOOR (two shared cores). */
const LATENCY_FACTOR = 5;
const LATENCY_FLOOR_MS = 50;

const LIMITS = {
  MAX_CONNECTIONS: '250',
  MAX_CONNECTIONS_PER_SECOND: '1000',
  MAX_CONNECTIONS_PER_USER: '20',
  CONNECT_TIMEOUT_MS: '4000',
  SLOW_CONSUMER_STALL_MS: '3000',
  LOG_LEVEL: 'warn',
};

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.each(['memory', 'redis'] as const)('resource abuse on the %s backplane', (backplane) => {
  const cleanups: (() => unknown)[] = [];
  let gateway: GatewayProcess;
  let probe: TestClient;
  let baselineRss = 0;
  let baselineLatencyMs = 0;
  const report: string[] = [];
  let users = 0;
  const tokenFor = (sub = `user-${(users += 1)}`): Promise<string> => hs256Token({ sub, expiresIn: 3_600 });

  /** One increment's ack round trip, as the legitimate client sees it. */
  async function ackLatency(): Promise<number> {
    const started = performance.now();
    const ack = await probe.request('counter:increment', { room: 'counter:probe' });
    expect(ack, 'the legitimate client was refused').toMatchObject({ ok: true });
    return performance.now() - started;
  }

  /**
   * Runs `attack` while the legitimate client measures its ack latency every 50 ms and, every
   * second, a new legitimate client connects; then checks memory and latency and logs the numbers.
   */
  async function duringAttack(name: string, attack: () => Promise<void>, opts: { newClients?: boolean } = {}): Promise<void> {
    const latencies: number[] = [];
    let connected = 0;
    let running = true;
    const probing = (async () => {
      while (running) {
        latencies.push(await ackLatency());
        await sleep(50);
      }
    })();
    const connecting = (async () => {
      while (running && (opts.newClients ?? true)) {
        const [, close] = await connectClient(gateway.url, { token: await tokenFor() });
        close();
        connected += 1;
        await sleep(1_000);
      }
    })();
    try {
      await attack();
      // A short attack still gets a median of at least 10 probes (one stall of a shared machine is not a median).
      while (latencies.length < 10) await sleep(20);
    } finally {
      running = false;
      await Promise.all([probing, connecting]);
    }
    const { rss, peakRss } = processMemory(gateway.child.pid!);
    const p50 = median(latencies);
    const line =
      `[${backplane}] ${name}: RSS ${(rss / MiB).toFixed(0)} MiB (peak ${(peakRss / MiB).toFixed(0)} MiB, baseline ${(baselineRss / MiB).toFixed(0)} MiB, ceiling +${RSS_CEILING_OVER_BASELINE / MiB} MiB); ` +
      `legit ack p50 ${p50.toFixed(1)} ms over ${latencies.length} (baseline ${baselineLatencyMs.toFixed(1)} ms, allowed ${(LATENCY_FACTOR * baselineLatencyMs + LATENCY_FLOOR_MS).toFixed(1)} ms); new legit clients ${connected}`;
    report.push(line);
    console.log(line);
    expect(peakRss - baselineRss, line).toBeLessThan(RSS_CEILING_OVER_BASELINE);
    expect(p50, line).toBeLessThan(LATENCY_FACTOR * baselineLatencyMs + LATENCY_FLOOR_MS);
    if (opts.newClients ?? true) expect(connected, line).toBeGreaterThanOrEqual(1);
    expect(gateway.child.exitCode, gateway.output()).toBeNull();
  }

  /** An authenticated raw WebSocket (for what the stock client will not do). */
  async function rawAuthenticated(): Promise<RawSocketIo> {
    const raw = await connectRaw(gateway.url, { auth: { token: await tokenFor() } });
    cleanups.push(raw.close);
    return raw;
  }

  /** Slowloris sockets opened first, checked last: the server must have cut every one of them. */
  const slowloris: { socket: TcpSocket; closedAt: number | null }[] = [];

  beforeAll(async () => {
    const env: Record<string, string> = { ...LIMITS, ADAPTER: backplane, AUTH_MODE: 'jwt', JWT_SECRET: TEST_SECRET };
    if (backplane === 'redis') {
      const [redis, stopRedis] = await startRedis();
      cleanups.push(stopRedis);
      env.REDIS_URL = redis.url;
    }
    const [gw, stop] = await startGateway({ env });
    gateway = gw;
    cleanups.push(stop);
    const [client, close] = await connectClient(gateway.url, { token: await tokenFor('legit-probe') });
    probe = client;
    cleanups.push(close);

    // History to hoard: 1000 chat messages of 2000 characters in one room, sent by 25 users within their bursts.
    const seeders = await Promise.all(Array.from({ length: 25 }, async () => (await connectClient(gateway.url, { token: await tokenFor() }))));
    await Promise.all(
      seeders.map(async ([seeder], i) => {
        for (let n = 0; n < 40; n += 1) expect(await seeder.request('chat:send', { room: 'chat:hoard', text: `${i}-${n}-`.padEnd(2_000, 'h') })).toMatchObject({ ok: true });
      }),
    );
    for (const [, close] of seeders) close();

    // Warm up (JIT, buffers), then the baselines.
    // Paced as during the attacks (every 50 ms), within the probe's own event rate.
    const warm: number[] = [];
    for (let i = 0; i < 60; i += 1) {
      const latency = await ackLatency();
      if (i >= 30) warm.push(latency);
      await sleep(50);
    }
    baselineLatencyMs = median(warm);
    baselineRss = processMemory(gateway.child.pid!).rss;
    console.log(`[${backplane}] baseline: RSS ${(baselineRss / MiB).toFixed(0)} MiB, legit ack p50 ${baselineLatencyMs.toFixed(1)} ms`);

    // Slowloris: 100 connections that send a request head one header at a time and never finish it.
    for (let i = 0; i < 100; i += 1) {
      const entry = { socket: tcpConnect(gw.port, '127.0.0.1'), closedAt: null as number | null };
      entry.socket.on('error', () => {});
      entry.socket.on('close', () => (entry.closedAt = Date.now()));
      entry.socket.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => entry.socket.writable && entry.socket.write(`X-Slow-${Date.now()}: 1\r\n`), 1_000);
      entry.socket.on('close', () => clearInterval(drip));
      cleanups.push(() => clearInterval(drip), () => entry.socket.destroy());
      slowloris.push(entry);
    }
  });
  afterAll(async () => {
    console.log(report.join('\n'));
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('a reader that stops reading and keeps asking for history and replays is refused with send_backlog, then cut as slow_consumer', async () => {
    const hoarder = await rawAuthenticated();
    const [join] = (await hoarder.request('room:join', { room: 'chat:hoard' })) as [{ ok: boolean; seq: number }];
    expect(join.ok).toBe(true);
    const cutsBefore = await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total');
    await duringAttack('history hoarder', async () => {
      hoarder.pause();
      let id = 1_000;
      const started = Date.now();
      // Within its event rate (20/s): a page of history, a leave and a re-join with an old lastSeq; pongs nobody asked for.
      while (Date.now() - started < 6_000 && hoarder.ws.readyState === hoarder.ws.OPEN) {
        hoarder.sendRaw(`42${(id += 1)}${JSON.stringify(['history:fetch', { room: 'chat:hoard', afterSeq: join.seq - 1_000 }])}`);
        hoarder.sendRaw(`42${(id += 1)}${JSON.stringify(['room:leave', { room: 'chat:hoard' }])}`);
        hoarder.sendRaw(`42${(id += 1)}${JSON.stringify(['room:join', { room: 'chat:hoard', lastSeq: join.seq - 999 }])}`);
        hoarder.sendRaw('3');
        await sleep(160);
      }
      await waitFor('the hoarder cut', async () => (await metricValue(gateway.internalUrl, 'rt_slow_consumer_disconnections_total')) > cutsBefore, 10_000);
    });
    expect(await metricValue(gateway.internalUrl, 'rt_send_backlog_refusals_total')).toBeGreaterThan(0);
    // A peer that reads nothing gets no notice it could read: the stall cut drops the transport and its
    // buffers at once. Reading again, it finds the connection gone (and would resume by seq).
    hoarder.resume();
    await Promise.race([hoarder.closed, sleep(10_000).then(() => expect.fail('the hoarder was never closed'))]);
  });

  it('binary attachments before CONNECT are refused at once: 200 transports cannot park 60 KB each', async () => {
    const before = await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'binary' });
    await duringAttack('binary attachments before CONNECT', async () => {
      // 200 transports, 20 at a time (the attacker shares the test's event loop with the probe).
      const attachment = Buffer.alloc(60_000, 7);
      for (let batch = 0; batch < 10; batch += 1) {
        const transports = await Promise.all(Array.from({ length: 20 }, () => connectRaw(gateway.url, { connect: false })));
        cleanups.push(...transports.map((t) => t.close));
        for (const t of transports) {
          t.sendRaw('451-["x",{"_placeholder":true,"num":0}]');
          t.sendRaw(attachment);
        }
        await Promise.all(transports.map((t) => t.closed));
        await sleep(250);
      }
    });
    expect(await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'binary' })).toBeGreaterThanOrEqual(before + 200);
  });

  it('raw transports that never CONNECT are admitted only up to MAX_CONNECTIONS (503 over_capacity past it) and closed after CONNECT_TIMEOUT_MS', async () => {
    await duringAttack(
      'idle transports at the connection limit',
      async () => {
        const held = await metricValue(gateway.internalUrl, 'rt_connections');
        const idle: RawSocketIo[] = [];
        // In batches of 25: all of them well within CONNECT_TIMEOUT_MS, even on a loaded machine.
        for (let i = held; i < Number(LIMITS.MAX_CONNECTIONS); i += 25) {
          const batch = Math.min(25, Number(LIMITS.MAX_CONNECTIONS) - i);
          idle.push(...(await Promise.all(Array.from({ length: batch }, () => connectRaw(gateway.url, { connect: false })))));
        }
        cleanups.push(...idle.map((t) => t.close));
        const refused = await new Promise<unknown>((resolve) => {
          const s = io(gateway.url, { transports: ['polling'], reconnection: false, forceNew: true });
          s.once('connect', () => resolve('connected'));
          s.once('connect_error', (err) => resolve(refusalOfTransportError(err)));
        });
        expect(refused).toMatchObject({ code: 'over_capacity' });
        const started = Date.now();
        await Promise.all(idle.map((t) => t.closed));
        expect(Date.now() - started).toBeLessThan(Number(LIMITS.CONNECT_TIMEOUT_MS) + 3_000);
      },
      { newClients: false },
    );
    const [after, close] = await connectClient(gateway.url, { token: await tokenFor() });
    expect(after.socket.connected).toBe(true);
    close();
  });

  it('a WebSocket repeating CONNECT is closed at its first refusal, and several CONNECTs on one transport make at most one socket', async () => {
    const refusalsBefore = await metricValue(gateway.internalUrl, 'rt_handshake_refusals_total');
    const acceptedBefore = await metricValue(gateway.internalUrl, 'rt_connections_total');
    const validToken = await tokenFor();
    await duringAttack('CONNECT loops', async () => {
      const looper = await connectRaw(gateway.url, { connect: false });
      cleanups.push(looper.close);
      for (let i = 0; i < 2_000 && looper.ws.readyState === looper.ws.OPEN; i += 1) {
        looper.sendRaw('40{"token":"not-a-token"}');
        if (i % 20 === 0) await sleep(1); // the attacker shares the test's event loop with the probe
      }
      await looper.closed;
      const multi = await connectRaw(gateway.url, { connect: false });
      cleanups.push(multi.close);
      for (let i = 0; i < 40; i += 1) multi.sendRaw(`40${JSON.stringify({ token: validToken })}`);
      await multi.closed;
    });
    // 2000 CONNECTs spent a handful of refusals (each one closes its transport), not the instance's budget.
    expect((await metricValue(gateway.internalUrl, 'rt_handshake_refusals_total')) - refusalsBefore).toBeLessThan(50);
    // The new legitimate clients of the attack window, plus at most one socket for the 40 CONNECTs.
    const accepted = (await metricValue(gateway.internalUrl, 'rt_connections_total')) - acceptedBefore;
    expect(accepted).toBeLessThanOrEqual(1 + 12);
  });

  it('a huge auth payload is refused before it is parsed, and frames of 60 KB within the event rate are cut by the byte rate (rate_limited)', async () => {
    const sizeBefore = await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'pre_auth_size' });
    const rateBefore = await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'byte_rate' });
    let bigSender!: RawSocketIo;
    await duringAttack('huge auth and 60 KB frames', async () => {
      const hugeAuth = await connectRaw(gateway.url, { connect: false });
      cleanups.push(hugeAuth.close);
      hugeAuth.sendRaw(`40${JSON.stringify({ token: 'e'.repeat(60_000) })}`);
      await hugeAuth.closed;
      bigSender = await rawAuthenticated();
      const text = 'b'.repeat(60_000);
      for (let i = 0; i < 60 && bigSender.ws.readyState === bigSender.ws.OPEN; i += 1) {
        bigSender.sendRaw(`42${i + 1}${JSON.stringify(['chat:send', { room: 'chat:big', text }])}`);
        await sleep(50);
      }
      await bigSender.closed;
    });
    expect(await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'pre_auth_size' })).toBe(sizeBefore + 1);
    expect(await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'byte_rate' })).toBe(rateBefore + 1);
    const closing = bigSender.events.find((e) => e[0] === 'connection:closing')?.[1] as { payload: { reason: string } } | undefined;
    expect(closing?.payload.reason).toBe('rate_limited');
  });

  it('floods of pongs nobody asked for, and of tiny frames, are cut (packet_rate, byte_rate: each frame costs at least 256 bytes)', async () => {
    const packetBefore = await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'packet_rate' });
    const byteBefore = await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'byte_rate' });
    await duringAttack('pong and tiny-frame floods', async () => {
      const ponger = await rawAuthenticated();
      for (let i = 0; i < 2_000 && ponger.ws.readyState === ponger.ws.OPEN; i += 1) {
        ponger.sendRaw('3');
        if (i % 20 === 0) await sleep(1);
      }
      await ponger.closed;
      const tiny = await rawAuthenticated();
      for (let i = 0; i < 5_000 && tiny.ws.readyState === tiny.ws.OPEN; i += 1) {
        tiny.sendRaw('42["x"]');
        if (i % 50 === 0) await sleep(1);
      }
      await tiny.closed;
    });
    expect(await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'packet_rate' })).toBe(packetBefore + 1);
    expect(await metricValue(gateway.internalUrl, 'rt_inbound_refusals_total', { why: 'byte_rate' })).toBe(byteBefore + 1);
  });

  it('SSE streams count against the same limits: one user gets too_many_connections (429) past MAX_CONNECTIONS_PER_USER, and /fleet counts them', async () => {
    const token = await tokenFor();
    const aborts: AbortController[] = [];
    // Held until the end: fetch closes the connection of a response that is garbage-collected unread,
    // which would free a slot mid-attack.
    const streams: Response[] = [];
    cleanups.push(() => aborts.forEach((a) => a.abort()));
    const statuses: number[] = [];
    let refusal: unknown;
    await duringAttack('SSE streams on one token', async () => {
      for (let i = 0; i < 40; i += 1) {
        const abort = new AbortController();
        aborts.push(abort);
        const res = await fetch(`${gateway.url}/sse?room=chat:sse-${i % 5}`, { headers: { authorization: `bearer ${token}` }, signal: abort.signal });
        streams.push(res);
        statuses.push(res.status);
        if (res.status !== 200) refusal = await res.json();
      }
      expect(statuses.filter((s) => s === 200), `statuses ${statuses.join(',')}; refusal ${JSON.stringify(refusal)}`).toHaveLength(Number(LIMITS.MAX_CONNECTIONS_PER_USER));
      await waitFor('the streams in the connection count', async () => (await metricValue(gateway.internalUrl, 'rt_sse_streams')) === Number(LIMITS.MAX_CONNECTIONS_PER_USER));
      await waitFor('the streams in /fleet', async () => {
        const fleet = (await (await fetch(`${gateway.internalUrl}/fleet`)).json()) as { pods: { sseStreams?: number }[] };
        return fleet.pods[0]?.sseStreams === Number(LIMITS.MAX_CONNECTIONS_PER_USER);
      });
    });
    expect(statuses.filter((s) => s === 200)).toHaveLength(Number(LIMITS.MAX_CONNECTIONS_PER_USER));
    expect(statuses.filter((s) => s === 429)).toHaveLength(40 - Number(LIMITS.MAX_CONNECTIONS_PER_USER));
    expect(refusal).toMatchObject({ ok: false, error: { code: 'too_many_connections' } });
    aborts.forEach((a) => a.abort());
    streams.length = 0;
    await waitFor('the streams gone', async () => (await metricValue(gateway.internalUrl, 'rt_sse_streams')) === 0);
  });

  it('one socket cannot follow more than MAX_ROOMS_PER_CONNECTION rooms, and one user on many sockets shares one event budget', async () => {
    const token = await tokenFor();
    const sockets: TestClient[] = [];
    const acks: { ok: boolean; error?: { code: string } }[] = [];
    await duringAttack('many rooms, many sockets of one user', async () => {
      const [roomy, closeRoomy] = await connectClient(gateway.url, { token: await tokenFor() });
      cleanups.push(closeRoomy);
      const joins = [];
      for (let i = 0; i < 105; i += 1) {
        joins.push(await roomy.request('room:join', { room: `chat:many-${i}` }));
        if (i % 20 === 19) await sleep(1_000); // stay within the socket's event rate (20/s)
      }
      expect(joins.slice(0, 100).every((a) => a.ok)).toBe(true);
      for (const ack of joins.slice(100)) expect(ack).toMatchObject({ ok: false, error: { code: 'room_limit' } });
      for (let i = 0; i < 10; i += 1) {
        const [s, close] = await connectClient(gateway.url, { token });
        cleanups.push(close);
        sockets.push(s);
      }
      acks.push(...(await Promise.all(sockets.flatMap((s) => Array.from({ length: 30 }, () => s.request('counter:read', {})))) as typeof acks));
    });
    // 300 requests, 30 per socket (within each socket's burst of 40): the user's bucket (120) decides.
    const ok = acks.filter((a) => a.ok).length;
    expect(ok).toBeGreaterThanOrEqual(120);
    expect(ok).toBeLessThan(200);
    for (const ack of acks.filter((a) => !a.ok)) expect(ack.error?.code).toBe('rate_limited');
  });

  it('a polling request with a huge body is refused without holding it; before CONNECT, anything over 16 KiB is', async () => {
    await duringAttack('huge polling bodies', async () => {
      const open = await (await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`)).text();
      const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
      const preAuth = await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: `40${JSON.stringify({ token: 'p'.repeat(20_000) })}` });
      expect(preAuth.status).toBe(413);
      const body = 'x'.repeat(2 * MiB);
      for (let i = 0; i < 5; i += 1) {
        const open = await (await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`)).text();
        const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
        const res = await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body }).catch((err: Error) => err);
        expect(res instanceof Error || res.status !== 200, 'a 2 MiB polling body was accepted').toBe(true);
        await sleep(200);
      }
    });
  });

  it('slowloris connections are cut by the header timeout', async () => {
    await waitFor('every slowloris connection closed by the server', () => slowloris.every((s) => s.closedAt !== null), 20_000, 200);
  });
});
