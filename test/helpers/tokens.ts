import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from 'jose';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters-long';
export const TEST_AUDIENCE = 'realtime-gateway';
export const TEST_ISSUER = 'https://issuer.test';

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export interface TokenOptions {
  readonly sub?: string;
  /** Seconds from now; negative for an expired token. @default 300 */
  readonly expiresIn?: number;
  readonly aud?: string;
  readonly iss?: string;
  readonly kid?: string;
  readonly claims?: JWTPayload;
}

/** An HS256 token signed with `secret` (the suite's shared secret unless given). */
export async function hs256Token(opts: TokenOptions = {}, secret: string | Uint8Array = TEST_SECRET): Promise<string> {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  return sign(new SignJWT(claims(opts)).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }), key, opts);
}

/** A token with `alg: none` and no signature — what a forger sends. */
export function unsignedToken(opts: TokenOptions = {}): string {
  const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const payload = { ...claims(opts), exp: nowSeconds() + (opts.expiresIn ?? 300) };
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}

export interface AsymmetricIssuer {
  readonly alg: 'RS256' | 'ES256';
  /** PEM (SPKI) of the public key, written to `publicKeyFile`. */
  readonly publicKeyPem: string;
  readonly publicKeyFile: string;
  /** A JWKS with the public key under `kid`, written to `jwksFile`. */
  readonly jwksFile: string;
  readonly kid: string;
  sign(opts?: TokenOptions): Promise<string>;
  cleanup(): void;
}

/** A fresh RS256/ES256 key pair with its public key as a PEM file and as a JWKS file. */
export async function asymmetricIssuer(alg: 'RS256' | 'ES256'): Promise<AsymmetricIssuer> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const dir = mkdtempSync(join(tmpdir(), 'rt-keys-'));
  const kid = `${alg.toLowerCase()}-test-key`;
  const publicKeyPem = await exportSPKI(publicKey);
  const publicKeyFile = join(dir, 'public.pem');
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(publicKeyFile, publicKeyPem);
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] }));
  return {
    alg,
    publicKeyPem,
    publicKeyFile,
    jwksFile,
    kid,
    sign: (opts = {}) => sign(new SignJWT(claims(opts)).setProtectedHeader({ alg, kid: opts.kid ?? kid, typ: 'JWT' }), privateKey, opts),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function claims(opts: TokenOptions): JWTPayload {
  return { sub: opts.sub ?? 'alice', aud: opts.aud ?? TEST_AUDIENCE, iss: opts.iss ?? TEST_ISSUER, ...opts.claims };
}

function sign(jwt: SignJWT, key: Parameters<SignJWT['sign']>[0], opts: TokenOptions): Promise<string> {
  return jwt
    .setIssuedAt()
    .setExpirationTime(nowSeconds() + (opts.expiresIn ?? 300))
    .sign(key);
}

/** A gateway's JWT settings that accept the tokens signed here (the shared secret, audience and issuer). */
export const JWT_ENV: Readonly<Record<string, string>> = {
  AUTH_MODE: 'jwt',
  JWT_SECRET: TEST_SECRET,
  JWT_AUDIENCE: TEST_AUDIENCE,
  JWT_ISSUER: TEST_ISSUER,
};
