import fc from 'fast-check';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_EVENTS, clientEventSchemas, type ErrorCode, isClientEvent } from '../../app/protocol/index.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import type { GatewayProcess } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { metricValue } from '../helpers/process-memory.ts';
import { connectRaw, type RawSocketIo } from '../helpers/raw-socketio.ts';
import { startRedisGateways, UNLIMITED_RATES_ENV } from '../helpers/gateways.ts';
import { hs256Token, TEST_SECRET, unsignedToken } from '../helpers/tokens.ts';
import { writeNamespaces } from '../helpers/namespaces.ts';

const SEED = 20_261_123;
const MALFORMED_EVENTS = 10_000;
const RAW_FRAMES = 2_000;
/** Event names the stock client refuses to emit itself; raw frames cover them. */
const CLIENT_RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

interface Ack {
  ok: boolean;
  error?: { code: ErrorCode; message: string };
}

// --- generators -----------------------------------------------------------------------------------

const deepArray = (depth: number): unknown => {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i += 1) value = [value];
  return value;
};
const deepObject = (depth: number): unknown => {
  let value: unknown = { room: 'counter:x' };
  for (let i = 0; i < depth; i += 1) value = { room: value };
  return value;
};
const { json: jsonValue } = fc.letrec((tie) => ({
  json: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('json'), { maxKeys: 4 }),
  ),
}));
/**
 * Values a schema field should never accept, plus some that look plausible. No binary: the protocol
 * has none, and a binary attachment closes the connection (raw frames below, test/hardening/abuse.test.ts).
 */
const hostile = fc.oneof(
  { weight: 6, arbitrary: jsonValue },
  { weight: 1, arbitrary: fc.nat({ max: 20_000 }).map((n) => 'A'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 20, max: 400 }).map(deepArray) },
  { weight: 1, arbitrary: fc.integer({ min: 20, max: 400 }).map(deepObject) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'counter:', 'chat:', 'user:', 'chat:a/b', 'counter:../../x', 'user:*', 'chat:\u0000', '__proto__', 'constructor',
      'counter:' + 'n'.repeat(65), -1, 1.5, Number.MAX_SAFE_INTEGER + 2, 1_001, 0, '', ' ', 'eyJhbGciOiJub25lIn0.e30.',
    ),
  },
);
const payload = fc.oneof(
  hostile,
  fc.record(
    { room: hostile, lastSeq: hostile, afterSeq: hostile, by: hostile, text: hostile, to: hostile, token: hostile, extra: hostile },
    { requiredKeys: [] },
  ),
  fc.constantFrom({ __proto__: { room: 'chat:x' } }, { constructor: { prototype: { ok: 1 } } }),
);
const eventName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...CLIENT_EVENTS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 100 }) },
  { weight: 1, arbitrary: fc.constantFrom('toString', '__proto__', 'constructor', 'hasOwnProperty', 'room:join ', 'ROOM:JOIN', 'error', 'x'.repeat(5_000)) },
);
/** Kept under MAX_PAYLOAD_BYTES: a bigger frame closes the connection (tested in limits.test.ts), not an error ack. */
const fitsOneFrame = ({ event, args }: { event: string; args: unknown[] }): boolean => event.length + JSON.stringify(args).length < 48_000;
const malformedEvent = fc.record({ event: eventName.filter((e) => !CLIENT_RESERVED.has(e)), args: fc.array(payload, { maxLength: 3 }) }).filter(fitsOneFrame);

/** What the gateway receives for `value`: JSON semantics (no prototypes, non-finite numbers as null), binary kept. */
function onTheWire(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (Array.isArray(value)) return value.map(onTheWire);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, onTheWire(v)]));
  return value;
}

/** The ack each event must get, from the protocol's own schemas; null when any answer but `internal` is fine. */
function expectedCode(event: string, args: unknown[]): ErrorCode | null {
  if (!isClientEvent(event)) return 'unknown_event';
  if (args.length !== 1) return 'bad_request';
  return clientEventSchemas[event].safeParse(onTheWire(args[0])).success ? null : 'bad_request';
}

/** Raw Engine.IO / Socket.IO text frames: valid-looking prefixes with broken bodies, and plain garbage. */
const rawFrame = fc.oneof(
  fc.tuple(
    fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '7', 'x', ''),
    fc.constantFrom('', '0', '1', '2', '3', '4', '5', '6', '9'),
    fc.constantFrom('', '/', '/admin,', '/nope,', '1-', '99999999999999999999-', '-1-'),
    fc.option(fc.nat(), { nil: undefined }),
    fc.oneof(fc.json({ maxDepth: 4 }), fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 50 })),
  ).map(([eio, sio, ns, id, body]) => `${eio}${sio}${ns}${id ?? ''}${body}`),
  fc.constantFrom(
    '', '4', '42', '42[', '42{}', '42[]', '42[1]', '42[null]', '42[{}]', '42["connect"]', '42["disconnect"]', '42["newListener","x"]',
    '42999999999999999999999["room:join",{}]', '451-["x",{"_placeholder":true,"num":0}]', '4599999999-["x"]',
    '452-["room:join",{"_placeholder":true,"num":7}]', '42/nope,["x"]', '40/nope,', '43[]', '431["x"]', '49', '6', '5', '3', '1', 'x',
    `42["room:join",${'['.repeat(20_000)}${']'.repeat(20_000)}]`, `42["room:join",${'{"a":'.repeat(8_000)}1${'}'.repeat(8_000)}]`,
  ),
);

// --- the suite --------------------------------------------------------------------------------------

describe('malformed input at a live gateway', () => {
  const cleanups: (() => unknown)[] = [];
  let gateway: GatewayProcess;
  let token: string;

  beforeAll(async () => {
    // The fuzzers are supposed to reach the schemas, not the rate limits (tested on their own).
    const [fleet, stop] = await startRedisGateways(['fuzz'], { AUTH_MODE: 'jwt', JWT_SECRET: TEST_SECRET, ...UNLIMITED_RATES_ENV, MAX_CONNECTIONS_PER_SECOND: '100000' });
    [gateway] = fleet.gateways;
    cleanups.push(stop);
    token = await hs256Token({ sub: 'fuzzer', expiresIn: 3_600 });
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** A good client keeps publishing, another keeps receiving, while `during` runs. */
  async function whileServingGoodClients(during: () => Promise<void>): Promise<void> {
    const goodToken = await hs256Token({ sub: 'good', expiresIn: 3_600 });
    const room = `counter:good-${Math.random().toString(36).slice(2, 8)}`;
    const [publisher, closePublisher] = await connectClient(gateway.url, { token: goodToken });
    const [watcher, closeWatcher] = await connectClient(gateway.url, { token: goodToken });
    cleanups.push(closePublisher, closeWatcher);
    expect(await watcher.request('room:join', { room })).toMatchObject({ ok: true });
    const acks: Ack[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        acks.push((await publisher.request('counter:increment', { room }).catch((err: Error) => ({ ok: false, error: { code: 'internal', message: err.message } }))) as Ack);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      await during();
    } finally {
      running = false;
      await loop;
    }
    expect(acks.length).toBeGreaterThanOrEqual(3);
    expect(acks.filter((a) => !a.ok)).toEqual([]);
    await waitFor('every good increment on the watcher', () => watcher.received.length === acks.length);
    const values = watcher.received.map((e) => (e.payload as { value: number }).value);
    expect(values).toEqual(values.map((_, i) => i + 1));
    expect(publisher.socket.connected && watcher.socket.connected).toBe(true);
  }

  function assertGatewayHealthy(): void {
    expect(gateway.child.exitCode, gateway.output()).toBeNull();
    expect(gateway.output()).not.toMatch(/uncaught|unhandled|Missing error handler|FATAL|RangeError/i);
  }

  it(`answers ${MALFORMED_EVENTS} malformed events from the stock client with error acks, and keeps serving good clients`, async () => {
    const events = fc.sample(malformedEvent, { numRuns: MALFORMED_EVENTS, seed: SEED });
    const fuzzers: TestClient[] = [];
    for (let i = 0; i < 4; i += 1) {
      const [c, close] = await connectClient(gateway.url, { token });
      cleanups.push(close);
      fuzzers.push(c);
    }
    const wrong: string[] = [];
    let answered = 0;
    await whileServingGoodClients(async () => {
      const inFlight = 50;
      for (let start = 0; start < events.length; start += inFlight * fuzzers.length) {
        await Promise.all(
          events.slice(start, start + inFlight * fuzzers.length).map(async ({ event, args }, i) => {
            const socket: Socket = fuzzers[i % fuzzers.length]!.socket;
            let ack: Ack;
            try {
              ack = (await socket.timeout(10_000).emitWithAck(event, ...args)) as Ack;
            } catch (err) {
              wrong.push(`${event.slice(0, 40)}: no ack (${(err as Error).message})`);
              return;
            }
            answered += 1;
            const expected = expectedCode(event, args);
            const shapeOk = ack.ok === true || (typeof ack.error?.code === 'string' && typeof ack.error.message === 'string');
            const codeOk = expected === null ? ack.ok || ack.error?.code !== 'internal' : !ack.ok && ack.error?.code === expected;
            if (!shapeOk || !codeOk) wrong.push(`${event.slice(0, 40)} ${JSON.stringify(args).slice(0, 120)} -> ${JSON.stringify(ack).slice(0, 200)} (expected ${expected})`);
          }),
        );
      }
    });
    expect(wrong.slice(0, 10)).toEqual([]);
    expect(answered).toBe(MALFORMED_EVENTS);
    expect(fuzzers.every((f) => f.socket.connected)).toBe(true);
    expect(await metricValue(gateway.internalUrl, 'rt_messages_in_total', { outcome: 'internal' })).toBe(0);
    assertGatewayHealthy();
  });

  it(`survives ${RAW_FRAMES} raw malformed Engine.IO/Socket.IO frames, and answers every parseable event that has an ack id`, async () => {
    const frames = fc.sample(rawFrame, { numRuns: RAW_FRAMES, seed: SEED });
    const binaryFrames = fc.sample(fc.uint8Array({ maxLength: 512 }), { numRuns: 100, seed: SEED }).map((b) => Buffer.from(b));
    const ackedEvents = fc.sample(fc.tuple(eventName, fc.array(fc.json({ maxDepth: 3 }), { maxLength: 2 })), { numRuns: 300, seed: SEED });
    let connections = 0;
    let raw: RawSocketIo | null = null;
    const open = async (fresh = false): Promise<RawSocketIo> => {
      if (!fresh && raw && raw.ws.readyState === raw.ws.OPEN) return raw;
      connections += 1;
      raw = await connectRaw(gateway.url, { auth: { token } });
      cleanups.push(raw.close);
      return raw;
    };
    await whileServingGoodClients(async () => {
      for (const frame of [...frames, ...binaryFrames, 'x'.repeat(70_000)]) {
        (await open()).sendRaw(frame);
        // Let the server react (close, answer) before the next frame picks a connection.
        await new Promise((r) => setTimeout(r, 1));
      }
      // Every event frame that is well-formed apart from its contents gets an error ack by its id.
      const answered = await open(true);
      for (const [event, args] of ackedEvents) {
        if (CLIENT_RESERVED.has(event)) continue;
        const [ack] = (await answered.request(event, args[0], 5_000)) as [Ack];
        expect(ack.ok === true || typeof ack.error?.code === 'string', JSON.stringify(ack)).toBe(true);
        if (!isClientEvent(event)) expect(ack.error?.code).toBe('unknown_event');
      }
    });
    expect(connections).toBeGreaterThan(100); // protocol violations close the offender's connection, nothing else
    expect(await metricValue(gateway.internalUrl, 'rt_protocol_errors_total')).toBeGreaterThan(0);
    const [after, close] = await connectClient(gateway.url, { token });
    cleanups.push(close);
    expect(await after.request('counter:read', {})).toMatchObject({ ok: true });
    assertGatewayHealthy();
  });
});

// --- namespaces, subscription tokens and the server API ----------------------------------------------

const NAMESPACE_PUBLISHES = 2_000;
const API_BODIES = 1_000;
const API_KEY = 'fuzz-api-key-0123456789abcdef0123456789';

/** Client publishes that must all be refused: each breaks exactly one rule of the example namespaces. */
const refusedPublish = fc.oneof(
  fc.record({ room: fc.constantFrom('nowhere:x', 'admin:root', 'zz:1'), type: fc.constant('team:msg'), payload: jsonValue }).map((body) => [body, 'unknown_namespace'] as const),
  fc.record({ room: fc.constant('orders:acme-1'), type: fc.constant('order:updated'), payload: jsonValue }).map((body) => [body, 'forbidden'] as const),
  fc.record({ room: fc.constant('team:unjoined'), type: fc.constant('team:msg'), payload: jsonValue }).map((body) => [body, 'not_joined'] as const),
  fc.record({ room: fc.constant('tickets:1'), type: fc.constant('ticket:note'), payload: fc.string({ minLength: 201, maxLength: 2_000 }).map((text) => ({ text })) }).map((body) => [body, 'payload_too_large'] as const),
  fc.record({ room: fc.constant('tickets:1'), type: fc.constant('ticket:note'), payload: jsonValue.filter((v) => JSON.stringify(v).length < 150 && !(typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { text?: unknown }).text === 'string')) }).map((body) => [body, 'payload_invalid'] as const),
  fc.record({ room: fc.constant('tickets:1'), type: fc.constantFrom('ticket:close', 'order:updated', 'x:y'), payload: fc.constant({ text: 'hi' }) }).map((body) => [body, 'payload_invalid'] as const),
  fc.record({ room: fc.constant('tickets:1'), type: fc.constantFrom('room:reset', 'server:hello', 'presence:join', 'Ticket:note', 'ticket', 'ticket:"x', ''), payload: fc.constant({ text: 'hi' }) }).map((body) => [body, 'bad_request'] as const),
);

/** Server API bodies that must all be refused; `null` marks a body sent as raw text. */
const refusedApiBody = fc.oneof(
  fc.string({ maxLength: 300 }).filter((text) => {
    try {
      JSON.parse(text);
      return false;
    } catch {
      return true;
    }
  }).map((text) => [text, 400, 'bad_request'] as const),
  jsonValue.filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => [JSON.stringify(v), 400, 'bad_request'] as const),
  fc.record({ room: hostile, type: fc.constant('order:updated'), payload: jsonValue }).filter(({ room }) => typeof room !== 'string' || !/^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(room)).map((b) => [JSON.stringify(b), 400, 'bad_request'] as const),
  fc.record({ room: fc.constant('orders:acme-1'), type: hostile, payload: jsonValue }).filter(({ type }) => typeof type !== 'string' || !/^[a-z][a-z0-9_-]{0,31}(:[a-z0-9][a-z0-9_-]{0,31}){1,3}$/.test(type) || /^(room|server|auth|connection|presence):/.test(type)).map((b) => [JSON.stringify(b), 400, 'bad_request'] as const),
  fc.record({ room: fc.constant('orders:acme-1'), type: fc.constant('order:updated'), payload: jsonValue, extra: jsonValue }).map((b) => [JSON.stringify(b), 400, 'bad_request'] as const),
  fc.record({ room: fc.constantFrom('nowhere:x', 'admin:root'), type: fc.constant('order:updated'), payload: jsonValue }).map((b) => [JSON.stringify(b), 404, 'unknown_namespace'] as const),
).filter(([raw]) => raw.length < 4_000);
const oversizedApiBody = fc.nat({ max: 3_000 }).map((n) => [JSON.stringify({ room: 'orders:acme-1', type: 'order:updated', payload: 'x'.repeat(5_000 + n) }), 413, 'payload_too_large'] as const);

describe('hostile input at namespaces, subscription tokens and the server API', () => {
  const cleanups: (() => unknown)[] = [];
  let gateway: GatewayProcess;

  beforeAll(async () => {
    const [fleet, stop] = await startRedisGateways(['fuzz-namespaces'], {
      AUTH_MODE: 'jwt',
      JWT_SECRET: TEST_SECRET,
      NAMESPACES_FILE: writeNamespaces(),
      API_KEYS_FILE: writeNamespaces(`${API_KEY}\n`, 'api-keys'),
      API_MAX_BODY_BYTES: '4096',
      ...UNLIMITED_RATES_ENV,
    });
    [gateway] = fleet.gateways;
    cleanups.push(stop);
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  const published = (): Promise<number> => metricValue(gateway.internalUrl, 'rt_publishes_total', { outcome: 'ok' });

  it(`refuses ${NAMESPACE_PUBLISHES} client publishes that break a namespace rule, each with its code, publishing nothing`, async () => {
    const [client, close] = await connectClient(gateway.url, { token: await hs256Token({ sub: 'fuzzer', claims: { rooms: ['orders:acme-*'] } }) });
    cleanups.push(close);
    expect(await client.request('room:join', { room: 'orders:acme-1' })).toMatchObject({ ok: true });
    expect(await client.request('room:join', { room: 'tickets:1', token: await hs256Token({ sub: 'fuzzer', claims: { room: 'tickets:1' } }) })).toMatchObject({ ok: true });
    const cases = fc.sample(refusedPublish, { numRuns: NAMESPACE_PUBLISHES, seed: SEED });
    const wrong: string[] = [];
    for (let start = 0; start < cases.length; start += 100) {
      await Promise.all(
        cases.slice(start, start + 100).map(async ([body, code]) => {
          const ack = (await client.request('publish', body)) as Ack;
          if (ack.ok || ack.error?.code !== code) wrong.push(`${JSON.stringify(body).slice(0, 120)} -> ${JSON.stringify(ack).slice(0, 160)} (expected ${code})`);
        }),
      );
    }
    expect(wrong.slice(0, 10)).toEqual([]);
    expect(await published()).toBe(0);
    expect(client.received).toEqual([]);
    expect(await metricValue(gateway.internalUrl, 'rt_messages_in_total', { outcome: 'internal' })).toBe(0);
  });

  it('refuses forged, expired, wrong-room, wrong-user and misused subscription tokens', async () => {
    const [client, close] = await connectClient(gateway.url, { token: await hs256Token({ sub: 'fuzzer' }) });
    cleanups.push(close);
    const room = 'tickets:2';
    const tokens: [string, unknown, ErrorCode][] = [
      ['none', undefined, 'subscription_token_invalid'],
      ['forged', await hs256Token({ sub: 'fuzzer', claims: { room } }, 'another-secret-of-at-least-32-characters!!'), 'subscription_token_invalid'],
      ['alg none', unsignedToken({ sub: 'fuzzer', claims: { room } }), 'subscription_token_invalid'],
      ['expired', await hs256Token({ sub: 'fuzzer', expiresIn: -5, claims: { room } }), 'subscription_token_expired'],
      ['another room', await hs256Token({ sub: 'fuzzer', claims: { room: 'tickets:3' } }), 'subscription_token_invalid'],
      ['a pattern', await hs256Token({ sub: 'fuzzer', claims: { room: 'tickets:*' } }), 'subscription_token_invalid'],
      ['another user', await hs256Token({ sub: 'someone-else', claims: { room } }), 'subscription_token_invalid'],
      ['a connection token', await hs256Token({ sub: 'fuzzer' }), 'subscription_token_invalid'],
      ['garbage', 'x.y.z', 'subscription_token_invalid'],
      ['not a string', { room }, 'bad_request'],
      ['too long', 'a'.repeat(9_000), 'bad_request'],
    ];
    for (const [what, token, code] of tokens) {
      const ack = (await client.request('room:join', token === undefined ? { room } : { room, token })) as Ack;
      expect(ack, what).toMatchObject({ ok: false, error: { code } });
    }
    expect(await client.request('publish', { room, type: 'ticket:note', payload: { text: 'hi' } })).toMatchObject({ ok: false, error: { code: 'not_joined' } });
  });

  it(`refuses ${API_BODIES} malformed, invalid and oversized server API bodies, and keys that are missing or wrong, publishing nothing`, async () => {
    const post = async (body: string, key: string | null = API_KEY) => {
      const res = await fetch(`${gateway.internalUrl}/api/publish`, { method: 'POST', headers: key ? { authorization: `Bearer ${key}` } : {}, body });
      return { status: res.status, body: (await res.json()) as Ack };
    };
    const wrong: string[] = [];
    for (const key of [null, '', 'x', API_KEY.slice(0, -1), `${API_KEY}x`, API_KEY.toUpperCase()]) {
      const { status, body } = await post('{"room":"orders:acme-1","type":"order:updated","payload":1}', key);
      const code = key ? 'api_key_invalid' : 'api_key_required';
      if (status !== 401 || body.error?.code !== code) wrong.push(`key ${JSON.stringify(key)} -> ${status} ${JSON.stringify(body)}`);
    }
    const bodies = [...fc.sample(refusedApiBody, { numRuns: API_BODIES, seed: SEED }), ...fc.sample(oversizedApiBody, { numRuns: 20, seed: SEED })];
    for (let start = 0; start < bodies.length; start += 50) {
      await Promise.all(
        bodies.slice(start, start + 50).map(async ([raw, status, code]) => {
          const answer = await post(raw);
          if (answer.status !== status || answer.body.ok !== false || answer.body.error?.code !== code || typeof answer.body.error.message !== 'string') {
            wrong.push(`${raw.slice(0, 100)} -> ${answer.status} ${JSON.stringify(answer.body).slice(0, 160)} (expected ${status} ${code})`);
          }
        }),
      );
    }
    expect(wrong.slice(0, 10)).toEqual([]);
    expect(await published()).toBe(0);
    expect(await metricValue(gateway.internalUrl, 'rt_api_requests_total', { outcome: 'internal' })).toBe(0);
    expect(gateway.child.exitCode, gateway.output()).toBeNull();
  });
});
