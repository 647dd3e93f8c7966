import { JsonPatch } from 'cdk8s';
import { Construct } from 'constructs';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { addObject } from './api-object.ts';
import type { AppIdentity } from './labels.ts';

/** Pod Security Admission labels: reject (enforce), log (audit) and warn about anything short of `restricted`. */
export const POD_SECURITY_RESTRICTED_LABELS: Readonly<Record<string, string>> = {
  'pod-security.kubernetes.io/enforce': 'restricted',
  'pod-security.kubernetes.io/audit': 'restricted',
  'pod-security.kubernetes.io/warn': 'restricted',
};

export interface RestrictedNamespaceProps {
  readonly app: AppIdentity;
  readonly name: string;
}

/**
 * The namespace a profile deploys into, enforcing Pod Security `restricted`. Add it first in its chart so it
 * is the first object of the file: `kubectl apply -f` creates objects in file order.
 * The Helm chart has none on purpose: Helm installs into `--namespace`.
 */
export class RestrictedNamespace extends Construct {
  readonly name: string;

  constructor(scope: Construct, id: string, props: RestrictedNamespaceProps) {
    super(scope, id);
    this.name = props.name;
    const namespace = addObject(
      this,
      'Namespace',
      new Namespace({
        metadata: {
          name: props.name,
          labels: {
            // The API server sets this label on every namespace; writing it lets `kubectl apply -l` pick this object.
            'kubernetes.io/metadata.name': props.name,
            'app.kubernetes.io/part-of': props.app.name,
            'app.kubernetes.io/managed-by': props.app.managedBy,
            ...POD_SECURITY_RESTRICTED_LABELS,
          },
        },
      }),
    );
    // A Chart's namespace lands on every object; a Namespace is cluster-scoped.
    namespace.addJsonPatch(JsonPatch.remove('/metadata/namespace'));
  }
}
