// HS256 tokens for a JWT-protected gateway, shared by scripts/mint-token.ts (the demo page, `make up`) and
// the chaos targets (their clients need one each when the cluster runs with AUTH_MODE=jwt).
import { SignJWT } from 'jose';
import { userIdSchema } from '../app/protocol/index.ts';

export interface MintTokenOptions {
  /** The gateway's JWT_SECRET (at least 32 characters). */
  readonly secret: string;
  /** The user id (`sub`): 1-64 letters, digits, ".", "_" or "-". */
  readonly sub: string;
  readonly ttlSeconds: number;
  /** JWT_AUDIENCE / JWT_ISSUER of the gateway, when it requires them. */
  readonly audience?: string;
  readonly issuer?: string;
}

export async function mintToken(opts: MintTokenOptions): Promise<string> {
  if (opts.secret.length < 32) throw new Error('the JWT secret must be at least 32 characters, the same secret the gateway verifies with');
  const sub = userIdSchema.safeParse(opts.sub);
  if (!sub.success) throw new Error(`sub ${JSON.stringify(opts.sub)} must be 1-64 letters, digits, ".", "_" or "-"`);
  if (!Number.isSafeInteger(opts.ttlSeconds) || opts.ttlSeconds <= 0) throw new Error(`ttl must be a positive number of seconds, got ${opts.ttlSeconds}`);
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(sub.data).setIssuedAt().setExpirationTime(`${opts.ttlSeconds}s`);
  if (opts.audience) jwt = jwt.setAudience(opts.audience);
  if (opts.issuer) jwt = jwt.setIssuer(opts.issuer);
  return jwt.sign(new TextEncoder().encode(opts.secret));
}
