// `make tour-limits` (docs/tour.md, step 5): one gateway set up so a client's limits show within
// seconds — JWT auth, 2 s heartbeats, a 64 KiB outbound limit — and commands to mint page URLs with
// tokens and to flood the chat. Ctrl-C stops it.
import { randomBytes } from 'node:crypto';
import { createGatewayClient, type GatewayClient } from '../app/client/index.ts';
import { sendChat } from '../app/client/demo.ts';
import { DEFAULT_CHAT_ROOM } from '../app/protocol/rooms.ts';
import { parseOptions, positiveIntOption, readCommands, stopOnSignals } from './cli.ts';
import { type GatewayProcess, startGateway } from './fleet/gateway.ts';
import { mintToken } from './tokens.ts';

const usage = `usage: node scripts/tour-limits.ts [--port P]
  --port  public port of the gateway on 127.0.0.1 (default 3000)
commands on stdin:
  token <seconds>   print a page URL whose token expires in that many seconds (1-86400)
  flood             send 300 KiB of chat to ${DEFAULT_CHAT_ROOM} at once (150 messages of 2000 characters)
  help`;

const args = parseOptions(usage, { port: { type: 'string', default: '3000' }, help: { type: 'boolean', short: 'h', default: false } });
const port = positiveIntOption('port', args.port, 65_535, usage);

const secret = randomBytes(32).toString('hex');
const LIMITS = {
  AUTH_MODE: 'jwt',
  JWT_SECRET: secret,
  // The refresh request comes 5 s before exp; the page has no token source, so it cannot answer it.
  AUTH_REFRESH_LEAD_MS: '5000',
  // A peer that stops answering is dropped within 2 s + 2 s (the defaults: 20 s + 15 s).
  PING_INTERVAL_MS: '2000',
  PING_TIMEOUT_MS: '2000',
  // Counter updates coalesce past 16 KiB unsent; past 64 KiB the connection is cut (defaults: 256 KiB, 1 MiB).
  SLOW_CONSUMER_HIGH_WATER_BYTES: '16384',
  SLOW_CONSUMER_LIMIT_BYTES: '65536',
  // One reply (a history page) must fit between the two (start-up refuses it otherwise).
  HISTORY_PAGE_BYTES: '32768',
  LOG_LEVEL: 'warn',
};

console.log(`starting one gateway on 127.0.0.1:${port} with ${Object.entries(LIMITS).filter(([k]) => k !== 'JWT_SECRET').map(([k, v]) => `${k}=${v}`).join(' ')} ...`);
let gateway: GatewayProcess, stop: () => Promise<void>;
try {
  [gateway, stop] = await startGateway({ port, pod: 'limits', env: LIMITS });
} catch (err) {
  console.error(`make tour-limits: could not start the gateway: ${(err as Error).message.split('\n')[0]}`);
  if (/EADDRINUSE/.test(String(err))) console.error(`Port ${port} is taken: run \`make tour-limits TOUR_PORT=<another>\`.`);
  process.exit(1);
}

const pageUrl = async (seconds: number, sub = 'tourist'): Promise<string> => `${gateway.url}/#token=${await mintToken({ secret, sub, ttlSeconds: seconds })}`;

console.log(`
Gateway with small limits is up.
  Page (token valid for 1 hour):  ${await pageUrl(3600)}
  Same page, long-polling:        ${gateway.url}/?rung=long-poll#token=${(await pageUrl(3600)).split('#token=')[1]}
  Metrics (internal port):        ${gateway.internalUrl}/metrics
Commands: token <seconds> | flood | help. Ctrl-C stops it.`);

/**
 * The flood's five writers (the per-socket rate limit is 20/s with a burst of 40), connected now so a
 * `flood` lands at once: 30 messages each.
 */
const writers: GatewayClient[] = [];
for (let i = 0; i < 5; i += 1) {
  const token = await mintToken({ secret, sub: `flood-${i}`, ttlSeconds: 86_400 });
  writers.push(createGatewayClient({ url: gateway.url, token, transports: ['websocket'], directMessages: false }));
}

async function flood(): Promise<void> {
  const text = 'x'.repeat(2_000);
  const acks = await Promise.all(writers.map((writer) => Promise.all(Array.from({ length: 30 }, () => sendChat(writer, DEFAULT_CHAT_ROOM, text)))));
  const seqs = acks.flat().map((ack) => ack.seq);
  console.log(`flooded ${DEFAULT_CHAT_ROOM}: ${seqs.length} messages, ${Math.round((seqs.length * text.length) / 1024)} KiB, seqs ${Math.min(...seqs)}..${Math.max(...seqs)}`);
}

stopOnSignals('stopping the gateway', async () => {
  for (const writer of writers) writer.close();
  await stop();
});

readCommands({
  token: async (arg) => {
    const seconds = Number(arg);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) return console.log('token <seconds>: seconds must be an integer from 1 to 86400');
    console.log(`page with a token expiring in ${seconds} s: ${await pageUrl(seconds)}`);
  },
  flood,
  help: () => console.log(usage.slice(usage.indexOf('commands'))),
});
