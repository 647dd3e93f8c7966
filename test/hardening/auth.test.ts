import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HandshakeRefusal } from '../../app/protocol/index.ts';
import { connectClient, type TestClient } from '../helpers/clients.ts';
import { type GatewayProcess, startGateway } from '../../scripts/fleet/gateway.ts';
import { waitFor } from '../../scripts/fleet/ports.ts';
import { metricValue } from '../helpers/process-memory.ts';
import { type AsymmetricIssuer, asymmetricIssuer, hs256Token, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET, unsignedToken } from '../helpers/tokens.ts';

/** The `connect_error` data of a refused handshake. */
async function refusal(url: string, auth: Record<string, unknown>): Promise<HandshakeRefusal> {
  const socket = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    return await new Promise<HandshakeRefusal>((resolve, reject) => {
      socket.once('connect', () => reject(new Error(`the handshake with ${JSON.stringify(auth).slice(0, 80)} was accepted`)));
      socket.once('connect_error', (err) => resolve((err as Error & { data: HandshakeRefusal }).data));
    });
  } finally {
    socket.disconnect();
  }
}

describe('JWT auth at the handshake and for the life of a connection', () => {
  const cleanups: (() => unknown)[] = [];
  let hs: GatewayProcess, rs: GatewayProcess, es: GatewayProcess;
  let rsIssuer: AsymmetricIssuer, esIssuer: AsymmetricIssuer, otherRsIssuer: AsymmetricIssuer;
  const claimsEnv = { AUTH_MODE: 'jwt', JWT_AUDIENCE: TEST_AUDIENCE, JWT_ISSUER: TEST_ISSUER, AUTH_REFRESH_LEAD_MS: '1500' };

  const client = async (url: string, token: string): Promise<TestClient> => {
    const [c, close] = await connectClient(url, { token });
    cleanups.push(close);
    return c;
  };

  beforeAll(async () => {
    [rsIssuer, esIssuer, otherRsIssuer] = await Promise.all([asymmetricIssuer('RS256'), asymmetricIssuer('ES256'), asymmetricIssuer('RS256')]);
    cleanups.push(() => [rsIssuer, esIssuer, otherRsIssuer].forEach((i) => i.cleanup()));
    const started = await Promise.all([
      startGateway({ env: { ...claimsEnv, JWT_SECRET: TEST_SECRET } }),
      startGateway({ env: { ...claimsEnv, JWT_PUBLIC_KEY_FILE: rsIssuer.publicKeyFile, JWT_ALGORITHMS: 'RS256' } }),
      startGateway({ env: { ...claimsEnv, JWT_JWKS_FILE: esIssuer.jwksFile, JWT_ALGORITHMS: 'ES256' } }),
    ]);
    [hs, rs, es] = started.map(([gw]) => gw) as [GatewayProcess, GatewayProcess, GatewayProcess];
    cleanups.push(...started.map(([, stop]) => stop));
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('accepts valid HS256, RS256 (PEM) and ES256 (JWKS) tokens, and the identity is the token subject', async () => {
    const onHs = await client(hs.url, await hs256Token({ sub: 'alice' }));
    const onRs = await client(rs.url, await rsIssuer.sign({ sub: 'bob' }));
    const onEs = await client(es.url, await esIssuer.sign({ sub: 'carol' }));
    for (const [c, user] of [[onHs, 'alice'], [onRs, 'bob'], [onEs, 'carol']] as const) {
      await waitFor('server:hello', () => c.control.find((e) => e.type === 'server:hello'));
      expect(c.control.find((e) => e.type === 'server:hello')?.payload).toMatchObject({ userId: user });
      expect(await c.request('room:join', { room: `user:${user}` })).toMatchObject({ ok: true });
    }
  });

  it('ignores a user id the client claims next to its token', async () => {
    const socket = io(hs.url, { auth: { token: await hs256Token({ sub: 'alice' }), userId: 'bob' }, transports: ['websocket'], reconnection: false, forceNew: true });
    cleanups.push(() => socket.disconnect());
    const hello = await new Promise<{ payload: { userId: string } }>((resolve) => socket.once('server:hello', resolve));
    expect(hello.payload.userId).toBe('alice');
    expect(await socket.timeout(5_000).emitWithAck('room:join', { room: 'user:bob' })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    expect(await socket.timeout(5_000).emitWithAck('dm:send', { to: 'carol', text: 'hi' })).toMatchObject({ ok: true, room: 'user:carol' });
  });

  it.each([
    ['no token', async () => ({}), 'auth_required'],
    ['an empty token', async () => ({ token: '' }), 'auth_required'],
    ['a token that is not a string', async () => ({ token: { alg: 'none' } }), 'auth_required'],
    ['garbage', async () => ({ token: 'not.a.jwt' }), 'auth_invalid'],
    ['a forged signature (another secret)', async () => ({ token: await hs256Token({}, 'another-secret-of-at-least-32-characters!!') }), 'auth_invalid'],
    ['a tampered payload', async () => ({ token: tamper(await hs256Token({ sub: 'alice' }), { sub: 'admin' }) }), 'auth_invalid'],
    ['alg: none', async () => ({ token: unsignedToken({ sub: 'alice' }) }), 'auth_invalid'],
    ['an expired token', async () => ({ token: await hs256Token({ expiresIn: -60 }) }), 'token_expired'],
    ['the wrong audience', async () => ({ token: await hs256Token({ aud: 'some-other-service' }) }), 'auth_invalid'],
    ['the wrong issuer', async () => ({ token: await hs256Token({ iss: 'https://evil.test' }) }), 'auth_invalid'],
    ['no exp claim', async () => ({ token: await hs256Token({ claims: { exp: undefined } }).then(stripClaim('exp')) }), 'auth_invalid'],
    ['a subject that is not a valid user id', async () => ({ token: await hs256Token({ sub: '../../etc' }) }), 'auth_invalid'],
    ['an RS256 token on an HS256 gateway', async () => ({ token: await rsIssuer.sign() }), 'auth_invalid'],
  ])('HS256 gateway refuses %s with a readable, non-retryable reason', async (_what, auth, code) => {
    const data = await refusal(hs.url, await auth());
    expect(data).toMatchObject({ code, retryable: false });
    expect(data.message.length).toBeGreaterThan(10);
  });

  it.each([
    ['HS256 signed with the public key as the secret (HS/RS confusion)', async () => hs256Token({}, new TextEncoder().encode(rsIssuer.publicKeyPem))],
    ['RS256 signed by another key', async () => otherRsIssuer.sign()],
    ['alg: none', async () => unsignedToken()],
    ['ES256 from the JWKS gateway\'s issuer', async () => esIssuer.sign()],
  ])('RS256 gateway refuses %s', async (_what, token) => {
    expect(await refusal(rs.url, { token: await token() })).toMatchObject({ code: 'auth_invalid', retryable: false });
  });

  it('JWKS gateway refuses a token whose kid is not in the set', async () => {
    expect(await refusal(es.url, { token: await esIssuer.sign({ kid: 'unknown-key' }) })).toMatchObject({ code: 'auth_invalid' });
  });

  it('asks for a refresh before exp, takes a new token for the same subject in place, and refuses another subject', async () => {
    const c = await client(hs.url, await hs256Token({ sub: 'refresher', expiresIn: 3 }));
    const ask = await waitFor('auth:refresh', () => c.control.find((e) => e.type === 'auth:refresh'), 5_000);
    const { exp, refreshBy } = ask.payload as { exp: number; refreshBy: number };
    expect(refreshBy).toBe(exp * 1000);
    expect(refreshBy).toBeGreaterThan(Date.now());

    expect(await c.request('auth:refresh', { token: await hs256Token({ sub: 'mallory', expiresIn: 60 }) })).toMatchObject({
      ok: false,
      error: { code: 'auth_subject_mismatch' },
    });
    expect(await c.request('auth:refresh', { token: await hs256Token({ sub: 'refresher', expiresIn: -5 }) })).toMatchObject({
      ok: false,
      error: { code: 'token_expired' },
    });
    const renewed = await c.request<{ exp: number }>('auth:refresh', { token: await hs256Token({ sub: 'refresher', expiresIn: 60 }) });
    expect(renewed).toMatchObject({ ok: true });
    expect((renewed as { exp: number }).exp).toBeGreaterThan(exp + 30);

    // Well past the first token's exp: still connected, still served, never told to close.
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 1_000));
    expect(c.socket.connected).toBe(true);
    expect(await c.request('counter:increment', { room: 'counter:refreshed' })).toMatchObject({ ok: true });
    expect(c.control.some((e) => e.type === 'connection:closing')).toBe(false);
  });

  it('cuts a client that does not refresh at exp with token_expired, and the stock client does not reconnect', async () => {
    const before = await metricValue(hs.internalUrl, 'rt_token_expired_disconnections_total');
    const c = await client(hs.url, await hs256Token({ sub: 'sleeper', expiresIn: 2 }));
    const reason = await new Promise<string>((resolve) => c.socket.once('disconnect', resolve));
    expect(reason).toBe('io server disconnect');
    expect(c.control.map((e) => e.type)).toContain('auth:refresh');
    expect(c.control.find((e) => e.type === 'connection:closing')?.payload).toMatchObject({ reason: 'token_expired', reconnect: false });
    expect(await metricValue(hs.internalUrl, 'rt_token_expired_disconnections_total')).toBe(before + 1);
  });

  it('closes an SSE stream at exp', async () => {
    const token = await hs256Token({ sub: 'reader', expiresIn: 2 });
    const started = Date.now();
    const res = await fetch(`${hs.url}/sse?room=chat:sse-expiry`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    await res.text(); // resolves when the server ends the stream
    expect(Date.now() - started).toBeLessThan(5_000);
    const refused = await fetch(`${hs.url}/sse?room=chat:sse-expiry`, { headers: { authorization: `Bearer ${await hs256Token({ expiresIn: -1 })}` } });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ ok: false, error: { code: 'token_expired' } });
  });
});

/** Replaces claims in a signed token's payload, keeping the original signature. */
function tamper(token: string, changes: Record<string, unknown>): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url').toString()), ...changes };
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
}

/** A validly signed HS256 token without `claim`: re-signs the payload without it. */
function stripClaim(claim: string): (token: string) => Promise<string> {
  return async (token) => {
    const { SignJWT } = await import('jose');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    delete claims[claim];
    return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_SECRET));
  };
}
