import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, errors as joseErrors, importSPKI, type JWTPayload, jwtVerify, type JWTVerifyGetKey, type KeyObject } from 'jose';
import { ProtocolError, USER_ID_PATTERN, userIdSchema } from '../protocol/index.ts';
import { ConfigError, type GatewayConfig } from './config.ts';

/** Longest token verified (a JWT with a few claims is well under 1 KiB). */
export const MAX_TOKEN_LENGTH = 8_192;

/** Who a connection is; `exp` (seconds since the epoch) is null when the identity does not expire. */
export interface Identity {
  readonly userId: string;
  readonly exp: number | null;
  /** A connection without a token, let in because some namespace is `public` (AUTH_MODE=jwt only). */
  readonly anonymous?: boolean;
  /** The verified token's claims (for `join: claim` namespaces). */
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** The claim that makes a JWT a subscription token (for one room) rather than a connection token. */
export const SUBSCRIPTION_ROOM_CLAIM = 'room';

export interface Authenticator {
  readonly mode: 'jwt' | 'none';
  /** Verifies a handshake's credentials; throws `ProtocolError` with the refusal's code. */
  authenticate(credentials: { token?: unknown; userId?: unknown }): Promise<Identity>;
  /**
   * Verifies a subscription token (docs/namespaces.md): signed with the connection tokens' key, `sub` =
   * the user, `room` = the room, `exp` required. Null with AUTH_MODE=none. Throws `ProtocolError`.
   */
  readonly verifySubscriptionToken: ((token: string, room: string, userId: string) => Promise<void>) | null;
}

type AuthConfig = Pick<
  GatewayConfig,
  'AUTH_MODE' | 'JWT_SECRET' | 'JWT_PUBLIC_KEY_FILE' | 'JWT_JWKS_FILE' | 'JWT_ALGORITHMS' | 'JWT_AUDIENCE' | 'JWT_ISSUER'
>;

export async function createAuthenticator(config: AuthConfig, opts: { allowAnonymous?: boolean } = {}): Promise<Authenticator> {
  if (config.AUTH_MODE === 'none') {
    return {
      mode: 'none',
      verifySubscriptionToken: null,
      async authenticate({ userId }) {
        if (userId === undefined || userId === null || userId === '') return { userId: `anon-${randomUUID().slice(0, 8)}`, exp: null };
        // userIdSchema's own test, without a zod parse per handshake; zod names what is wrong otherwise.
        if (typeof userId === 'string' && USER_ID_PATTERN.test(userId)) return { userId, exp: null };
        const parsed = userIdSchema.safeParse(userId);
        if (!parsed.success) throw new ProtocolError('bad_request', `auth.userId: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
        return { userId: parsed.data, exp: null };
      },
    };
  }

  const { key, algorithms } = await loadVerificationKey(config);
  const verify = (token: string): Promise<{ payload: JWTPayload }> =>
    jwtVerify(token, key as Parameters<typeof jwtVerify>[1], {
      algorithms,
      ...(config.JWT_AUDIENCE ? { audience: config.JWT_AUDIENCE } : {}),
      ...(config.JWT_ISSUER ? { issuer: config.JWT_ISSUER } : {}),
      requiredClaims: ['sub', 'exp'],
    });
  return {
    mode: 'jwt',
    async authenticate({ token }) {
      if (typeof token !== 'string' || token.length === 0) {
        if (opts.allowAnonymous) return { userId: `anon-${randomUUID().slice(0, 8)}`, exp: null, anonymous: true };
        throw new ProtocolError('auth_required', 'a JWT is required: connect with auth: {token}');
      }
      // Refused unread: verifying costs CPU in proportion to the size, and real tokens are far smaller.
      if (token.length > MAX_TOKEN_LENGTH) throw new ProtocolError('auth_invalid', `the token is longer than ${MAX_TOKEN_LENGTH} characters`);
      try {
        const { payload } = await verify(token);
        if (payload[SUBSCRIPTION_ROOM_CLAIM] !== undefined) {
          throw new ProtocolError('auth_invalid', `this is a subscription token (it has a "${SUBSCRIPTION_ROOM_CLAIM}" claim): it joins one room, it does not open a connection`);
        }
        if (typeof payload.sub === 'string' && USER_ID_PATTERN.test(payload.sub)) return { userId: payload.sub, exp: payload.exp ?? null, claims: payload };
        const subject = userIdSchema.safeParse(payload.sub);
        if (!subject.success) throw new ProtocolError('auth_invalid', `token sub: ${subject.error.issues[0]?.message ?? 'invalid'}`);
        return { userId: subject.data, exp: payload.exp ?? null, claims: payload };
      } catch (err) {
        if (err instanceof ProtocolError) throw err;
        if (err instanceof joseErrors.JWTExpired) throw new ProtocolError('token_expired', 'the token has expired: get a new one and reconnect');
        const reason = err instanceof Error ? err.message : String(err);
        throw new ProtocolError('auth_invalid', `the token was rejected: ${reason}`);
      }
    },
    async verifySubscriptionToken(token, room, userId) {
      let payload: JWTPayload;
      try {
        ({ payload } = await verify(token));
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) {
          throw new ProtocolError('subscription_token_expired', `the subscription token for ${room} has expired: get a new one and join again`);
        }
        throw new ProtocolError('subscription_token_invalid', `the subscription token was rejected: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (payload[SUBSCRIPTION_ROOM_CLAIM] !== room) {
        throw new ProtocolError('subscription_token_invalid', `the subscription token is for ${JSON.stringify(payload[SUBSCRIPTION_ROOM_CLAIM] ?? null)}, not ${room}`);
      }
      if (payload.sub !== userId) throw new ProtocolError('subscription_token_invalid', `the subscription token is for user ${JSON.stringify(payload.sub)}, this connection is ${userId}`);
    },
  };
}

async function loadVerificationKey(config: AuthConfig): Promise<{ key: Uint8Array | KeyObject | CryptoKey | JWTVerifyGetKey; algorithms: string[] }> {
  const algorithms = config.JWT_ALGORITHMS?.split(',') ?? (config.JWT_SECRET ? ['HS256'] : ['RS256', 'ES256']);
  if (config.JWT_SECRET) {
    if (algorithms.some((a) => a !== 'HS256')) {
      throw new ConfigError(`JWT_ALGORITHMS=${algorithms.join(',')} cannot be used with JWT_SECRET: a shared secret only verifies HS256`);
    }
    return { key: new TextEncoder().encode(config.JWT_SECRET), algorithms };
  }
  if (algorithms.includes('HS256')) {
    throw new ConfigError('JWT_ALGORITHMS includes HS256 but JWT_SECRET is unset: HS256 needs the shared secret, public keys verify RS256/ES256');
  }
  if (config.JWT_JWKS_FILE) {
    const file = config.JWT_JWKS_FILE;
    const jwks = asConfigError('JWT_JWKS_FILE', file, () => JSON.parse(readFileSync(file, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
    return { key: asConfigError('JWT_JWKS_FILE', file, () => createLocalJWKSet(jwks)), algorithms };
  }
  const file = config.JWT_PUBLIC_KEY_FILE!;
  const pem = asConfigError('JWT_PUBLIC_KEY_FILE', file, () => readFileSync(file, 'utf8'));
  return asConfigErrorAsync('JWT_PUBLIC_KEY_FILE', file, () => importPublicKey(pem, algorithms));
}

/** A key file that cannot be read or parsed is a start-up misconfiguration, named as such. */
function asConfigError<T>(variable: string, file: string, load: () => T): T {
  try {
    return load();
  } catch (err) {
    throw new ConfigError(`${variable}=${file}: ${(err as Error).message}`);
  }
}

async function asConfigErrorAsync<T>(variable: string, file: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${variable}=${file}: not a usable public key (${(err as Error).message}); expected a PEM (SPKI) RSA or EC public key`);
  }
}

async function importPublicKey(pem: string, algorithms: string[]): Promise<{ key: KeyObject | CryptoKey; algorithms: string[] }> {
  const alg = algorithms[0]!;
  if (algorithms.length > 1) {
    // A PEM key has one type; pick the algorithm that matches it.
    const { createPublicKey } = await import('node:crypto');
    const type = createPublicKey(pem).asymmetricKeyType;
    const matching = type === 'ec' ? 'ES256' : 'RS256';
    return { key: await importSPKI(pem, matching), algorithms: [matching] };
  }
  return { key: await importSPKI(pem, alg), algorithms };
}
