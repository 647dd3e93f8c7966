// `make controller-local`: the scale-down controller at work, without Docker or a node. A real
// kube-apiserver + etcd + kube-controller-manager, a real redis-server, the Gateway and ScaleDownController
// constructs applied, gateway pods run as processes by the pod runner, two controller replicas (leader
// election) as the generated ServiceAccount, and a Service-like proxy for clients. Until Ctrl-C.
import { startControlPlane } from '../cluster/control-plane.ts';
import { startRedis } from '../fleet/redis.ts';
import {
  applyWorld,
  CONTROLLER,
  DEPLOYMENT,
  JWT_SECRET,
  GATEWAY_SELECTOR,
  NAMESPACE,
  serviceAccountKubeconfig,
  startControllerProcess,
  worldDir,
  worldManifests,
} from './controller-world.ts';
import { startPodRunner } from './pod-runner.ts';
import { mintToken } from '../tokens.ts';

const replicas = Number(process.env.REPLICAS ?? 3);
const budget = Number(process.env.BUDGET ?? 20);
const started = Date.now();
const cleanups: (() => Promise<unknown>)[] = [];
let stopping = false;
const shutdown = async (code = 0) => {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping...');
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  process.exit(code);
};
process.on('SIGINT', () => void shutdown());
process.on('SIGTERM', () => void shutdown());

try {
  console.log('starting etcd, kube-apiserver, kube-controller-manager and redis-server...');
  const [plane, stopPlane] = await startControlPlane({ controllerManager: true, installCrds: false });
  cleanups.push(stopPlane);
  const [redis, stopRedis] = await startRedis();
  cleanups.push(stopRedis);
  const [dir, removeDir] = worldDir();
  cleanups.push(async () => removeDir());
  await applyWorld(plane, worldManifests(redis.url, { budget, localRate: budget, replicas, leaseDurationSeconds: 15 }));
  const runner = await startPodRunner({ kubeconfig: plane.kubeconfig, namespace: NAMESPACE, selector: GATEWAY_SELECTOR, probePeriodMs: 500 });
  cleanups.push(() => runner.stop());
  const kubeconfig = await serviceAccountKubeconfig(plane, dir);
  for (const name of ['controller-0', 'controller-1']) {
    const controller = await startControllerProcess({
      name,
      kubeconfig,
      redisUrl: redis.url,
      leaseDurationSeconds: 15,
      onOutput: (line) => {
        try {
          const { msg, ...rest } = JSON.parse(line) as { msg: string; level: number; time: number; pod: string; component: string };
          const { level: _l, time: _t, pod: _p, component: _c, ...fields } = rest;
          console.log(`[${name}] ${msg} ${Object.keys(fields).length ? JSON.stringify(fields) : ''}`);
        } catch {
          console.log(`[${name}] ${line}`);
        }
      },
    });
    cleanups.push(() => controller.stop('SIGTERM'));
  }
  const service = await runner.service('http', 'leastconn');
  cleanups.push(() => service.close());
  await runner.waitForReady(replicas, 60_000);
  const token = await mintToken({ secret: JWT_SECRET, sub: 'demo-user', ttlSeconds: 3_600 });

  console.log(`
ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${replicas} gateway pods (processes on node ${runner.nodeName}), 2 controller replicas

  export KUBECONFIG=${plane.kubeconfig}
  export PATH=${plane.binDir}:$PATH
  kubectl -n ${NAMESPACE} get sgw,deploy,pods -o wide
  kubectl -n ${NAMESPACE} scale sgw ${DEPLOYMENT} --replicas 2       # drain the emptiest pod, then delete it
  kubectl -n ${NAMESPACE} delete pod <a> <b> --wait=false          # two at once share the budget (${budget}/s)
  kubectl -n ${NAMESPACE} get events --sort-by=.metadata.creationTimestamp
  kubectl -n ${NAMESPACE} get lease ${CONTROLLER} -o yaml

Clients: ${service.url} — a kube-proxy-like TCP Service over the ready pods (least connections). WebSocket
clients only: long-polling needs the sticky edge of \`make dev\` or kind. A token (1 h): ${token}
Press Ctrl-C to stop and delete everything.`);
  setInterval(() => {}, 1 << 30);
} catch (err) {
  console.error((err as Error).message);
  await shutdown(1);
}
