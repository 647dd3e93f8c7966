// Produces the blueprint's manifests the way users do (`make synth`, `make charts` + `helm template`) and
// applies them to a control plane in the order a real install needs: namespaces and CRDs first.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { pinnedVersion, repoRoot, runChecked, type ControlPlane } from '../../scripts/cluster/control-plane.ts';

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
  return Promise.all(chartDirs.map((chartDir) => renderChart(helm, chartDir, namespace)));
}

/** `helm template rtg <chartDir> --namespace <namespace>` with these values (written to a values file). */
export async function renderChart(helm: string, chartDir: string, namespace: string, values: object = {}): Promise<RenderedChart> {
  if (!existsSync(helm)) throw new Error(`${helm} is missing: run \`make tools\` (builds the pinned helm into ./bin)`);
  const valuesFile = join(mkdtempSync(join(tmpdir(), 'chart-values-')), 'values.yaml');
  writeFileSync(valuesFile, stringify(values));
  try {
    // Offline, helm assumes Kubernetes v1.20; render for the version the tests run.
    const kubeVersion = pinnedVersion('KUBERNETES_VERSION');
    const rendered = await runChecked(helm, ['template', 'rtg', chartDir, '--namespace', namespace, '--include-crds',
      '--kube-version', kubeVersion, '-f', valuesFile]);
    const valuesNote = Object.keys(values).length > 0 ? ` with ${JSON.stringify(values)}` : '';
    const source = `helm template ${chartDir.slice(repoRoot.length + 1)}${valuesNote}`;
    return { chartDir, namespace, source, objects: parseObjects(rendered, source) };
  } finally {
    rmSync(dirname(valuesFile), { recursive: true, force: true });
  }
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
  /** Warnings the API server sent back (Pod Security `warn`, deprecated APIs, unknown fields): none are expected. */
  warnings: string[];
}

/**
 * Server-side dry-run of every object, then a real server-side apply. Namespaces and CRDs go first (dry-run,
 * then for real) because the dry-run of a namespaced object or a custom resource needs them to exist.
 * `--validate=strict` makes the API server reject unknown or duplicate fields instead of dropping them.
 */
export async function dryRunThenApply(
  plane: ControlPlane,
  manifests: Manifests,
  namespace?: string,
  /** Take over fields another field manager owns (after a client-side `kubectl apply` of the same objects). */
  options: { forceConflicts?: boolean } = {},
): Promise<ApplyReport> {
  const foundation = manifests.objects.filter((o) => FOUNDATION_KINDS.has(o.kind));
  const rest = manifests.objects.filter((o) => !FOUNDATION_KINDS.has(o.kind));
  const report: ApplyReport = { createdNamespaces: [], dryRun: [], applied: [], warnings: [] };
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
    if (options.forceConflicts) args.push('--force-conflicts');
    if (namespace) args.push(`--namespace=${namespace}`);
    const input = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
    const result = await plane.kubectl(args, { input, allowFailure: true });
    if (result.code !== 0) {
      throw new Error(`${dryRun ? 'server-side dry-run' : 'apply'} of ${manifests.source} was rejected:\n${result.stderr}`);
    }
    report.warnings.push(...result.stderr.split('\n').filter((line) => line.trim() !== ''));
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

/** A stored object as `kubectl get -o json` returns it. */
type Stored = KubeObject & { metadata: KubeObject['metadata'] & { uid: string } };

/** Reads every object back from the API server, keyed like describeObject. Throws naming any that are missing. */
export async function readBack(plane: ControlPlane, objects: KubeObject[], namespace?: string): Promise<Map<string, Stored>> {
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
  const args = ['get', '-f', '-', '-o', 'json', ...(namespace ? [`--namespace=${namespace}`] : [])];
  const result = await plane.kubectl(args, { input: list, allowFailure: true });
  if (result.code !== 0) throw new Error(`objects missing after apply:\n${result.stderr}`);
  const parsed = JSON.parse(result.stdout) as { kind: string; items?: Stored[] };
  const items = parsed.kind === 'List' ? (parsed.items ?? []) : [parsed as Stored];
  return new Map(items.map((item) => [`${item.kind} ${item.metadata.namespace ? `${item.metadata.namespace}/` : ''}${item.metadata.name}`, item]));
}

/**
 * Every field the manifest sets that the stored object does not have with the same value: what the API server
 * pruned (an unknown field of an old CRD, a channel without the feature) or rewrote. Defaults it adds are fine.
 * A Secret's `stringData` is write-only (stored as `data`), so it is not compared.
 */
export function lostFields(rendered: KubeObject, stored: unknown): string[] {
  const lost: string[] = [];
  const walk = (want: unknown, have: unknown, path: string) => {
    if (want !== null && typeof want === 'object') {
      if (have === null || typeof have !== 'object' || Array.isArray(want) !== Array.isArray(have)) {
        lost.push(`${path}: ${JSON.stringify(want)} stored as ${JSON.stringify(have)}`);
        return;
      }
      if (Array.isArray(want) && want.length !== (have as unknown[]).length) {
        lost.push(`${path}: ${want.length} items stored as ${(have as unknown[]).length}`);
        return;
      }
      for (const [key, value] of Object.entries(want)) {
        if (path === '' && key === 'stringData' && rendered.kind === 'Secret') continue;
        walk(value, (have as Record<string, unknown>)[key], Array.isArray(want) ? `${path}[${key}]` : `${path}.${key}`);
      }
    } else if (want !== have) {
      lost.push(`${path}: ${JSON.stringify(want)} stored as ${JSON.stringify(have)}`);
    }
  };
  walk(rendered, stored, '');
  return lost.map((line) => `${describeObject(rendered)} ${line}`);
}

/** A Secret or ConfigMap (and key) that pods or the entry point need. */
export interface Reference {
  kind: 'Secret' | 'ConfigMap';
  name: string;
  key?: string;
  /** Who refers to it, for messages. */
  from: string;
}

/**
 * The Secrets and ConfigMaps the objects refer to and cannot work without: non-optional env, envFrom and volume
 * references of pod templates, Ingress TLS secrets and Gateway certificateRefs (same namespace).
 */
export function requiredReferences(objects: KubeObject[]): Reference[] {
  /* eslint-disable @typescript-eslint/no-explicit-any -- walking manifests as plain JSON */
  const references: Reference[] = [];
  for (const object of objects) {
    const from = describeObject(object);
    const spec = object.spec as any;
    const pod = spec?.template?.spec;
    if (pod) {
      for (const container of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
        for (const env of container.env ?? []) {
          const secret = env.valueFrom?.secretKeyRef;
          const configMap = env.valueFrom?.configMapKeyRef;
          if (secret && !secret.optional) references.push({ kind: 'Secret', name: secret.name, key: secret.key, from });
          if (configMap && !configMap.optional) references.push({ kind: 'ConfigMap', name: configMap.name, key: configMap.key, from });
        }
        for (const source of container.envFrom ?? []) {
          if (source.secretRef && !source.secretRef.optional) references.push({ kind: 'Secret', name: source.secretRef.name, from });
          if (source.configMapRef && !source.configMapRef.optional) references.push({ kind: 'ConfigMap', name: source.configMapRef.name, from });
        }
      }
      for (const volume of pod.volumes ?? []) {
        if (volume.secret && !volume.secret.optional) references.push({ kind: 'Secret', name: volume.secret.secretName, from });
        if (volume.configMap && !volume.configMap.optional) references.push({ kind: 'ConfigMap', name: volume.configMap.name, from });
      }
    }
    if (object.kind === 'Ingress') {
      for (const tls of spec?.tls ?? []) if (tls.secretName) references.push({ kind: 'Secret', name: tls.secretName, key: 'tls.crt', from });
    }
    if (object.kind === 'Gateway') {
      for (const listener of spec?.listeners ?? []) {
        for (const ref of listener.tls?.certificateRefs ?? []) {
          if ((ref.kind ?? 'Secret') === 'Secret' && !ref.namespace) references.push({ kind: 'Secret', name: ref.name, key: 'tls.crt', from });
        }
      }
    }
  }
  return references;
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

/** The references that point at nothing in `namespace` (a missing object, or a missing key). */
export async function danglingReferences(plane: ControlPlane, references: Reference[], namespace: string): Promise<string[]> {
  const dangling: string[] = [];
  for (const ref of references) {
    const result = await plane.kubectl(['get', ref.kind.toLowerCase(), ref.name, `--namespace=${namespace}`, '-o', 'json'], { allowFailure: true });
    if (result.code !== 0) {
      dangling.push(`${ref.from} needs ${ref.kind} ${namespace}/${ref.name}, which does not exist`);
      continue;
    }
    const data = (JSON.parse(result.stdout) as { data?: Record<string, string> }).data ?? {};
    if (ref.key !== undefined && !(ref.key in data)) {
      dangling.push(`${ref.from} needs key "${ref.key}" of ${ref.kind} ${namespace}/${ref.name}, which has only: ${Object.keys(data).join(', ')}`);
    }
  }
  return dangling;
}
