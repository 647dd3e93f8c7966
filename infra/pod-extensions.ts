import type { IAffinity } from 'kubernetes-models/v1/Affinity';
import type { IEnvFromSource } from 'kubernetes-models/v1/EnvFromSource';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { ILocalObjectReference } from 'kubernetes-models/v1/LocalObjectReference';
import type { IToleration } from 'kubernetes-models/v1/Toleration';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';

/**
 * Where a pod runs and which registry credentials it pulls with: every pod of the blueprint takes these
 * (gateway, controller, Redis, HAProxy), so a cluster of tainted or dedicated nodes needs no fork.
 */
export interface PodScheduling {
  /** @default - none */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** @default - none */
  readonly tolerations?: readonly IToleration[];
  /** @default - none */
  readonly priorityClassName?: string;
  /** Secrets for pulling images from a private registry. @default - none */
  readonly imagePullSecrets?: readonly ILocalObjectReference[];
}

/** What a platform team adds to the gateway pods: scheduling, metadata, and more env and files. */
export interface PodExtensions extends PodScheduling {
  /** @default - the topology spread over nodes only */
  readonly affinity?: IAffinity;
  /** Pod annotations, added to the construct's own (`checksum/config`, `prometheus.io/*`). @default - none */
  readonly annotations?: Readonly<Record<string, string>>;
  /** Pod labels, added to the selector labels (never part of the selector). @default - none */
  readonly labels?: Readonly<Record<string, string>>;
  /** More environment variables of the gateway container, after the construct's own. @default - none */
  readonly env?: readonly IEnvVar[];
  /** More `envFrom` sources, after the construct's ConfigMap. @default - none */
  readonly envFrom?: readonly IEnvFromSource[];
  /** More pod volumes (e.g. a ConfigMap with a config file, a JWKS). @default - none */
  readonly volumes?: readonly IVolume[];
  /** More mounts of the gateway container. @default - none */
  readonly volumeMounts?: readonly IVolumeMount[];
}

/** Set and not empty: `[]`, `{}`, `''` and `undefined` leave a field out of the manifest. */
export function isSet(value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/** The pod-spec fields of `scheduling` that are set (spread into a pod spec). */
export function schedulingFields(scheduling: PodScheduling | undefined): Record<string, unknown> {
  const s = scheduling ?? {};
  return Object.fromEntries(
    (['nodeSelector', 'tolerations', 'priorityClassName', 'imagePullSecrets'] as const).filter((k) => isSet(s[k])).map((k) => [k, structuredClone(s[k])]),
  );
}

/** `list` as an array; the chart generator passes a one-marker stand-in instead of a list (chart-generator.ts). */
export function listOf<T>(list: readonly T[] | undefined): T[] {
  if (list === undefined) return [];
  return Array.isArray(list) ? [...(list as T[])] : [list as unknown as T];
}

/** Env names a container already sets: another entry with the same name would silently win or lose. */
export function checkExtraEnv(env: readonly IEnvVar[] | undefined, owned: readonly string[]): void {
  for (const variable of listOf(env)) {
    if (variable.name !== undefined && owned.includes(variable.name)) {
      throw new Error(`pod.env ${variable.name} is set by the construct itself; use its prop (or the chart value) instead`);
    }
  }
}

/** `own` plus `extra`, refusing a key of `extra` that `own` already has (YAML would hold it twice). */
export function mergeExtra(own: Readonly<Record<string, string>>, extra: Readonly<Record<string, string>> | undefined, what: string): Record<string, string> {
  for (const key of Object.keys(extra ?? {})) {
    if (key in own) throw new Error(`${what} ${key} is set by the construct itself; leave it out`);
  }
  return { ...own, ...extra };
}
