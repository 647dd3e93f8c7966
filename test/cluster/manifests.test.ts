// The blueprint's manifests against a real kube-apiserver (+ kube-controller-manager): every object of every
// profile and of the Helm chart passes server-side dry-run and is applied; the kind profile's Deployments
// produce ReplicaSets and Pods and its HPA is observed; every ServiceAccount gets exactly the RBAC its
// component needs. Run `make tools` first.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultBinDir, installOptionalCrds, repoRoot, startControlPlane, type ControlPlane, type KubectlResult, type StopControlPlane } from '../../scripts/cluster/control-plane.ts';
import {
  PROFILES,
  describeObject,
  dryRunThenApply,
  lostFields,
  readBack,
  renderCharts,
  synthesize,
  type ApplyReport,
  type KubeObject,
  type Manifests,
  type Profile,
} from './manifests.ts';
import { rbacBaseline, rbacProblems, serviceAccounts, wildcardGrants } from './rbac.ts';

const CHART_NAMESPACE = 'realtime-gateway';

// Synthesis and chart rendering run once per file, on first use (a failure shows up in every test that needs them).
let synthesized: Promise<Record<Profile, Manifests>> | undefined;
const synthesizeOnce = () => (synthesized ??= synthesize());
let charts: ReturnType<typeof renderCharts> | undefined;
const renderChartsOnce = () => (charts ??= renderCharts(join(defaultBinDir, 'helm'), CHART_NAMESPACE));

/** One control plane with one set of manifests applied, shared by the tests of a describe block. */
function planeWithManifests(
  load: () => Promise<Manifests>,
  options: {
    controllerManager: boolean;
    namespace?: string;
    /** First apply this directory the way a platform team would (`kubectl apply -f <dir>/crds/`, then `-f <dir>`: client-side, file order). */
    plainApply?: { dir: string; existingNamespaces: string[] };
  },
) {
  const state = {} as {
    plane: ControlPlane;
    stop: StopControlPlane;
    manifests: Manifests;
    baseline: Map<string, Set<string>>;
    plainApply?: KubectlResult;
    applied?: Promise<ApplyReport>;
  };
  beforeAll(async () => {
    [state.plane, state.stop] = await startControlPlane({ controllerManager: options.controllerManager });
    // The Gateway API entry comes with Envoy Gateway's BackendTrafficPolicy.
    await installOptionalCrds(state.plane, ['envoy-gateway']);
    state.manifests = await load();
    // What each service account may do before the manifests exist: the defaults every service account has.
    state.baseline = await rbacBaseline(state.plane, state.manifests.objects, options.namespace);
  });
  afterAll(async () => {
    await state.stop?.();
  });
  const applyOnce = () =>
    (state.applied ??= (async () => {
      if (options.plainApply) {
        for (const namespace of options.plainApply.existingNamespaces) await state.plane.kubectl(['create', 'namespace', namespace]);
        // The profile's CRDs first (kubectl cannot create a custom resource in the run that creates its CRD).
        const crds = join(options.plainApply.dir, 'crds');
        if (existsSync(crds)) {
          await state.plane.kubectl(['apply', '-f', crds]);
          await state.plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', crds]);
        }
        state.plainApply = await state.plane.kubectl(['apply', '-f', options.plainApply.dir], { allowFailure: true });
      }
      // Then server-side and strict. Over a client-side apply, the two field managers both claim fields the API
      // server defaulted (e.g. fieldRef.apiVersion): that is not a problem of the manifests, so take them over.
      return dryRunThenApply(state.plane, state.manifests, options.namespace, { forceConflicts: options.plainApply !== undefined });
    })());
  return { state, applyOnce, namespace: options.namespace };
}

function rbacTests(context: ReturnType<typeof planeWithManifests>, defaultNamespace?: string) {
  test('every ServiceAccount can do exactly what its component needs, and nothing else', async () => {
    const { state, applyOnce } = context;
    await applyOnce();
    const accounts = serviceAccounts(state.manifests.objects, defaultNamespace);
    expect(accounts.length, `${state.manifests.source} defines no ServiceAccount`).toBeGreaterThan(0);
    const problems = await rbacProblems(state.plane, state.manifests.objects, state.baseline, defaultNamespace);
    expect(problems, `kubectl auth can-i --list --as=<user> -n <namespace> shows the same:\n${problems.join('\n')}`).toEqual([]);
  });
}

function applyTest(context: ReturnType<typeof planeWithManifests>) {
  test('every object passes server-side dry-run, then is applied', async () => {
    const { state, applyOnce } = context;
    const report = await applyOnce();
    const expected = state.manifests.objects.length;
    expect(expected, `${state.manifests.source} has no objects`).toBeGreaterThan(0);
    expect(report.dryRun, 'one dry-run result per object').toHaveLength(expected);
    expect(report.applied, 'one apply result per object').toHaveLength(expected);
    expect(report.warnings, 'warnings from the API server').toEqual([]);
    // Read every object back: stored for real, not only dry-run, and with every field the manifest sets.
    const stored = await readBack(state.plane, state.manifests.objects, context.namespace);
    expect(stored.size).toBe(expected);
    const lost = state.manifests.objects.flatMap((object) => lostFields(object, stored.get(describeObject(object))));
    expect(lost, 'fields the API server dropped or changed').toEqual([]);
  });
}

describe.each(PROFILES)('profile %s', (profile) => {
  const context = planeWithManifests(async () => (await synthesizeOnce())[profile], {
    controllerManager: profile === 'kind',
    // platform.yaml holds only the cluster-scoped GatewayClass now (kind's NodePort is the entry's EnvoyProxy).
    plainApply: { dir: join(repoRoot, 'dist', profile), existingNamespaces: [] },
  });
  applyTest(context);
  rbacTests(context);

  test(`\`kubectl apply -f dist/${profile}/\` works on an empty cluster: the profile brings its Namespace, enforcing Pod Security restricted`, async () => {
    const { state, applyOnce } = context;
    await applyOnce();
    const plain = state.plainApply!;
    expect(plain.stderr, `kubectl apply -f dist/${profile}/ failed`).toBe('');
    expect(plain.code).toBe(0);
    expect(plain.stdout.split('\n')[0], 'the Namespace is created first').toMatch(/^namespace\/\S+ created$/);
    const namespaces = state.manifests.objects.filter((o) => o.kind === 'Namespace');
    expect(namespaces.map((n) => n.metadata.name)).toEqual(['realtime-gateway']);
    const stored = await getJson(state.plane, undefined, 'namespace', 'realtime-gateway');
    expect(stored.metadata.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
  });

  if (profile === 'kind') {
    test('each Deployment yields a ReplicaSet and its Pods, admitted under Pod Security restricted (Pending: there are no nodes)', async () => {
      const { state, applyOnce } = context;
      await applyOnce();
      const deployments = state.manifests.objects.filter((o) => o.kind === 'Deployment');
      expect(deployments.length, 'the kind profile has no Deployment').toBeGreaterThan(0);
      for (const deployment of deployments) {
        await eventually(`${describeObject(deployment)} to have its pods`, 45_000, async () => {
          return describeChain(state.plane, deployment);
        });
      }
    });

    test('the HorizontalPodAutoscaler is observed by its controller, which holds its target at minReplicas or more', async () => {
      const { state, applyOnce } = context;
      await applyOnce();
      const autoscalers = state.manifests.objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
      expect(autoscalers.length, 'the kind profile has no HorizontalPodAutoscaler').toBeGreaterThan(0);
      for (const hpa of autoscalers) {
        const spec = hpa.spec as { minReplicas?: number; maxReplicas: number; scaleTargetRef: { apiVersion: string; kind: string; name: string } };
        const target = spec.scaleTargetRef;
        const [group, version] = target.apiVersion.includes('/') ? target.apiVersion.split('/') : ['', target.apiVersion];
        const targetResource = group ? `${target.kind}.${version}.${group}` : target.kind;
        await eventually(`${describeObject(hpa)} to be acted on by the HPA controller`, 45_000, async () => {
          const stored = await getJson(state.plane, hpa.metadata.namespace, 'horizontalpodautoscalers.autoscaling', hpa.metadata.name);
          const conditions = (stored.status?.conditions ?? []) as { type: string }[];
          if (!conditions.some((c) => c.type === 'AbleToScale')) return `status: ${JSON.stringify(stored.status)}`;
          // With no metrics here, the controller's only move is enforcing the bounds (via the /scale subresource).
          const scale = await getJson(state.plane, hpa.metadata.namespace, targetResource, target.name, '--subresource=scale');
          const replicas = scale.spec?.replicas ?? 0;
          if (replicas < (spec.minReplicas ?? 1) || replicas > spec.maxReplicas) {
            return `${target.kind} ${target.name} has ${replicas} replicas, outside ${spec.minReplicas ?? 1}..${spec.maxReplicas}`;
          }
          return null;
        });
      }
    });
  }
});

describe('helm chart', () => {
  const context = planeWithManifests(
    async () => {
      const rendered = await renderChartsOnce();
      return { source: rendered.map((c) => c.source).join(' + '), objects: rendered.flatMap((c) => c.objects) };
    },
    { controllerManager: false, namespace: CHART_NAMESPACE },
  );
  beforeAll(async () => {
    await context.state.plane.kubectl(['create', 'namespace', CHART_NAMESPACE]);
  });
  applyTest(context);
  rbacTests(context, CHART_NAMESPACE);
});

test('no Role or ClusterRole grants a wildcard, in any profile or the chart', async () => {
  const sources: Manifests[] = [...Object.values(await synthesizeOnce()), ...(await renderChartsOnce())];
  const wildcards = sources.flatMap((m) => wildcardGrants(m.objects).map((w) => `${m.source}: ${w}`));
  expect(wildcards).toEqual([]);
});

test('the wildcard check catches wildcards in verbs, groups, resources and subresources', () => {
  const role = (rules: object[]): KubeObject => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'r' }, rules });
  expect(wildcardGrants([role([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }])])).toEqual([]);
  expect(wildcardGrants([role([{ apiGroups: [''], resources: ['pods'], verbs: ['*'] }])])).toHaveLength(1);
  expect(wildcardGrants([role([{ apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }])])).toHaveLength(1);
  expect(wildcardGrants([role([{ apiGroups: ['apps'], resources: ['deployments/*'], verbs: ['get'] }])])).toHaveLength(1);
  expect(wildcardGrants([{ ...role([{ nonResourceURLs: ['/metrics*'], verbs: ['get'] }]), kind: 'ClusterRole' }])).toHaveLength(1);
});

/** null when the Deployment has a ReplicaSet with all its pods; otherwise what is missing. */
async function describeChain(plane: ControlPlane, deployment: KubeObject): Promise<string | null> {
  const namespace = deployment.metadata.namespace ?? 'default';
  // The live value, not the manifest's: an HPA may have changed it (or set it where the manifest leaves it out).
  const live = await getJson(plane, namespace, 'deployments.apps', deployment.metadata.name);
  const replicas: number = live.spec.replicas;
  const replicaSets = ((await getJson(plane, namespace, 'replicasets.apps')).items as KubeObject[])
    .filter((rs) => ownedBy(rs, 'Deployment', deployment.metadata.name));
  const replicaSet = replicaSets[0];
  if (replicaSets.length !== 1 || !replicaSet) return `${replicaSets.length} ReplicaSets owned by it`;
  const pods = ((await getJson(plane, namespace, 'pods')).items as (KubeObject & { status?: { phase?: string } })[])
    .filter((pod) => ownedBy(pod, 'ReplicaSet', replicaSet.metadata.name));
  if (pods.length !== replicas) {
    return `${pods.length}/${replicas} pods; ReplicaSet status: ${JSON.stringify(replicaSet.status)}`;
  }
  const notPending = pods.filter((pod) => pod.status?.phase !== 'Pending');
  if (notPending.length > 0) return `pods not Pending: ${notPending.map((p) => p.metadata.name).join(', ')}`;
  return null;
}

function ownedBy(object: KubeObject, kind: string, name: string): boolean {
  const owners = (object.metadata as { ownerReferences?: { kind: string; name: string }[] }).ownerReferences ?? [];
  return owners.some((owner) => owner.kind === kind && owner.name === name);
}

/** `kubectl get <args> -n <namespace> -o json`, parsed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson(plane: ControlPlane, namespace: string | undefined, ...args: string[]): Promise<any> {
  const namespaceArgs = namespace ? [`--namespace=${namespace}`] : [];
  return JSON.parse((await plane.kubectl(['get', ...args, ...namespaceArgs, '-o', 'json'])).stdout);
}

/** Polls `check` (null = satisfied, else what is still wrong) until it passes or the time is up. */
async function eventually(what: string, timeoutMs: number, check: () => Promise<string | null>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | null = 'never checked';
  while (Date.now() < deadline) {
    last = await check();
    if (last === null) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}
