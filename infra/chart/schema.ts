import { LIMITS, COOKIE_NAME_PATTERN, COOKIE_SAME_SITE_VALUES, type NumberLimit } from '../limits.ts';
import { DEFAULT_VALUES, VALUE_DOCS } from './values.ts';

/**
 * The chart's values.schema.json, generated from the same source as values.yaml (DEFAULT_VALUES gives
 * every value's type, VALUE_DOCS its description) and the constructs' bounds (infra/limits.ts), so
 * `helm install`/`helm template` refuse what the constructs would refuse, naming the value's path.
 * What JSON Schema cannot say (minReplicas <= maxReplicas, the derived grace period) the templates
 * check with `fail` (validate.yaml, _helpers.tpl).
 */

type Schema = Record<string, unknown>;

const integer = (limit: NumberLimit = {}): Schema => ({
  type: limit.fractional ? 'number' : 'integer',
  ...(limit.minimum !== undefined ? { minimum: limit.minimum } : {}),
  ...(limit.maximum !== undefined ? { maximum: limit.maximum } : {}),
});
const nonEmpty: Schema = { type: 'string', minLength: 1 };
const pullPolicy: Schema = { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'] };
const quantity: Schema = { type: ['string', 'number'], pattern: '^[0-9]+(\\.[0-9]+)?(m|[kMGTPE]i?|[KMGTPE])?$' };
const quantities: Schema = { type: 'object', additionalProperties: quantity };
/** A container's `resources` (requests, limits). */
const stringMap: Schema = { type: 'object', additionalProperties: { type: 'string' } };
/** A Secret's name (DNS subdomain), or empty for none. */
const optionalObjectName: Schema = { type: 'string', pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$' };
/** A key of a Secret or ConfigMap. */
const secretKey: Schema = { type: 'string', pattern: '^[-._a-zA-Z0-9]+$' };
/** Kubernetes objects the API server validates (items of env, volumes, tolerations, ...). */
const objects: Schema = { type: 'array', items: { type: 'object' } };
const resources: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: { requests: quantities, limits: quantities, claims: { type: 'array' } },
};

/** Enumerations: each is a dimension of the chart generator too (chart-generator.ts `enumerated`). */
export const VALUE_ENUMS: Record<string, readonly string[]> = {
  'autoscaling.mode': ['hpa', 'keda', 'none'],
  'entry.kind': ['gatewayApi', 'ingress', 'haproxy'],
  'entry.ingress.controller': ['nginx', 'traefik'],
  'entry.haproxy.serviceType': ['ClusterIP', 'NodePort', 'LoadBalancer'],
  'redis.mode': ['internal', 'external'],
  'auth.mode': ['HS256', 'RS256', 'ES256'],
  'auth.publicKey.format': ['jwks', 'pem'],
};

/** Leaves whose schema is more than their default's type. */
const LEAF_SCHEMAS: Record<string, Schema> = {
  'image.repository': nonEmpty,
  // Empty: the chart's appVersion. A string: an unquoted 1.10 would be the number 1.1.
  'image.tag': { type: 'string' },
  'image.pullPolicy': pullPolicy,
  // Empty (the demo namespaces) or text with something in it: whitespace alone is no namespaces file.
  namespaces: { type: ['string', 'object'], pattern: '^$|\\S' },
  'serverApi.existingSecret': optionalObjectName,
  'serverApi.key': secretKey,
  'redis.internal.existingSecret': optionalObjectName,
  'redis.internal.existingSecretPasswordKey': secretKey,
  replicaCount: integer(LIMITS.replicas),
  'autoscaling.minReplicas': integer(LIMITS.minReplicas),
  'autoscaling.maxReplicas': integer(LIMITS.minReplicas),
  'autoscaling.targetCPUUtilizationPercentage': integer(LIMITS.utilizationPercentage),
  'autoscaling.targetMemoryUtilizationPercentage': integer(LIMITS.utilizationPercentage),
  'autoscaling.scaleUpPods': integer(LIMITS.scaleUpPods),
  'autoscaling.scaleDownStabilizationSeconds': integer(LIMITS.scaleDownStabilizationSeconds),
  'autoscaling.scaleDownPeriodSeconds': integer(LIMITS.scaleDownPeriodSeconds),
  'autoscaling.keda.socketsPerPod': integer(LIMITS.socketsPerPod),
  'autoscaling.keda.socketsPath': { type: 'string', pattern: '^/' },
  'autoscaling.keda.operatorNamespace': nonEmpty,
  resources,
  imagePullSecrets: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: nonEmpty } } },
  podAnnotations: stringMap,
  podLabels: stringMap,
  nodeSelector: stringMap,
  tolerations: objects,
  affinity: { type: 'object' },
  priorityClassName: { type: 'string' },
  extraEnv: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: nonEmpty } } },
  extraEnvFrom: objects,
  extraVolumes: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: nonEmpty } } },
  extraVolumeMounts: { type: 'array', items: { type: 'object', required: ['name', 'mountPath'], properties: { name: nonEmpty, mountPath: { type: 'string', pattern: '^/' } } } },
  'serviceAccount.annotations': stringMap,
  'entry.gatewayApi.parentRefs': { type: 'array', items: { type: 'object', required: ['name'], properties: { name: nonEmpty } } },
  'entry.ingress.annotations': stringMap,
  'redis.internal.storageClass': { type: 'string' },
  'redis.internal.password': { type: 'string', pattern: '^[A-Za-z0-9._~+/=-]*$' },
  'redis.internal.maxMemory': { type: 'string', pattern: '^[0-9]+([kKmMgG][bB]?)?$' },
  'auth.jwtSecret': { type: 'string', anyOf: [{ maxLength: 0 }, { minLength: 32 }] },
  'auth.adminToken': { type: 'string', anyOf: [{ maxLength: 0 }, { minLength: 16 }] },
  'auth.publicKey.key': { type: 'string', pattern: '^[-._a-zA-Z0-9]+$' },
  'metrics.serviceMonitor.interval': { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$' },
  'metrics.serviceMonitor.labels': stringMap,
  'metrics.prometheusRule.labels': stringMap,
  'internal.port': integer(LIMITS.port),
  'entry.cookieName': { type: 'string', pattern: COOKIE_NAME_PATTERN },
  'entry.cookieSameSite': { type: 'string', enum: [...COOKIE_SAME_SITE_VALUES] },
  'entry.gatewayApi.listenerPort': integer(LIMITS.port),
  'entry.ingress.timeoutSeconds': integer(LIMITS.ingressTimeoutSeconds),
  // Envoy Gateway's EnvoyService: its CRD checks the rest on the API server.
  'entry.gatewayApi.envoyProxy.service': {
    type: 'object',
    required: ['type'],
    properties: {
      type: { type: 'string', enum: ['LoadBalancer', 'NodePort', 'ClusterIP'] },
      externalTrafficPolicy: { type: 'string', enum: ['Local', 'Cluster'] },
      annotations: stringMap,
      labels: stringMap,
      patch: { type: 'object', required: ['value'], properties: { type: { type: 'string', enum: ['StrategicMerge', 'JSONMerge'] }, value: { type: 'object' } } },
    },
  },  'entry.gatewayApi.envoyProxy.replicas': integer(LIMITS.replicas),
  'entry.gatewayApi.envoyProxy.minAvailable': integer({ minimum: 0 }),
  'entry.gatewayApi.envoyProxy.resources': resources,
  'entry.haproxy.image.repository': nonEmpty,
  'entry.haproxy.image.tag': nonEmpty,
  'entry.haproxy.image.pullPolicy': pullPolicy,
  'entry.haproxy.replicas': integer(LIMITS.replicas),
  'entry.haproxy.nodePort': { anyOf: [integer(LIMITS.nodePort), { const: '' }] },
  'entry.haproxy.port': integer(LIMITS.port),
  'entry.haproxy.maxServers': integer(LIMITS.haproxyMaxServers),
  'entry.haproxy.maxConnections': integer(LIMITS.haproxyMaxConnections),
  'entry.haproxy.clusterDomain': nonEmpty,
  'entry.haproxy.resources': resources,
  'redis.internal.image': nonEmpty,
  'redis.internal.storageSize': quantity,
  'redis.internal.resources': resources,
  'redis.external.urlKey': nonEmpty,
  'redis.external.passwordKey': nonEmpty,
  ...Object.fromEntries(Object.entries(LIMITS.drain).map(([key, limit]) => [`drain.${key}`, integer(limit)])),
  'drain.terminationGracePeriodSeconds': { type: ['integer', 'null'], minimum: 1 },
  // Names are checked by the templates (validateSettings), whose message says which are known and which the chart owns.
  settings: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
  'controller.replicas': integer(LIMITS.replicas),
  'controller.resources': resources,
  'controller.minReadyPods': integer(LIMITS.minReadyPods),
  'controller.leaseDurationSeconds': integer(LIMITS.leaseDurationSeconds),
  'controller.drain.reconnectBudgetPerSecond': integer(LIMITS.reconnectBudgetPerSecond),
  'controller.drain.windowSeconds': integer(LIMITS.controllerDrainWindowSeconds),
  'controller.drain.marginSeconds': integer(LIMITS.controllerDrainMarginSeconds),
};

/** `if` this path has this value `then` that path must be set: value combinations the constructs need. */
interface RequiredWhen {
  readonly when: Record<string, unknown>;
  readonly require: string;
  readonly schema: Schema;
}
const REQUIRED_WHEN: readonly RequiredWhen[] = [
  { when: { 'redis.mode': 'external' }, require: 'redis.external.secretName', schema: nonEmpty },
  { when: { 'entry.tls.enabled': true }, require: 'entry.tls.secretName', schema: nonEmpty },
  { when: { 'entry.kind': 'ingress', 'entry.tls.enabled': true }, require: 'entry.host', schema: nonEmpty },
  { when: { 'entry.kind': 'gatewayApi', 'entry.gatewayApi.parentRefs': { minItems: 0, maxItems: 0 } }, require: 'entry.className', schema: nonEmpty },
  // A shared Gateway terminates TLS itself.
  { when: { 'entry.kind': 'gatewayApi', 'entry.gatewayApi.parentRefs': { minItems: 1 } }, require: 'entry.tls.enabled', schema: { const: false } },
  { when: { 'entry.kind': 'ingress' }, require: 'entry.className', schema: nonEmpty },
  { when: { 'auth.mode': { enum: ['RS256', 'ES256'] } }, require: 'auth.publicKey.configMapName', schema: nonEmpty },
  // Browsers drop a SameSite=None cookie that is not Secure (long-polling would lose its pod).
  {
    when: { 'entry.kind': { enum: ['ingress', 'haproxy'] }, 'entry.cookieSameSite': 'None', 'entry.tls.enabled': false },
    require: 'entry.cookieSecure',
    schema: { const: true },
  },
  // HAProxy serves plain HTTP: TLS is terminated in front of it.
  { when: { 'entry.kind': 'haproxy' }, require: 'entry.tls.enabled', schema: { const: false } },
];

/** `{properties: {a: {properties: {b: leaf}, required: [b]}}, required: [a]}` for the path a.b. */
function atPath(path: string, leaf: Schema): Schema {
  return path
    .split('.')
    .reduceRight<Schema>((inner, key) => ({ type: 'object', properties: { [key]: inner }, required: [key] }), leaf);
}

function allOf(schemas: Schema[]): Schema {
  return schemas.length === 1 ? schemas[0]! : { allOf: schemas };
}

function leafSchema(path: string, value: unknown): Schema {
  const description = VALUE_DOCS[path];
  const described = (schema: Schema) => (description ? { description, ...schema } : schema);
  const known = LEAF_SCHEMAS[path];
  if (known) return described(known);
  const options = VALUE_ENUMS[path];
  if (options) return described({ type: 'string', enum: [...options] });
  if (typeof value === 'string') return described({ type: 'string' });
  if (typeof value === 'boolean') return described({ type: 'boolean' });
  if (typeof value === 'number') return described({ type: 'integer' });
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return described({
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, leafSchema(path ? `${path}.${k}` : k, v)])),
    });
  }
  throw new Error(`values.${path}: no schema for ${JSON.stringify(value)}; add it to LEAF_SCHEMAS`);
}

export function valuesSchema(): Schema {
  const root = leafSchema('', DEFAULT_VALUES);
  // An umbrella chart passes `global` to its subcharts.
  (root.properties as Record<string, Schema>).global = { type: 'object', description: 'Values an umbrella chart shares with its subcharts (unused here).' };
  const conditions = REQUIRED_WHEN.map(({ when, require, schema }) => ({
    if: allOf(Object.entries(when).map(([path, value]) => atPath(path, value !== null && typeof value === 'object' ? (value as Schema) : { const: value }))),
    then: atPath(require, schema),
  }));
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'realtime-gateway chart values',
    ...root,
    allOf: conditions,
  };
}

export function valuesSchemaJson(): string {
  return `${JSON.stringify(valuesSchema(), null, 2)}\n`;
}
