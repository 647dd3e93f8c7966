// `make node-up` / `make node-down` / `make node-status`: a real single-node Kubernetes on this machine
// (no Docker needed). `up` builds the images, starts the node and returns, leaving it running; `down`
// undoes every host change it made. See docs/real-node.md.
import { parseArgs } from 'node:util';
import { buildNodeImages } from './images.ts';
import { NodeError, nodeStatus, startNode, teardown } from './node.ts';

const usage = `usage: node scripts/node/cli.ts up|down|status

  up      build the images (cached), start the node, install CoreDNS and metrics-server, and return
  down    stop every process by its recorded PID and undo every host change (also after a crash)
  status  say whether a node is running and where its kubeconfig is`;

const { positionals } = parseArgs({ allowPositionals: true, options: {} });
const command = positionals[0];

try {
  if (command === 'up') {
    const started = Date.now();
    const images = await buildNodeImages({ log: (line) => console.log(line) });
    const [node] = await startNode({ images: images.map((image) => image.archive), owner: 'cli' });
    console.log(`
node ${node.name} is up in ${((Date.now() - started) / 1000).toFixed(1)} s (API server ${node.server})

  export KUBECONFIG=${node.kubeconfig}
  export PATH=${node.binDir}:$PATH
  kubectl get nodes,pods -A

Logs: ${node.logDir}/<component>.log. Stop it with \`make node-down\`.`);
  } else if (command === 'down') {
    await teardown();
  } else if (command === 'status') {
    const status = nodeStatus();
    console.log(status.running
      ? `a node is running (started ${status.startedAt} by ${status.owner}); KUBECONFIG=${status.kubeconfig}`
      : 'no node is running');
  } else {
    console.error(usage);
    process.exit(2);
  }
} catch (error) {
  console.error(error instanceof NodeError ? error.message : error);
  process.exit(1);
}
