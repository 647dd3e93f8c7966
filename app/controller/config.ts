import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * The controller's environment, parsed and validated once at start-up (like the gateway's
 * config.ts): a bad value stops it with exit code 2 and a message naming the variable.
 * The Kubernetes connection is not here: `KUBECONFIG` when set, else the in-cluster service account.
 */

const seconds = z.coerce.number().positive().max(3_600);
const optionalString = z.string().min(1).optional();

export const CONTROLLER_SETTINGS = {
  WATCH_NAMESPACE: { schema: optionalString, description: 'Namespace whose SocketGateways, gateway pods and Deployments it manages. Default: its own (POD_NAMESPACE, else the service account\'s).' },
  POD_NAMESPACE: { schema: optionalString, description: 'The controller\'s own namespace (downward API); the Lease lives there.' },
  POD_NAME: { schema: optionalString, description: 'Identity in the Lease and in Events. Default: the host name.' },
  PORT: { schema: z.coerce.number().int().min(0).max(65_535).default(8080), description: 'Port of /healthz, /readyz and /metrics.' },
  HOST: { schema: z.string().min(1).default('127.0.0.1'), description: 'Address to listen on. The manifests set 0.0.0.0.' },
  LOG_LEVEL: { schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), description: 'pino log level.' },
  REDIS_URL: { schema: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').default('redis://127.0.0.1:6379'), description: 'The gateways\' Redis (fleet stats, drain plans). Redis Cluster: comma-separated seed URLs.' },
  REDIS_PASSWORD: { schema: optionalString, description: 'Redis password, when it is not in REDIS_URL.' },
  REDIS_CLUSTER: { schema: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'), description: 'REDIS_URL is a Redis Cluster.' },
  KEY_PREFIX: { schema: z.string().regex(/^[A-Za-z0-9:_-]{1,32}$/).default('rt'), description: 'The gateways\' KEY_PREFIX.' },
  ADMIN_TOKEN: { schema: z.string().min(16, 'must be at least 16 characters'), description: 'Bearer token of the gateways\' POST /admin/drain (their ADMIN_TOKEN).' },
  ADMIN_TIMEOUT_MS: { schema: z.coerce.number().int().min(100).max(60_000).default(2_000), description: 'Timeout of one call to a pod\'s admin endpoint.' },
  LEASE_NAME: { schema: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/).max(253).default('realtime-gateway-controller'), description: 'coordination.k8s.io Lease of the leader election.' },
  LEASE_DURATION_SECONDS: { schema: seconds.default(15), description: 'How long a standby waits after the last renewal it saw before taking over.' },
  LEASE_RENEW_DEADLINE_SECONDS: { schema: seconds.optional(), description: 'The leader gives up leadership (and exits) when it could not renew for this long. Default: 2/3 of the lease duration.' },
  LEASE_RETRY_PERIOD_SECONDS: { schema: seconds.optional(), description: 'Interval between tries to acquire or renew. Default: 2/15 of the lease duration (2 s of 15 s).' },
  SHUTDOWN_TIMEOUT_MS: { schema: z.coerce.number().int().min(0).max(60_000).default(5_000), description: 'On SIGTERM, wait this long for a reconcile in flight before releasing the Lease.' },
} as const;

type Settings = typeof CONTROLLER_SETTINGS;
type Parsed = { [K in keyof Settings]: z.output<Settings[K]['schema']> };

export interface ControllerConfig extends Omit<Parsed, 'WATCH_NAMESPACE' | 'POD_NAMESPACE' | 'POD_NAME' | 'LEASE_RENEW_DEADLINE_SECONDS' | 'LEASE_RETRY_PERIOD_SECONDS'> {
  readonly WATCH_NAMESPACE: string;
  readonly POD_NAMESPACE: string;
  readonly POD_NAME: string;
  readonly LEASE_RENEW_DEADLINE_SECONDS: number;
  readonly LEASE_RETRY_PERIOD_SECONDS: number;
}

export class ConfigError extends Error {}

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export function loadControllerConfig(env: Record<string, string | undefined> = process.env): ControllerConfig {
  const parsed: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, setting] of Object.entries(CONTROLLER_SETTINGS)) {
    const raw = env[name] === '' ? undefined : env[name];
    const result = (setting.schema as z.ZodType).safeParse(raw);
    if (result.success) parsed[name] = result.data;
    else problems.push(`${name}=${raw === undefined ? '(unset)' : JSON.stringify(raw)}: ${result.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length > 0) throw new ConfigError(`invalid controller configuration:\n  ${problems.join('\n  ')}`);
  const own = (parsed.POD_NAMESPACE as string | undefined) ?? readServiceAccountNamespace() ?? 'default';
  const duration = parsed.LEASE_DURATION_SECONDS as number;
  const config: ControllerConfig = {
    ...(parsed as Parsed),
    LEASE_RENEW_DEADLINE_SECONDS: (parsed.LEASE_RENEW_DEADLINE_SECONDS as number | undefined) ?? (duration * 2) / 3,
    LEASE_RETRY_PERIOD_SECONDS: (parsed.LEASE_RETRY_PERIOD_SECONDS as number | undefined) ?? (duration * 2) / 15,
    POD_NAMESPACE: own,
    WATCH_NAMESPACE: (parsed.WATCH_NAMESPACE as string | undefined) ?? own,
    POD_NAME: (parsed.POD_NAME as string | undefined) ?? hostname(),
  };
  if (config.LEASE_RENEW_DEADLINE_SECONDS >= config.LEASE_DURATION_SECONDS) {
    throw new ConfigError(`LEASE_RENEW_DEADLINE_SECONDS=${config.LEASE_RENEW_DEADLINE_SECONDS} must be below LEASE_DURATION_SECONDS=${config.LEASE_DURATION_SECONDS}`);
  }
  if (config.LEASE_RETRY_PERIOD_SECONDS >= config.LEASE_RENEW_DEADLINE_SECONDS) {
    throw new ConfigError(`LEASE_RETRY_PERIOD_SECONDS=${config.LEASE_RETRY_PERIOD_SECONDS} must be below LEASE_RENEW_DEADLINE_SECONDS=${config.LEASE_RENEW_DEADLINE_SECONDS}`);
  }
  return config;
}

function readServiceAccountNamespace(): string | undefined {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
