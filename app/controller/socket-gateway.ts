import { z } from 'zod';

/**
 * The SocketGateway custom resource: the one source of its schema. The controller parses resources
 * with these zod schemas; `socketGatewayCrd()` turns the same schemas into the CRD's OpenAPI v3 schema
 * (infra/scale-down-controller.ts ships it), so the API server and the controller can never disagree on
 * a field, a default or a bound. See docs/controller.md and docs/decisions/0005-scale-down-controller.md.
 */

export const API_GROUP = 'realtime.gateway.blueprint.dev';
export const API_VERSION = 'v1alpha1';
export const KIND = 'SocketGateway';
export const PLURAL = 'socketgateways';
export const SINGULAR = 'socketgateway';
export const SHORT_NAMES = ['sgw'] as const;
export const CRD_NAME = `${PLURAL}.${API_GROUP}`;

/** Annotations the controller writes on a gateway pod it drains (its durable record of the drain). */
export const ANNOTATIONS = {
  /** When the controller chose this pod and started its drain (RFC 3339). Set before anything else. */
  drainStartedAt: `${API_GROUP}/drain-started-at`,
  /** When the controller gives up waiting for it to empty (RFC 3339): start + window + margin. */
  drainDeadline: `${API_GROUP}/drain-deadline`,
  /** Sockets the pod held when its drain started. */
  drainSockets: `${API_GROUP}/drain-sockets`,
  /** When the drain ended (RFC 3339) and how: `Completed` or `TimedOut`. Then the pod may be deleted. */
  drainCompletedAt: `${API_GROUP}/drain-completed-at`,
  drainOutcome: `${API_GROUP}/drain-outcome`,
  /** When the controller lowered the Deployment so the ReplicaSet deletes this drained pod. */
  drainReleasedAt: `${API_GROUP}/drain-released-at`,
  /** The ReplicaSet deletes the pod with the lowest cost first (beta since 1.22). */
  podDeletionCost: 'controller.kubernetes.io/pod-deletion-cost',
} as const;

/** The lowest pod-deletion-cost (int32 minimum): the ReplicaSet removes this pod before any other. */
export const MIN_POD_DELETION_COST = -2_147_483_648;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const drainPolicySchema = z
  .strictObject({
    reconnectBudgetPerSecond: z
      .number()
      .min(0.2)
      .max(100_000)
      // OpenAPI `minimum` alone lets an integer 0 through (the API server compares integers with the
      // truncated bound); the CEL rule compares as numbers.
      .meta({ 'x-kubernetes-validations': [{ rule: 'double(self) >= 0.2', message: 'must be at least 0.2 reconnects per second' }] })
      .default(60)
      .describe(
        'Reconnects per second the surviving pods absorb, for the whole fleet. Every pod draining at a moment ' +
          '(scale-down victims and pods deleted by anything else) gets an equal share of it as its close rate.',
      ),
    windowSeconds: z
      .int()
      .min(1)
      .max(3_600)
      .default(120)
      .describe(
        'Longest a controller-started drain may take. When a pod\'s share of the budget would need longer for ' +
          'its sockets, its rate is raised to sockets / window (status and the DrainStarted event say so).',
      ),
    hintBoundSeconds: z
      .int()
      .min(0)
      .max(3_600)
      .optional()
      .describe(
        'Upper bound of the server:draining reconnect hint; the gateway caps it at its drain window. ' +
          'Unset: the window, so hinted clients leave at the paced rate. 0: clients move at once (over budget).',
      ),
    marginSeconds: z
      .int()
      .min(0)
      .max(600)
      .default(15)
      .describe(
        'Extra wait after the window before a drain counts as timed out (covers the gateway\'s notice delay). ' +
          'A timed-out pod is removed anyway; its SIGTERM closes what is left.',
      ),
  })
  .describe('How scale-down drains are paced.');

export const socketGatewaySpecSchema = z
  .strictObject({
    replicas: z
      .int()
      .min(0)
      .max(10_000)
      .default(1)
      .describe(
        'Serving gateway pods wanted (the /scale subresource: HPA, KEDA and kubectl scale set it). ' +
          'Manifests leave it out when an autoscaler owns it, so a re-apply does not reset it.',
      ),
    deploymentName: z
      .string()
      .min(1)
      .max(253)
      .regex(DNS_SUBDOMAIN, 'must be a DNS subdomain name')
      .meta({ 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'deploymentName is immutable' }] })
      .describe('The gateway Deployment in the same namespace. The controller owns its replica count.'),
    internalPortName: z
      .string()
      .min(1)
      .max(15)
      .regex(PORT_NAME, 'must be an IANA service name')
      .default('internal')
      .describe('Name of the gateway container port serving /admin/drain (the internal port).'),
    minReadyPods: z
      .int()
      .min(0)
      .max(10_000)
      .default(1)
      .describe('A drain never starts when fewer ready, serving pods than this would remain.'),
    drain: drainPolicySchema.prefault({}),
  })
  .describe('Desired state of a Socket.IO gateway fleet whose scale-down drains pods before deleting them.');

export type SocketGatewaySpec = z.output<typeof socketGatewaySpecSchema>;
export type DrainPolicy = z.output<typeof drainPolicySchema>;

const conditionSchema = z.strictObject({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().min(1).max(1024),
  message: z.string().max(32_768),
  lastTransitionTime: z.string().meta({ format: 'date-time' }),
  observedGeneration: z.int().min(0).optional(),
});

const podStatusSchema = z.strictObject({
  name: z.string(),
  state: z.enum(['Starting', 'Serving', 'Draining', 'Drained', 'Terminating']).describe(
    'Starting: not ready yet. Serving: ready. Draining: a controller drain runs. Drained: empty, waiting for the ReplicaSet. Terminating: deleted (by anything).',
  ),
  ready: z.boolean(),
  sockets: z.int().min(0).optional().describe('Connected sockets (fleet stats or the drain status); absent when unknown.'),
  drainRatePerSecond: z.number().min(0).optional().describe('Close rate of its current drain plan.'),
});

const scaleDownSchema = z.strictObject({
  pod: z.string(),
  socketsMoved: z.int().min(0),
  durationSeconds: z.number().min(0),
  outcome: z.enum(['Completed', 'TimedOut']),
  completedAt: z.string().meta({ format: 'date-time' }),
});

export const socketGatewayStatusSchema = z.strictObject({
  observedGeneration: z.int().min(0).optional(),
  replicas: z.int().min(0).optional().describe('Serving pods (not draining, not terminating): the /scale status.'),
  readyReplicas: z.int().min(0).optional(),
  drainingReplicas: z.int().min(0).optional().describe('Pods draining now: controller drains and deleted pods.'),
  selector: z.string().optional().describe('Label selector of the gateway pods (the /scale subresource).'),
  deploymentReplicas: z.int().min(0).optional().describe('spec.replicas the controller last gave the Deployment.'),
  budgetInUsePerSecond: z.number().min(0).optional().describe('Sum of the close rates of every draining pod.'),
  pods: z
    .array(podStatusSchema)
    .max(10_000)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] })
    .optional(),
  lastScaleDown: scaleDownSchema.optional(),
  conditions: z
    .array(conditionSchema)
    .max(16)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
    .optional(),
});

export type SocketGatewayStatus = z.output<typeof socketGatewayStatusSchema>;
export type PodStatusEntry = z.output<typeof podStatusSchema>;
export type ScaleDownRecord = z.output<typeof scaleDownSchema>;
export type Condition = z.output<typeof conditionSchema>;

export interface SocketGateway {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string; generation?: number; resourceVersion?: string };
  spec: SocketGatewaySpec;
  status?: SocketGatewayStatus;
}

/** Parses a resource's spec with the CRD's defaults; throws naming the field when it does not fit. */
export function parseSpec(raw: unknown): SocketGatewaySpec {
  const result = socketGatewaySpecSchema.safeParse(raw);
  if (!result.success) {
    throw new Error(`invalid SocketGateway spec: ${result.error.issues.map((i) => `spec.${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return result.data;
}

// ---- the CRD, generated from the schemas above ----

type JsonSchema = { [key: string]: unknown };

/**
 * zod's OpenAPI 3.0 output, made structural for Kubernetes: no `additionalProperties: false` (the API
 * server prunes unknown fields, and strict field validation rejects them), no JSON-number bounds that
 * exceed what the field documents.
 */
export function toStructural(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === '$schema' || key === 'additionalProperties') continue;
    if ((key === 'maximum' || key === 'minimum') && Math.abs(value as number) === Number.MAX_SAFE_INTEGER) continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [k, toStructural(v)]));
    } else if (key === 'items') {
      out.items = toStructural(value as JsonSchema);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function openApi(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  return toStructural(z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'throw' }) as JsonSchema);
}

/** The CustomResourceDefinition, as a plain object (apiextensions.k8s.io/v1). */
export function socketGatewayCrd(labels: Record<string, string> = {}): JsonSchema {
  const spec = openApi(socketGatewaySpecSchema, 'input');
  // Defaults come from zod; drain's `prefault({})` becomes the defaulted object the API server stores.
  (spec.properties as Record<string, JsonSchema>).drain!.default = {};
  const status = openApi(socketGatewayStatusSchema, 'output');
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME, labels },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: SINGULAR, shortNames: [...SHORT_NAMES], categories: ['all'] },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: {
            status: {},
            scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
          },
          additionalPrinterColumns: [
            { name: 'Desired', type: 'integer', jsonPath: '.spec.replicas', description: 'Serving pods wanted' },
            { name: 'Current', type: 'integer', jsonPath: '.status.replicas', description: 'Serving pods' },
            { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' },
            { name: 'Draining', type: 'integer', jsonPath: '.status.drainingReplicas' },
            { name: 'Budget/s', type: 'number', jsonPath: '.spec.drain.reconnectBudgetPerSecond', description: 'Fleet reconnect budget' },
            { name: 'Deployment', type: 'string', jsonPath: '.spec.deploymentName', priority: 1 },
            { name: 'Last scale-down', type: 'string', jsonPath: '.status.lastScaleDown.pod', priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${KIND}: a Socket.IO gateway fleet scaled by the blueprint's drain controller (docs/controller.md).`,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status,
              },
            },
          },
        },
      ],
    },
  };
}
