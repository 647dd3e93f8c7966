// Channel namespaces and the server API as options of the constructs and the chart: the ConfigMap, the
// directory mounts, the env and the checksum; bad values refused; and the rendered paths fed to a real
// gateway process (real Redis) that then takes a publish with the key and refuses one without.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Chart } from 'cdk8s';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway, RealtimeGateway, type GatewayProps } from '../../infra/index.ts';
import { startGateway } from '../../scripts/fleet/gateway.ts';
import { startRedis } from '../../scripts/fleet/redis.ts';
import { helmTemplate, requireHelm } from './helm.ts';
import { validateManifest } from './validate-models.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized objects are read as plain JSON */
type Obj = Record<string, any>;

const NAMESPACES = `namespaces:
  orders:
    join: authenticated
    publish: none
    history: { size: 100, ttlSeconds: 3600 }
`;
const API_KEY = 'k'.repeat(40);

const BASE: GatewayProps = {
  app: { name: 'realtime-gateway', instance: 'rt', version: '1.0.0', managedBy: 'cdk8s' },
  image: 'realtime-gateway:1.0.0',
  redis: { adapter: 'redis', secretName: 'rt-redis', urlKey: 'url', passwordKey: 'password' },
  auth: { secretName: 'rt-auth' },
};

function synthGateway(extra: Partial<GatewayProps>): Map<string, Obj> {
  const chart = new Chart(new App({ outdir: '/nonexistent' }), 'test', { namespace: 'rt', disableResourceNameHashes: true });
  new Gateway(chart, 'Gateway', { ...BASE, ...extra });
  const objects = chart.toJson() as Obj[];
  for (const object of objects) validateManifest(object as never);
  return new Map(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
}

/** What the gateway pod sees: its env (the ConfigMap) and its mounts, with the volume each comes from. */
function wiring(objects: Map<string, Obj>, name: string) {
  const pod = objects.get(`Deployment/${name}`)!.spec.template;
  const container = pod.spec.containers[0];
  const volumes = new Map<string, Obj>(pod.spec.volumes.map((v: Obj) => [v.name, v]));
  const mounts = new Map<string, Obj>(container.volumeMounts.map((m: Obj) => [m.name, { ...m, volume: volumes.get(m.name) }]));
  return { env: objects.get(`ConfigMap/${name}`)!.data as Record<string, string>, mounts, annotations: pod.metadata.annotations as Record<string, string> };
}

describe('namespaces and the server API in the constructs', () => {
  it('render a namespaces ConfigMap mounted as a directory, the keys Secret mounted as a directory (no subPath), the env and a checksum', () => {
    const objects = synthGateway({ namespaces: NAMESPACES, serverApi: { existingSecret: 'rt-api-keys' } });
    expect(objects.get('ConfigMap/rt-namespaces')!.data).toEqual({ 'namespaces.yaml': NAMESPACES });
    const { env, mounts, annotations } = wiring(objects, 'rt');
    expect(env.NAMESPACES_FILE).toBe('/etc/realtime-gateway/namespaces/namespaces.yaml');
    expect(env.API_KEYS_FILE).toBe('/etc/realtime-gateway/api-keys/api-keys');
    expect(mounts.get('namespaces')).toMatchObject({ mountPath: '/etc/realtime-gateway/namespaces', readOnly: true, volume: { configMap: { name: 'rt-namespaces' } } });
    expect(mounts.get('api-keys')).toMatchObject({ mountPath: '/etc/realtime-gateway/api-keys', readOnly: true, volume: { secret: { secretName: 'rt-api-keys' } } });
    for (const mount of mounts.values()) expect(mount).not.toHaveProperty('subPath');
    expect(annotations['checksum/namespaces']).toMatch(/^[0-9a-f]{64}$/);
    const other = wiring(synthGateway({ namespaces: NAMESPACES.replace('100', '200') }), 'rt').annotations['checksum/namespaces'];
    expect(other).toMatch(/^[0-9a-f]{64}$/);
    expect(other).not.toBe(annotations['checksum/namespaces']);
  });

  it('take the namespaces as an object (written out as YAML) and a custom Secret key; nothing of either when unset', () => {
    const objects = synthGateway({ namespaces: { namespaces: { orders: { join: 'authenticated' } } }, serverApi: { existingSecret: 'keys', key: 'backend.txt' } });
    expect(objects.get('ConfigMap/rt-namespaces')!.data['namespaces.yaml']).toBe('namespaces:\n  orders:\n    join: authenticated\n');
    expect(wiring(objects, 'rt').env.API_KEYS_FILE).toBe('/etc/realtime-gateway/api-keys/backend.txt');
    const plain = synthGateway({});
    const { env, mounts, annotations } = wiring(plain, 'rt');
    expect(plain.has('ConfigMap/rt-namespaces')).toBe(false);
    expect(env).not.toHaveProperty('NAMESPACES_FILE');
    expect(env).not.toHaveProperty('API_KEYS_FILE');
    expect([...mounts.keys()]).toEqual(['tmp']);
    expect(annotations).not.toHaveProperty('checksum/namespaces');
  });

  it('refuse bad values, naming the prop and the value', () => {
    expect(() => synthGateway({ namespaces: '  ' })).toThrow(/namespaces=" {2}" is empty/);
    expect(() => synthGateway({ namespaces: ['a'] as never })).toThrow(/namespaces=\["a"\] must be YAML text or an object/);
    expect(() => synthGateway({ serverApi: { existingSecret: '' } })).toThrow(/serverApi\.existingSecret="" must be the name of the Secret/);
    expect(() => synthGateway({ serverApi: { existingSecret: 'keys', key: '../x' } })).toThrow(/serverApi\.key="\.\.\/x" must be a Secret key/);
    expect(() => synthGateway({ settings: { API_KEYS_FILE: '/x' } })).toThrow(/settings\.API_KEYS_FILE is set by the Gateway construct itself/);
  });

  it('RealtimeGateway passes them on and admits internal.backendNamespace to the internal port', () => {
    const chart = new Chart(new App({ outdir: '/nonexistent' }), 'test', { namespace: 'rt', disableResourceNameHashes: true });
    new RealtimeGateway(chart, 'RealtimeGateway', {
      app: BASE.app,
      image: BASE.image,
      namespaces: NAMESPACES,
      serverApi: { existingSecret: 'rt-api-keys' },
      internal: { backendNamespace: 'shop' },
    });
    const objects = new Map((chart.toJson() as Obj[]).map((o) => [`${o.kind}/${o.metadata.name}`, o]));
    expect(objects.has('ConfigMap/rt-namespaces')).toBe(true);
    expect(wiring(objects, 'rt').env.API_KEYS_FILE).toBe('/etc/realtime-gateway/api-keys/api-keys');
    const internalRule = objects.get('NetworkPolicy/rt')!.spec.ingress[1];
    expect(internalRule.from).toContainEqual({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } });
    expect(internalRule.ports).toEqual([{ port: 9090, protocol: 'TCP' }]);
  });
});

describe('namespaces and the server API in the chart', () => {
  beforeAll(() => {
    requireHelm();
  });

  const render = (values: object) => {
    const objects = helmTemplate(values) as Obj[];
    for (const object of objects) validateManifest(object as never);
    return new Map(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
  };

  it('renders the same wiring from values (YAML text or a map), and the backend namespace in the NetworkPolicy', () => {
    const objects = render({ namespaces: NAMESPACES, serverApi: { existingSecret: 'rt-api-keys', key: 'keys.txt' }, internal: { backendNamespace: 'shop' } });
    expect(objects.get('ConfigMap/realtime-gateway-namespaces')!.data).toEqual({ 'namespaces.yaml': NAMESPACES });
    const { env, mounts, annotations } = wiring(objects, 'realtime-gateway');
    expect(env.NAMESPACES_FILE).toBe('/etc/realtime-gateway/namespaces/namespaces.yaml');
    expect(env.API_KEYS_FILE).toBe('/etc/realtime-gateway/api-keys/keys.txt');
    expect(mounts.get('namespaces')).toMatchObject({ mountPath: '/etc/realtime-gateway/namespaces', volume: { configMap: { name: 'realtime-gateway-namespaces' } } });
    expect(mounts.get('api-keys')).toMatchObject({ mountPath: '/etc/realtime-gateway/api-keys', volume: { secret: { secretName: 'rt-api-keys' } } });
    for (const mount of mounts.values()) expect(mount).not.toHaveProperty('subPath');
    expect(annotations['checksum/namespaces']).toMatch(/^[0-9a-f]{64}$/);
    expect(objects.get('NetworkPolicy/realtime-gateway')!.spec.ingress[1].from).toContainEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
    });

    const asMap = render({ namespaces: { namespaces: { orders: { join: 'authenticated' } } } });
    expect(asMap.get('ConfigMap/realtime-gateway-namespaces')!.data['namespaces.yaml']).toBe('namespaces:\n  orders:\n    join: authenticated');
    const changed = wiring(asMap, 'realtime-gateway').annotations['checksum/namespaces'];
    expect(changed).not.toBe(annotations['checksum/namespaces']);

    const plain = render({});
    expect(plain.has('ConfigMap/realtime-gateway-namespaces')).toBe(false);
    expect(wiring(plain, 'realtime-gateway').env).not.toHaveProperty('API_KEYS_FILE');
  });

  it('refuses bad values, naming the value', () => {
    expect(() => helmTemplate({ namespaces: 5 })).toThrow(/namespaces/);
    expect(() => helmTemplate({ serverApi: { existingSecret: 'keys', key: '../x' } })).toThrow(/serverApi\/key/);
    expect(() => helmTemplate({ serverApi: { existingSecret: 'Not_A_Name' } })).toThrow(/serverApi\/existingSecret/);
    expect(() => helmTemplate({ settings: { NAMESPACES_FILE: '/x' } })).toThrow(/settings\.NAMESPACES_FILE/);
  });
});

describe('the rendered wiring, end to end', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'rt-wiring-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('a real gateway reads the mounted files at the rendered paths: a publish with the key is taken, one without refused', async () => {
    const objects = synthGateway({ namespaces: NAMESPACES, serverApi: { existingSecret: 'rt-api-keys', key: 'keys' } });
    const { env, mounts } = wiring(objects, 'rt');
    // Play the kubelet: each volume's files under the mount path (re-rooted in a temp dir).
    const files: Record<string, Record<string, string>> = {
      namespaces: objects.get(`ConfigMap/${mounts.get('namespaces')!.volume.configMap.name}`)!.data,
      'api-keys': { keys: `# backend\n${API_KEY}\n` },
    };
    for (const [name, content] of Object.entries(files)) {
      const dir = join(root, mounts.get(name)!.mountPath);
      mkdirSync(dir, { recursive: true });
      for (const [file, text] of Object.entries(content)) writeFileSync(join(dir, file), text);
    }
    const [redis, stopRedis] = await startRedis();
    try {
      const [gateway, stopGateway] = await startGateway({
        env: { REDIS_URL: redis.url, NAMESPACES_FILE: join(root, env.NAMESPACES_FILE!), API_KEYS_FILE: join(root, env.API_KEYS_FILE!) },
      });
      try {
        const publish = (headers: Record<string, string>) =>
          fetch(`${gateway.internalUrl}/api/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...headers },
            body: JSON.stringify({ room: 'orders:acme', type: 'order:updated', payload: { id: 1 } }),
          });
        const taken = await publish({ authorization: `Bearer ${API_KEY}` });
        expect(taken.status, gateway.output()).toBe(200);
        expect(await taken.json()).toMatchObject({ ok: true, room: 'orders:acme', duplicate: false });
        const refused = await publish({});
        expect(refused.status).toBe(401);
        // The namespaces file is the one in force: the demo's chat namespace is not declared here.
        const undeclared = await fetch(`${gateway.internalUrl}/api/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
          body: JSON.stringify({ room: 'chat:lobby', type: 'chat:message', payload: {} }),
        });
        expect(undeclared.ok).toBe(false);
      } finally {
        await stopGateway();
      }
    } finally {
      await stopRedis();
    }
  });
});
