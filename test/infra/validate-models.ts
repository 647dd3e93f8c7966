// Offline schema validation of synthesized objects with kubernetes-models (shared by the infra tests).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { Gateway } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway';
import { GatewayClass } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { API_GROUP, API_VERSION, KIND, parseSpec } from '../../app/controller/socket-gateway.ts';

type ModelClass = new (data: never) => { validate(): void };

/**
 * Kinds with no kubernetes-models class (Envoy Gateway's policies, the Prometheus Operator's objects) are
 * checked against the openAPIV3Schema of their CRD from ./bin/crds-optional (`make tools`); the cluster
 * tests apply them to a real API server too (test/cluster/platform-crds.test.ts).
 */
const OPTIONAL_CRDS = join(import.meta.dirname, '..', '..', 'bin', 'crds-optional');
let crdSchemas: Map<string, object> | undefined;
const compiled = new Map<string, ValidateFunction>();

/** CRD patterns are Go regular expressions: `(?i)` becomes the `i` flag; one JavaScript cannot read matches anything. */
function goRegExp(pattern: string, flags: string): { test(text: string): boolean } {
  const insensitive = pattern.startsWith('(?i)');
  try {
    return new RegExp(insensitive ? pattern.slice(4) : pattern, insensitive ? `${flags}i` : flags);
  } catch {
    return { test: () => true };
  }
}
goRegExp.code = 'goRegExp';

function crdValidator(apiVersion: string, kind: string): ValidateFunction | undefined {
  if (!crdSchemas) {
    crdSchemas = new Map();
    if (existsSync(OPTIONAL_CRDS)) {
      for (const dir of readdirSync(OPTIONAL_CRDS)) {
        for (const file of readdirSync(join(OPTIONAL_CRDS, dir)).filter((f) => f.endsWith('.yaml'))) {
          for (const doc of parseAllDocuments(readFileSync(join(OPTIONAL_CRDS, dir, file), 'utf8'))) {
            const crd = doc.toJS() as { kind?: string; spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: object } }[] } };
            if (crd?.kind !== 'CustomResourceDefinition') continue;
            for (const version of crd.spec.versions) crdSchemas.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, version.schema.openAPIV3Schema);
          }
        }
      }
    }
  }
  const key = `${apiVersion}/${kind}`;
  const schema = crdSchemas.get(key);
  if (!schema) return undefined;
  if (!compiled.has(key)) compiled.set(key, new Ajv({ strict: false, validateFormats: false, allErrors: true, code: { regExp: goRegExp } }).compile(schema));
  return compiled.get(key);
}

/** The SocketGateway has no kubernetes-models class: its spec is checked with the zod schema the CRD is made from. */
class SocketGatewayModel {
  readonly #data: { spec?: unknown };
  constructor(data: never) {
    this.#data = data as { spec?: unknown };
  }
  validate(): void {
    parseSpec(this.#data.spec);
  }
}

const MODELS: Record<string, ModelClass> = {
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'gateway.networking.k8s.io/v1/Gateway': Gateway,
  'gateway.networking.k8s.io/v1/GatewayClass': GatewayClass,
  'gateway.networking.k8s.io/v1/HTTPRoute': HTTPRoute,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  [`${API_GROUP}/${API_VERSION}/${KIND}`]: SocketGatewayModel,
};

/** Throws with the object's kind/name and the schema errors if it does not validate. */
export function validateManifest(object: { apiVersion: string; kind: string; metadata?: { name?: string } }): void {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  const crd = Model ? undefined : crdValidator(object.apiVersion, object.kind);
  if (crd) {
    if (!crd(object as unknown)) throw new Error(`${object.kind}/${object.metadata?.name} fails its CRD's schema: ${JSON.stringify(crd.errors)}`);
    return;
  }
  if (!Model) throw new Error(`no kubernetes-models class registered for ${object.apiVersion} ${object.kind}; add it to test/infra/validate-models.ts`);
  try {
    new Model(object as never).validate();
  } catch (error) {
    throw new Error(`${object.kind}/${object.metadata?.name} fails schema validation: ${(error as Error).message}`);
  }
}
