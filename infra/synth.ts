import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'cdk8s';
import { stringify } from 'yaml';
import { GENERATED_SECRET_ANNOTATION } from './generated-secret.ts';
import { kindProfile } from './profiles/kind.ts';
import { productionProfile } from './profiles/production.ts';
import type { ProfileOptions } from './profiles/common.ts';

export const PROFILES = { kind: kindProfile, production: productionProfile } as const;
export type ProfileName = keyof typeof PROFILES;

/** A synthesized Kubernetes object. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  readonly [field: string]: unknown;
}

/** The objects of one profile, grouped by cdk8s chart (`app`, and `platform` on kind). */
export function synthProfile(profile: ProfileName, options: ProfileOptions = {}): Record<string, Manifest[]> {
  const app = new App({ outdir: '/nonexistent' });
  PROFILES[profile](app, options);
  const charts: Record<string, Manifest[]> = {};
  for (const chart of app.charts) charts[chart.node.id] = chart.toJson() as Manifest[];
  return charts;
}

export function isGeneratedSecret(m: Manifest): boolean {
  return m.kind === 'Secret' && m.metadata.annotations?.[GENERATED_SECRET_ANNOTATION] === 'true';
}

export function toYamlStream(manifests: readonly Manifest[]): string {
  return manifests.map((m) => stringify(m, { lineWidth: 0, version: '1.1' })).join('---\n');
}

/**
 * Writes `dist/<profile>/`: `platform.yaml` (cluster plumbing, kind only), `app.yaml`, one file per
 * generated Secret under `generated-secrets/` (create-once: `make up` never overwrites them), and one
 * file per CustomResourceDefinition under `crds/` — applied first (`kubectl apply -f dist/<profile>/crds/`):
 * kubectl cannot create a custom resource in the same run that creates its CRD.
 */
export function writeProfile(profile: ProfileName, outdir: string, options: ProfileOptions = {}): string[] {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(join(outdir, 'generated-secrets'), { recursive: true });
  mkdirSync(join(outdir, 'crds'), { recursive: true });
  const written: string[] = [];
  const write = (file: string, text: string) => {
    writeFileSync(join(outdir, file), text);
    written.push(join(outdir, file));
  };
  for (const [chart, manifests] of Object.entries(synthProfile(profile, options))) {
    if (chart === 'crds') {
      for (const crd of manifests) write(join('crds', `${crd.metadata.name}.yaml`), toYamlStream([crd]));
      continue;
    }
    for (const secret of manifests.filter(isGeneratedSecret)) write(join('generated-secrets', `${secret.metadata.name}.yaml`), toYamlStream([secret]));
    write(`${chart}.yaml`, toYamlStream(manifests.filter((m) => !isGeneratedSecret(m))));
  }
  return written;
}
