import { ConfigError, type GatewayConfig, loadConfig } from './config.ts';
import { createGateway } from './gateway.ts';
import { loadNamespaces, type Namespaces } from './namespaces.ts';

let config: GatewayConfig;
let namespaces: Namespaces;
try {
  config = loadConfig();
  namespaces = loadNamespaces(config);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`gateway: ${err.message}`);
  process.exit(2);
}

let gateway: Awaited<ReturnType<typeof createGateway>>;
try {
  gateway = await createGateway(config, undefined, namespaces);
} catch (err) {
  // Key files, algorithm lists and the API keys file are checked while the gateway is built: still a misconfiguration.
  if (!(err instanceof ConfigError)) throw err;
  const message = err.message.startsWith('invalid configuration') ? err.message : `invalid configuration: ${err.message}\nSee the configuration table in README.md.`;
  console.error(`gateway: ${message}`);
  process.exit(2);
}
let urls: Awaited<ReturnType<typeof gateway.listen>>;
try {
  urls = await gateway.listen();
} catch (err) {
  console.error(`gateway: cannot listen on PORT=${config.PORT} and INTERNAL_PORT=${config.INTERNAL_PORT} (HOST=${config.HOST}): ${(err as Error).message}`);
  process.exit(1);
}
const { url, internalUrl } = urls;
gateway.log.info(
  { url: url.href, internalUrl: internalUrl.href, adapter: config.ADAPTER, auth: config.AUTH_MODE },
  `listening on ${url.href} (clients) and ${internalUrl.href} (internal: metrics, fleet, admin)`,
);
// Logs are JSON for machines; a person at a terminal also gets the pages to open.
if (process.stdout.isTTY && config.SERVE_WEB) process.stderr.write(`\n  demo page:  ${url.href}\n  fleet view: ${internalUrl.href}\n\n`);

let stopping = false;

/** SIGTERM is what the kubelet sends on pod deletion: drain (docs/drain.md), then exit 0 before the deadline. */
async function drainAndExit(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const deadlineAt = Date.now() + config.SHUTDOWN_DEADLINE_MS;
  // Whatever hangs (a Redis QUIT to an unreachable server), the process is gone before SIGKILL.
  setTimeout(() => {
    gateway.log.warn({ deadlineMs: config.SHUTDOWN_DEADLINE_MS }, 'shutdown deadline reached; exiting now');
    process.exit(0);
  }, Math.max(0, config.SHUTDOWN_DEADLINE_MS - 100));
  gateway.log.info({ signal: 'SIGTERM', deadlineMs: config.SHUTDOWN_DEADLINE_MS }, 'draining before exit');
  await gateway.drain.finishBy(deadlineAt);
  const closingAt = Date.now();
  await gateway.close();
  gateway.log.info({ tookMs: Date.now() - (deadlineAt - config.SHUTDOWN_DEADLINE_MS), closeMs: Date.now() - closingAt }, 'drained; exiting');
  process.exit(0);
}

/** Ctrl-C in a terminal: no drain, close at once. */
async function closeNow(): Promise<void> {
  if (stopping) return;
  stopping = true;
  gateway.log.info({ signal: 'SIGINT' }, 'shutting down');
  await gateway.close();
  process.exit(0);
}

process.on('SIGTERM', () => void drainAndExit());
process.on('SIGINT', () => void closeNow());
