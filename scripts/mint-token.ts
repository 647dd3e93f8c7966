// Mints an HS256 token for the demo page or a test client on a JWT-protected gateway.
//   JWT_SECRET=... node scripts/mint-token.ts [--sub demo-user] [--ttl 3600] [--aud ...] [--iss ...]
import { parseArgs } from 'node:util';
import { mintToken } from './tokens.ts';

const { values } = parseArgs({
  options: { sub: { type: 'string', default: 'demo-user' }, ttl: { type: 'string', default: '3600' }, aud: { type: 'string' }, iss: { type: 'string' } },
});
const secret = process.env.JWT_SECRET;
if (!secret || secret.length < 32) {
  console.error('mint-token: set JWT_SECRET (at least 32 characters), the same secret the gateway verifies with');
  process.exit(2);
}
try {
  const token = await mintToken({
    secret,
    sub: values.sub,
    ttlSeconds: Number(values.ttl),
    ...(values.aud ? { audience: values.aud } : {}),
    ...(values.iss ? { issuer: values.iss } : {}),
  });
  process.stdout.write(`${token}\n`);
} catch (err) {
  console.error(`mint-token: ${(err as Error).message} (--sub, --ttl)`);
  process.exit(2);
}
