// Runs the pinned helm from ./bin (built by `make tools`) — never a helm from elsewhere on the machine.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { validateManifest } from './validate-models.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const HELM = join(ROOT, 'bin', 'helm');
export const CHART = join(ROOT, 'charts', 'realtime-gateway');
export const RELEASE = 'realtime-gateway';
export const NAMESPACE = 'realtime-gateway';

export function requireHelm(): string {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run \`make tools\` (builds the pinned helm into ./bin)`);
  return HELM;
}

export function helm(args: string[]): { ok: boolean; output: string } {
  try {
    return { ok: true, output: execFileSync(requireHelm(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

let valuesDir: string | undefined;
let valuesCount = 0;

/** `helm template` with these values; returns the parsed objects, or throws with helm's message. */
export function helmTemplate(values: unknown = {}, chart = CHART, extraArgs: readonly string[] = []): Record<string, unknown>[] {
  valuesDir ??= mkdtempSync(join(tmpdir(), 'rg-values-'));
  const file = join(valuesDir, `values-${valuesCount++}.yaml`);
  writeFileSync(file, stringify(values));
  const result = helm(['template', RELEASE, chart, '--namespace', NAMESPACE, '-f', file, ...extraArgs]);
  if (!result.ok) throw new Error(`helm template failed: ${result.output}`);
  return parseAllDocuments(result.output)
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((d): d is Record<string, unknown> => d !== null);
}

/** `override` deep-merged onto `base` (objects merge, anything else replaces), as helm merges values. */
export function mergeValues<T>(base: T, override: unknown): T {
  if (override === null || typeof override !== 'object' || Array.isArray(override)) return override as T;
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(override)) {
    out[k] = out[k] !== null && typeof out[k] === 'object' && !Array.isArray(out[k]) ? mergeValues(out[k], v) : v;
  }
  return out as T;
}

/** `helm template` with these values, every object checked against its schema, keyed `Kind/name`. */
export function renderByKindAndName(values: object): Map<string, Record<string, unknown> & { kind: string; metadata: { name: string } }> {
  const objects = helmTemplate(values) as (Record<string, unknown> & { kind: string; metadata: { name: string } })[];
  for (const object of objects) validateManifest(object as never);
  return new Map(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
}
