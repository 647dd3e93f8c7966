// The harness itself, against the real kube-apiserver built by `make tools`.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pinnedVersion, startControlPlane, type ControlPlane, type StopControlPlane } from '../../scripts/cluster/control-plane.ts';

test('a missing binary fails with a message that says to run `make tools`', async () => {
  const emptyBinDir = mkdtempSync(join(tmpdir(), 'no-tools-'));
  try {
    await expect(startControlPlane({ binDir: emptyBinDir })).rejects.toThrow(/kube-apiserver.*run `make tools`/);
  } finally {
    rmSync(emptyBinDir, { recursive: true });
  }
});

test('stopping the plane ends its processes and removes its directory', async () => {
  const [plane, stop] = await startControlPlane({ installCrds: false });
  await plane.kubectl(['get', '--raw=/readyz']);
  await stop();
  expect(existsSync(plane.dir)).toBe(false);
  // Nothing listens on the API server's port any more (its kubeconfig went with the directory).
  const port = Number(new URL(plane.server).port);
  const refused = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
  expect(refused).toBe('ECONNREFUSED');
});

describe('a running control plane', () => {
  let plane: ControlPlane;
  let stop: StopControlPlane;

  beforeAll(async () => {
    [plane, stop] = await startControlPlane();
  });
  afterAll(async () => {
    await stop?.();
  });

  test('serves the pinned Kubernetes version', async () => {
    const version = JSON.parse((await plane.kubectl(['version', '-o', 'json'])).stdout);
    expect(version.serverVersion.gitVersion).toBe(pinnedVersion('KUBERNETES_VERSION'));
    expect(version.clientVersion.gitVersion).toBe(pinnedVersion('KUBERNETES_VERSION'));
  });

  test('stores objects in a new namespace', async () => {
    await plane.kubectl(['create', 'namespace', 'smoke']);
    await plane.kubectl(['-n', 'smoke', 'create', 'configmap', 'hello', '--from-literal=greeting=hi']);
    const configMap = JSON.parse((await plane.kubectl(['-n', 'smoke', 'get', 'configmap', 'hello', '-o', 'json'])).stdout);
    expect(configMap.data).toEqual({ greeting: 'hi' });
  });

  test.each([
    'gatewayclasses.gateway.networking.k8s.io',
    'gateways.gateway.networking.k8s.io',
    'httproutes.gateway.networking.k8s.io',
    'scaledobjects.keda.sh',
    'triggerauthentications.keda.sh',
  ])('CRD %s is established', async (crd) => {
    const status = await plane.kubectl(['get', 'crd', crd, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}']);
    expect(status.stdout).toBe('True');
  });

  test('Gateway API CRDs are the experimental channel at the pinned version', async () => {
    const crd = JSON.parse((await plane.kubectl(['get', 'crd', 'httproutes.gateway.networking.k8s.io', '-o', 'json'])).stdout);
    expect(crd.metadata.annotations['gateway.networking.k8s.io/channel']).toBe('experimental');
    expect(crd.metadata.annotations['gateway.networking.k8s.io/bundle-version']).toBe(pinnedVersion('GATEWAY_API_VERSION'));
  });

  test('an HTTPRoute keeps its sessionPersistence (the standard channel would prune it)', async () => {
    await plane.kubectl(['create', 'namespace', 'routes']);
    const route = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'sticky', namespace: 'routes' },
      spec: {
        parentRefs: [{ name: 'edge' }],
        rules: [{
          backendRefs: [{ name: 'gateway', port: 80 }],
          sessionPersistence: { sessionName: 'rtg', type: 'Cookie', cookieConfig: { lifetimeType: 'Session' } },
        }],
      },
    };
    await plane.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(route) });
    const stored = JSON.parse((await plane.kubectl(['-n', 'routes', 'get', 'httproute', 'sticky', '-o', 'json'])).stdout);
    expect(stored.spec.rules[0].sessionPersistence).toEqual(route.spec.rules[0]?.sessionPersistence);
  });

  test('impersonating a service account gets exactly what RBAC grants it', async () => {
    await plane.kubectl(['create', 'namespace', 'rbac']);
    await plane.kubectl(['-n', 'rbac', 'create', 'serviceaccount', 'reader']);
    const reader = plane.serviceAccount('rbac', 'reader');
    const before = await plane.kubectl(['-n', 'rbac', 'auth', 'can-i', 'list', 'pods'], { as: reader, allowFailure: true });
    expect(before.stdout.trim()).toBe('no');

    await plane.kubectl(['-n', 'rbac', 'create', 'role', 'pod-reader', '--verb=list', '--resource=pods']);
    await plane.kubectl(['-n', 'rbac', 'create', 'rolebinding', 'reader', '--role=pod-reader', '--serviceaccount=rbac:reader']);
    const after = await plane.kubectl(['-n', 'rbac', 'auth', 'can-i', 'list', 'pods'], { as: reader });
    expect(after.stdout.trim()).toBe('yes');
    const denied = await plane.kubectl(['-n', 'rbac', 'auth', 'can-i', 'delete', 'pods'], { as: reader, allowFailure: true });
    expect(denied.stdout.trim()).toBe('no');
  });
});
