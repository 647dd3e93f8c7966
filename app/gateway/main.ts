import { ConfigError, loadConfig } from './config.ts';
import { createGateway } from './gateway.ts';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`gateway: ${err.message}`);
  process.exit(2);
}

const gateway = await createGateway(config);
const url = await gateway.listen();
gateway.log.info({ url: url.href, adapter: config.ADAPTER, auth: config.AUTH_MODE }, `listening on ${url.href}`);

async function shutdown(signal: string): Promise<void> {
  gateway.log.info({ signal }, 'shutting down');
  await gateway.close();
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
