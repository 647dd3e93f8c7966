// The cdk8s profiles: snapshots, offline schema validation and the invariants the blueprint promises.
import { Chart, Testing } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { SETTINGS, loadConfig } from '../../app/gateway/config.ts';
import { Gateway, namespacePeer } from '../../infra/gateway.ts';
import { resolveDrainTiming } from '../../infra/drain-timing.ts';
import { Redis } from '../../infra/redis.ts';
import { RealtimeGateway } from '../../infra/realtime-gateway.ts';
import { ENVOY_OVERRIDE_HOST_STATUSES, GatewayApiEntry } from '../../infra/gateway-api-entry.ts';
import { scalingBehavior } from '../../infra/horizontal-autoscaler.ts';
import { isGeneratedSecret, synthProfile, PROFILES, type Manifest, type ProfileName } from '../../infra/synth.ts';
import { defaultApp } from '../../infra/profiles/common.ts';
import { KIND_NODE_PORT } from '../../infra/profiles/kind.ts';
import { POD_SECURITY_RESTRICTED_LABELS } from '../../infra/restricted-namespace.ts';
import { validateManifest } from './validate-models.ts';
import { ScaleDownController, controllerRules } from '../../infra/scale-down-controller.ts';
import { CRD_NAME, socketGatewayCrd } from '../../app/controller/socket-gateway.ts';

const FIXED_SECRETS = {
  redisPassword: 'test-redis-password-0123456789abcdef',
  auth: { 'jwt-secret': 'test-jwt-secret-0123456789abcdef0123456789', 'admin-token': 'test-admin-token-0123456789' },
};
const profiles = Object.keys(PROFILES) as ProfileName[];
const all = (profile: ProfileName) => Object.values(synthProfile(profile, { generatedSecrets: FIXED_SECRETS })).flat();
const find = (objects: Manifest[], kind: string) => objects.filter((o) => o.kind === kind);
/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are walked as plain JSON */
const podSpecs = (objects: Manifest[]): any[] =>
  objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet').map((o: any) => o.spec.template.spec);

describe.each(profiles)('profile %s', (profile) => {
  const objects = all(profile);

  it('matches the snapshot', () => {
    expect(synthProfile(profile, { generatedSecrets: FIXED_SECRETS })).toMatchSnapshot();
  });

  it('every object passes kubernetes-models schema validation offline', () => {
    expect(objects.length).toBeGreaterThan(5);
    for (const object of objects) validateManifest(object);
  });

  it('every container has liveness and readiness probes, requests and a memory limit', () => {
    for (const spec of podSpecs(objects)) {
      for (const container of spec.containers) {
        expect(container.livenessProbe, container.name).toBeDefined();
        expect(container.readinessProbe, container.name).toBeDefined();
        expect(container.resources.requests.cpu, container.name).toBeDefined();
        expect(container.resources.requests.memory, container.name).toBeDefined();
        expect(container.resources.limits.memory, container.name).toBeDefined();
      }
    }
  });

  it('every pod runs hardened: non-root, read-only root, no capabilities, RuntimeDefault seccomp, no API token', () => {
    for (const spec of podSpecs(objects)) {
      expect(spec.securityContext.runAsNonRoot).toBe(true);
      expect(spec.securityContext.seccompProfile.type).toBe('RuntimeDefault');
      expect(spec.automountServiceAccountToken).toBe(false);
      for (const container of spec.containers) {
        expect(container.securityContext).toMatchObject({
          runAsNonRoot: true,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
      }
    }
    for (const account of find(objects, 'ServiceAccount') as any[]) expect(account.automountServiceAccountToken).toBe(false);
  });

  it('the gateway grace period covers preStop + notice delay + drain window, and the shutdown deadline fits inside', () => {
    const deployment = find(objects, 'Deployment')[0] as any;
    const spec = deployment.spec.template.spec;
    const container = spec.containers[0];
    const config = byComponent(objects, 'ConfigMap', 'gateway').data;
    const preStop = container.lifecycle.preStop.sleep.seconds;
    const drainMs = Number(config.DRAIN_NOTICE_DELAY_MS) + Number(config.DRAIN_WINDOW_MS);
    expect(preStop).toBeGreaterThan(0);
    expect(spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStop * 1000 + drainMs);
    const deadline = Number(config.SHUTDOWN_DEADLINE_MS);
    expect(deadline).toBeGreaterThan(drainMs);
    expect(preStop * 1000 + deadline).toBeLessThan(spec.terminationGracePeriodSeconds * 1000);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(spec.topologySpreadConstraints[0].topologyKey).toBe('kubernetes.io/hostname');
  });

  it('the gateway environment uses only names the config schema knows, and the gateway accepts it', () => {
    const deployment = find(objects, 'Deployment')[0] as any;
    const container = deployment.spec.template.spec.containers[0];
    const configMap = byComponent(objects, 'ConfigMap', 'gateway').data as Record<string, string>;
    const names = [...Object.keys(configMap), ...container.env.map((e: { name: string }) => e.name)];
    for (const name of names) expect(Object.keys(SETTINGS), `${name} is not in app/gateway/config.ts SETTINGS`).toContain(name);
    expect(container.envFrom[0].configMapRef.name).toBe(byComponent(objects, 'ConfigMap', 'gateway').metadata.name);
    expect(configMap.AUTH_MODE).toBe('jwt');
    expect(configMap.HOST).toBe('0.0.0.0');
    // Stand-ins for the Secret and downward-API values; everything else exactly as the manifest says.
    const env = {
      ...configMap,
      POD_NAME: 'gateway-0',
      REDIS_URL: 'redis://redis:6379',
      REDIS_PASSWORD: 'x',
      JWT_SECRET: 'a'.repeat(43),
      ADMIN_TOKEN: 'b'.repeat(43),
    };
    expect(() => loadConfig(env)).not.toThrow();
    expect(container.env.find((e: any) => e.name === 'POD_NAME').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    const probes = { liveness: container.livenessProbe.httpGet.path, readiness: container.readinessProbe.httpGet.path };
    expect(probes).toEqual({ liveness: '/healthz', readiness: '/readyz' });
  });

  it('the HTTPRoute pins sessions with a cookie and has no request timeout', () => {
    const [route] = find(objects, 'HTTPRoute') as any[];
    for (const rule of route.spec.rules) {
      expect(rule.sessionPersistence).toMatchObject({ type: 'Cookie', sessionName: expect.any(String) });
      expect(rule.timeouts.request).toBe('0s');
    }
  });

  it('the HPA scales down slower than it scales up', () => {
    const [hpa] = find(objects, 'HorizontalPodAutoscaler') as any[];
    const { scaleUp, scaleDown } = hpa.spec.behavior;
    expect(scaleDown.stabilizationWindowSeconds).toBeGreaterThan(scaleUp.stabilizationWindowSeconds);
    const perSecond = (rules: any, pods: number) =>
      Math.max(...rules.policies.map((p: any) => (p.type === 'Pods' ? p.value : (p.value / 100) * pods) / p.periodSeconds));
    for (const pods of [hpa.spec.minReplicas, hpa.spec.maxReplicas]) {
      expect(perSecond(scaleDown, pods)).toBeLessThan(perSecond(scaleUp, pods));
    }
    expect(scaleDown.policies).toEqual([expect.objectContaining({ type: 'Pods', value: 1 })]);
    // The HPA scales the SocketGateway; the controller turns that into the Deployment's replicas.
    const [socketGateway] = find(objects, 'SocketGateway') as any[];
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: socketGateway.apiVersion, kind: 'SocketGateway', name: socketGateway.metadata.name });
    const deployment = find(objects, 'Deployment')[0] as any;
    expect(socketGateway.spec.deploymentName).toBe(deployment.metadata.name);
    expect(socketGateway.spec.replicas, 'an autoscaled SocketGateway leaves replicas to the HPA').toBeUndefined();
    expect(deployment.spec.replicas, 'the controller owns the Deployment\'s replicas').toBeUndefined();
  });

  it('has a PodDisruptionBudget selecting the gateway pods', () => {
    const pdb = byComponent(objects, 'PodDisruptionBudget', 'gateway');
    const deployment = find(objects, 'Deployment')[0] as any;
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(pdb.spec.maxUnavailable).toBeGreaterThanOrEqual(1);
  });

  it('defines its namespace first (kubectl apply -f goes in file order), cluster-scoped, enforcing Pod Security restricted', () => {
    const app = synthProfile(profile, { generatedSecrets: FIXED_SECRETS }).app!;
    const [namespace, ...rest] = app;
    expect(namespace).toMatchObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'realtime-gateway' } });
    expect(namespace!.metadata.namespace, 'a Namespace is cluster-scoped').toBeUndefined();
    expect(namespace!.metadata.labels).toMatchObject({
      ...POD_SECURITY_RESTRICTED_LABELS,
      // scripts/up.sh applies only the Namespace with `--selector kubernetes.io/metadata.name=<name>`.
      'kubernetes.io/metadata.name': 'realtime-gateway',
    });
    expect(rest.filter((o) => o.kind === 'Namespace')).toEqual([]);
    for (const object of rest) expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe('realtime-gateway');
    for (const secret of objects.filter(isGeneratedSecret)) expect(secret.metadata.namespace).toBe('realtime-gateway');
  });

  it('every object carries the standard app.kubernetes.io labels', () => {
    for (const object of objects.filter((o) => o.metadata.namespace === 'realtime-gateway')) {
      for (const label of ['name', 'instance', 'version', 'component', 'part-of', 'managed-by']) {
        expect(object.metadata.labels?.[`app.kubernetes.io/${label}`], `${object.kind}/${object.metadata.name}`).toBeTruthy();
      }
    }
  });
});

// ---- the internal port (contract 6 of DESIGN.md, docs/decisions/0005-two-ports.md) ----

const byComponent = (objects: Manifest[], kind: string, component: string): any =>
  objects.find((o) => o.kind === kind && o.metadata.labels?.['app.kubernetes.io/component'] === component);

/** Every port an entry sends traffic to: HTTPRoute backendRefs, Ingress backends, HAProxy's server-template and pods Service. */
function routedPorts(objects: Manifest[]): (number | string)[] {
  const ports: (number | string)[] = [];
  for (const o of objects as any[]) {
    if (o.kind === 'HTTPRoute') for (const rule of o.spec.rules) for (const ref of rule.backendRefs ?? []) ports.push(ref.port);
    if (o.kind === 'Ingress') {
      const backends = [o.spec.defaultBackend, ...(o.spec.rules ?? []).flatMap((r: any) => r.http.paths.map((p: any) => p.backend))].filter(Boolean);
      for (const b of backends) ports.push(b.service.port.number ?? b.service.port.name);
    }
    if (o.kind === 'ConfigMap' && o.data?.['haproxy.cfg']) {
      for (const [, port] of (o.data['haproxy.cfg'] as string).matchAll(/server-template \S+ \S+ "[^"]*:(\d+)"/g)) ports.push(Number(port));
    }
    if (o.kind === 'Service' && o.metadata.labels?.['app.kubernetes.io/component'] === 'entry') {
      for (const p of o.spec.ports) if (o.spec.clusterIP === 'None') ports.push(p.targetPort);
    }
  }
  return ports;
}

/** Checks the gateway's NetworkPolicy: the public port open to all, the internal port only to `peers` (none: no rule). */
function expectInternalPolicy(objects: Manifest[], peers: unknown[]): void {
  const policy = byComponent(objects, 'NetworkPolicy', 'gateway');
  const deployment = byComponent(objects, 'Deployment', 'gateway');
  const ports = Object.fromEntries(deployment.spec.template.spec.containers[0].ports.map((p: any) => [p.name, p.containerPort]));
  expect(policy.spec.podSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
  expect(policy.spec.policyTypes).toEqual(['Ingress']);
  expect(policy.spec.ingress[0]).toEqual({ ports: [{ port: ports.http, protocol: 'TCP' }] });
  for (const rule of policy.spec.ingress) {
    expect(rule.ports, 'a rule without ports would open every port').toBeDefined();
    // A rule with no (or an empty) `from` admits every source: only the public port may have one.
    if (!rule.from?.length) expect(rule.ports).toEqual([{ port: ports.http, protocol: 'TCP' }]);
  }
  if (peers.length === 0) {
    expect(policy.spec.ingress).toHaveLength(1);
  } else {
    expect(policy.spec.ingress).toHaveLength(2);
    expect(policy.spec.ingress[1]).toEqual({ from: peers, ports: [{ port: ports.internal, protocol: 'TCP' }] });
  }
}

describe.each(profiles)('profile %s: the internal port', (profile) => {
  const objects = all(profile);
  const deployment = byComponent(objects, 'Deployment', 'gateway');
  const container = deployment.spec.template.spec.containers[0];

  it('the container declares both ports, and the probes and scrape annotations use the internal one', () => {
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 3000, protocol: 'TCP' },
      { name: 'internal', containerPort: 9090, protocol: 'TCP' },
    ]);
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) expect(container[probe].httpGet.port, probe).toBe('internal');
    expect(deployment.spec.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090', 'prometheus.io/path': '/metrics' });
    expect(byComponent(objects, 'ConfigMap', 'gateway').data).toMatchObject({ PORT: '3000', INTERNAL_PORT: '9090' });
  });

  it('the Service names both ports', () => {
    expect(byComponent(objects, 'Service', 'gateway').spec.ports).toEqual([
      { name: 'http', port: 3000, targetPort: 'http', protocol: 'TCP' },
      { name: 'internal', port: 9090, targetPort: 'internal', protocol: 'TCP' },
    ]);
  });

  it('no route or Ingress sends traffic to the internal port', () => {
    const ports = routedPorts(objects);
    expect(ports.length).toBeGreaterThan(0);
    for (const port of ports) expect([3000, 'http']).toContain(port);
  });

  it('a NetworkPolicy leaves the public port open and admits only the drain controller to the internal one', () => {
    const controller = byComponent(objects, 'Deployment', 'controller');
    expectInternalPolicy(objects, [{ podSelector: { matchLabels: controller.spec.selector.matchLabels } }]);
  });
});

describe('the internal port in every entry and autoscaler variant', () => {
  const app = defaultApp();
  const synth = (props: Partial<ConstructorParameters<typeof RealtimeGateway>[2]>): Manifest[] => {
    const chart = new Chart(Testing.app(), 'test', { namespace: 'rt' });
    new RealtimeGateway(chart, 'rg', { app, image: 'x:1', auth: { generatedValues: FIXED_SECRETS.auth }, redis: { password: 'p' }, ...props });
    return Testing.synth(chart) as Manifest[];
  };
  const entries = {
    gatewayApi: { kind: 'gatewayApi' },
    'gatewayApi with TLS': { kind: 'gatewayApi', host: 'rt.example.com', tlsSecretName: 'tls' },
    'ingress nginx': { kind: 'ingress', host: 'rt.example.com' },
    'ingress traefik': { kind: 'ingress', controller: 'traefik' },
    haproxy: { kind: 'haproxy' },
  } as const;

  it.each(Object.entries(entries))('%s: routes only to the public port', (_name, entry) => {
    for (const mode of ['hpa', 'keda', 'none'] as const) {
      const objects = synth({ entry, autoscaling: { mode }, ...(mode === 'none' ? { replicas: 2 } : {}) });
      const ports = routedPorts(objects);
      expect(ports.length, `${mode}`).toBeGreaterThan(0);
      for (const port of ports) expect([3000, 'http'], `${mode}: ${JSON.stringify(ports)}`).toContain(port);
      for (const object of objects) validateManifest(object);
    }
  });

  it('KEDA polls /fleet on the internal port, and its operator is let in; a Prometheus namespace is added last', () => {
    const objects = synth({ autoscaling: { mode: 'keda' }, internal: { port: 9191, metricsNamespace: 'monitoring' } });
    const scaled = find(objects, 'ScaledObject')[0] as any;
    expect(scaled.spec.triggers[0].metadata.url).toBe('http://realtime-gateway.rt.svc:9191/fleet');
    const controller = byComponent(objects, 'Deployment', 'controller');
    expectInternalPolicy(objects, [
      { podSelector: { matchLabels: controller.spec.selector.matchLabels } },
      namespacePeer('keda', { app: 'keda-operator' }),
      namespacePeer('monitoring'),
    ]);
  });

  it('with neither controller nor KEDA nor a metrics namespace, nothing but the kubelet reaches the internal port', () => {
    const objects = synth({ controller: { enabled: false }, autoscaling: { mode: 'none' }, replicas: 2 });
    expectInternalPolicy(objects, []);
  });

  it('the Gateway construct: peers added with allowInternalFrom, errors naming the prop', () => {
    const c = new Chart(Testing.app(), 'test');
    const gateway = new Gateway(c, 'g', {
      app,
      image: 'x:1',
      redis: { adapter: 'redis', secretName: 'r', urlKey: 'url', passwordKey: 'password' },
      auth: { secretName: 'a' },
      internalPort: 9500,
      internalPeers: [{ podSelector: { matchLabels: { role: 'controller' } } }],
      scrapeAnnotations: false,
    });
    gateway.allowInternalFrom(namespacePeer('monitoring', { app: 'prometheus' }));
    const objects = Testing.synth(c) as Manifest[];
    expectInternalPolicy(objects, [
      { podSelector: { matchLabels: { role: 'controller' } } },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { app: 'prometheus' } } },
    ]);
    expect(byComponent(objects, 'Deployment', 'gateway').spec.template.metadata.annotations).not.toHaveProperty('prometheus.io/scrape');
    expect(() => gateway.allowInternalFrom({})).toThrow(/allowInternalFrom\(\{\}\): a peer needs a podSelector/);
    const props = { app, image: 'x:1', redis: { adapter: 'redis' as const, secretName: 'r', urlKey: 'u', passwordKey: 'p' }, auth: { secretName: 'a' } };
    expect(() => new Gateway(new Chart(Testing.app(), 't'), 'g', { ...props, internalPort: 3000 })).toThrow(/internalPort=3000 must differ from port=3000/);
    expect(() => new Gateway(new Chart(Testing.app(), 't'), 'g', { ...props, internalPort: 0 })).toThrow(/internalPort=0 must be an integer/);
    expect(() => new Gateway(new Chart(Testing.app(), 't'), 'g', { ...props, settings: { INTERNAL_PORT: '1' } })).toThrow(/settings\.INTERNAL_PORT is set by the Gateway construct/);
  });
});

describe('kind profile specifics', () => {
  const objects = all('kind');

  it('in-cluster Redis is reachable only from the gateway and controller pods, through its NetworkPolicy', () => {
    const [redis] = find(objects, 'StatefulSet') as any[];
    const policy = find(objects, 'NetworkPolicy').find((p: any) => p.metadata.name === redis.metadata.name) as any;
    const [gateway, controller] = find(objects, 'Deployment') as any[];
    expect(policy.spec.podSelector.matchLabels).toEqual(redis.spec.selector.matchLabels);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toHaveLength(1);
    expect(policy.spec.ingress[0].from).toEqual([
      { podSelector: { matchLabels: gateway.spec.selector.matchLabels } },
      { podSelector: { matchLabels: controller.spec.selector.matchLabels } },
    ]);
    expect(policy.spec.ingress[0].ports).toEqual([{ port: 6379, protocol: 'TCP' }]);
    // The password reaches redis-server through a file written at start, never its command line (redis-runtime.test.ts).
    expect(redis.spec.template.spec.containers[0].env).toEqual([{ name: 'REDISCLI_AUTH', valueFrom: { secretKeyRef: { name: redis.metadata.name, key: 'password' } } }]);
    expect(JSON.stringify(redis.spec.template.spec.containers[0].command)).not.toMatch(/requirepass \$|--requirepass/);
  });

  it('generates the Redis password and auth secrets (random by default, never in the main manifests)', () => {
    const random = Object.values(synthProfile('kind')).flat().filter(isGeneratedSecret) as any[];
    const again = Object.values(synthProfile('kind')).flat().filter(isGeneratedSecret) as any[];
    expect(random.map((s) => s.metadata.name).sort()).toEqual(['realtime-gateway-auth', 'realtime-gateway-redis']);
    const auth = random.find((s) => s.metadata.name === 'realtime-gateway-auth');
    expect(auth.stringData['jwt-secret'].length).toBeGreaterThanOrEqual(32);
    expect(auth.stringData['jwt-secret']).not.toBe(again.find((s) => s.metadata.name === 'realtime-gateway-auth').stringData['jwt-secret']);
  });

  it('the Gateway\'s EnvoyProxy puts Envoy Gateway\'s own proxy Service on the NodePort kind-config.yaml maps (so the Gateway is Programmed)', () => {
    const platform = synthProfile('kind').platform!;
    expect(platform.map((o) => o.kind)).toEqual(['GatewayClass']);
    const [gateway] = find(objects, 'Gateway') as any[];
    const [proxy] = find(objects, 'EnvoyProxy') as any[];
    expect(gateway.spec.infrastructure.parametersRef).toEqual({ group: 'gateway.envoyproxy.io', kind: 'EnvoyProxy', name: proxy.metadata.name });
    expect(proxy.metadata.namespace).toBe(gateway.metadata.namespace);
    const service = proxy.spec.provider.kubernetes.envoyService;
    expect(service).toMatchObject({ type: 'NodePort', externalTrafficPolicy: 'Cluster' });
    // Envoy Gateway's Service port is the listener's: the strategic merge (keyed by port) gives it the node port.
    expect(service.patch).toEqual({ type: 'StrategicMerge', value: { spec: { ports: [{ port: gateway.spec.listeners[0].port, nodePort: KIND_NODE_PORT }] } } });
    expect(platform[0]!.metadata.name).toBe(gateway.spec.gatewayClassName);
  });
});

describe('production profile specifics', () => {
  const objects = all('production');
  it('uses an external Redis Cluster and platform-provided secrets, terminates TLS', () => {
    expect(find(objects, 'StatefulSet')).toHaveLength(0);
    expect(find(objects, 'Secret')).toHaveLength(0);
    expect(byComponent(objects, 'ConfigMap', 'gateway').data.ADAPTER).toBe('redis-cluster');
    const [gateway] = find(objects, 'Gateway') as any[];
    expect(gateway.spec.listeners[0]).toMatchObject({ protocol: 'HTTPS', port: 443, tls: { mode: 'Terminate' } });
  });

  it('runs several Envoy proxies behind a LoadBalancer, one evictable at a time', () => {
    const [proxy] = find(objects, 'EnvoyProxy') as any[];
    const kube = proxy.spec.provider.kubernetes;
    expect(kube.envoyService).toEqual({ type: 'LoadBalancer' });
    expect(kube.envoyDeployment.replicas).toBeGreaterThanOrEqual(2);
    expect(kube.envoyPDB.minAvailable).toBe(kube.envoyDeployment.replicas - 1);
    expect(kube.envoyDeployment.container.resources.limits.memory).toBeDefined();
  });
});

describe.each(profiles)('the Envoy Gateway entry of profile %s', (profile) => {
  const objects = all(profile);
  const [gateway] = find(objects, 'Gateway') as any[];
  const [route] = find(objects, 'HTTPRoute') as any[];
  const deployment = byComponent(objects, 'Deployment', 'gateway');

  it('keeps sessions on draining pods: an EnvoyPatchPolicy adds DRAINING to the route cluster\'s override_host_status', () => {
    const [policy] = find(objects, 'EnvoyPatchPolicy') as any[];
    expect(policy.metadata.namespace).toBe(gateway.metadata.namespace);
    expect(policy.spec).toEqual({
      targetRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gateway.metadata.name },
      type: 'JSONPatch',
      jsonPatches: [
        {
          type: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
          name: `httproute/${route.metadata.namespace}/${route.metadata.name}/rule/0`,
          operation: { op: 'add', path: '/common_lb_config/override_host_status', value: { statuses: ['UNKNOWN', 'HEALTHY', 'DEGRADED', 'DRAINING'] } },
        },
      ],
    });
    // Rule 0 is the one with the session cookie: the cluster the patch names.
    expect(route.spec.rules).toHaveLength(1);
    expect(route.spec.rules[0].sessionPersistence.type).toBe('Cookie');
    expect(ENVOY_OVERRIDE_HOST_STATUSES).toContain('DRAINING');
  });

  it('a terminating Envoy proxy holds its sockets longer than a gateway pod takes to drain', () => {
    const [proxy] = find(objects, 'EnvoyProxy') as any[];
    const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)![1]);
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds;
    const drain = resolveDrainTiming();
    expect(seconds(proxy.spec.shutdown.drainTimeout)).toBe(grace);
    expect(seconds(proxy.spec.shutdown.drainTimeout)).toBeGreaterThan(drain.minReadySeconds);
    expect(seconds(proxy.spec.shutdown.minDrainDuration)).toBe(drain.preStopSeconds + Math.ceil(drain.noticeDelayMs / 1000));
  });

  it('every Envoy Gateway object passes its CRD\'s schema offline', () => {
    const envoy = objects.filter((o) => o.apiVersion === 'gateway.envoyproxy.io/v1alpha1');
    expect(envoy.map((o) => o.kind).sort()).toEqual(['BackendTrafficPolicy', 'EnvoyPatchPolicy', 'EnvoyProxy']);
    for (const object of envoy) validateManifest(object);
  });
});

describe('the scale-down controller', () => {
  const charts = synthProfile('kind', { generatedSecrets: FIXED_SECRETS });
  const objects = charts.app!;
  const controller = (find(objects, 'Deployment') as any[]).find((d) => d.metadata.labels['app.kubernetes.io/component'] === 'controller');

  it('ships its CRD apart (dist/<profile>/crds/, applied first), cluster-scoped and generated from the controller\'s schema', () => {
    expect(charts.crds!.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([`CustomResourceDefinition/${CRD_NAME}`]);
    const [crd] = charts.crds as any[];
    expect(crd.metadata.namespace).toBeUndefined();
    expect(crd.spec).toEqual(socketGatewayCrd().spec);
    expect(crd.spec.versions[0].subresources.scale).toEqual({
      specReplicasPath: '.spec.replicas',
      statusReplicasPath: '.status.replicas',
      labelSelectorPath: '.status.selector',
    });
    expect(find(objects, 'CustomResourceDefinition')).toEqual([]);
  });

  it('runs two replicas as its own ServiceAccount, the only pod with an API token (declared, not automounted)', () => {
    expect(controller.spec.replicas).toBe(2);
    const pod = controller.spec.template.spec;
    expect(pod.serviceAccountName).toBe(controller.metadata.name);
    expect(pod.containers[0].command).toEqual(['node', 'app/controller/main.ts']);
    expect(pod.volumes[0].projected.sources[0]).toEqual({ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } });
    const withToken = podSpecs(objects).filter((spec) => (spec.volumes ?? []).some((v: any) => v.projected?.sources?.some((s: any) => s.serviceAccountToken)));
    expect(withToken).toEqual([pod]);
    const env = Object.fromEntries(pod.containers[0].env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env.ADMIN_TOKEN).toEqual({ secretKeyRef: { name: 'realtime-gateway-auth', key: 'admin-token' } });
    // The in-cluster Redis' URL is not secret; its password comes from the Redis Secret.
    expect(env.REDIS_URL).toBe('redis://realtime-gateway-redis:6379');
    expect(env.REDIS_PASSWORD).toEqual({ secretKeyRef: { name: 'realtime-gateway-redis', key: 'password', optional: true } });
  });

  it('has a namespaced Role with exactly the rules docs/controller.md explains, and no ClusterRole', () => {
    const [role] = find(objects, 'Role') as any[];
    expect(role.rules).toEqual(controllerRules('realtime-gateway-controller'));
    expect(find(objects, 'ClusterRole')).toEqual([]);
    const [binding] = find(objects, 'RoleBinding') as any[];
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: controller.metadata.name }]);
  });

  it('off: the autoscaler scales the Deployment again and no controller object is left', () => {
    const c = new Chart(Testing.app(), 'off', { namespace: 'ns' });
    new RealtimeGateway(c, 'r', { app: defaultApp(), image: 'x:1', controller: { enabled: false } });
    const off = Testing.synth(c) as any[];
    expect(off.find((o) => o.kind === 'HorizontalPodAutoscaler').spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'realtime-gateway' });
    expect(off.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'controller')).toEqual([]);
    const fixed = new Chart(Testing.app(), 'fixed', { namespace: 'ns' });
    new RealtimeGateway(fixed, 'r', { app: defaultApp(), image: 'x:1', autoscaling: { mode: 'none' }, replicas: 3 });
    const synthesized = Testing.synth(fixed) as any[];
    expect(synthesized.find((o) => o.kind === 'SocketGateway').spec.replicas).toBe(3);
    expect(synthesized.find((o) => o.kind === 'Deployment').spec.replicas).toBeUndefined();
  });

  it('construct errors name the prop and the value', () => {
    const props = {
      app: defaultApp(),
      image: 'x:1',
      deploymentName: 'gw',
      redis: { adapter: 'redis' as const, secretName: 'r', urlKey: 'url', passwordKey: 'password' },
      adminToken: { secretName: 'a', key: 'admin-token' },
    };
    const chart = () => new Chart(Testing.app(), 'test');
    expect(() => new ScaleDownController(chart(), 'c', { ...props, replicas: 0 })).toThrow(/replicas=0 must be an integer >= 1/);
    expect(() => new ScaleDownController(chart(), 'c', { ...props, leaseDurationSeconds: 2 })).toThrow(/leaseDurationSeconds=2/);
    expect(() => new ScaleDownController(chart(), 'c', { ...props, drain: { reconnectBudgetPerSecond: 0.1 } })).toThrow(/drain\.reconnectBudgetPerSecond=0\.1 must be a number >= 0\.2/);
    expect(() => new ScaleDownController(chart(), 'c', { ...props, minReadyPods: 1.5 })).toThrow(/minReadyPods=1\.5/);
    expect(() => new ScaleDownController(chart(), 'c', { ...props, keyPrefix: 'a b' })).toThrow(/keyPrefix="a b"/);
    expect(() => new RealtimeGateway(chart(), 'r', { app: defaultApp(), image: 'x', controller: { enabled: false, replicas: 3 } })).toThrow(
      /controller\.replicas=3 has no effect with controller\.enabled=false/,
    );
  });
});

describe('construct-time errors name the prop and value', () => {
  const app = defaultApp();
  const chart = () => new Chart(Testing.app(), 'test');
  const gatewayProps = {
    app,
    image: 'x:1',
    redis: { adapter: 'redis' as const, secretName: 'r', urlKey: 'url', passwordKey: 'password' },
    auth: { secretName: 'a' },
  };

  it('a grace period shorter than the drain needs', () => {
    expect(() => new Gateway(chart(), 'g', { ...gatewayProps, drain: { terminationGracePeriodSeconds: 10 } })).toThrow(
      /drain\.terminationGracePeriodSeconds=10 is shorter than the drain needs.*= 32 s/,
    );
    expect(resolveDrainTiming({ windowMs: 60_000, terminationGracePeriodSeconds: 120 })).toMatchObject({
      terminationGracePeriodSeconds: 120,
      shutdownDeadlineMs: 114_000,
    });
  });

  it('replicas with an autoscaler, unknown or owned settings', () => {
    expect(() => new Gateway(chart(), 'g', { ...gatewayProps, replicas: 3, autoscaled: true })).toThrow(/replicas=3 conflicts with autoscaled=true/);
    expect(() => new Gateway(chart(), 'g', { ...gatewayProps, settings: { NOPE: '1' } as never })).toThrow(/settings\.NOPE is not a gateway setting/);
    expect(() => new Gateway(chart(), 'g', { ...gatewayProps, settings: { PORT: '1' } })).toThrow(/settings\.PORT is set by the Gateway construct/);
    expect(() => new RealtimeGateway(chart(), 'r', { app, image: 'x', replicas: 3 })).toThrow(/replicas=3 conflicts with autoscaling\.mode=hpa/);
  });

  it('in-cluster-only Redis props with an external Redis; a Redis nobody may reach', () => {
    expect(() => new Redis(chart(), 'r', { app, external: { secretName: 's' }, storageSize: '5Gi' })).toThrow(/storageSize="5Gi" only applies to the in-cluster Redis/);
    const lonely = chart();
    new Redis(lonely, 'r', { app });
    expect(() => Testing.synth(lonely)).toThrow(/no client may reach it/);
  });

  it('scale-down that is not slower than scale-up; a bad cookie name', () => {
    expect(() => scalingBehavior({ scaleDownPeriodSeconds: 5 })).toThrow(/scaleDownPeriodSeconds=5/);
    expect(() => scalingBehavior({ scaleDownStabilizationSeconds: 0 })).toThrow(/scaleDownStabilizationSeconds=0/);
    expect(() => new GatewayApiEntry(chart(), 'e', { app, backend: { serviceName: 's', port: 1 }, cookieName: 'bad cookie' })).toThrow(/cookieName="bad cookie"/);
  });

  it('the EnvoyProxy: service type, node port, replicas, PDB, drain; shared parentRefs', () => {
    const entry = (envoyProxy: object, more: object = {}) => () =>
      new GatewayApiEntry(chart(), 'e', { app, backend: { serviceName: 's', port: 1 }, envoyProxy, ...more });
    expect(entry({ serviceType: 'Ingress' })).toThrow(/envoyProxy\.serviceType="Ingress" must be LoadBalancer, NodePort or ClusterIP/);
    expect(entry({ nodePort: 30080 })).toThrow(/envoyProxy\.nodePort=30080 needs envoyProxy\.serviceType=NodePort \(it is LoadBalancer\)/);
    expect(entry({ serviceType: 'NodePort', nodePort: 80 })).toThrow(/envoyProxy\.nodePort=80 is outside the default NodePort range 30000-32767/);
    expect(entry({ service: { type: 'ClusterIP' }, serviceType: 'NodePort' })).toThrow(/envoyProxy\.service=\{"type":"ClusterIP"\} replaces envoyProxy\.serviceType and nodePort/);
    expect(entry({ replicas: 0 })).toThrow(/envoyProxy\.replicas=0 must be an integer >= 1/);
    expect(entry({ replicas: 1.5 })).toThrow(/envoyProxy\.replicas=1.5 must be an integer >= 1/);
    expect(entry({ minAvailable: -1 })).toThrow(/envoyProxy\.minAvailable=-1 must be an integer >= 0/);
    expect(entry({ replicas: 2, minAvailable: 2 })).toThrow(/envoyProxy\.minAvailable=2 must be below envoyProxy\.replicas=2/);
    expect(entry({ drainTimeoutSeconds: 0 })).toThrow(/envoyProxy\.drainTimeoutSeconds=0 must be an integer >= 1/);
    expect(entry({ drainTimeoutSeconds: 20, minDrainDurationSeconds: 30 })).toThrow(/envoyProxy\.minDrainDurationSeconds=30 must not exceed envoyProxy\.drainTimeoutSeconds=20/);
    const shared = { parentRefs: [{ name: 'shared', namespace: 'gateways' }] };
    expect(entry({}, shared)).toThrow(/envoyProxy=\{\} belongs to the shared Gateway in parentRefs/);
    expect(() => new GatewayApiEntry(chart(), 'e', { app, backend: { serviceName: 's', port: 1 }, ...shared, envoyKeepSessionsOnDrainingPods: true })).toThrow(
      /envoyKeepSessionsOnDrainingPods=true patches the Gateway's proxy, which belongs to the shared Gateway/,
    );
    // Defaults: Envoy Gateway's own drain, two replicas, one evictable.
    const c = chart();
    const made = new GatewayApiEntry(c, 'e', { app, backend: { serviceName: 's', port: 1 }, envoyProxy: {} });
    const proxy = Testing.synth(c).find((o) => o.kind === 'EnvoyProxy');
    expect(made.envoyProxy).toBeDefined();
    expect(made.envoyPatchPolicy).toBeUndefined();
    expect(proxy.spec.shutdown).toEqual({ drainTimeout: '60s', minDrainDuration: '10s' });
    expect(proxy.spec.provider.kubernetes).toMatchObject({ envoyDeployment: { replicas: 2 }, envoyPDB: { minAvailable: 1 }, envoyService: { type: 'LoadBalancer' } });
    // RealtimeGateway: an EnvoyProxy needs the Envoy policies and a Gateway of its own.
    const gatewayApi = (more: object) => () => new RealtimeGateway(chart(), 'r', { app, image: 'x', entry: { kind: 'gatewayApi', ...more } });
    expect(gatewayApi({ envoyPolicies: false, envoyProxy: { replicas: 3 } })).toThrow(/entry\.envoyProxy=\{"replicas":3\} has no effect with entry\.envoyPolicies=false/);
    expect(gatewayApi({ ...shared, envoyProxy: { replicas: 3 } })).toThrow(/entry\.envoyProxy belongs to the shared Gateway in entry\.parentRefs/);
    const sharedRoute = chart();
    new RealtimeGateway(sharedRoute, 'r', { app, image: 'x', entry: { kind: 'gatewayApi', ...shared } });
    expect(Testing.synth(sharedRoute).filter((o) => o.apiVersion === 'gateway.envoyproxy.io/v1alpha1').map((o) => o.kind)).toEqual(['BackendTrafficPolicy']);
    const other = chart();
    new RealtimeGateway(other, 'r', { app, image: 'x', entry: { kind: 'gatewayApi', envoyPolicies: false } });
    const otherObjects = Testing.synth(other);
    expect(otherObjects.filter((o) => o.apiVersion === 'gateway.envoyproxy.io/v1alpha1')).toEqual([]);
    expect(otherObjects.find((o) => o.kind === 'Gateway').spec.infrastructure).toBeUndefined();
  });

  it('a Redis NetworkPolicy accepts more clients (the drain controller, later)', () => {
    const c = chart();
    const redis = new Redis(c, 'r', { app, clientSelectors: [{ role: 'gateway' }] });
    redis.allowFrom({ role: 'controller' });
    const policy = Testing.synth(c).find((o) => o.kind === 'NetworkPolicy');
    expect(policy.spec.ingress[0].from.map((f: any) => f.podSelector.matchLabels.role)).toEqual(['gateway', 'controller']);
  });
});

