// `make cluster-local`: a real kube-apiserver + etcd + kube-controller-manager on loopback until Ctrl-C.
// There are no nodes: objects are stored and controllers run, but pods stay Pending.
import { startControlPlane } from './control-plane.ts';

const started = Date.now();
console.log('starting etcd, kube-apiserver and kube-controller-manager...');
const [plane, stop] = await startControlPlane({ controllerManager: true });

console.log(`control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${plane.server}

  export KUBECONFIG=${plane.kubeconfig}
  export PATH=${plane.binDir}:$PATH   # kubectl built at the API server's version
  kubectl get namespaces
  kubectl auth can-i --list --as=system:serviceaccount:default:default

Gateway API (experimental channel) and KEDA CRDs are installed. Logs: ${plane.dir}/*.log
Press Ctrl-C to stop and delete everything.`);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping...');
  await stop();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
// Keep the event loop alive until a signal arrives.
setInterval(() => {}, 1 << 30);
