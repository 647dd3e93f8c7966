import { ApiObject, type ApiObjectProps } from 'cdk8s';
import type { Construct } from 'constructs';

/** What the constructs need from a `kubernetes-models` object: its JSON form (with apiVersion and kind). */
export interface KubernetesModel {
  toJSON(): unknown;
}

/**
 * Adds a typed `kubernetes-models` object to the construct tree. The models give the constructs their
 * types (and the tests their offline schema validation); cdk8s gives the tree, naming and synthesis.
 */
export function addObject(scope: Construct, id: string, model: KubernetesModel): ApiObject {
  return new ApiObject(scope, id, model.toJSON() as ApiObjectProps);
}
