// The kubectl chaos target (scripts/chaos/targets.ts: `make chaos-kind`, and the real node's target) reads
// what its clients need from the deployed blueprint itself: the gateway pods' environment, resolved through
// their ConfigMap and Secrets. Here against a real kube-apiserver + kube-controller-manager with the kind
// profile applied (pods stay Pending: there is no kubelet, but their spec is all the target reads).
// Run `make tools` first.
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane, type StopControlPlane } from '../../scripts/cluster/control-plane.ts';
import { kubectlTarget } from '../../scripts/chaos/targets.ts';
import { synthProfile, toYamlStream } from '../../infra/synth.ts';

const NAMESPACE = 'realtime-gateway';
const KINDS = new Set(['Namespace', 'Secret', 'ConfigMap', 'ServiceAccount', 'Deployment', 'StatefulSet', 'Service']);

describe('kubectl chaos target against a real API server', () => {
  let plane: ControlPlane;
  let stop: StopControlPlane | undefined;
  const objects = synthProfile('kind').app!.filter((o) => KINDS.has(o.kind));
  const secretValue = (name: string, key: string): string => {
    const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === name) as { data?: Record<string, string>; stringData?: Record<string, string> };
    return secret.stringData?.[key] ?? Buffer.from(secret.data![key]!, 'base64').toString('utf8');
  };

  beforeAll(async () => {
    [plane, stop] = await startControlPlane({ controllerManager: true, installCrds: false });
    await plane.kubectl(['apply', '--server-side', '-f', '-'], { input: toYamlStream(objects) });
    for (let i = 0; i < 100; i += 1) {
      const pods = await plane.kubectl(['-n', NAMESPACE, 'get', 'pods', '-l', 'app.kubernetes.io/component=gateway', '-o', 'name']);
      if (pods.stdout.trim()) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`the ReplicaSet made no gateway pod:\n${plane.logTail('kube-controller-manager')}`);
  });

  afterAll(async () => {
    await stop?.();
  });

  it('mints each client a JWT the gateway would accept, from the Secret behind the pods’ JWT_SECRET', async () => {
    const target = await kubectlTarget({
      name: 'test',
      kubeconfig: plane.kubeconfig,
      kubectl: `${plane.binDir}/kubectl`,
      namespace: NAMESPACE,
      gatewaySelector: 'app.kubernetes.io/component=gateway',
      redisSelector: 'app.kubernetes.io/component=redis',
      url: 'http://127.0.0.1:1',
    });
    expect(target.description).toContain('JWT clients');
    const token = await target.getToken!('chaos-client-1');
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secretValue('realtime-gateway-auth', 'jwt-secret')), { algorithms: ['HS256'] });
    expect(payload.sub).toBe('chaos-client-1');
    expect(payload.exp! - payload.iat!).toBeGreaterThanOrEqual(600);
    await target.close();
  });

  it('names the cluster it could not reach', async () => {
    await expect(
      kubectlTarget({
        name: 'test',
        kubeconfig: plane.kubeconfig,
        context: 'no-such-context',
        kubectl: `${plane.binDir}/kubectl`,
        namespace: NAMESPACE,
        gatewaySelector: 'x=y',
        redisSelector: 'x=y',
        url: 'http://127.0.0.1:1',
      }),
    ).rejects.toThrow(/context no-such-context/);
  });
});
