// The Helm chart's documented variants (values.yaml) against a real kube-apiserver, one control plane for the
// file and a fresh namespace per variant, labelled like the profiles' Namespace (Pod Security `restricted`).
// Each variant: server-side dry-run then apply, no warnings, nothing dropped, every Secret it needs present,
// its own objects as intended, and the same RBAC contract and no-wildcard rule as the defaults
// (manifests.test.ts covers the default values). Run `make tools` first.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { POD_SECURITY_RESTRICTED_LABELS } from '../../infra/restricted-namespace.ts';
import { defaultBinDir, installOptionalCrds, repoRoot, startControlPlane, type ControlPlane, type StopControlPlane } from '../../scripts/cluster/control-plane.ts';
import {
  danglingReferences,
  describeObject,
  dryRunThenApply,
  lostFields,
  readBack,
  renderChart,
  requiredReferences,
  type ApplyReport,
  type KubeObject,
  type RenderedChart,
} from './manifests.ts';
import { PLATFORM_VALUES } from '../infra/platform-values.ts';
import { rbacBaseline, rbacProblems, serviceAccounts, wildcardGrants } from './rbac.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- stored objects are checked as plain JSON */
type Stored = Map<string, any>;

interface Variant {
  values: object;
  /** Secrets the user creates before installing (keys → values), as values.yaml asks. */
  secrets?: Record<string, Record<string, string>>;
  /** TLS Secrets (kubernetes.io/tls) the entry terminates with. */
  tlsSecrets?: string[];
  /** What must be true of the stored objects; `get('Kind', 'name')` reads one. */
  check: (get: (kind: string, name: string) => any, kinds: string[]) => void;
}

const FULLNAME = 'rtg-realtime-gateway';

const VARIANTS: Record<string, Variant> = {
  'autoscaling.mode=keda': {
    values: { autoscaling: { mode: 'keda', minReplicas: 3, maxReplicas: 9, keda: { socketsPerPod: 500 } } },
    check: (get, kinds) => {
      expect(kinds).not.toContain('HorizontalPodAutoscaler');
      const scaled = get('ScaledObject', FULLNAME);
      // KEDA polls the gateway Service's internal port in the release namespace, and may: the NetworkPolicy lets its operator in.
      expect(scaled.spec.triggers[0].metadata.url).toBe(`http://${FULLNAME}.${scaled.metadata.namespace}.svc:9090/fleet`);
      expect(get('NetworkPolicy', FULLNAME).spec.ingress[1]).toMatchObject({
        from: expect.arrayContaining([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda' } }, podSelector: { matchLabels: { app: 'keda-operator' } } }]),
        ports: [{ port: 9090, protocol: 'TCP' }],
      });
      // With the controller on (the default) KEDA scales the SocketGateway, and the controller the Deployment.
      expect(scaled.spec).toMatchObject({ minReplicaCount: 3, maxReplicaCount: 9, scaleTargetRef: { kind: 'SocketGateway', name: FULLNAME } });
      expect(scaled.spec.triggers[0]).toMatchObject({ type: 'metrics-api', metadata: { targetValue: '500', valueLocation: 'sockets' } });
      expect(scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies).toEqual([{ type: 'Pods', value: 1, periodSeconds: 120 }]);
    },
  },
  'autoscaling.mode=none': {
    values: { autoscaling: { mode: 'none' }, replicaCount: 4 },
    check: (get, kinds) => {
      expect(kinds).not.toContain('HorizontalPodAutoscaler');
      expect(kinds).not.toContain('ScaledObject');
      // The fixed count is the SocketGateway's; the controller owns the Deployment's replicas.
      expect(get('SocketGateway', FULLNAME).spec.replicas).toBe(4);
      expect(get('Deployment', FULLNAME).spec.replicas, 'left unset (the API server defaults it to 1): the controller sets it').toBe(1);
    },
  },
  'controller.enabled=false with autoscaling.mode=none: the Deployment scaled directly': {
    values: { controller: { enabled: false }, autoscaling: { mode: 'none' }, replicaCount: 4 },
    check: (get, kinds) => {
      expect(kinds).not.toContain('SocketGateway');
      expect(kinds).not.toContain('Role');
      expect(get('Deployment', FULLNAME).spec.replicas).toBe(4);
    },
  },
  'controller.enabled=false: the HPA scales the Deployment': {
    values: { controller: { enabled: false } },
    check: (get, kinds) => {
      expect(kinds).not.toContain('SocketGateway');
      expect(get('HorizontalPodAutoscaler', FULLNAME).spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: FULLNAME });
    },
  },
  'entry.kind=ingress, nginx-compatible, host and TLS': {
    values: { entry: { kind: 'ingress', className: 'nginx', host: 'rt.example.com', tls: { enabled: true, secretName: 'rt-tls' } } },
    tlsSecrets: ['rt-tls'],
    check: (get, kinds) => {
      expect(kinds).not.toContain('HTTPRoute');
      const ingress = get('Ingress', FULLNAME);
      expect(ingress.spec.ingressClassName).toBe('nginx');
      expect(ingress.metadata.annotations).toMatchObject({
        'nginx.ingress.kubernetes.io/affinity': 'cookie',
        'nginx.ingress.kubernetes.io/affinity-mode': 'persistent',
        'nginx.ingress.kubernetes.io/session-cookie-name': 'rtgw-affinity',
        'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      });
      expect(ingress.spec.tls).toEqual([{ hosts: ['rt.example.com'], secretName: 'rt-tls' }]);
    },
  },
  'entry.kind=ingress, Traefik (sticky cookie on the Service)': {
    values: { entry: { kind: 'ingress', className: 'traefik', ingress: { controller: 'traefik' } } },
    check: (get) => {
      const ingress = get('Ingress', FULLNAME);
      expect(ingress.spec.ingressClassName).toBe('traefik');
      expect(Object.keys(ingress.metadata.annotations ?? {}).filter((a) => a.startsWith('nginx.'))).toEqual([]);
      expect(get('Service', FULLNAME).metadata.annotations).toMatchObject({
        'traefik.ingress.kubernetes.io/service.sticky.cookie': 'true',
        'traefik.ingress.kubernetes.io/service.sticky.cookie.name': 'rtgw-affinity',
      });
    },
  },
  'entry.kind=gatewayApi with host and TLS on 443': {
    values: { entry: { host: 'rt.example.com', tls: { enabled: true, secretName: 'rt-tls' }, gatewayApi: { listenerPort: 443 } } },
    tlsSecrets: ['rt-tls'],
    check: (get) => {
      const listener = get('Gateway', FULLNAME).spec.listeners[0];
      expect(listener).toMatchObject({ protocol: 'HTTPS', port: 443, hostname: 'rt.example.com', tls: { mode: 'Terminate' } });
      expect(listener.tls.certificateRefs).toEqual([expect.objectContaining({ kind: 'Secret', name: 'rt-tls' })]);
      const route = get('HTTPRoute', FULLNAME);
      expect(route.spec.hostnames).toEqual(['rt.example.com']);
      for (const rule of route.spec.rules) expect(rule.sessionPersistence).toMatchObject({ type: 'Cookie', sessionName: 'rtgw-affinity' });
    },
  },
  'entry.kind=haproxy (ClusterIP, the defaults)': {
    values: { entry: { kind: 'haproxy' } },
    check: (get, kinds) => {
      expect(kinds).not.toContain('HTTPRoute');
      expect(kinds).not.toContain('Gateway');
      expect(kinds).not.toContain('Ingress');
      const service = get('Service', `${FULLNAME}-entry`);
      expect(service.spec.type).toBe('ClusterIP');
      expect(service.spec.ports).toEqual([expect.objectContaining({ name: 'http', port: 8080, targetPort: 'http' })]);
      const container = get('Deployment', `${FULLNAME}-entry`).spec.template.spec.containers[0];
      expect(container).toMatchObject({ image: 'haproxy:3.2', imagePullPolicy: 'IfNotPresent' });
      expect(container.env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } });
    },
  },
  'entry.kind=haproxy on NodePort 30080, two replicas': {
    values: { entry: { kind: 'haproxy', haproxy: { serviceType: 'NodePort', nodePort: 30080, replicas: 2 } } },
    check: (get) => {
      const service = get('Service', `${FULLNAME}-entry`);
      expect(service.spec.type).toBe('NodePort');
      expect(service.spec.ports).toEqual([expect.objectContaining({ name: 'http', port: 8080, nodePort: 30080 })]);
      expect(service.spec.selector).toEqual(get('Deployment', `${FULLNAME}-entry`).spec.selector.matchLabels);
      expect(get('Deployment', `${FULLNAME}-entry`).spec.replicas).toBe(2);
      // HAProxy resolves the gateway pods, not-ready (draining) ones included, through the headless Service.
      const pods = get('Service', `${FULLNAME}-entry-pods`);
      expect(pods.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, ports: [expect.objectContaining({ port: 3000 })] });
      expect(pods.spec.selector).toEqual(get('Deployment', FULLNAME).spec.selector.matchLabels);
      const config = get('ConfigMap', `${FULLNAME}-entry`).data['haproxy.cfg'];
      expect(config).toContain(`server-template gw 1-32 "${FULLNAME}-entry-pods.\${POD_NAMESPACE}.svc.cluster.local:3000"`);
      // The gateway's NetworkPolicy admits anyone to the public port, so HAProxy needs no rule of its own.
      expect(get('NetworkPolicy', FULLNAME).spec.ingress[0]).toEqual({ ports: [{ port: 3000, protocol: 'TCP' }] });
    },
  },
  'redis.mode=external (Redis Cluster) with a Secret reference, existing auth Secret': {
    values: {
      redis: { mode: 'external', external: { secretName: 'redis-ext', urlKey: 'nodes', cluster: true } },
      auth: { existingSecret: 'my-auth' },
    },
    secrets: {
      'redis-ext': { nodes: 'rediss://redis-0.example:6379,rediss://redis-1.example:6379', password: 'platform-managed' },
      'my-auth': { 'jwt-secret': 'j'.repeat(43), 'admin-token': 'a'.repeat(43) },
    },
    check: (get, kinds) => {
      expect(kinds).not.toContain('StatefulSet');
      // The gateway's own policy (its internal port) only: there is no in-release Redis to guard.
      expect(kinds.filter((k) => k === 'NetworkPolicy')).toHaveLength(1);
      expect(get('NetworkPolicy', FULLNAME).spec.podSelector.matchLabels['app.kubernetes.io/component']).toBe('gateway');
      expect(kinds.filter((k) => k === 'Secret'), 'the chart generates no Secret').toEqual([]);
      expect(get('ConfigMap', FULLNAME).data.ADAPTER).toBe('redis-cluster');
      const env = get('Deployment', FULLNAME).spec.template.spec.containers[0].env as any[];
      const from = (name: string) => env.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
      expect(from('REDIS_URL')).toMatchObject({ name: 'redis-ext', key: 'nodes' });
      expect(from('REDIS_PASSWORD')).toMatchObject({ name: 'redis-ext', key: 'password' });
      expect(from('JWT_SECRET')).toMatchObject({ name: 'my-auth', key: 'jwt-secret' });
    },
  },
  'GitOps: generateSecrets=false, the in-cluster Redis and auth from existing Secrets, nginx cookie Secure and SameSite=None': {
    values: {
      generateSecrets: false,
      redis: { internal: { existingSecret: 'rt-redis-pw', existingSecretPasswordKey: 'redis-password' } },
      auth: { existingSecret: 'rt-auth' },
      entry: { kind: 'ingress', className: 'nginx', cookieSecure: true, cookieSameSite: 'None' },
    },
    secrets: {
      'rt-redis-pw': { 'redis-password': 'platform "managed" \\ password' },
      'rt-auth': { 'jwt-secret': 'j'.repeat(43), 'admin-token': 'a'.repeat(43) },
    },
    check: (get, kinds) => {
      expect(kinds.filter((k) => k === 'Secret'), 'the chart generates no Secret').toEqual([]);
      const pod = get('StatefulSet', `${FULLNAME}-redis`).spec.template.spec;
      const ref = { name: 'rt-redis-pw', key: 'redis-password' };
      expect(pod.initContainers[0].env).toEqual([{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: ref } }]);
      expect(pod.initContainers[0].securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true });
      expect(pod.volumes).toContainEqual({ name: 'auth', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } });
      const env = get('Deployment', FULLNAME).spec.template.spec.containers[0].env as any[];
      expect(env).toContainEqual({ name: 'REDIS_URL', value: `redis://${FULLNAME}-redis:6379` });
      expect(env.find((e) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef).toMatchObject(ref);
      expect(get('Ingress', FULLNAME).metadata.annotations).toMatchObject({
        'nginx.ingress.kubernetes.io/session-cookie-secure': 'true',
        'nginx.ingress.kubernetes.io/session-cookie-samesite': 'None',
      });
    },
  },
  'every platform extension point: scheduling, pod metadata, extra env/envFrom/volumes, ServiceAccount annotations, Redis StorageClass': {
    values: {
      ...PLATFORM_VALUES,
      extraEnvFrom: [{ secretRef: { name: 'rt-api-keys' } }],
      extraVolumes: [{ name: 'jwks', secret: { secretName: 'rt-jwks' } }],
      extraVolumeMounts: [{ name: 'jwks', mountPath: '/etc/realtime', readOnly: true }],
    },
    secrets: { 'rt-api-keys': { API_KEYS_FILE: '/etc/realtime/keys.json' }, 'rt-jwks': { 'jwks.json': '{"keys":[]}' } },
    check: (get) => {
      const pod = get('Deployment', FULLNAME).spec.template.spec;
      expect(pod).toMatchObject({ nodeSelector: PLATFORM_VALUES.nodeSelector, tolerations: PLATFORM_VALUES.tolerations, priorityClassName: 'realtime-high', affinity: PLATFORM_VALUES.affinity });
      expect(pod.containers[0].envFrom).toContainEqual({ secretRef: { name: 'rt-api-keys' } });
      expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'jwks', mountPath: '/etc/realtime', readOnly: true });
      expect(get('ServiceAccount', FULLNAME).metadata.annotations).toEqual(PLATFORM_VALUES.serviceAccount.annotations);
      expect(get('StatefulSet', `${FULLNAME}-redis`).spec.volumeClaimTemplates[0].spec.storageClassName).toBe('fast-ssd');
      expect(get('StatefulSet', `${FULLNAME}-redis`).spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    },
  },
};

const helm = join(defaultBinDir, 'helm');
const chartDir = join(repoRoot, 'charts', 'realtime-gateway');
const slug = (name: string) => `variant-${Object.keys(VARIANTS).indexOf(name)}`;

let plane: ControlPlane;
let stop: StopControlPlane;
let tlsFiles: { dir: string; cert: string; key: string };

beforeAll(async () => {
  [plane, stop] = await startControlPlane();
  // The Gateway API entry comes with Envoy Gateway's BackendTrafficPolicy.
  await installOptionalCrds(plane, ['envoy-gateway']);
  const dir = mkdtempSync(join(tmpdir(), 'variant-tls-'));
  tlsFiles = { dir, cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
  const openssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=rt.example.com', '-keyout', tlsFiles.key, '-out', tlsFiles.cert], { encoding: 'utf8' });
  if (openssl.status !== 0) throw new Error(`openssl could not make a test certificate (apt-get install openssl): ${openssl.stderr}`);
});

afterAll(async () => {
  await stop?.();
  if (tlsFiles) rmSync(tlsFiles.dir, { recursive: true, force: true });
});

describe.each(Object.keys(VARIANTS))('chart with %s', (name) => {
  const variant = VARIANTS[name]!;
  const namespace = slug(name);
  const state = {} as { chart: RenderedChart; baseline: Map<string, Set<string>>; report: ApplyReport };

  beforeAll(async () => {
    state.chart = await renderChart(helm, chartDir, namespace, variant.values);
    // What `make up` / the profiles' Namespace give the app: a namespace enforcing Pod Security restricted.
    await plane.kubectl(['create', 'namespace', namespace]);
    const labels = Object.entries(POD_SECURITY_RESTRICTED_LABELS).map(([k, v]) => `${k}=${v}`);
    await plane.kubectl(['label', 'namespace', namespace, ...labels]);
    for (const [secret, data] of Object.entries(variant.secrets ?? {})) {
      await plane.kubectl(['create', 'secret', 'generic', secret, `--namespace=${namespace}`,
        ...Object.entries(data).map(([k, v]) => `--from-literal=${k}=${v}`)]);
    }
    for (const secret of variant.tlsSecrets ?? []) {
      await plane.kubectl(['create', 'secret', 'tls', secret, `--namespace=${namespace}`, `--cert=${tlsFiles.cert}`, `--key=${tlsFiles.key}`]);
    }
    state.baseline = await rbacBaseline(plane, state.chart.objects, namespace);
    state.report = await dryRunThenApply(plane, state.chart, namespace);
  });

  test('passes server-side dry-run and is applied: no warnings, every field stored, every Secret it needs present', async () => {
    const { chart, report } = state;
    expect(report.dryRun).toHaveLength(chart.objects.length);
    expect(report.applied).toHaveLength(chart.objects.length);
    expect(report.createdNamespaces, 'the chart defines no Namespace and uses only its own').toEqual([]);
    expect(report.warnings, 'warnings from the API server (Pod Security, deprecations)').toEqual([]);
    const stored = await readBack(plane, chart.objects, namespace);
    expect(stored.size).toBe(chart.objects.length);
    expect(chart.objects.flatMap((o) => lostFields(o, stored.get(describeObject(o)))), 'fields the API server dropped or changed').toEqual([]);
    expect(await danglingReferences(plane, requiredReferences(chart.objects), namespace)).toEqual([]);
  });

  test('does what the values ask for', async () => {
    const stored: Stored = await readBack(plane, state.chart.objects, namespace);
    const get = (kind: string, objectName: string) => {
      const object = stored.get(`${kind} ${namespace}/${objectName}`);
      if (!object) throw new Error(`${state.chart.source} has no ${kind} ${objectName}; it has: ${[...stored.keys()].join(', ')}`);
      return object;
    };
    variant.check(get, state.chart.objects.map((o) => o.kind));
  });

  test('every ServiceAccount can do exactly what its component needs; no Role grants a wildcard', async () => {
    const { chart, baseline } = state;
    expect(serviceAccounts(chart.objects, namespace).length, `${chart.source} defines no ServiceAccount`).toBeGreaterThan(0);
    const problems = await rbacProblems(plane, chart.objects, baseline, namespace);
    expect(problems, problems.join('\n')).toEqual([]);
    expect(wildcardGrants(chart.objects)).toEqual([]);
  });
});

describe('the checks themselves', () => {
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd', namespace: 'n' },
    spec: {
      template: {
        spec: {
          containers: [{
            name: 'c',
            env: [
              { name: 'A', valueFrom: { secretKeyRef: { name: 's', key: 'a' } } },
              { name: 'B', valueFrom: { secretKeyRef: { name: 'maybe', key: 'b', optional: true } } },
            ],
            envFrom: [{ configMapRef: { name: 'cm' } }],
          }],
        },
      },
    },
  };

  test('lostFields reports a field the server dropped or rewrote, not one it added', () => {
    const stored = structuredClone(deployment) as any;
    stored.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key = 'other';
    stored.spec.template.spec.containers[0].envFrom = [];
    stored.spec.replicas = 1;
    expect(lostFields(deployment, stored)).toEqual([
      'Deployment n/d .spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key: "a" stored as "other"',
      'Deployment n/d .spec.template.spec.containers[0].envFrom: 1 items stored as 0',
    ]);
    expect(lostFields(deployment, deployment)).toEqual([]);
  });

  test('requiredReferences finds Secret and ConfigMap references, skipping optional ones', () => {
    expect(requiredReferences([deployment]).map((r) => `${r.kind} ${r.name}${r.key ? `[${r.key}]` : ''}`)).toEqual(['Secret s[a]', 'ConfigMap cm']);
  });
});
