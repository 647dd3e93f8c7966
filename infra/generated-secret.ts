import { randomBytes } from 'node:crypto';
import { Construct } from 'constructs';
import { Secret } from 'kubernetes-models/v1/Secret';
import { addObject } from './api-object.ts';
import { objectLabels, type AppIdentity } from './labels.ts';

/** Marks a Secret whose values are generated: create it once, never overwrite it (see scripts/up.sh). */
export const GENERATED_SECRET_ANNOTATION = 'realtime-gateway/generated-secret';

export interface GeneratedSecretProps {
  readonly app: AppIdentity;
  readonly component: string;
  readonly name: string;
  /** Keys whose values are random (base64url of 32 random bytes). */
  readonly randomKeys: readonly string[];
  /**
   * Keys with fixed, non-secret values stored alongside (e.g. a Redis URL next to its password).
   * @default - none
   */
  readonly fixedValues?: Readonly<Record<string, string>>;
  /**
   * Values to use instead of random ones (tests and the chart generator pass these).
   * @default - random
   */
  readonly values?: Readonly<Record<string, string | undefined>>;
  /**
   * Keys computed from the final values (random or given), e.g. a config line that carries a password.
   * @default - none
   */
  readonly derivedValues?: (values: Readonly<Record<string, string>>) => Record<string, string>;
  /**
   * More annotations, e.g. `helm.sh/resource-policy: keep` (Helm never deletes it, so values survive a reinstall).
   * @default - none
   */
  readonly annotations?: Readonly<Record<string, string>>;
}

/**
 * A Secret with values generated at synth time. `make up` creates it only when it does not exist yet,
 * so re-running never rotates a password under running pods; the Helm chart keeps existing values the
 * same way with `lookup`.
 */
export class GeneratedSecret extends Construct {
  readonly name: string;

  constructor(scope: Construct, id: string, props: GeneratedSecretProps) {
    super(scope, id);
    this.name = props.name;
    const stringData: Record<string, string> = { ...props.fixedValues };
    for (const key of props.randomKeys) {
      if (key in stringData) throw new Error(`GeneratedSecret ${props.name}: key "${key}" is both random and fixed`);
      stringData[key] = props.values?.[key] ?? randomBytes(32).toString('base64url');
    }
    Object.assign(stringData, props.derivedValues?.({ ...stringData }));
    addObject(
      this,
      'Resource',
      new Secret({
        metadata: {
          name: props.name,
          labels: objectLabels(props.app, props.component),
          annotations: { ...props.annotations, [GENERATED_SECRET_ANNOTATION]: 'true' },
        },
        type: 'Opaque',
        stringData,
      }),
    );
  }
}
