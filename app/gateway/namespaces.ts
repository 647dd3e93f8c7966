import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NAMESPACE_PATTERN, namespaceOf, ProtocolError, userRoom } from '../protocol/index.ts';
import { ConfigError, type GatewayConfig } from './config.ts';

/** The namespace configuration the gateway uses when `NAMESPACES_FILE` is unset: the demo's rooms. */
export const DEFAULT_NAMESPACES_FILE = fileURLToPath(new URL('./namespaces.default.yaml', import.meta.url));

export const JOIN_POLICIES = ['authenticated', 'claim', 'token', 'owner', 'public'] as const;
export type JoinPolicy = (typeof JOIN_POLICIES)[number];

/** A claim pattern: a room where `*` stands for any run of name characters (`orders:acme-*`). */
const claimPatternSchema = z.string().max(200).regex(/^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._*-]{1,64}$/, 'must be "<namespace>:<name>" where the name may contain * wildcards');

const namespaceSchema = z
  .strictObject({
    /** Who may join: any authenticated user, rooms listed in a JWT claim, a subscription token, the owner, or anyone. */
    join: z.enum(JOIN_POLICIES),
    /** For `join: claim`: the JWT claim holding the room patterns the user may join. */
    claim: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/).default('rooms'),
    /** Who may publish with the `publish` event: nobody (server-only) or the room's members. */
    publish: z.enum(['none', 'members']).default('none'),
    /** Types clients may publish; unset: any application type. */
    types: z.array(z.string().regex(/^[a-z][a-z0-9_-]{0,31}(:[a-z0-9][a-z0-9_-]{0,31}){1,3}$/, 'must be "scope:event"')).min(1).optional(),
    /** Largest client payload, as JSON bytes. */
    maxPayloadBytes: z.number().int().positive().max(1_048_576).default(16_384),
    /** JSON Schema (draft-07) every client payload must match; compiled once at start-up. */
    schema: z.record(z.string(), z.unknown()).optional(),
    /** Envelopes kept per room and how long a quiet room's keys live; `size: 0` makes rooms live-only (no resume). */
    history: z
      .strictObject({
        size: z.number().int().nonnegative().max(100_000).optional(),
        ttlSeconds: z.number().int().nonnegative().max(31_536_000).optional(),
      })
      .default({}),
    /** Keep who is in each room across the fleet and send `presence:join`/`presence:leave`. */
    presence: z.boolean().default(false),
    /**
     * Server-side operations of the demo: `counter` rooms answer `counter:increment`/`counter:read` (an
     * atomic increment in the backplane); `direct` rooms receive `dm:send`; `chat` rooms accept `chat:send`.
     */
    operations: z.array(z.enum(['counter', 'direct', 'chat'])).default([]),
  })
  .superRefine((ns, ctx) => {
    if (ns.join !== 'claim' && ns.claim !== 'rooms') ctx.addIssue({ code: 'custom', path: ['claim'], message: 'only applies to join: claim' });
    if (ns.publish === 'none' && (ns.types || ns.schema)) {
      ctx.addIssue({ code: 'custom', path: [ns.types ? 'types' : 'schema'], message: 'only applies to publish: members' });
    }
  });

export const namespaceFileSchema = z.strictObject({
  namespaces: z
    .record(z.string().regex(NAMESPACE_PATTERN, 'namespace names are 1-32 lower-case letters, digits, "_" or "-", starting with a letter'), namespaceSchema)
    .refine((all) => Object.keys(all).length > 0, 'declare at least one namespace'),
});

export type NamespaceSpec = z.output<typeof namespaceSchema>;

/** One namespace, resolved: its policy with the history settings filled in and its schema compiled. */
export interface Namespace extends Omit<NamespaceSpec, 'history' | 'schema'> {
  readonly name: string;
  readonly history: { readonly size: number; readonly ttlSeconds: number };
  /** TTL of the room's seq and state keys: the history TTL, or the global one for live-only rooms. */
  readonly keyTtlSeconds: number;
  /** Null when the payload is valid, else what is wrong with it. */
  validatePayload(payload: unknown): string | null;
  /** `payload` validation + type + size checks for a client publish; throws `ProtocolError`. */
  checkClientPublish(type: string, payload: unknown): void;
}

export interface Namespaces {
  readonly all: readonly Namespace[];
  /** The namespace of `room`; throws `unknown_namespace`. */
  resolve(room: string): Namespace;
  /** True when some namespace lets anonymous connections in. */
  readonly anyPublic: boolean;
  /** The metric label of `room`: its namespace when declared, else `unknown` (labels never carry rooms). */
  labelOf(room: string): string;
}

/** A claim pattern as a RegExp: `*` matches any run of name characters, everything else literally. */
export function claimPatternMatches(pattern: string, room: string): boolean {
  if (!claimPatternSchema.safeParse(pattern).success) return false;
  const source = pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('[A-Za-z0-9._-]*');
  return new RegExp(`^${source}$`).test(room);
}

/**
 * Reads, validates and compiles the namespace file (`NAMESPACES_FILE`, else the shipped default).
 * Throws `ConfigError` naming the file and the field, so main.ts exits 2 without a stack trace.
 */
export function loadNamespaces(config: Pick<GatewayConfig, 'NAMESPACES_FILE' | 'HISTORY_SIZE' | 'HISTORY_TTL_SECONDS' | 'AUTH_MODE'>): Namespaces {
  const file = config.NAMESPACES_FILE ?? DEFAULT_NAMESPACES_FILE;
  const where = config.NAMESPACES_FILE ? `NAMESPACES_FILE=${file}` : `the default namespace file ${file}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  ${where}: cannot be read (${(err as Error).message}); mount the namespace ConfigMap there or unset NAMESPACES_FILE`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  ${where}: not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  return compileNamespaces(raw, config, where);
}

/** Validates and compiles an already-parsed namespace document (tests use this directly). */
export function compileNamespaces(
  raw: unknown,
  config: Pick<GatewayConfig, 'HISTORY_SIZE' | 'HISTORY_TTL_SECONDS' | 'AUTH_MODE'>,
  where = 'the namespace configuration',
): Namespaces {
  const parsed = namespaceFileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${[...i.path].map(String).join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${where}:\n    ${problems.join('\n    ')}\nSee docs/namespaces.md.`);
  }
  const ajv = new Ajv({ allErrors: false, strict: true });
  const problems: string[] = [];
  const all: Namespace[] = [];
  for (const [name, spec] of Object.entries(parsed.data.namespaces)) {
    let validate: ValidateFunction | null = null;
    if (spec.schema) {
      try {
        validate = ajv.compile(spec.schema);
      } catch (err) {
        problems.push(`namespaces.${name}.schema: not a valid JSON Schema: ${(err as Error).message}`);
        continue;
      }
    }
    if (spec.join === 'token' && config.AUTH_MODE !== 'jwt') {
      problems.push(`namespaces.${name}.join: token needs AUTH_MODE=jwt (subscription tokens are verified with the JWT key)`);
    }
    const size = spec.history.size ?? config.HISTORY_SIZE;
    const ttlSeconds = spec.history.ttlSeconds ?? config.HISTORY_TTL_SECONDS;
    // A TTL of 0 means what a size of 0 means: nothing is kept.
    const history = ttlSeconds === 0 || size === 0 ? { size: 0, ttlSeconds: 0 } : { size, ttlSeconds };
    const validatePayload = (payload: unknown): string | null => {
      if (!validate || validate(payload)) return null;
      const error = validate.errors?.[0];
      return error ? `${error.instancePath || '(payload)'} ${error.message ?? 'is invalid'}` : 'does not match the schema';
    };
    all.push({
      ...spec,
      name,
      history,
      keyTtlSeconds: history.ttlSeconds || config.HISTORY_TTL_SECONDS,
      validatePayload,
      checkClientPublish(type, payload) {
        if (spec.publish !== 'members') throw new ProtocolError('forbidden', `clients may not publish in the ${name} namespace (publish: none); the application's backend publishes there`);
        if (spec.types && !spec.types.includes(type)) {
          throw new ProtocolError('payload_invalid', `type ${type} is not allowed in the ${name} namespace; allowed: ${spec.types.join(', ')}`);
        }
        const bytes = Buffer.byteLength(JSON.stringify(payload) ?? 'null');
        if (bytes > spec.maxPayloadBytes) {
          throw new ProtocolError('payload_too_large', `payload is ${bytes} bytes; the ${name} namespace allows at most ${spec.maxPayloadBytes}`);
        }
        const invalid = validatePayload(payload);
        if (invalid) throw new ProtocolError('payload_invalid', `payload does not match the ${name} namespace's schema: ${invalid}`);
      },
    });
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${where}:\n    ${problems.join('\n    ')}\nSee docs/namespaces.md.`);
  const byName = new Map(all.map((ns) => [ns.name, ns]));
  return {
    all,
    anyPublic: all.some((ns) => ns.join === 'public'),
    labelOf: (room) => (byName.has(namespaceOf(room)) ? namespaceOf(room) : 'unknown'),
    resolve(room) {
      const ns = byName.get(namespaceOf(room));
      if (!ns) {
        throw new ProtocolError('unknown_namespace', `room ${room} is in no declared namespace; this gateway has: ${[...byName.keys()].join(', ')}`);
      }
      return ns;
    },
  };
}

/** What a join check needs to know about the connection. */
export interface JoinIdentity {
  readonly userId: string;
  readonly anonymous?: boolean;
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** Verifies a subscription token for `room` and `userId`; throws `ProtocolError` (auth.ts implements it). */
export type SubscriptionTokenVerifier = (token: string, room: string, userId: string) => Promise<void>;

/**
 * May `identity` join `room` (or read its history)? Throws `ProtocolError` with the reason. The same
 * check guards `room:join`, `history:fetch` of a room not joined, and `GET /sse`.
 */
export async function authorizeJoin(
  ns: Namespace,
  room: string,
  identity: JoinIdentity,
  token: string | undefined,
  verifyToken: SubscriptionTokenVerifier | null,
): Promise<void> {
  if (ns.join === 'public') return;
  if (identity.anonymous) {
    throw new ProtocolError('auth_required', `the ${ns.name} namespace needs a signed-in user; this connection is anonymous (connect with auth: {token})`);
  }
  switch (ns.join) {
    case 'authenticated':
      return;
    case 'owner':
      if (room !== userRoom(identity.userId)) {
        throw new ProtocolError('forbidden', `${room} belongs to another user; you may only join ${userRoom(identity.userId)}`);
      }
      return;
    case 'claim': {
      const listed = identity.claims?.[ns.claim];
      const patterns = Array.isArray(listed) ? listed.filter((p): p is string => typeof p === 'string') : typeof listed === 'string' ? [listed] : [];
      if (!patterns.some((pattern) => claimPatternMatches(pattern, room))) {
        throw new ProtocolError('forbidden', `${room} is not among the rooms your token's "${ns.claim}" claim lists`);
      }
      return;
    }
    case 'token':
      if (!token) throw new ProtocolError('subscription_token_invalid', `${room} needs a subscription token: join with {room, token} (ask the application's backend for one)`);
      if (!verifyToken) throw new ProtocolError('subscription_token_invalid', 'subscription tokens cannot be verified on this gateway (AUTH_MODE=none)');
      return verifyToken(token, room, identity.userId);
  }
}
