// RBAC as the API server sees it: what a user may do in a namespace (SelfSubjectRulesReview, the API behind
// `kubectl auth can-i --list`), flattened into one readable string per permission.
import type { ControlPlane } from './control-plane.ts';
import type { KubeObject } from './manifests.ts';

interface ResourceRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
}
interface NonResourceRule {
  verbs: string[];
  nonResourceURLs?: string[];
}

/**
 * Every permission `user` has in `namespace` (cluster-wide grants included), as strings such as
 * `list pods`, `patch apps/deployments`, `update coordination.k8s.io/leases[my-lease]`, `get /healthz`.
 */
export async function permissionsOf(plane: ControlPlane, user: string, namespace: string): Promise<Set<string>> {
  const review = {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SelfSubjectRulesReview',
    spec: { namespace },
  };
  // --validate=false: client-side validation would look up CRDs as `user`, who may not list them.
  const args = ['create', '--validate=false', '-f', '-', '-o', 'json'];
  const { stdout } = await plane.kubectl(args, { input: JSON.stringify(review), as: user });
  const status = JSON.parse(stdout).status as {
    resourceRules?: ResourceRule[];
    nonResourceRules?: NonResourceRule[];
    incomplete?: boolean;
    evaluationError?: string;
  };
  if (status.incomplete) throw new Error(`RBAC evaluation for ${user} was incomplete: ${status.evaluationError}`);
  const permissions = new Set<string>();
  for (const rule of status.resourceRules ?? []) {
    for (const verb of rule.verbs) {
      for (const group of rule.apiGroups ?? ['']) {
        for (const resource of rule.resources ?? []) {
          const qualified = group === '' ? resource : `${group}/${resource}`;
          const names = rule.resourceNames?.length ? rule.resourceNames : [undefined];
          for (const name of names) permissions.add(`${verb} ${qualified}${name === undefined ? '' : `[${name}]`}`);
        }
      }
    }
  }
  for (const rule of status.nonResourceRules ?? []) {
    for (const verb of rule.verbs) for (const url of rule.nonResourceURLs ?? []) permissions.add(`${verb} ${url}`);
  }
  return permissions;
}

export function difference(a: Set<string>, b: Set<string>): string[] {
  return [...a].filter((item) => !b.has(item)).sort();
}

/** Every place a Role or ClusterRole grants `*` (verbs, API groups, resources or URLs). */
export function wildcardGrants(objects: KubeObject[]): string[] {
  const found: string[] = [];
  for (const object of objects) {
    if (object.kind !== 'Role' && object.kind !== 'ClusterRole') continue;
    const rules = (object.rules ?? []) as (ResourceRule & NonResourceRule)[];
    rules.forEach((rule, index) => {
      for (const field of ['verbs', 'apiGroups', 'resources', 'nonResourceURLs', 'resourceNames'] as const) {
        const values = rule[field] ?? [];
        if (values.some((value) => value.includes('*'))) {
          found.push(`${object.kind} ${object.metadata.name} rules[${index}].${field}: ${JSON.stringify(values)}`);
        }
      }
    });
  }
  return found;
}
