import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { App, Chart } from 'cdk8s';
import { stringify } from 'yaml';
import { GATEWAY_SETTING_DEFAULTS, GATEWAY_SETTING_NAMES } from '../generated/gateway-settings.ts';
import { resolveDrainTiming } from '../drain-timing.ts';
import { OWNED_SETTINGS } from '../gateway.ts';
import { RealtimeGateway } from '../realtime-gateway.ts';
import type { Manifest } from '../synth.ts';
import { VALUE_ENUMS } from './schema.ts';
import { CHART_NAME, DEFAULT_VALUES, identityFor, propsFromValues, type ChartIdentity, type ChartValues, type HelmContext } from './values.ts';

/**
 * Generates the Helm chart's templates from the constructs: synthesize with a sentinel for every
 * value, turn sentinels into `{{ }}` expressions, and synthesize every structural variant (entry kind,
 * autoscaling mode, Redis mode, TLS, host, auth secret, ...) so objects and fields that exist only in
 * some variants are wrapped in `{{- if }}` with conditions computed from where they appear.
 */

/** Synthesizes the objects the chart renders for `values` (tests compare this with `helm template`). */
export function synthChartObjects(
  values: ChartValues,
  context: HelmContext,
  identity: ChartIdentity = identityFor(values, context),
  generated?: Parameters<typeof propsFromValues>[2],
): Manifest[] {
  const app = new App({ outdir: '/nonexistent' });
  const chart = new Chart(app, 'chart', { namespace: context.namespace, disableResourceNameHashes: true });
  new RealtimeGateway(chart, 'RealtimeGateway', propsFromValues(values, identity, generated));
  return chart.toJson() as Manifest[];
}

// ---- dimensions: values that change which objects or fields exist ----

type Assignment = Record<string, string>;

interface Dimension {
  readonly key: string;
  readonly options: readonly string[];
  /** The dimension matters only when this holds; otherwise every option renders the same. */
  readonly onlyWhen?: (a: Assignment) => boolean;
  /** The options are the values the chart accepts; validate.yaml fails any other. */
  readonly enumerated?: boolean;
  apply(values: ChartValues, option: string): void;
  condition(option: string): string;
}

const OWN_ENVOY_PROXY = 'and (eq $.Values.entry.kind "gatewayApi") $.Values.entry.gatewayApi.envoyPolicies (not $.Values.entry.gatewayApi.parentRefs)';

const DIMENSIONS: readonly Dimension[] = [
  {
    key: 'autoscaling.mode',
    options: VALUE_ENUMS['autoscaling.mode']!,
    enumerated: true,
    apply: (v, o) => (v.autoscaling.mode = o as ChartValues['autoscaling']['mode']),
    condition: (o) => `eq $.Values.autoscaling.mode "${o}"`,
  },
  {
    key: 'entry.kind',
    options: VALUE_ENUMS['entry.kind']!,
    enumerated: true,
    apply: (v, o) => (v.entry.kind = o as ChartValues['entry']['kind']),
    condition: (o) => `eq $.Values.entry.kind "${o}"`,
  },
  {
    key: 'entry.ingress.controller',
    options: VALUE_ENUMS['entry.ingress.controller']!,
    enumerated: true,
    onlyWhen: (a) => a['entry.kind'] === 'ingress',
    apply: (v, o) => (v.entry.ingress.controller = o as ChartValues['entry']['ingress']['controller']),
    condition: (o) => `eq $.Values.entry.ingress.controller "${o}"`,
  },
  {
    key: 'entry.tls.enabled',
    options: ['false', 'true'],
    apply: (v, o) => (v.entry.tls.enabled = o === 'true'),
    condition: (o) => (o === 'true' ? '$.Values.entry.tls.enabled' : 'not $.Values.entry.tls.enabled'),
  },
  {
    // Only where it changes the cookie: an Ingress that terminates TLS marks it Secure anyway.
    key: 'entry.cookieSecure',
    options: ['false', 'true'],
    onlyWhen: (a) => a['entry.kind'] === 'haproxy' || (a['entry.kind'] === 'ingress' && a['entry.tls.enabled'] === 'false'),
    apply: (v, o) => (v.entry.cookieSecure = o === 'true'),
    condition: (o) => (o === 'true' ? '$.Values.entry.cookieSecure' : 'not $.Values.entry.cookieSecure'),
  },
  {
    key: 'entry.haproxy.serviceType',
    options: VALUE_ENUMS['entry.haproxy.serviceType']!,
    enumerated: true,
    onlyWhen: (a) => a['entry.kind'] === 'haproxy',
    apply: (v, o) => (v.entry.haproxy.serviceType = o as ChartValues['entry']['haproxy']['serviceType']),
    condition: (o) => `eq $.Values.entry.haproxy.serviceType "${o}"`,
  },
  {
    key: 'entry.haproxy.nodePort',
    options: ['empty', 'set'],
    onlyWhen: (a) => a['entry.kind'] === 'haproxy',
    apply: (v, o) => {
      if (o === 'empty') v.entry.haproxy.nodePort = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.entry.haproxy.nodePort' : 'not $.Values.entry.haproxy.nodePort'),
  },
  {
    key: 'entry.host',
    options: ['empty', 'set'],
    // HAProxy serves any host.
    onlyWhen: (a) => a['entry.kind'] !== 'haproxy',
    apply: (v, o) => {
      if (o === 'empty') v.entry.host = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.entry.host' : 'not $.Values.entry.host'),
  },
  {
    key: 'entry.gatewayApi.parentRefs',
    options: ['empty', 'set'],
    onlyWhen: (a) => a['entry.kind'] === 'gatewayApi',
    apply: (v, o) => {
      if (o === 'empty') v.entry.gatewayApi.parentRefs = [];
    },
    condition: (o) => (o === 'set' ? '$.Values.entry.gatewayApi.parentRefs' : 'not $.Values.entry.gatewayApi.parentRefs'),
  },
  {
    // Not a switch: it also adds the Gateway's infrastructure.parametersRef to the EnvoyProxy.
    key: 'entry.gatewayApi.envoyPolicies',
    options: ['true', 'false'],
    onlyWhen: (a) => a['entry.kind'] === 'gatewayApi',
    apply: (v, o) => (v.entry.gatewayApi.envoyPolicies = o === 'true'),
    condition: (o) => (o === 'true' ? '$.Values.entry.gatewayApi.envoyPolicies' : 'not $.Values.entry.gatewayApi.envoyPolicies'),
  },
  {
    key: 'redis.mode',
    options: VALUE_ENUMS['redis.mode']!,
    enumerated: true,
    apply: (v, o) => (v.redis.mode = o as ChartValues['redis']['mode']),
    condition: (o) => `eq $.Values.redis.mode "${o}"`,
  },
  {
    key: 'redis.external.cluster',
    options: ['false', 'true'],
    onlyWhen: (a) => a['redis.mode'] === 'external',
    apply: (v, o) => (v.redis.external.cluster = o === 'true'),
    condition: (o) => (o === 'true' ? '$.Values.redis.external.cluster' : 'not $.Values.redis.external.cluster'),
  },
  {
    key: 'redis.internal.existingSecret',
    options: ['empty', 'set'],
    onlyWhen: (a) => a['redis.mode'] === 'internal',
    apply: (v, o) => {
      if (o === 'empty') v.redis.internal.existingSecret = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.redis.internal.existingSecret' : 'not $.Values.redis.internal.existingSecret'),
  },
  {
    // HS256 or a public-key algorithm (RS256, ES256: the mode's value itself is JWT_ALGORITHMS).
    key: 'auth.mode',
    options: ['HS256', 'publicKey'],
    apply: (v, o) => {
      if (o === 'HS256') v.auth.mode = 'HS256';
    },
    condition: (o) => (o === 'HS256' ? 'eq $.Values.auth.mode "HS256"' : 'ne $.Values.auth.mode "HS256"'),
  },
  {
    key: 'auth.publicKey.format',
    options: VALUE_ENUMS['auth.publicKey.format']!,
    enumerated: true,
    onlyWhen: (a) => a['auth.mode'] === 'publicKey',
    apply: (v, o) => (v.auth.publicKey.format = o as ChartValues['auth']['publicKey']['format']),
    condition: (o) => `eq $.Values.auth.publicKey.format "${o}"`,
  },
  {
    key: 'controller.enabled',
    options: ['true', 'false'],
    apply: (v, o) => (v.controller.enabled = o === 'true'),
    condition: (o) => (o === 'true' ? '$.Values.controller.enabled' : 'not $.Values.controller.enabled'),
  },
  {
    key: 'internal.metricsNamespace',
    options: ['empty', 'set'],
    apply: (v, o) => {
      if (o === 'empty') v.internal.metricsNamespace = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.internal.metricsNamespace' : 'not $.Values.internal.metricsNamespace'),
  },
  {
    key: 'internal.backendNamespace',
    options: ['empty', 'set'],
    apply: (v, o) => {
      if (o === 'empty') v.internal.backendNamespace = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.internal.backendNamespace' : 'not $.Values.internal.backendNamespace'),
  },
  {
    key: 'namespaces',
    options: ['empty', 'set'],
    apply: (v, o) => {
      if (o === 'empty') v.namespaces = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.namespaces' : 'not $.Values.namespaces'),
  },
  {
    key: 'serverApi.existingSecret',
    options: ['empty', 'set'],
    apply: (v, o) => {
      if (o === 'empty') v.serverApi.existingSecret = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.serverApi.existingSecret' : 'not $.Values.serverApi.existingSecret'),
  },
  {
    key: 'auth.existingSecret',
    options: ['empty', 'set'],
    apply: (v, o) => {
      if (o === 'empty') v.auth.existingSecret = '';
    },
    condition: (o) => (o === 'set' ? '$.Values.auth.existingSecret' : 'not $.Values.auth.existingSecret'),
  },
];

/**
 * Booleans that only add objects of their own (they change nothing else): rendered on in every variant,
 * and each object they add is wrapped in their condition, instead of doubling the variants.
 */
const SWITCHES: readonly { readonly key: string; set(values: ChartValues, on: boolean): void; readonly condition: string }[] = [
  { key: 'metrics.serviceMonitor.enabled', set: (v, on) => (v.metrics.serviceMonitor.enabled = on), condition: '$.Values.metrics.serviceMonitor.enabled' },
  { key: 'metrics.prometheusRule.enabled', set: (v, on) => (v.metrics.prometheusRule.enabled = on), condition: '$.Values.metrics.prometheusRule.enabled' },
];

/** Values that are passed whole (`toYaml`), not leaf by leaf. */
const BLOCK_VALUES = ['resources', 'redis.internal.resources', 'controller.resources', 'entry.haproxy.resources', 'entry.gatewayApi.parentRefs', 'entry.gatewayApi.envoyProxy.resources', 'entry.gatewayApi.envoyProxy.service'];
/**
 * Extension points (pod-extensions.ts) whose field is left out when the value is empty: rendered
 * `{{- with $.Values.<path> }} <field>: {{ toYaml . }} {{- end }}`.
 */
const OPTIONAL_BLOCK_VALUES = ['nodeSelector', 'tolerations', 'affinity', 'priorityClassName', 'imagePullSecrets', 'serviceAccount.annotations', 'redis.internal.storageClass'];
/** Lists appended to the constructs' own items (one stand-in item in the synth, the user's items in the render). */
const LIST_MERGE_VALUES = ['extraEnv', 'extraEnvFrom', 'extraVolumes', 'extraVolumeMounts'];
/** Maps merged into the constructs' own (one stand-in key in the synth, the user's keys in the render). */
const MAP_MERGE_VALUES = ['podAnnotations', 'podLabels', 'entry.ingress.annotations', 'metrics.serviceMonitor.labels', 'metrics.prometheusRule.labels'];
/** String leaves the constructs also write in lower case (Traefik's SameSite): `<sentinel lowercased>` → `| lower`. */
const LOWERCASED_LEAVES = new Set(['entry.cookieSameSite']);
/** Numeric leaves that may be fractional: rendered as they are, not through `| int`. */
const FRACTIONAL_LEAVES = new Set(['controller.drain.reconnectBudgetPerSecond']);
/** Empty/set dimensions whose value, when set, is a sentinel like any other leaf. */
const PRESENCE_DIMENSIONS = new Set(['entry.host', 'auth.existingSecret', 'redis.internal.existingSecret', 'internal.metricsNamespace', 'internal.backendNamespace', 'namespaces', 'serverApi.existingSecret', 'entry.haproxy.nodePort', 'entry.gatewayApi.parentRefs', 'auth.mode']);
/** Leaves set by dimensions or handled specially. */
const NON_SENTINEL_LEAVES = new Set([
  ...DIMENSIONS.map((d) => d.key).filter((k) => !PRESENCE_DIMENSIONS.has(k)),
  'drain.terminationGracePeriodSeconds',
  // Read by the generatedValue helper only.
  'auth.jwtSecret',
  'auth.adminToken',
  'redis.internal.password',
  'nameOverride',
  'fullnameOverride',
]);
/** Leaves that must be set when used; the expression fails the render with this message otherwise. */
const REQUIRED_LEAVES: Record<string, string> = {
  'redis.external.secretName': 'redis.external.secretName is required with redis.mode=external',
  'entry.tls.secretName': 'entry.tls.secretName is required with entry.tls.enabled=true',
};

/** Leaves rendered through more than `$.Values.<path>`. */
const LEAF_EXPRESSIONS: Record<string, string> = {
  'image.tag': 'default $.Chart.AppVersion $.Values.image.tag',
  // YAML text as it is, or a map written out as YAML.
  namespaces: 'include "realtime-gateway.namespacesText" $',
};

/**
 * Value relations JSON Schema cannot state (values.schema.json checks each value alone): validate.yaml
 * fails the render with the construct's message.
 */
const CROSS_CHECKS: readonly { readonly when: string; readonly fail: string }[] = [
  {
    when: `not (has (toString $.Values.auth.mode) (list ${VALUE_ENUMS['auth.mode']!.map((m) => JSON.stringify(m)).join(' ')}))`,
    fail: `printf "auth.mode=%v must be one of ${VALUE_ENUMS['auth.mode']!.join(', ')}" $.Values.auth.mode`,
  },
  {
    when: 'and (ne $.Values.auth.mode "HS256") (not $.Values.auth.publicKey.configMapName)',
    fail: 'printf "auth.publicKey.configMapName is required with auth.mode=%v: the ConfigMap holding the public keys" $.Values.auth.mode',
  },
  {
    when: 'and (kindIs "string" $.Values.namespaces) $.Values.namespaces (not (trim $.Values.namespaces))',
    fail: '"namespaces is only whitespace: leave it empty for the demo namespaces, or give the YAML of your namespaces (docs/namespaces.md)"',
  },
  {
    when: 'and (eq $.Values.redis.mode "internal") $.Values.redis.internal.existingSecret $.Values.redis.internal.password',
    fail: 'printf "redis.internal.password is set, but redis.internal.existingSecret=%v holds the password: nothing is generated; leave redis.internal.password empty" $.Values.redis.internal.existingSecret',
  },
  {
    when: 'and (ne $.Values.autoscaling.mode "none") (gt (int $.Values.autoscaling.minReplicas) (int $.Values.autoscaling.maxReplicas))',
    fail: 'printf "autoscaling.maxReplicas=%v must be >= autoscaling.minReplicas (%v)" $.Values.autoscaling.maxReplicas $.Values.autoscaling.minReplicas',
  },
  {
    when: `and (${OWN_ENVOY_PROXY}) (ge (int $.Values.entry.gatewayApi.envoyProxy.minAvailable) (int $.Values.entry.gatewayApi.envoyProxy.replicas))`,
    fail: 'printf "envoyProxy.minAvailable=%v must be below envoyProxy.replicas=%v, or no proxy pod could ever be evicted (a node drain would hang)" $.Values.entry.gatewayApi.envoyProxy.minAvailable $.Values.entry.gatewayApi.envoyProxy.replicas',
  },
];

/**
 * Numeric leaves a construct bounds from above, which the usual sentinels (9_100_000 + index) would break.
 * They stand in with a number inside the bound that appears nowhere else in the objects (checked), and
 * validate.yaml checks the bound in the construct's words. `when`: the condition under which the leaf is used.
 */
interface BoundedLeaf {
  readonly standIn: number;
  readonly min: number;
  readonly max: number;
  readonly when: string;
  /** The construct's message after `<path>=<value> `. */
  readonly message: string;
}
const BOUNDED_LEAVES: Record<string, BoundedLeaf> = {
  'entry.haproxy.nodePort': {
    standIn: 32719,
    min: 30000,
    max: 32767,
    when: 'and (eq $.Values.entry.kind "haproxy") $.Values.entry.haproxy.nodePort',
    message: 'is outside the default NodePort range 30000-32767',
  },
  'entry.haproxy.maxServers': {
    standIn: 991,
    min: 1,
    max: 1000,
    when: 'eq $.Values.entry.kind "haproxy"',
    message: 'must be an integer from 1 to 1000',
  },
};

const CONTEXT_SENTINELS: Record<string, string> = {
  __HV_NAME__: 'include "realtime-gateway.name" $',
  __HV_FULLNAME__: 'include "realtime-gateway.fullname" $',
  __HV_RELEASE__: '$.Release.Name',
  __HV_NAMESPACE__: '$.Release.Namespace',
  __HV_APPVERSION__: '$.Chart.AppVersion',
  __HV_SERVICE__: '$.Release.Service',
  __HV_CHART__: 'include "realtime-gateway.chart" $',
  __HV_GENREDISPASSWORD__: generatedValue('-redis', 'password', 'redis.internal.password'),
  __HV_GENJWTSECRET__: generatedValue('-auth', 'jwt-secret', 'auth.jwtSecret'),
  __HV_GENADMINTOKEN__: generatedValue('-auth', 'admin-token', 'auth.adminToken'),
};

/** An explicit value, else the existing Secret's (lookup), else random (generateSecrets) or a failed render. */
function generatedValue(suffix: string, key: string, valuePath: string): string {
  return `include "realtime-gateway.generatedValue" (dict "context" $ "secret" (printf "%s${suffix}" (include "realtime-gateway.fullname" $)) "key" "${key}" "value" $.Values.${valuePath} "valueName" "${valuePath}")`;
}

/** Number sentinels are 9_100_000 + index (see sentinelValues), or a bounded leaf's stand-in. */
const NUMBER_SENTINEL_SOURCE = `(?<!\\d)(?:91000\\d\\d|${Object.values(BOUNDED_LEAVES).map((b) => b.standIn).join('|')})(?!\\d)`;
const HAS_NUMBER_SENTINEL = new RegExp(NUMBER_SENTINEL_SOURCE);
/** Every sentinel in a string, text or number. */
const ANY_SENTINEL_PATTERN = new RegExp(`__HV_[A-Z0-9]+__|${NUMBER_SENTINEL_SOURCE}`, 'g');
const BLOCK_KEY = 'helmGeneratorBlock';
const encodePath = (path: string) => path.replaceAll('.', 'DOT');
const decodePath = (encoded: string) => encoded.replaceAll('DOT', '.');
const mapMarker = (path: string) => `HELMMAP${encodePath(path)}X`;
const MAP_MARKER_PATTERN = /^HELMMAP(\w+)X$/;
/** Joins the lines of a `{{- with }}` block into one unit, so merging variants never splits it (see mergeUnits). */
const UNIT_NEWLINE = '\u0000';
const SETTINGS_MARKER = 'HELMSETTINGSX';

interface SentinelTable {
  readonly strings: Map<string, string>; // sentinel → expression
  readonly numbers: Map<number, string>; // sentinel → expression (integer-valued)
  readonly numberStrings: Map<string, string>; // String(derived or numeric sentinel) → expression
  readonly paths: Map<string, string>; // sentinel → value path (for messages)
}

function sentinelValues(): { values: ChartValues; table: SentinelTable } {
  const values = structuredClone(DEFAULT_VALUES);
  const table: SentinelTable = { strings: new Map(), numbers: new Map(), numberStrings: new Map(), paths: new Map() };
  let index = 0;
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [key, value] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      const bounded = BOUNDED_LEAVES[path];
      if (bounded) {
        node[key] = bounded.standIn;
        const expression = `$.Values.${path} | int`;
        table.numbers.set(bounded.standIn, expression);
        table.numberStrings.set(String(bounded.standIn), expression);
        table.paths.set(String(bounded.standIn), path);
      } else if (BLOCK_VALUES.includes(path) || OPTIONAL_BLOCK_VALUES.includes(path) || LIST_MERGE_VALUES.includes(path)) {
        node[key] = { [BLOCK_KEY]: path };
      } else if (MAP_MERGE_VALUES.includes(path)) {
        node[key] = { [mapMarker(path)]: 'x' };
      } else if (NON_SENTINEL_LEAVES.has(path) || path === 'settings') {
        continue;
      } else if (typeof value === 'string' || typeof value === 'boolean') {
        if (typeof value === 'boolean') continue;
        const sentinel = `__HV_V${index++}__`;
        node[key] = sentinel;
        const expression = REQUIRED_LEAVES[path] ? `required "${REQUIRED_LEAVES[path]}" $.Values.${path}` : (LEAF_EXPRESSIONS[path] ?? `$.Values.${path}`);
        table.strings.set(sentinel, expression);
        table.paths.set(sentinel, path);
        if (LOWERCASED_LEAVES.has(path)) table.strings.set(sentinel.toLowerCase(), `${expression} | lower`);
      } else if (typeof value === 'number') {
        if (index > 99) throw new Error(`values.${path}: more than 100 sentinels; widen NUMBER_SENTINEL_SOURCE`);
        const sentinel = 9_100_000 + index++;
        node[key] = sentinel;
        const expression = FRACTIONAL_LEAVES.has(path) ? `$.Values.${path}` : `$.Values.${path} | int`;
        table.numbers.set(sentinel, expression);
        table.numberStrings.set(String(sentinel), expression);
        table.paths.set(String(sentinel), path);
      } else if (value && typeof value === 'object') {
        walk(value as Record<string, unknown>, path);
      }
    }
  };
  walk(values as unknown as Record<string, unknown>, '');
  for (const [sentinel, expression] of Object.entries(CONTEXT_SENTINELS)) table.strings.set(sentinel, expression);
  // Derived drain numbers: computed from the sentinels, so they are recognisable in the output.
  const drain = resolveDrainTiming({ ...values.drain, terminationGracePeriodSeconds: undefined });
  table.numbers.set(drain.terminationGracePeriodSeconds, 'include "realtime-gateway.terminationGracePeriodSeconds" $ | int');
  table.numberStrings.set(String(drain.shutdownDeadlineMs), 'include "realtime-gateway.shutdownDeadlineMs" $');
  table.numbers.set(drain.minReadySeconds, 'include "realtime-gateway.minReadySeconds" $ | int');
  // Envoy's circuit breaker: MAX_CONNECTIONS (its default: settings are not sentinels) × (most pods + 1).
  const perPod = Number(GATEWAY_SETTING_DEFAULTS.MAX_CONNECTIONS);
  for (const pods of [values.autoscaling.maxReplicas, values.replicaCount]) table.numbers.set(perPod * (pods + 1), 'include "realtime-gateway.envoyMaxConnections" $ | int');
  // The drain-stuck alert waits for one grace period; so does a terminating Envoy proxy (shutdown.drainTimeout).
  table.strings.set(`${drain.terminationGracePeriodSeconds}s`, 'printf "%ds" (include "realtime-gateway.terminationGracePeriodSeconds" $ | int)');
  // Envoy's shutdown.minDrainDuration: preStop + notice, the time the gateway gives endpoints to deprogram.
  table.strings.set(`${drain.preStopSeconds + Math.ceil(drain.noticeDelayMs / 1000)}s`, 'printf "%ds" (include "realtime-gateway.envoyMinDrainSeconds" $ | int)');
  return { values, table };
}

const SENTINEL_IDENTITY: ChartIdentity = {
  name: '__HV_NAME__',
  fullname: '__HV_FULLNAME__',
  instance: '__HV_RELEASE__',
  version: '__HV_APPVERSION__',
  managedBy: '__HV_SERVICE__',
  chartLabel: '__HV_CHART__',
};
const SENTINEL_GENERATED = {
  redisPassword: '__HV_GENREDISPASSWORD__',
  auth: { 'jwt-secret': '__HV_GENJWTSECRET__', 'admin-token': '__HV_GENADMINTOKEN__' },
};

// ---- sentinels → template text ----

class Markers {
  private readonly texts: string[] = [];
  inline(text: string): string {
    let i = this.texts.indexOf(text);
    if (i < 0) i = this.texts.push(text) - 1;
    return `HELMTPL${String(i).padStart(4, '0')}X`;
  }
  block(path: string): string {
    return `HELMBLK${encodePath(path)}X`;
  }
  optionalBlock(path: string): string {
    return `HELMOPT${encodePath(path)}X`;
  }
  finish(yamlText: string): string {
    let out = yamlText.replace(/^( *)(- )?([^:\n]+): HELMBLK(\w+)X$/gm, (_m, indent: string, dash: string | undefined, key: string, path: string) => {
      const column = indent.length + (dash ? 2 : 0);
      return `${indent}${dash ?? ''}${key}:\n${' '.repeat(column + 2)}{{- toYaml $.Values.${decodePath(path)} | nindent ${column + 2} }}`;
    });
    // An extension point alone in its field: the field exists only when the value is set.
    out = out.replace(/^( *)([^:\n -][^:\n]*): HELMOPT(\w+)X$/gm, (_m, indent: string, key: string, path: string) =>
      [`${indent}{{- with $.Values.${decodePath(path)} }}`, `${indent}${key}:`, `${indent}  {{- toYaml . | nindent ${indent.length + 2} }}`, `${indent}{{- end }}`].join(UNIT_NEWLINE),
    );
    // Items and keys appended to the constructs' own.
    out = out.replace(/^( *)- HELMBLK(\w+)X$/gm, (_m, indent: string, path: string) =>
      [`${indent}{{- with $.Values.${decodePath(path)} }}`, `${indent}{{- toYaml . | nindent ${indent.length} }}`, `${indent}{{- end }}`].join(UNIT_NEWLINE),
    );
    out = out.replace(/^( *)HELMMAP(\w+)X: x$/gm, (_m, indent: string, path: string) =>
      [`${indent}{{- with $.Values.${decodePath(path)} }}`, `${indent}{{- toYaml . | nindent ${indent.length} }}`, `${indent}{{- end }}`].join(UNIT_NEWLINE),
    );
    if (/HELM(BLK|OPT|MAP)\w+X/.test(out)) throw new Error(`a value marker was left in a template: ${/.*HELM(BLK|OPT|MAP)\w+X.*/.exec(out)![0]}`);
    out = out.replace(new RegExp(`^( *)${SETTINGS_MARKER}: x$`, 'gm'), (_m, indent: string) =>
      [`${indent}{{- range $key, $value := $.Values.settings }}`, `${indent}{{ $key }}: {{ $value | quote }}`, `${indent}{{- end }}`].join(UNIT_NEWLINE),
    );
    return out.replace(/HELMTPL(\d{4})X/g, (_m, i: string) => this.texts[Number(i)]!);
  }
}

/** `configTemplate`: the ConfigMap template whose hash is the `checksum/config` of this object's pods. */
function templatize(node: unknown, table: SentinelTable, markers: Markers, configTemplate: string, key?: string): unknown {
  if (key === 'checksum/config') {
    return markers.inline(`{{ include (print $.Template.BasePath "/${configTemplate}") $ | sha256sum }}`);
  }
  if (key === 'checksum/namespaces') return markers.inline('{{ include "realtime-gateway.namespacesText" $ | sha256sum }}');
  if (typeof node === 'number') {
    const expression = table.numbers.get(node);
    return expression ? markers.inline(`{{ ${expression} }}`) : node;
  }
  if (typeof node === 'string') {
    const whole = table.strings.get(node);
    if (whole) return markers.inline(`{{ ${whole} | quote }}`);
    const numeric = table.numberStrings.get(node);
    if (numeric) return markers.inline(`{{ ${numeric} | quote }}`);
    if (!/__HV_[A-Z0-9]+__/.test(node) && !HAS_NUMBER_SENTINEL.test(node) && /\{\{|\}\}/.test(node)) {
      // Text with Go template braces of its own (Prometheus alert annotations): a string literal for Helm.
      return markers.inline(`{{ ${JSON.stringify(node)} | quote }}`);
    }
    if (/__HV_[A-Z0-9]+__/.test(node) || HAS_NUMBER_SENTINEL.test(node)) {
      // One double-quoted YAML scalar: the text between sentinels escaped (a config file has quotes and
      // newlines), each sentinel an expression — a number inside a string too, e.g. a port in a URL.
      let text = '';
      let last = 0;
      for (const match of node.matchAll(ANY_SENTINEL_PATTERN)) {
        const s = match[0];
        const expression = s.startsWith('__HV_') ? table.strings.get(s) : table.numberStrings.get(s);
        if (!expression && s.startsWith('__HV_')) throw new Error(`unknown sentinel ${s} in ${JSON.stringify(node)}`);
        text += yamlEscape(node.slice(last, match.index)) + (expression ? `{{ ${expression} }}` : s);
        last = match.index + s.length;
      }
      return markers.inline(`"${text}${yamlEscape(node.slice(last))}"`);
    }
    return node;
  }
  if (Array.isArray(node)) return node.map((item) => templatize(item, table, markers, configTemplate));
  if (node && typeof node === 'object') {
    const record = node as Record<string, unknown>;
    const block = record[BLOCK_KEY];
    if (typeof block === 'string') return OPTIONAL_BLOCK_VALUES.includes(block) ? markers.optionalBlock(block) : markers.block(block);
    const keys = Object.keys(record);
    const onlyMarker = keys.length === 1 ? MAP_MARKER_PATTERN.exec(keys[0]!) : null;
    if (onlyMarker) return markers.optionalBlock(decodePath(onlyMarker[1]!));
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, templatize(v, table, markers, configTemplate, k)]));
  }
  return node;
}

/** Escapes for inside a YAML double-quoted scalar (JSON's escapes are a subset of YAML's). */
function yamlEscape(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

// ---- conditions ----

type Term = Map<string, Set<string>>;

function minimize(assignments: readonly Assignment[], dims: readonly Dimension[]): Term[] {
  let terms: Term[] = assignments.map((a) => new Map(dims.map((d) => [d.key, new Set([a[d.key]!])])));
  const same = (x: Set<string>, y: Set<string>) => x.size === y.size && [...x].every((v) => y.has(v));
  for (let merged = true; merged; ) {
    merged = false;
    outer: for (let i = 0; i < terms.length; i++) {
      for (let j = i + 1; j < terms.length; j++) {
        const differing = dims.filter((d) => !same(terms[i]!.get(d.key)!, terms[j]!.get(d.key)!));
        if (differing.length <= 1) {
          const union = new Map(terms[i]!);
          for (const d of differing) union.set(d.key, new Set([...terms[i]!.get(d.key)!, ...terms[j]!.get(d.key)!]));
          terms = [...terms.filter((_, k) => k !== i && k !== j), union];
          merged = true;
          break outer;
        }
      }
    }
  }
  return terms;
}

function conditionText(terms: readonly Term[], dims: readonly Dimension[]): string {
  const termTexts = terms.map((term) => {
    const parts = dims
      .filter((d) => term.get(d.key)!.size < d.options.length)
      .map((d) => {
        const options = [...term.get(d.key)!];
        return options.length === 1 ? d.condition(options[0]!) : `or ${options.map((o) => `(${d.condition(o)})`).join(' ')}`;
      });
    if (parts.length === 0) return 'true';
    return parts.length === 1 ? parts[0]! : `and ${parts.map((p) => `(${p})`).join(' ')}`;
  });
  return termTexts.length === 1 ? termTexts[0]! : `or ${termTexts.map((t) => `(${t})`).join(' ')}`;
}


// ---- merging variants of one object ----

/**
 * Merges two renderings of an object line by line (longest common subsequence): shared lines stay,
 * each differing stretch becomes `{{- if cond }} <when> {{- else }} <otherwise> {{- end }}`. A merged
 * if-block is one unit afterwards, so later merges never split it and nesting stays well formed.
 */
function mergeUnits(when: readonly string[], otherwise: readonly string[], condition: string): string[] {
  const n = when.length;
  const m = otherwise.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = when[i] === otherwise[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let a: string[] = [];
  let b: string[] = [];
  const flush = () => {
    if (a.length === 0 && b.length === 0) return;
    const lines =
      a.length === 0
        ? [`{{- if not (${condition}) }}`, ...b]
        : b.length === 0
          ? [`{{- if ${condition} }}`, ...a]
          : [`{{- if ${condition} }}`, ...a, '{{- else }}', ...b];
    out.push([...lines, '{{- end }}'].join('\n'));
    a = [];
    b = [];
  };
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && when[i] === otherwise[j]) {
      flush();
      out.push(when[i]!);
      i++;
      j++;
    } else if (j >= m || (i < n && lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      a.push(when[i++]!);
    } else {
      b.push(otherwise[j++]!);
    }
  }
  flush();
  return out;
}

// ---- putting it together ----

export interface GeneratedTemplates {
  /** File name under templates/ → content. */
  readonly files: Record<string, string>;
}

/**
 * Template file of an object: `<component>-<kind>`, plus what its name adds after the component's when
 * one component has two objects of a kind (the HAProxy entry's Service and its headless `-pods` Service).
 */
function objectKey(m: Manifest): string {
  const component = m.metadata.labels?.['app.kubernetes.io/component'] ?? 'misc';
  const prefix = `${SENTINEL_IDENTITY.fullname}-${component}-`;
  const qualifier = m.metadata.name?.startsWith(prefix) ? `-${m.metadata.name.slice(prefix.length)}` : '';
  return `${component}${qualifier}-${m.kind.toLowerCase()}`;
}

// ---- the variants: canonical assignments ----

/** Mixed-radix place value of each dimension: an assignment's number in the space is Σ option × stride. */
const STRIDE: readonly number[] = DIMENSIONS.map((_, d) => DIMENSIONS.slice(d + 1).reduce((n, dim) => n * dim.options.length, 1));
const ALL_OPTIONS: readonly (readonly number[])[] = DIMENSIONS.map((dim) => dim.options.map((_, o) => o));

/**
 * A canonical assignment: the one synthesis that stands for every assignment differing from it only in
 * dimensions that do not matter there. Its number is the smallest of theirs (those are at option 0).
 */
interface Variant {
  readonly assignment: Assignment;
  readonly index: number;
  /** Per dimension: the option's index, and whether the dimension matters here (its `onlyWhen` holds). */
  readonly options: readonly number[];
  readonly matters: readonly boolean[];
}

/**
 * Visits the canonical assignments that extend `prefix` (the dimensions before `from`, numbered `index`
 * so far), each later dimension that matters taking the options `choose` gives it. `onlyWhen` sees the
 * earlier dimensions only: they are settled first, so a later one's raw option would not count.
 */
function forEachCanonical(
  from: number,
  prefix: Assignment,
  index: number,
  choose: (d: number) => readonly number[],
  visit: (a: Assignment, index: number, matters: readonly boolean[]) => void,
  matters: boolean[] = [],
): void {
  if (from === DIMENSIONS.length) return visit(prefix, index, matters);
  const dim = DIMENSIONS[from]!;
  matters[from] = !dim.onlyWhen || dim.onlyWhen(prefix);
  for (const o of matters[from] ? choose(from) : [0]) {
    prefix[dim.key] = dim.options[o]!;
    forEachCanonical(from + 1, prefix, index + o * STRIDE[from]!, choose, visit, matters);
  }
  // Unassigned again, so allVariants catches an onlyWhen reading it; not deleted: that would make every prefix a slow dictionary object.
  prefix[dim.key] = undefined!;
}

/**
 * Every variant, in the order of the space. The generator works on these alone: visiting every
 * assignment instead (7.1 million for 120 thousand variants when this was written) took half its time.
 */
function allVariants(): Variant[] {
  const variants: Variant[] = [];
  // Reading a dimension not yet assigned would see undefined here: refuse it instead.
  const prefix = new Proxy({} as Assignment, {
    get(target, key: string) {
      if (target[key] === undefined) throw new Error(`an onlyWhen reads ${key}: it may read only the dimensions before its own (reorder DIMENSIONS)`);
      return target[key];
    },
  });
  forEachCanonical(0, prefix, 0, (d) => ALL_OPTIONS[d]!, (a, index, matters) => {
    const assignment = Object.fromEntries(DIMENSIONS.map((dim) => [dim.key, a[dim.key]!]));
    variants.push({ assignment, index, options: DIMENSIONS.map((dim) => dim.options.indexOf(assignment[dim.key]!)), matters: [...matters] });
  });
  return variants;
}

/**
 * The variants of the assignments one step from those `v` stands for: dimension `d` (which matters in
 * `v`) at option `o`. The dimensions that do not matter in `v` may have any option in those assignments,
 * and may matter one step away (entry.kind → ingress brings in the controller): they take every option.
 */
function neighbours(v: Variant, d: number, o: number, variantAt: ReadonlyMap<number, Variant>): Variant[] {
  // The dimensions from d on are overwritten as they are walked (onlyWhen reads only earlier ones).
  const prefix = { ...v.assignment };
  const index = v.options.slice(0, d).reduce((n, option, e) => n + option * STRIDE[e]!, 0);
  const out: Variant[] = [];
  const choose = (e: number) => (e === d ? [o] : v.matters[e] ? [v.options[e]!] : ALL_OPTIONS[e]!);
  forEachCanonical(d, prefix, index, choose, (_, at) => out.push(variantAt.get(at)!));
  return out;
}

/** What the constructs make of an assignment: each object's template text by key, or their error refusing it. */
type Rendering = Map<string, string> | string;

/** Synthesizes and templates assignments (the same object in many variants is templated once). */
function variantRenderer() {
  const { values: sentinels, table } = sentinelValues();
  const objectTexts = new Map<string, string>();
  // Values are JSON (they are values.yaml); parsing a copy is twice as fast as structuredClone, per variant.
  const sentinelsJson = JSON.stringify(sentinels);
  const valuesFor = (a: Assignment, switches: Record<string, boolean> = {}) => {
    const values = JSON.parse(sentinelsJson) as ChartValues;
    for (const d of DIMENSIONS) d.apply(values, a[d.key]!);
    for (const s of SWITCHES) s.set(values, switches[s.key] ?? true);
    return values;
  };
  const synth = (values: ChartValues) =>
    synthChartObjects(values, { release: '__HV_RELEASE__', namespace: '__HV_NAMESPACE__' }, SENTINEL_IDENTITY, SENTINEL_GENERATED);
  const textsOf = (manifests: readonly Manifest[]) => {
    const texts = new Map<string, string>();
    for (const m of manifests) {
      const key = objectKey(m);
      if (texts.has(key)) throw new Error(`two objects map to template ${key}.yaml; give them distinct components`);
      const json = JSON.stringify(m);
      let text = objectTexts.get(json);
      if (text === undefined) {
        const markers = new Markers();
        const component = m.metadata.labels?.['app.kubernetes.io/component'] ?? 'misc';
        const object = templatize(m, table, markers, `${component}-configmap.yaml`) as Record<string, unknown>;
        if (key === 'gateway-configmap') (object.data as Record<string, string>)[SETTINGS_MARKER] = 'x';
        text = markers.finish(stringify(object, { lineWidth: 0, version: '1.1' })).trimEnd();
        objectTexts.set(json, text);
      }
      texts.set(key, text);
    }
    return texts;
  };
  const render = (a: Assignment): Rendering => {
    let manifests: Manifest[];
    try {
      manifests = synth(valuesFor(a));
    } catch (error) {
      return (error as Error).message.replace(ANY_SENTINEL_PATTERN, (s) => table.paths.get(s) ?? s);
    }
    return textsOf(manifests);
  };
  return { sentinels, valuesFor, synth, textsOf, render };
}

/** A worker's share of the renderings: key and text tables, each rendering as [key, text] index pairs or an error. */
interface RenderedShare {
  readonly keys: readonly string[];
  readonly texts: readonly string[];
  readonly renderings: readonly (readonly number[] | string)[];
}

/** Renders every `step`-th variant from `first` (render-worker.ts). */
export function renderShare(first: number, step: number): RenderedShare {
  const { render } = variantRenderer();
  const variants = allVariants();
  const keys = new Map<string, number>();
  const texts = new Map<string, number>();
  const indexIn = (table: Map<string, number>, s: string) => table.get(s) ?? table.set(s, table.size).size - 1;
  const renderings: (number[] | string)[] = [];
  for (let i = first; i < variants.length; i += step) {
    const rendering = render(variants[i]!.assignment);
    renderings.push(typeof rendering === 'string' ? rendering : [...rendering].flatMap(([key, text]) => [indexIn(keys, key), indexIn(texts, text)]));
  }
  return { keys: [...keys.keys()], texts: [...texts.keys()], renderings };
}

/** Up to this many worker threads synthesize variants (each holds its own copy of cdk8s and the constructs). */
const MAX_RENDER_WORKERS = 8;

/**
 * Every variant's rendering. The synths are independent and take nearly all of the time, so they are
 * shared among worker threads, one per core.
 */
async function renderVariants(variants: readonly Variant[]): Promise<Rendering[]> {
  const workers = Math.min(availableParallelism(), MAX_RENDER_WORKERS);
  if (workers <= 1) {
    const { render } = variantRenderer();
    return variants.map((v) => render(v.assignment));
  }
  const shares = await Promise.all(
    Array.from({ length: workers }, (_, first) => {
      const worker = new Worker(new URL('./render-worker.ts', import.meta.url), { workerData: { first, step: workers } });
      return new Promise<RenderedShare>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`a chart render worker exited with code ${code}`)));
      }).finally(() => void worker.terminate());
    }),
  );
  // The same text from two workers becomes one string again, so comparing variants stays cheap.
  const texts = new Map<string, string>();
  return variants.map((_, i) => {
    const share = shares[i % workers]!;
    const rendering = share.renderings[Math.floor(i / workers)]!;
    if (typeof rendering === 'string') return rendering;
    const map = new Map<string, string>();
    for (let p = 0; p < rendering.length; p += 2) {
      const text = share.texts[rendering[p + 1]!]!;
      map.set(share.keys[rendering[p]!]!, texts.get(text) ?? texts.set(text, text).get(text)!);
    }
    return map;
  });
}

/**
 * One object's text per combination of the options of the dimensions it depends on, over every valid
 * variant (a dimension that does not matter in a variant stands for all its options there). The object
 * may have no text (absent) in some. Two valid variants with the same options but different texts mean
 * the object depends on a dimension the neighbour walk did not find: the template would be wrong, so
 * it is refused.
 */
function objectTextBySignature(
  key: string,
  relevant: readonly Dimension[],
  variants: readonly Variant[],
  rendered: ReadonlyMap<Variant, ReadonlyMap<string, string>>,
): Map<string, string | undefined> {
  const indexes = relevant.map((dim) => DIMENSIONS.indexOf(dim));
  const bySignature = new Map<string, string | undefined>();
  for (const v of variants) {
    const texts = rendered.get(v);
    if (!texts) continue;
    const text = texts.get(key);
    let signatures = [''];
    indexes.forEach((d, i) => {
      const options = v.matters[d] ? [DIMENSIONS[d]!.options[v.options[d]!]!] : DIMENSIONS[d]!.options;
      signatures = signatures.flatMap((prefix) => options.map((o) => (i === 0 ? o : `${prefix}\u0000${o}`)));
    });
    for (const signature of signatures) {
      if (!bySignature.has(signature)) bySignature.set(signature, text);
      else if (bySignature.get(signature) !== text) {
        const options = signature.split('\u0000').map((o, i) => `${relevant[i]!.key}=${o}`).join(', ');
        throw new Error(`${key}.yaml differs between two valid variants with ${options || 'no relevant dimension'}: it depends on a dimension the generator did not find`);
      }
    }
  }
  return bySignature;
}

export async function generateTemplates(): Promise<GeneratedTemplates> {
  const { sentinels, valuesFor, synth, textsOf } = variantRenderer();
  checkStandIns(sentinels);
  const variants = allVariants();
  const variantAt = new Map(variants.map((v) => [v.index, v]));
  const rendered = new Map<Variant, Map<string, string>>(); // object key → text
  const invalid = new Map<Variant, string>(); // → error
  const renderings = await renderVariants(variants);
  variants.forEach((v, i) => {
    const rendering = renderings[i]!;
    if (typeof rendering === 'string') invalid.set(v, rendering);
    else rendered.set(v, rendering);
  });
  const firstValid = variants.find((v) => !invalid.has(v));
  if (firstValid === undefined) throw new Error('the constructs refuse every combination of the chart\'s dimensions');

  const keys = new Set<string>();
  for (const texts of rendered.values()) for (const key of texts.keys()) keys.add(key);
  // Dimensions that change an object somewhere: compare every valid variant with its valid neighbours.
  const relevantByKey = new Map<string, Set<number>>([...keys].map((k) => [k, new Set<number>()]));
  for (const v of variants) {
    const here = rendered.get(v);
    if (!here) continue;
    DIMENSIONS.forEach((dim, d) => {
      // A dimension that does not matter in v changes no assignment's variant.
      if (!v.matters[d]) return;
      for (let o = v.options[d]! + 1; o < dim.options.length; o++) {
        for (const neighbour of neighbours(v, d, o, variantAt)) {
          const there = rendered.get(neighbour);
          if (!there) continue;
          for (const [key, relevant] of relevantByKey) if (!relevant.has(d) && here.get(key) !== there.get(key)) relevant.add(d);
        }
      }
    });
  }

  const files: Record<string, string> = {};
  const header = '{{- /* Generated by infra/chart/generate.ts from the cdk8s constructs in infra/. Do not edit. */ -}}\n';
  for (const key of [...keys].sort()) {
    const relevant = DIMENSIONS.filter((_, d) => relevantByKey.get(key)!.has(d));
    const textBySignature = objectTextBySignature(key, relevant, variants, rendered);
    const build = (dims: readonly Dimension[], fixed: Assignment): string[] | null => {
      if (dims.length === 0) {
        // Every valid variant with these relevant options renders the object alike (objectTextBySignature
        // checks it), whatever the others: reading it at one fixed base instead would miss options valid
        // only elsewhere (Traefik with TLS needs a host; the base has none). Options no valid variant has
        // are a don't-care: validate.yaml fails them anyway.
        const signature = relevant.map((d) => fixed[d.key]).join('\u0000');
        if (!textBySignature.has(signature)) return null;
        const text = textBySignature.get(signature);
        return text === undefined ? [] : text.split('\n');
      }
      const [dim, ...rest] = dims;
      let merged: string[] | null = null;
      for (const option of dim!.options) {
        const units = build(rest, { ...fixed, [dim!.key]: option });
        if (units === null) continue;
        merged = merged === null ? units : mergeUnits(units, merged, dim!.condition(option));
      }
      return merged;
    };
    const body = (build(relevant, {}) ?? []).join('\n');
    files[`${key}.yaml`] = `${header}${body.replaceAll(UNIT_NEWLINE, '\n')}\n`;
  }

  // A switch only adds objects of its own: they are rendered with it on, and wrapped in its condition.
  for (const s of SWITCHES) {
    const base = firstValid.assignment;
    const on = textsOf(synth(valuesFor(base)));
    const off = textsOf(synth(valuesFor(base, { [s.key]: false })));
    for (const [key, text] of on) {
      if (!off.has(key)) {
        files[`${key}.yaml`] = files[`${key}.yaml`]!.replace(header, `${header}{{- if ${s.condition} }}\n`) + '{{- end }}\n';
      } else if (off.get(key) !== text) {
        throw new Error(`${s.key} changes ${key}, not only objects of its own: make it a dimension`);
      }
    }
  }

  const checks: string[] = [];
  // A value a dimension does not know would render as its first option: refuse it instead.
  for (const d of DIMENSIONS.filter((dim) => dim.enumerated)) {
    const list = d.options.map((o) => JSON.stringify(o)).join(' ');
    checks.push(
      `{{- if not (has (toString $.Values.${d.key}) (list ${list})) }}`,
      `{{- fail (printf ${JSON.stringify(`${d.key}=%v must be one of ${d.options.join(', ')}`)} $.Values.${d.key}) }}`,
      '{{- end }}',
    );
  }
  for (const [path, b] of Object.entries(BOUNDED_LEAVES)) {
    checks.push(
      `{{- if and (${b.when}) (or (lt (int $.Values.${path}) ${b.min}) (gt (int $.Values.${path}) ${b.max})) }}`,
      `{{- fail (printf ${JSON.stringify(`${path}=%v ${b.message}`)} $.Values.${path}) }}`,
      '{{- end }}',
    );
  }
  for (const [path, keys] of Object.entries(reservedKeys(sentinels))) {
    const list = keys.map((k) => JSON.stringify(k)).join(' ');
    checks.push(
      `{{- range $key, $_ := $.Values.${path} }}`,
      `{{- if has $key (list ${list}) }}`,
      `{{- fail (printf ${JSON.stringify(`${path}.%s is set by the chart itself; leave it out`)} $key) }}`,
      '{{- end }}',
      '{{- end }}',
    );
  }
  const ownedEnv = [...new Set([...OWNED_SETTINGS, ...gatewayEnvNames(sentinels)])].sort().map((k) => JSON.stringify(k)).join(' ');
  checks.push(
    '{{- range $.Values.extraEnv }}',
    `{{- if has .name (list ${ownedEnv}) }}`,
    '{{- fail (printf "extraEnv %s is set by the chart itself; use its value (or settings) instead" .name) }}',
    '{{- end }}',
    '{{- end }}',
  );
  for (const check of CROSS_CHECKS) checks.push(`{{- if ${check.when} }}`, `{{- fail (${check.fail}) }}`, '{{- end }}');
  // Value combinations the constructs refuse fail the render with the constructs' own message.
  const byMessage = new Map<string, Variant[]>();
  for (const v of variants) {
    const message = invalid.get(v);
    if (!message) continue;
    const group = byMessage.get(message);
    if (group) group.push(v);
    else byMessage.set(message, [v]);
  }
  for (const [message, group] of byMessage) {
    checks.push(`{{- if ${failCondition(group, variantAt)} }}`, `{{- fail ${JSON.stringify(message)} }}`, '{{- end }}');
  }
  files['validate.yaml'] = `${header}{{- include "realtime-gateway.validateSettings" $ }}\n${checks.join('\n')}\n`;
  return { files };
}

/**
 * The condition under which a group of assignments fails. Dimensions the group is closed under (every
 * option of them fails too) drop out first, so minimize only sees the few that decide.
 */
function failCondition(group: readonly Variant[], variantAt: ReadonlyMap<number, Variant>): string {
  const members = new Set(group);
  const deciding = DIMENSIONS.map((_, d) => d).filter((d) =>
    group.some((v) => v.matters[d] && ALL_OPTIONS[d]!.some((o) => o !== v.options[d] && neighbours(v, d, o, variantAt).some((n) => !members.has(n)))),
  );
  const dims = deciding.map((d) => DIMENSIONS[d]!);
  // The group's assignments projected on the deciding dimensions, in the order of the space: the group is
  // closed under the others, so a projection's first assignment has them at option 0, and the order is
  // the projections' own number.
  const projected = new Map<number, Assignment>();
  const project = (v: Variant, i: number, index: number, a: Assignment) => {
    if (i === deciding.length) return void projected.set(index, { ...a });
    const d = deciding[i]!;
    for (const o of v.matters[d] ? [v.options[d]!] : ALL_OPTIONS[d]!) project(v, i + 1, index + o * STRIDE[d]!, { ...a, [DIMENSIONS[d]!.key]: DIMENSIONS[d]!.options[o]! });
  };
  for (const v of group) project(v, 0, 0, {});
  const ordered = [...projected].sort(([x], [y]) => x - y).map(([, a]) => a);
  return conditionText(minimize(ordered, dims), dims);
}

/**
 * Keys the constructs set themselves in the maps a value is merged into (pod labels and annotations,
 * nginx's Ingress annotations): a user key among them would appear twice in the YAML.
 */
function reservedKeys(sentinels: ChartValues): Record<string, string[]> {
  const values = structuredClone(sentinels);
  values.entry.kind = 'ingress';
  values.entry.ingress.controller = 'nginx';
  for (const s of SWITCHES) s.set(values, true);
  const objects = synthChartObjects(values, { release: '__HV_RELEASE__', namespace: '__HV_NAMESPACE__' }, SENTINEL_IDENTITY, SENTINEL_GENERATED);
  const gateway = objects.find((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] === 'gateway') as unknown as {
    spec: { template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> } } };
  };
  const ingress = objects.find((o) => o.kind === 'Ingress')!;
  const own = (map: Record<string, string> | undefined) => Object.keys(map ?? {}).filter((k) => !MAP_MARKER_PATTERN.test(k)).sort();
  return {
    podLabels: own(gateway.spec.template.metadata.labels),
    podAnnotations: own(gateway.spec.template.metadata.annotations),
    'entry.ingress.annotations': own(ingress.metadata.annotations),
    'metrics.serviceMonitor.labels': own(objects.find((o) => o.kind === 'ServiceMonitor')!.metadata.labels),
    'metrics.prometheusRule.labels': own(objects.find((o) => o.kind === 'PrometheusRule')!.metadata.labels),
  };
}

/** Names of the gateway container's own env entries. */
function gatewayEnvNames(sentinels: ChartValues): string[] {
  const objects = synthChartObjects(sentinels, { release: '__HV_RELEASE__', namespace: '__HV_NAMESPACE__' }, SENTINEL_IDENTITY, SENTINEL_GENERATED);
  const gateway = objects.find((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] === 'gateway') as unknown as {
    spec: { template: { spec: { containers: { env: { name?: string }[] }[] } } };
  };
  return gateway.spec.template.spec.containers[0]!.env.flatMap((e) => (e.name ? [e.name] : []));
}

/** A bounded leaf's stand-in must not occur in the objects by itself (with the leaf set to something else). */
function checkStandIns(sentinels: ChartValues): void {
  const values = structuredClone(sentinels);
  values.entry.kind = 'haproxy';
  values.entry.haproxy.serviceType = 'NodePort';
  const set = (path: string, value: number) => {
    const keys = path.split('.');
    const parent = keys.slice(0, -1).reduce<Record<string, unknown>>((node, k) => node[k] as Record<string, unknown>, values as never);
    parent[keys.at(-1)!] = value;
  };
  for (const [path, b] of Object.entries(BOUNDED_LEAVES)) set(path, b.min);
  const objects = synthChartObjects(values, { release: '__HV_RELEASE__', namespace: '__HV_NAMESPACE__' }, SENTINEL_IDENTITY, SENTINEL_GENERATED);
  const text = JSON.stringify(objects, (key, value: unknown) => (key === 'checksum/config' ? undefined : value));
  for (const [path, b] of Object.entries(BOUNDED_LEAVES)) {
    if (new RegExp(`(?<!\\d)${b.standIn}(?!\\d)`).test(text)) throw new Error(`the stand-in ${b.standIn} of ${path} occurs in the objects anyway; pick another`);
  }
}

/** _helpers.tpl: names, labels' chart value, generated Secret values, settings checks, drain derivation. */
export function helpersTemplate(drainHelpers: string): string {
  const known = GATEWAY_SETTING_NAMES.map((k) => JSON.stringify(k)).join(' ');
  const owned = OWNED_SETTINGS.map((k) => JSON.stringify(k)).join(' ');
  return `{{- /* Generated by infra/chart/generate.ts. Do not edit. */ -}}

{{- define "realtime-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object: fullnameOverride, else the release name (if it contains the chart name), else <release>-<name>. */}}
{{- define "realtime-gateway.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The namespaces file: values.namespaces as YAML text, or a map written out as YAML. */}}
{{- define "realtime-gateway.namespacesText" -}}
{{- if kindIs "string" .Values.namespaces -}}
{{- .Values.namespaces -}}
{{- else -}}
{{- toYaml .Values.namespaces -}}
{{- end -}}
{{- end -}}

{{- define "realtime-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
A generated Secret's value: the explicit value, else the existing Secret's (lookup, on upgrade), else a
new random one - unless generateSecrets=false (GitOps: lookup sees nothing under helm template / Argo CD,
so a random value would change on every render): then the render fails naming the value to set.
*/}}
{{- define "realtime-gateway.generatedValue" -}}
{{- /* One value per render, however often it is used (the Redis password is also in its auth.conf). */ -}}
{{- $memo := get .context.Release "generatedValues" | default dict -}}
{{- $_ := set .context.Release "generatedValues" $memo -}}
{{- $id := printf "%s/%s" .secret .key -}}
{{- if not (hasKey $memo $id) -}}
{{- $existing := lookup "v1" "Secret" .context.Release.Namespace .secret -}}
{{- $value := "" -}}
{{- if .value -}}
{{- $value = .value -}}
{{- else if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- $value = index $existing.data .key | b64dec -}}
{{- else if .context.Values.generateSecrets -}}
{{- $value = randAlphaNum 43 -}}
{{- else -}}
{{- fail (printf "generateSecrets=false and the Secret %s has no %s to keep (or helm cannot look it up: helm template, Argo CD): set %s, or use an existing Secret (see docs/infrastructure.md, GitOps)" .secret .key .valueName) -}}
{{- end -}}
{{- $_ := set $memo $id $value -}}
{{- end -}}
{{- index $memo $id -}}
{{- end -}}

{{/* Envoy's circuit breaker: MAX_CONNECTIONS per pod x (the most pods + 1, a rollout's surge pod). */}}
{{- define "realtime-gateway.envoyMaxConnections" -}}
{{- $perPod := int (default "${GATEWAY_SETTING_DEFAULTS.MAX_CONNECTIONS}" (index .Values.settings "MAX_CONNECTIONS")) -}}
{{- $pods := ternary .Values.replicaCount .Values.autoscaling.maxReplicas (eq .Values.autoscaling.mode "none") -}}
{{- mul $perPod (add (int $pods) 1) -}}
{{- end -}}

{{/* Envoy's shutdown.minDrainDuration: preStop + ceil(notice / 1000) (infra/realtime-gateway.ts). */}}
{{- define "realtime-gateway.envoyMinDrainSeconds" -}}
{{- add (int .Values.drain.preStopSeconds) (div (add (int .Values.drain.noticeDelayMs) 999) 1000) -}}
{{- end -}}

{{/* settings: only names the gateway knows (app/gateway/config.ts), and none the chart sets itself. */}}
{{- define "realtime-gateway.validateSettings" -}}
{{- $known := list ${known} -}}
{{- $owned := list ${owned} -}}
{{- range $key, $value := .Values.settings -}}
{{- if not (has $key $known) -}}
{{- fail (printf "settings.%s is not a gateway setting (see the configuration table in README.md)" $key) -}}
{{- end -}}
{{- if has $key $owned -}}
{{- fail (printf "settings.%s is set by the chart itself; use its value instead" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
${drainHelpers}`;
}

export { CHART_NAME };
