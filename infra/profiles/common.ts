import { readFileSync } from 'node:fs';
import type { AppIdentity } from '../labels.ts';

export interface ProfileOptions {
  /**
   * Container image.
   * @default - the profile's
   */
  readonly image?: string;
  /**
   * In-cluster Redis image (the real node runs one built here: docs/real-node.md).
   * @default - the profile's
   */
  readonly redisImage?: string;
  /**
   * Fixed values for generated Secrets, so a synth is reproducible (tests).
   * @default - random
   */
  readonly generatedSecrets?: {
    readonly redisPassword: string;
    readonly auth: { readonly 'jwt-secret': string; readonly 'admin-token': string };
  };
}

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** The application version every profile labels its objects with (package.json's). */
export const APP_VERSION = packageJson.version;

export function defaultApp(): AppIdentity {
  return { name: 'realtime-gateway', instance: 'realtime-gateway', version: APP_VERSION, managedBy: 'cdk8s' };
}
