// Mints an HS256 token for the demo page or a test client on a JWT-protected gateway.
//   JWT_SECRET=... node scripts/mint-token.ts [--sub demo-user] [--ttl 3600] [--aud ...] [--iss ...]
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { userIdSchema } from '../app/protocol/index.ts';

const { values } = parseArgs({
  options: { sub: { type: 'string', default: 'demo-user' }, ttl: { type: 'string', default: '3600' }, aud: { type: 'string' }, iss: { type: 'string' } },
});
const secret = process.env.JWT_SECRET;
if (!secret || secret.length < 32) {
  console.error('mint-token: set JWT_SECRET (at least 32 characters), the same secret the gateway verifies with');
  process.exit(2);
}
const sub = userIdSchema.safeParse(values.sub);
const ttl = Number(values.ttl);
if (!sub.success || !Number.isSafeInteger(ttl) || ttl <= 0) {
  console.error('mint-token: --sub must be 1-64 letters, digits, ".", "_" or "-", and --ttl a positive number of seconds');
  process.exit(2);
}
let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(sub.data).setIssuedAt().setExpirationTime(`${ttl}s`);
if (values.aud) jwt = jwt.setAudience(values.aud);
if (values.iss) jwt = jwt.setIssuer(values.iss);
process.stdout.write(`${await jwt.sign(new TextEncoder().encode(secret))}\n`);
