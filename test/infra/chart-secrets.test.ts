// Auth modes and secrets as a platform team runs them: HS256 from a Secret, RS256/ES256 from mounted public
// keys (no JWT_SECRET injected: it would win), generated Secrets Helm keeps, and renders that stay the same
// under `helm template` / GitOps when generateSecrets=false.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../app/gateway/auth.ts';
import { loadConfig } from '../../app/gateway/config.ts';
import { helmTemplate, renderByKindAndName, requireHelm } from './helm.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered objects are read as plain JSON */
type Obj = Record<string, any>;

const FULLNAME = 'realtime-gateway';

const render = (values: object) => renderByKindAndName(values) as Map<string, Obj>;

const gatewayContainer = (objects: Map<string, Obj>) => objects.get(`Deployment/${FULLNAME}`)!.spec.template.spec.containers[0] as Obj;
const envNames = (objects: Map<string, Obj>) => (gatewayContainer(objects).env as Obj[]).map((e) => e.name as string);

describe('auth modes', () => {
  beforeAll(() => {
    requireHelm();
  });

  it('HS256 (the default) injects JWT_SECRET from the auth Secret', () => {
    const objects = render({});
    expect(envNames(objects)).toContain('JWT_SECRET');
    expect(envNames(objects)).not.toContain('JWT_ALGORITHMS');
    expect(Object.keys(objects.get(`Secret/${FULLNAME}-auth`)!.stringData).sort()).toEqual(['admin-token', 'jwt-secret']);
  });

  it('RS256 with a JWKS: no JWT_SECRET, the keys mounted from the ConfigMap, and the real gateway verifies a token with them', async () => {
    const objects = render({ auth: { mode: 'RS256', publicKey: { configMapName: 'rt-jwks' } } });
    const container = gatewayContainer(objects);
    expect(envNames(objects)).not.toContain('JWT_SECRET');
    expect(container.env).toContainEqual({ name: 'JWT_ALGORITHMS', value: 'RS256' });
    expect(container.env).toContainEqual({ name: 'JWT_JWKS_FILE', value: '/etc/realtime-gateway/jwt/jwks.json' });
    expect(container.volumeMounts).toContainEqual({ name: 'jwt-keys', mountPath: '/etc/realtime-gateway/jwt', readOnly: true });
    expect(objects.get(`Deployment/${FULLNAME}`)!.spec.template.spec.volumes).toContainEqual({ name: 'jwt-keys', configMap: { name: 'rt-jwks' } });
    // Only the admin token is generated.
    expect(Object.keys(objects.get(`Secret/${FULLNAME}-auth`)!.stringData)).toEqual(['admin-token']);

    // The env the pod gets, with the mounted file at a local path: the gateway's own config and auth accept it.
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const dir = mkdtempSync(join(tmpdir(), 'rt-jwks-'));
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] }));
    const env = Object.fromEntries((container.env as Obj[]).filter((e) => 'value' in e).map((e) => [e.name, e.value]));
    const config = loadConfig({ ...env, JWT_JWKS_FILE: jwksFile, AUTH_MODE: 'jwt' });
    expect(config.JWT_SECRET).toBeUndefined();
    const authenticator = await createAuthenticator(config);
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('alice').setExpirationTime('5m').sign(privateKey);
    await expect(authenticator.authenticate({ token })).resolves.toMatchObject({ userId: 'alice' });
  });

  it('ES256 with one PEM key, and an existing Secret for the admin token', () => {
    const objects = render({ auth: { mode: 'ES256', existingSecret: 'rt-admin', publicKey: { configMapName: 'rt-pem', key: 'key.pem', format: 'pem' } } });
    const container = gatewayContainer(objects);
    expect(container.env).toContainEqual({ name: 'JWT_ALGORITHMS', value: 'ES256' });
    expect(container.env).toContainEqual({ name: 'JWT_PUBLIC_KEY_FILE', value: '/etc/realtime-gateway/jwt/key.pem' });
    expect(envNames(objects)).not.toContain('JWT_SECRET');
    expect(envNames(objects)).not.toContain('JWT_JWKS_FILE');
    expect([...objects.keys()].filter((k) => k.startsWith('Secret/'))).toEqual([`Secret/${FULLNAME}-redis`]);
  });

  it('refuses a public-key mode without its keys, an unknown mode and a short secret, naming the value', () => {
    expect(() => helmTemplate({ auth: { mode: 'RS256' } })).toThrow(/\/auth\/publicKey\/configMapName': minLength: got 0, want 1/);
    expect(() => helmTemplate({ auth: { mode: 'RS256' } }, undefined, ['--skip-schema-validation'])).toThrow(/auth\.publicKey\.configMapName is required with auth\.mode=RS256/);
    expect(() => helmTemplate({ auth: { mode: 'none' } })).toThrow(/\/auth\/mode': value must be one of 'HS256', 'RS256', 'ES256'/);
    expect(() => helmTemplate({ auth: { mode: 'PS256' } }, undefined, ['--skip-schema-validation'])).toThrow(/auth\.mode=PS256 must be one of HS256, RS256, ES256/);
    expect(() => helmTemplate({ auth: { jwtSecret: 'short' } })).toThrow(/\/auth\/jwtSecret'/);
    expect(() => helmTemplate({ auth: { publicKey: { format: 'der' } } })).toThrow(/\/auth\/publicKey\/format': value must be one of 'jwks', 'pem'/);
  });
});

describe('secrets under helm template and GitOps', () => {
  const secretData = (objects: Map<string, Obj>) =>
    Object.fromEntries([...objects.values()].filter((o) => o.kind === 'Secret').map((o) => [o.metadata.name, o.stringData]));

  it('generated Secrets carry helm.sh/resource-policy: keep (an uninstall never deletes the values pods use)', () => {
    const objects = render({});
    for (const name of [`${FULLNAME}-auth`, `${FULLNAME}-redis`]) {
      expect(objects.get(`Secret/${name}`)!.metadata.annotations['helm.sh/resource-policy'], name).toBe('keep');
    }
  });

  it('with generateSecrets (the default), helm template invents new values on every render: why GitOps needs generateSecrets=false', () => {
    expect(secretData(render({}))).not.toEqual(secretData(render({})));
  });

  it('generateSecrets=false refuses to invent a value, naming what to set', () => {
    expect(() => helmTemplate({ generateSecrets: false })).toThrow(/generateSecrets=false and the Secret realtime-gateway-(redis|auth) has no (password|jwt-secret|admin-token) to keep.*set (redis\.internal\.password|auth\.jwtSecret|auth\.adminToken)/s);
    expect(() => helmTemplate({ generateSecrets: false, redis: { internal: { password: 'p'.repeat(24) } }, auth: { jwtSecret: 'j'.repeat(32) } })).toThrow(/set auth\.adminToken/);
  });

  it('generateSecrets=false with explicit values or existing Secrets renders the same every time', () => {
    const explicit = { generateSecrets: false, redis: { internal: { password: 'p'.repeat(24) } }, auth: { jwtSecret: 'j'.repeat(32), adminToken: 'a'.repeat(16) } };
    const first = secretData(render(explicit));
    expect(first[`${FULLNAME}-auth`]).toEqual({ 'jwt-secret': 'j'.repeat(32), 'admin-token': 'a'.repeat(16) });
    expect(secretData(render(explicit))).toEqual(first);
    // Everything from Secrets the platform manages (External Secrets, Sealed Secrets...): the chart generates none.
    const external = { generateSecrets: false, redis: { mode: 'external', external: { secretName: 'rt-redis' } }, auth: { existingSecret: 'rt-auth' } };
    expect(secretData(render(external))).toEqual({});
  });

  it('the in-cluster Redis from an existing Secret: GitOps renders no Secret, and Redis, its probe and every client read that one', () => {
    const values = {
      generateSecrets: false,
      redis: { internal: { existingSecret: 'rt-redis-pw', existingSecretPasswordKey: 'redis-password' } },
      auth: { existingSecret: 'rt-auth' },
    };
    const objects = render(values);
    expect(secretData(objects)).toEqual({});
    const ref = { secretKeyRef: { name: 'rt-redis-pw', key: 'redis-password' } };
    const pod = objects.get(`StatefulSet/${FULLNAME}-redis`)!.spec.template.spec;
    expect(pod.initContainers[0].env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: ref }]);
    expect(pod.containers[0].env).toEqual([{ name: 'REDISCLI_AUTH', valueFrom: ref }]);
    for (const name of [FULLNAME, `${FULLNAME}-controller`]) {
      const env = objects.get(`Deployment/${name}`)!.spec.template.spec.containers[0].env as Obj[];
      expect(env, name).toContainEqual({ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { ...ref.secretKeyRef, optional: true } } });
      expect(env, name).toContainEqual({ name: 'REDIS_URL', value: `redis://${FULLNAME}-redis:6379` });
    }
    // The same every render: nothing random.
    expect(JSON.stringify([...render(values)])).toBe(JSON.stringify([...objects]));
    expect(() => helmTemplate({ ...values, redis: { internal: { ...values.redis.internal, password: 'p'.repeat(24) } } })).toThrow(
      /redis\.internal\.password is set, but redis\.internal\.existingSecret=rt-redis-pw holds the password/,
    );
    expect(() => helmTemplate({ redis: { internal: { existingSecret: 'Not_A_Name' } } })).toThrow(/\/redis\/internal\/existingSecret': 'Not_A_Name' does not match pattern/);
  });
});
