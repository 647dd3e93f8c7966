import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * Every environment variable the gateway reads, with its default and meaning — the one table the
 * README prints (`npm run config-table`), the cdk8s constructs check their env against, and
 * `loadConfig` validates once at start-up.
 */
interface Setting<S extends z.ZodType> {
  readonly schema: S;
  /** The default as it would be written in the environment; `undefined` means "unset is allowed". */
  readonly default: string | undefined;
  readonly description: string;
}

function setting<S extends z.ZodType>(schema: S, defaultValue: string | undefined, description: string): Setting<S> {
  return { schema, default: defaultValue, description };
}

const port = z.coerce.number().int().min(0).max(65_535);
const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();
const bool = z.enum(['true', 'false']).transform((v) => v === 'true');
const optionalString = z.string().min(1).optional();

export const SETTINGS = {
  PORT: setting(port, '3000', 'TCP port of the public HTTP server: what clients use (Socket.IO, SSE, the demo page) plus `/healthz` and `/readyz` for edge health checks. 0 picks a free port.'),
  INTERNAL_PORT: setting(
    port,
    '9090',
    'TCP port of the internal HTTP server: `/metrics`, `/fleet`, `/admin/drain`, `/healthz`, `/readyz` (and the fleet view at `/` with `SERVE_WEB`). For the cluster only (kubelet probes, the drain controller, Prometheus, KEDA): no route exposes it, a NetworkPolicy guards it. 0 picks a free port.',
  ),
  HOST: setting(z.string().min(1), '127.0.0.1', 'Address to listen on. The image sets `0.0.0.0`.'),
  POD_NAME: setting(optionalString, undefined, 'Name this instance reports in fleet stats and to clients; defaults to the host name.'),
  LOG_LEVEL: setting(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info', 'pino log level.'),
  ADAPTER: setting(
    z.enum(['memory', 'redis', 'redis-cluster']),
    'memory',
    '`memory`: one process, state in memory (embedded demo). `redis`: `@socket.io/redis-adapter` over one Redis. `redis-cluster`: the sharded adapter over Redis Cluster (sharded pub/sub).',
  ),
  REDIS_URL: setting(
    z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://'),
    'redis://127.0.0.1:6379',
    'Redis for `ADAPTER=redis`. For `redis-cluster`, a comma-separated list of seed node URLs.',
  ),
  REDIS_PASSWORD: setting(optionalString, undefined, 'Redis password, when it is not in `REDIS_URL` (the Kubernetes profiles mount it from a Secret).'),
  KEY_PREFIX: setting(z.string().regex(/^[A-Za-z0-9:_-]{1,32}$/, 'must be 1-32 letters, digits, ":", "_" or "-"'), 'rt', 'Prefix of every Redis key and channel the gateway uses.'),
  HISTORY_SIZE: setting(positiveInt.max(100_000), '1000', 'Durable envelopes kept per room for resume; an older gap gets `room:reset` + snapshot.'),
  HISTORY_TTL_SECONDS: setting(positiveInt, '86400', 'A room\'s seq, history and state expire this long after its last message.'),
  FLEET_STATS_INTERVAL_MS: setting(positiveInt.min(100), '2000', 'How often each instance writes `{pod, sockets, ready, draining}` to Redis.'),
  FLEET_STATS_TTL_SECONDS: setting(positiveInt, '10', 'TTL of an instance\'s fleet-stats entry; a dead instance disappears after it.'),
  SERVE_WEB: setting(bool, 'true', 'Serve the demo page at `/` of the public port, and the fleet view at `/` of the internal port.'),
  NAMESPACES_FILE: setting(
    optionalString,
    undefined,
    'YAML or JSON file of channel namespaces and their policies (docs/namespaces.md), mounted from a ConfigMap. Unset: the demo\'s `counter`, `chat` and `user` namespaces (`app/gateway/namespaces.default.yaml`).',
  ),
  API_KEYS_FILE: setting(
    optionalString,
    undefined,
    'File of server API keys, one per line (at least 32 characters; `#` comments), mounted from a Secret; re-read within a second of a change, so a key is added or revoked without a restart. Unset: the server API on the internal port (`/api/*`, docs/server-api.md) is off.',
  ),
  API_MAX_BODY_BYTES: setting(positiveInt.max(16 * 1024 * 1024), '262144', 'Largest server API request body; past it: 413 `payload_too_large`.'),
  IDEMPOTENCY_WINDOW_SECONDS: setting(positiveInt.max(86_400), '300', 'How long a publish\'s `idempotencyKey` is remembered: a retry within it returns the first result (same seq) instead of publishing again.'),
  CORS_ORIGIN: setting(optionalString, undefined, 'Allowed cross-origin for Socket.IO and SSE (`*` or an origin). Unset: same origin only.'),

  AUTH_MODE: setting(
    z.enum(['jwt', 'none']),
    'jwt',
    '`jwt`: a JWT is required at the handshake. `none`: no auth, the client picks its user id — for the embedded demo only; `npm start` sets it explicitly.',
  ),
  JWT_SECRET: setting(z.string().min(32, 'must be at least 32 characters (256 bits) for HS256').optional(), undefined, 'Shared secret for HS256 tokens.'),
  JWT_PUBLIC_KEY_FILE: setting(optionalString, undefined, 'PEM (SPKI) public key file for RS256/ES256 tokens.'),
  JWT_JWKS_FILE: setting(optionalString, undefined, 'Local JWKS JSON file for RS256/ES256 tokens (mounted from a ConfigMap or Secret).'),
  JWT_ALGORITHMS: setting(
    z.string().regex(/^(HS256|RS256|ES256)(,(HS256|RS256|ES256))*$/, 'must be a comma-separated list of HS256, RS256, ES256').optional(),
    undefined,
    'Accepted algorithms. Default: HS256 with `JWT_SECRET`, else RS256,ES256. `none` is never accepted.',
  ),
  JWT_AUDIENCE: setting(optionalString, undefined, 'Required `aud` claim, when set.'),
  JWT_ISSUER: setting(optionalString, undefined, 'Required `iss` claim, when set.'),
  AUTH_REFRESH_LEAD_MS: setting(positiveInt, '30000', 'How long before a token\'s `exp` the gateway sends `auth:refresh`; at `exp` without a refresh the connection is closed with `token_expired`.'),

  PING_INTERVAL_MS: setting(positiveInt.min(1000), '20000', 'Socket.IO heartbeat interval. Interval + timeout stays below the common 60 s proxy idle timeout.'),
  PING_TIMEOUT_MS: setting(positiveInt.min(1000), '15000', 'How long a heartbeat may go unanswered before the peer is dropped.'),
  MAX_PAYLOAD_BYTES: setting(positiveInt.max(16 * 1024 * 1024), '65536', 'Largest inbound message (`maxHttpBufferSize`).'),
  RATE_LIMIT_PER_SECOND: setting(positiveInt, '20', 'Per-socket inbound events per second (token bucket refill); every event counts, known or not. Past it: `rate_limited` ack with `retryAfterMs`.'),
  RATE_LIMIT_BURST: setting(positiveInt, '40', 'Per-socket token bucket size.'),
  MAX_CONNECTIONS: setting(positiveInt, '10000', 'Connections one instance holds (Engine.IO connections); past it handshakes are refused with the retryable `over_capacity`.'),
  MAX_CONNECTIONS_PER_SECOND: setting(positiveInt, '500', 'New handshakes per second one instance accepts (token bucket of the same size); past it: `over_capacity`.'),
  SLOW_CONSUMER_HIGH_WATER_BYTES: setting(positiveInt, '262144', 'Unsent bytes past which a socket gets coalesced counter updates: only the latest value, as a `room:reset` at its seq once it drains.'),
  SLOW_CONSUMER_LIMIT_BYTES: setting(positiveInt, '1048576', 'Unsent bytes past which a connection (socket or SSE stream) is closed with `slow_consumer` (it reconnects and resumes). Past `SLOW_CONSUMER_HIGH_WATER_BYTES`, requests are refused with `send_backlog`.'),
  SLOW_CONSUMER_STALL_MS: setting(positiveInt.min(1000), '30000', 'A connection with unsent bytes of which the peer has taken none for this long is closed as `slow_consumer`, heartbeats or not.'),
  HISTORY_PAGE_BYTES: setting(positiveInt.min(4096), '131072', 'Most bytes of envelopes one `history:fetch` ack or one `room:join` replay carries; the rest comes in further pages (`more: true`). At most `SLOW_CONSUMER_LIMIT_BYTES - SLOW_CONSUMER_HIGH_WATER_BYTES`.'),
  CONNECT_TIMEOUT_MS: setting(positiveInt.min(500), '10000', 'A transport that has not completed its Socket.IO CONNECT and authentication within this long is closed.'),
  MAX_CONNECTIONS_PER_USER: setting(positiveInt, '50', 'Sockets and SSE streams one user (token `sub`) may hold on one instance; past it: `too_many_connections`.'),
  USER_RATE_LIMIT_PER_SECOND: setting(positiveInt, '60', 'Inbound events per second of one user across all its sockets on one instance (token bucket); past it: `rate_limited`.'),
  USER_RATE_LIMIT_BURST: setting(positiveInt, '120', 'Per-user token bucket size.'),
  INBOUND_BYTES_PER_SECOND: setting(positiveInt, '131072', 'Inbound bytes per second one connection may send (token bucket, counted before a frame is decoded); past it the connection is closed.'),
  INBOUND_BYTES_BURST: setting(positiveInt, '524288', 'Per-connection inbound byte bucket size; at least `MAX_PAYLOAD_BYTES`.'),
  MAX_ROOMS_PER_CONNECTION: setting(positiveInt, '100', 'Rooms one socket may follow at once; past it `room:join` is refused with `room_limit`.'),

  ADMIN_TOKEN: setting(z.string().min(16, 'must be at least 16 characters').optional(), undefined, 'Bearer token for `GET`/`POST /admin/drain` on the internal port. Unset: the admin endpoint is disabled.'),
  DRAIN_NOTICE_DELAY_MS: setting(nonNegativeInt, '2000', 'After a drain starts (not ready), keep serving this long so the edge stops routing here.'),
  DRAIN_WINDOW_MS: setting(positiveInt, '20000', 'Paced closes are spread over this window.'),
  DRAIN_RATE_PER_SECOND: setting(nonNegativeInt, '0', 'Socket closes per second while draining; 0 spreads them evenly over the window.'),
  DRAIN_JITTER_MS: setting(nonNegativeInt, '20000', 'Clients are told to reconnect after a delay in [0, this] (`server:draining`), capped at the drain window; SDK clients honour it, so it sets the reconnect rate the survivors see.'),
  SHUTDOWN_DEADLINE_MS: setting(positiveInt, '28000', 'Hard deadline from SIGTERM to exit; set below `terminationGracePeriodSeconds`.'),
  RECOVERY_MAX_DISCONNECTION_MS: setting(
    nonNegativeInt.max(86_400_000),
    '120000',
    'Socket.IO connection state recovery for stock clients, on any pod (docs/stock-clients.md): a client disconnected at most this long gets its rooms and every missed message back (`socket.recovered`); longer, or past the history, it resyncs. 0 turns recovery off.',
  ),
} as const;

export type SettingName = keyof typeof SETTINGS;
type Parsed = { [K in SettingName]: z.output<(typeof SETTINGS)[K]['schema']> };

export interface GatewayConfig extends Omit<Parsed, 'POD_NAME'> {
  readonly POD_NAME: string;
}

/** Thrown for bad configuration; the message names each bad variable and what it allows. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function describeAllowed(schema: z.ZodType): string {
  const inner = schema instanceof z.ZodOptional ? schema.unwrap() : schema;
  if (inner instanceof z.ZodEnum) return `one of ${inner.options.map(String).join(', ')}`;
  return '';
}

/** Parses and validates the environment once; throws `ConfigError` naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingName, Setting<z.ZodType>][]) {
    const raw = env[name] === '' ? undefined : env[name];
    const value = raw ?? spec.default;
    const result = spec.schema.safeParse(value);
    if (result.success) {
      out[name] = result.data;
    } else {
      const allowed = describeAllowed(spec.schema);
      const why = allowed ? `must be ${allowed}` : result.error.issues.map((i) => i.message).join('; ');
      problems.push(`${name}=${JSON.stringify(value)}: ${why}`);
    }
  }
  out.POD_NAME ??= hostname();
  const config = out as unknown as GatewayConfig;
  if (problems.length === 0) problems.push(...crossChecks(config));
  if (problems.length > 0) {
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}\nSee the configuration table in README.md.`);
  }
  return config;
}

function crossChecks(c: GatewayConfig): string[] {
  const problems: string[] = [];
  if (c.AUTH_MODE === 'jwt' && !c.JWT_SECRET && !c.JWT_PUBLIC_KEY_FILE && !c.JWT_JWKS_FILE) {
    problems.push('AUTH_MODE=jwt needs one of JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE; for a local demo set AUTH_MODE=none');
  }
  if (c.RATE_LIMIT_BURST < c.RATE_LIMIT_PER_SECOND) {
    problems.push(`RATE_LIMIT_BURST=${c.RATE_LIMIT_BURST} must be at least RATE_LIMIT_PER_SECOND=${c.RATE_LIMIT_PER_SECOND}`);
  }
  if (c.SLOW_CONSUMER_LIMIT_BYTES <= c.SLOW_CONSUMER_HIGH_WATER_BYTES) {
    problems.push(`SLOW_CONSUMER_LIMIT_BYTES=${c.SLOW_CONSUMER_LIMIT_BYTES} must be above SLOW_CONSUMER_HIGH_WATER_BYTES=${c.SLOW_CONSUMER_HIGH_WATER_BYTES}`);
  }
  if (c.HISTORY_PAGE_BYTES > c.SLOW_CONSUMER_LIMIT_BYTES - c.SLOW_CONSUMER_HIGH_WATER_BYTES) {
    problems.push(
      `HISTORY_PAGE_BYTES=${c.HISTORY_PAGE_BYTES} must be at most SLOW_CONSUMER_LIMIT_BYTES - SLOW_CONSUMER_HIGH_WATER_BYTES = ${c.SLOW_CONSUMER_LIMIT_BYTES - c.SLOW_CONSUMER_HIGH_WATER_BYTES}, so one page never cuts a connection that asked for it below the high-water mark`,
    );
  }
  if (c.USER_RATE_LIMIT_BURST < c.USER_RATE_LIMIT_PER_SECOND) {
    problems.push(`USER_RATE_LIMIT_BURST=${c.USER_RATE_LIMIT_BURST} must be at least USER_RATE_LIMIT_PER_SECOND=${c.USER_RATE_LIMIT_PER_SECOND}`);
  }
  if (c.INBOUND_BYTES_BURST < c.MAX_PAYLOAD_BYTES) {
    problems.push(`INBOUND_BYTES_BURST=${c.INBOUND_BYTES_BURST} must be at least MAX_PAYLOAD_BYTES=${c.MAX_PAYLOAD_BYTES}, or a message of the allowed size could never be received`);
  }
  if (c.PORT !== 0 && c.PORT === c.INTERNAL_PORT) {
    problems.push(`INTERNAL_PORT=${c.INTERNAL_PORT} must differ from PORT=${c.PORT}: the internal port must be one no route exposes`);
  }
  const drainBudget = c.DRAIN_NOTICE_DELAY_MS + c.DRAIN_WINDOW_MS;
  if (c.SHUTDOWN_DEADLINE_MS <= drainBudget) {
    problems.push(`SHUTDOWN_DEADLINE_MS=${c.SHUTDOWN_DEADLINE_MS} must be above DRAIN_NOTICE_DELAY_MS + DRAIN_WINDOW_MS = ${drainBudget}`);
  }
  if (c.PING_INTERVAL_MS + c.PING_TIMEOUT_MS >= 60_000) {
    problems.push(`PING_INTERVAL_MS + PING_TIMEOUT_MS = ${c.PING_INTERVAL_MS + c.PING_TIMEOUT_MS} must stay below 60000, the idle timeout of common proxies`);
  }
  return problems;
}

/** The README's configuration table, generated from `SETTINGS`. */
export function configTable(): string {
  const rows = Object.entries(SETTINGS).map(([name, spec]) => {
    const def = spec.default === undefined ? '—' : `\`${spec.default}\``;
    return `| \`${name}\` | ${def} | ${spec.description} |`;
  });
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}
