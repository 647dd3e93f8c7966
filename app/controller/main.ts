import { createServer } from 'node:http';
import type { KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { createAdminClient } from './admin.ts';
import { ConfigError, loadControllerConfig } from './config.ts';
import { createFleetStore } from './fleet.ts';
import { kubeClients, eventRecorder, startInformers, type RunningInformers } from './kube.ts';
import { LeaderElector } from './leader.ts';
import { createControllerMetrics } from './metrics.ts';
import { WorkQueue } from './queue.ts';
import { createReconciler } from './reconciler.ts';

/**
 * The scale-down controller (docs/controller.md): every replica campaigns for the Lease; the leader
 * watches SocketGateways, their Deployments, pods and PodDisruptionBudgets in one namespace and
 * reconciles each SocketGateway with one reconcile in flight at a time. /healthz, /readyz and /metrics
 * are served by every replica. SIGTERM: finish the reconcile in flight, release the Lease, exit 0.
 * Losing the Lease (no renewal within the renew deadline): exit 1 at once, the kubelet restarts it.
 */

let config;
try {
  config = loadControllerConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
}
const cfg = config;
const log = pino({ level: cfg.LOG_LEVEL, base: { pod: cfg.POD_NAME, component: 'controller' } });
const metrics = createControllerMetrics();
const clients = kubeClients();
const fleet = createFleetStore({
  url: cfg.REDIS_URL,
  password: cfg.REDIS_PASSWORD,
  cluster: cfg.REDIS_CLUSTER,
  keyPrefix: cfg.KEY_PREFIX,
  name: `controller:${cfg.POD_NAME}`,
});
const admin = createAdminClient(cfg.ADMIN_TOKEN, cfg.ADMIN_TIMEOUT_MS);
const namespace = cfg.WATCH_NAMESPACE;

let informers: RunningInformers | null = null;
let queue: WorkQueue | null = null;
let resync: NodeJS.Timeout | null = null;
let shuttingDown = false;

const elector = new LeaderElector({
  api: clients.coordination,
  namespace: cfg.POD_NAMESPACE,
  name: cfg.LEASE_NAME,
  identity: cfg.POD_NAME,
  leaseDurationMs: cfg.LEASE_DURATION_SECONDS * 1_000,
  renewDeadlineMs: cfg.LEASE_RENEW_DEADLINE_SECONDS * 1_000,
  retryPeriodMs: cfg.LEASE_RETRY_PERIOD_SECONDS * 1_000,
  log,
});

function enqueueAll(): void {
  if (!informers || !queue) return;
  for (const sg of informers.caches.socketGateways.list(namespace)) queue.add(`${namespace}/${sg.metadata.name}`);
}

async function startWork(): Promise<void> {
  metrics.leader.set(1);
  let started = false;
  const running = await startInformers(
    clients,
    namespace,
    (kind, object: KubernetesObject) => {
      if (!started || !queue) return;
      if (kind === 'SocketGateway') queue.add(`${object.metadata?.namespace}/${object.metadata?.name}`);
      else enqueueAll();
    },
    (kind, err, retryInMs) => {
      metrics.informerErrors.inc({ kind });
      log.warn({ kind, err: String(err), retryInMs }, 'watch failed; restarting it');
    },
  );
  informers = running;
  const reconciler = createReconciler({
    clients,
    caches: running.caches,
    fleet,
    admin,
    record: eventRecorder(clients, cfg.POD_NAME, log),
    metrics,
    log,
    identity: cfg.POD_NAME,
  });
  // Never act on a partial view: until every informer has listed, look again in a second.
  queue = new WorkQueue(async (key) => (running.synced() ? reconciler(key) : { requeueAfterMs: 1_000 }), {
    onError: (key, err, retryInMs) => log.warn({ key, err: String(err), retryInMs }, 'reconcile failed; requeued with backoff'),
  });
  started = true;
  if (shuttingDown) return;
  enqueueAll();
  // A safety net besides the watches: every resource is looked at at least every 30 s.
  resync = setInterval(enqueueAll, 30_000);
  log.info({ namespace }, 'controller started: watching SocketGateways');
}

const server = createServer(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  } else if (path === '/readyz') {
    // A standby is ready (it is campaigning); a leader once its caches have listed.
    const ready = !shuttingDown && (!elector.isLeader || (informers?.synced() ?? false));
    res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
  } else if (path === '/metrics') {
    res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
});

async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  log.info({ signal }, 'shutting down: finishing the reconcile in flight, then releasing the Lease');
  if (resync) clearInterval(resync);
  await queue?.shutdown(cfg.SHUTDOWN_TIMEOUT_MS);
  await informers?.stop();
  await elector.stop();
  metrics.leader.set(0);
  await fleet.close();
  server.close();
  log.info('stopped');
  process.exit(0);
}

process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

server.listen(cfg.PORT, cfg.HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : cfg.PORT;
  log.info({ host: cfg.HOST, port, namespace, lease: `${cfg.POD_NAMESPACE}/${cfg.LEASE_NAME}` }, 'controller listening; campaigning for the Lease');
  elector.start({
    onStartedLeading: () => {
      startWork().catch((err: unknown) => {
        log.fatal({ err: String(err) }, 'could not start watching; exiting');
        process.exit(1);
      });
    },
    onStoppedLeading: () => {
      metrics.leader.set(0);
      // Another replica may already act on the same pods: stop everything now, the kubelet restarts us.
      log.fatal('leadership lost; exiting so nothing acts on a stale view');
      process.exit(1);
    },
  });
});
