// RBAC as the API server sees it: what a user may do in a namespace (SelfSubjectRulesReview, the API behind
// `kubectl auth can-i --list`), flattened into one readable string per permission.
import type { ControlPlane } from '../../scripts/cluster/control-plane.ts';
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

/**
 * What each component's ServiceAccount may do beyond the defaults every service account has, keyed by its
 * `app.kubernetes.io/component` label. This is the reviewed contract: a manifest that grants more or less fails.
 * Format: `verb [group/]resource[name]` as printed by permissionsOf (cluster-wide grants show up here too);
 * `{serviceAccount}` stands for the account's own name (resources named after the release, like a Lease).
 */
export const EXPECTED_PERMISSIONS: Record<string, string[]> = {
  // The gateway never talks to the Kubernetes API.
  gateway: [],
  redis: [],
  // The scale-down controller (app/controller): why each one, docs/controller.md#rbac.
  controller: [
    'list realtime.gateway.blueprint.dev/socketgateways',
    'watch realtime.gateway.blueprint.dev/socketgateways',
    'patch realtime.gateway.blueprint.dev/socketgateways/status',
    'list apps/deployments',
    'watch apps/deployments',
    'patch apps/deployments/scale',
    'list pods',
    'watch pods',
    'patch pods',
    'list policy/poddisruptionbudgets',
    'watch policy/poddisruptionbudgets',
    'create events.k8s.io/events',
    'create coordination.k8s.io/leases',
    // Its Lease is named like it (realtime-gateway-controller in the profiles, <release>-…-controller in the chart).
    'get coordination.k8s.io/leases[{serviceAccount}]',
    'update coordination.k8s.io/leases[{serviceAccount}]',
  ],
};

/** EXPECTED_PERMISSIONS of a component for the ServiceAccount named `account`; undefined without an entry. */
export function expectedPermissions(component: string, account: string): string[] | undefined {
  return EXPECTED_PERMISSIONS[component]?.map((p) => p.replaceAll('{serviceAccount}', account));
}

export interface Account {
  user: string;
  namespace: string;
  name: string;
  component: string;
}

/** The ServiceAccounts the objects define; objects without a namespace are in `defaultNamespace` (helm --namespace). */
export function serviceAccounts(objects: KubeObject[], defaultNamespace = 'default'): Account[] {
  return objects
    .filter((o) => o.kind === 'ServiceAccount')
    .map((o) => {
      const namespace = o.metadata.namespace ?? defaultNamespace;
      return {
        namespace,
        name: o.metadata.name,
        user: `system:serviceaccount:${namespace}:${o.metadata.name}`,
        component: o.metadata.labels?.['app.kubernetes.io/component'] ?? o.metadata.name,
      };
    });
}

/** Every namespace the objects define or live in. */
export function namespacesOf(objects: KubeObject[], defaultNamespace = 'default'): string[] {
  const names = objects.map((o) => (o.kind === 'Namespace' ? o.metadata.name : (o.metadata.namespace ?? defaultNamespace)));
  return [...new Set(names)].sort();
}

/** What each ServiceAccount may do in each namespace the objects touch: take it before applying them. */
export async function rbacBaseline(plane: ControlPlane, objects: KubeObject[], defaultNamespace?: string): Promise<Map<string, Set<string>>> {
  const baseline = new Map<string, Set<string>>();
  for (const account of serviceAccounts(objects, defaultNamespace)) {
    for (const namespace of namespacesOf(objects, defaultNamespace)) {
      baseline.set(`${account.user} in ${namespace}`, await permissionsOf(plane, account.user, namespace));
    }
  }
  return baseline;
}

/**
 * After applying: every way a ServiceAccount's permissions, beyond its baseline, differ from
 * EXPECTED_PERMISSIONS for its component (empty when they match).
 */
export async function rbacProblems(
  plane: ControlPlane,
  objects: KubeObject[],
  baseline: Map<string, Set<string>>,
  defaultNamespace?: string,
): Promise<string[]> {
  const problems: string[] = [];
  for (const account of serviceAccounts(objects, defaultNamespace)) {
    const expected = expectedPermissions(account.component, account.name);
    for (const namespace of namespacesOf(objects, defaultNamespace)) {
      const before = baseline.get(`${account.user} in ${namespace}`) ?? new Set<string>();
      const granted = difference(await permissionsOf(plane, account.user, namespace), before);
      if (expected === undefined) {
        problems.push(`${account.user} (component "${account.component}") has no entry in EXPECTED_PERMISSIONS; ` +
          `in ${namespace} it is granted: ${JSON.stringify(granted)}`);
        continue;
      }
      const extra = difference(new Set(granted), new Set(expected));
      const missing = account.namespace === namespace ? difference(new Set(expected), new Set(granted)) : [];
      if (extra.length > 0) problems.push(`${account.user} in namespace ${namespace} may also: ${extra.join(', ')}`);
      if (missing.length > 0) problems.push(`${account.user} in namespace ${namespace} lacks: ${missing.join(', ')}`);
    }
  }
  return problems;
}
