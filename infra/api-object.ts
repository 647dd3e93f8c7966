import { ApiObject, type ApiObjectProps } from 'cdk8s';
import type { Construct } from 'constructs';
import type { ISecurityContext } from 'kubernetes-models/v1/SecurityContext';

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

/** Every container of the blueprint: non-root, no privilege escalation, read-only root, no capabilities. */
export const HARDENED_CONTAINER_SECURITY_CONTEXT: ISecurityContext = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};
