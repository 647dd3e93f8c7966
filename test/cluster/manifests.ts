// Produces the blueprint's manifests the way users do (`make synth`, `make charts` + `helm template`) and
// applies them to a control plane in the order a real install needs: namespaces and CRDs first.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { pinnedVersion, repoRoot, runChecked, type ControlPlane } from './control-plane.ts';

export const PROFILES = ['kind', 'production'] as const;
export type Profile = (typeof PROFILES)[number];

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface Manifests {
  /** Where they came from, for messages. */
  source: string;
  objects: KubeObject[];
}

const node = process.execPath;

/** Runs `node infra/main.ts` (what `make synth` runs) and reads every YAML file it writes under dist/<profile>/. */
export async function synthesize(): Promise<Record<Profile, Manifests>> {
  if (!existsSync(join(repoRoot, 'infra/main.ts'))) {
    throw new Error('infra/main.ts does not exist yet: the manifests tests need the cdk8s app (`make synth`).');
  }
  await runChecked(node, ['infra/main.ts']);
  const result = {} as Record<Profile, Manifests>;
  for (const profile of PROFILES) {
    const dir = join(repoRoot, 'dist', profile);
    const files = existsSync(dir)
      ? readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.yaml')).sort()
      : [];
    if (files.length === 0) throw new Error(`\`node infra/main.ts\` wrote no YAML into dist/${profile}/`);
    result[profile] = {
      source: `dist/${profile}`,
      objects: files.flatMap((file) => parseObjects(readFileSync(join(dir, file), 'utf8'), `dist/${profile}/${file}`)),
    };
  }
  return result;
}

export interface RenderedChart extends Manifests {
  chartDir: string;
  namespace: string;
}

/**
 * Runs `helm template` on every committed chart in charts/. It does not regenerate them in place:
 * test/infra/chart.test.ts reads the same files concurrently and fails when they are stale.
 */
export async function renderCharts(helm: string, namespace: string): Promise<RenderedChart[]> {
  const chartsRoot = join(repoRoot, 'charts');
  const chartDirs = readdirSync(chartsRoot, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(chartsRoot, entry.name, 'Chart.yaml')))
    .map((entry) => join(chartsRoot, entry.name));
  if (chartDirs.length === 0) throw new Error('`make charts` wrote no charts/<name>/Chart.yaml');
  return Promise.all(
    chartDirs.map(async (chartDir) => {
      // Offline, helm assumes Kubernetes v1.20; render for the version the tests run.
      const kubeVersion = pinnedVersion('KUBERNETES_VERSION');
      const rendered = await runChecked(helm, ['template', 'rtg', chartDir, '--namespace', namespace, '--include-crds', '--kube-version', kubeVersion]);
      const source = `helm template ${chartDir.slice(repoRoot.length + 1)}`;
      return { chartDir, namespace, source, objects: parseObjects(rendered, source) };
    }),
  );
}

export function parseObjects(text: string, source: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${source}: invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as KubeObject | null;
    })
    .filter((object): object is KubeObject => object !== null && typeof object === 'object');
}

export const describeObject = (object: KubeObject) =>
  `${object.kind} ${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name}`;

const FOUNDATION_KINDS = new Set(['Namespace', 'CustomResourceDefinition']);

export interface ApplyReport {
  /** Namespaces the objects live in but do not define, created first (as `make up` or `helm --create-namespace` would). */
  createdNamespaces: string[];
  /** `kubectl apply -o name` lines of the server-side dry-run, then of the real apply. */
  dryRun: string[];
  applied: string[];
}

/**
 * Server-side dry-run of every object, then a real server-side apply. Namespaces and CRDs go first (dry-run,
 * then for real) because the dry-run of a namespaced object or a custom resource needs them to exist.
 * `--validate=strict` makes the API server reject unknown or duplicate fields instead of dropping them.
 */
export async function dryRunThenApply(plane: ControlPlane, manifests: Manifests, namespace?: string): Promise<ApplyReport> {
  const foundation = manifests.objects.filter((o) => FOUNDATION_KINDS.has(o.kind));
  const rest = manifests.objects.filter((o) => !FOUNDATION_KINDS.has(o.kind));
  const report: ApplyReport = { createdNamespaces: [], dryRun: [], applied: [] };
  const defined = new Set(foundation.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
  const referenced = new Set(rest.flatMap((o) => (o.metadata.namespace ? [o.metadata.namespace] : [])));
  for (const name of [...referenced].filter((n) => !defined.has(n)).sort()) {
    const exists = await plane.kubectl(['get', 'namespace', name], { allowFailure: true });
    if (exists.code === 0) continue;
    await plane.kubectl(['create', 'namespace', name]);
    report.createdNamespaces.push(name);
  }
  const apply = async (objects: KubeObject[], dryRun: boolean) => {
    if (objects.length === 0) return [];
    const args = ['apply', '--server-side', '--field-manager=control-plane-test', '--validate=strict', '-o', 'name', '-f', '-'];
    if (dryRun) args.push('--dry-run=server');
    if (namespace) args.push(`--namespace=${namespace}`);
    const input = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
    const result = await plane.kubectl(args, { input, allowFailure: true });
    if (result.code !== 0) {
      throw new Error(`${dryRun ? 'server-side dry-run' : 'apply'} of ${manifests.source} was rejected:\n${result.stderr}`);
    }
    return result.stdout.trim().split('\n').filter(Boolean);
  };
  report.dryRun.push(...(await apply(foundation, true)));
  report.applied.push(...(await apply(foundation, false)));
  if (foundation.some((o) => o.kind === 'CustomResourceDefinition')) {
    await plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  }
  report.dryRun.push(...(await apply(rest, true)));
  report.applied.push(...(await apply(rest, false)));
  return report;
}
