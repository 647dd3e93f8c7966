import { createHash } from 'node:crypto';
import { JsonPatch, type ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { Service } from 'kubernetes-models/v1/Service';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import { addObject, HARDENED_CONTAINER_SECURITY_CONTEXT } from './api-object.ts';
import { GeneratedSecret } from './generated-secret.ts';
import type { RedisConnection } from './gateway.ts';
import { objectLabels, selectorLabels, type AppIdentity } from './labels.ts';
import { isSet, schedulingFields, type PodScheduling } from './pod-extensions.ts';

/** A Redis (or Redis Cluster) outside the cluster, reached through a Secret the platform team provides. */
export interface ExternalRedis {
  /** Secret with the URL (`rediss://host:6379`; for Redis Cluster, comma-separated seed URLs). */
  readonly secretName: string;
  /**
   * Key of the URL in the Secret.
   * @default 'url'
   */
  readonly urlKey?: string;
  /**
   * Key of the password in the Secret (may be absent when the URL carries it).
   * @default 'password'
   */
  readonly passwordKey?: string;
  /**
   * It is a Redis Cluster: the gateway uses the sharded adapter (`ADAPTER=redis-cluster`).
   * @default false
   */
  readonly cluster?: boolean;
}

export interface RedisProps {
  readonly app: AppIdentity;
  /**
   * Use this Redis instead of running one in the cluster.
   * @default - one Redis in the cluster (StatefulSet + Service + generated password Secret + NetworkPolicy)
   */
  readonly external?: ExternalRedis;
  /**
   * Name of the in-cluster Redis objects (and of its Secret).
   * @default `${app.instance}-redis`
   */
  readonly name?: string;
  /**
   * In-cluster Redis image.
   * @default 'redis:8.2.1-alpine'
   */
  readonly image?: string;
  /**
   * Size of the in-cluster Redis data volume (append-only file: room sequence numbers and history survive a restart).
   * @default '1Gi'
   */
  readonly storageSize?: string;
  /**
   * `maxmemory` of the in-cluster Redis: keep it well under the container's memory limit (an AOF rewrite
   * forks, and client buffers count outside it). Past it Redis evicts with `volatile-lru` (see REDIS_MAXMEMORY_POLICY).
   * @default '192mb' (75 % of the default 256Mi limit)
   */
  readonly maxMemory?: string;
  /**
   * StorageClass of the in-cluster Redis data volume.
   * @default - the cluster's default StorageClass
   */
  readonly storageClass?: string;
  /**
   * @default - requests 50m CPU / 64Mi, limit 256Mi memory
   */
  readonly resources?: IResourceRequirements;
  /**
   * Node selector, tolerations, priority class and image pull secrets of the in-cluster Redis pod.
   * @default - none
   */
  readonly scheduling?: PodScheduling;
  /**
   * Fixed password instead of a generated one (tests and the chart generator use this).
   * @default - generated
   */
  readonly password?: string;
  /**
   * A Secret you manage (External Secrets, Sealed Secrets...) holding the in-cluster Redis' password:
   * nothing is generated. Redis (its `auth.conf`, built at pod start by an init container: the image needs
   * `sh`, `od`, `tr` and `sed`, as the official Redis images have), its probe, the gateway and the controller
   * all read the password from it.
   * @default - a generated Secret `<name>` (`password`, `url`)
   */
  readonly existingSecret?: string;
  /**
   * Key of the password in `existingSecret`.
   * @default 'password'
   */
  readonly existingSecretPasswordKey?: string;
  /**
   * Annotations of the generated password Secret.
   * @default - none
   */
  readonly secretAnnotations?: Readonly<Record<string, string>>;
  /**
   * Pod selectors allowed to reach the in-cluster Redis (the gateway's, later the drain controller's).
   * More can be added with `allowFrom`.
   * @default - none; at least one is required by synth time
   */
  readonly clientSelectors?: readonly Readonly<Record<string, string>>[];
}

export const REDIS_COMPONENT = 'redis';
/**
 * Every key the gateway writes has a TTL (a room's seq, history and state: HISTORY_TTL_SECONDS; fleet stats
 * and drain plans: seconds), so `volatile-lru` can evict any of them and evicts the least recently used:
 * idle rooms' history, never the fleet stats written every 2 s. A room whose seq key goes starts a new epoch
 * above every old seq, and its resuming clients get `room:reset` + snapshot: the documented path for a gap
 * older than history. `noeviction` would instead fail every publish (`backplane_unavailable`) once full.
 */
export const REDIS_MAXMEMORY_POLICY = 'volatile-lru';
/** Where the init container writes `auth.conf` (`requirepass ...`): the password never is on a command line. */
const REDIS_AUTH_DIR = '/etc/redis-auth';
/**
 * With an existing Secret, the init container's script (the image needs `sh`, `od`, `tr` and `sed`, as the
 * official Redis images have): `auth.conf` from the password in the environment (a Secret key), written
 * as `\xHH` escapes inside a double-quoted Redis string, so any byte of any password (quotes, backslashes,
 * spaces, newlines) reads back exactly. printf is a shell builtin and od reads a pipe: the password is in
 * no process' arguments. umask: only Redis' user reads the file.
 */
export const REDIS_AUTH_CONF_SCRIPT = [
  'set -eu',
  'umask 077',
  String.raw`hex=$(printf '%s' "$REDIS_PASSWORD" | od -An -v -tx1 | tr -d ' \n' | sed 's/../\\x&/g')`,
  String.raw`printf 'requirepass "%s"\n' "$hex" > ${REDIS_AUTH_DIR}/auth.conf`,
].join('\n');
const REDIS_PORT = 6379;
const REDIS_UID = 999; // the `redis` user of the official image

/**
 * The backplane: either one in-cluster Redis that only its clients can reach, or an external Redis /
 * Redis Cluster. Either way the gateway gets a `RedisConnection` pointing at a Secret.
 */
export class Redis extends Construct {
  readonly connection: RedisConnection;
  /** The in-cluster Redis' StatefulSet; undefined for an external Redis. */
  readonly statefulSet?: ApiObject;
  /** The in-cluster Redis' redis.conf; undefined for an external Redis. */
  readonly configMap?: ApiObject;
  private networkPolicy?: ApiObject;
  private clientCount = 0;

  constructor(scope: Construct, id: string, props: RedisProps) {
    super(scope, id);
    const app = props.app;
    if (props.external) {
      for (const prop of ['image', 'storageSize', 'storageClass', 'resources', 'password', 'name', 'scheduling', 'secretAnnotations', 'maxMemory', 'existingSecret', 'existingSecretPasswordKey'] as const) {
        if (props[prop] !== undefined) {
          throw new Error(`${prop}=${JSON.stringify(props[prop])} only applies to the in-cluster Redis, but external is set`);
        }
      }
      if (!props.external.secretName) throw new Error('external.secretName="" must name the Secret that holds the Redis URL');
      this.connection = {
        adapter: props.external.cluster ? 'redis-cluster' : 'redis',
        secretName: props.external.secretName,
        urlKey: props.external.urlKey ?? 'url',
        passwordKey: props.external.passwordKey ?? 'password',
      };
      return;
    }

    const name = props.name ?? `${app.instance}-redis`;
    const podSelector = selectorLabels(app, REDIS_COMPONENT);
    const metadata = { name, labels: objectLabels(app, REDIS_COMPONENT) };
    const initialClients = props.clientSelectors ?? [];
    this.clientCount = initialClients.length;
    const url = `redis://${name}:${REDIS_PORT}`;

    if (props.existingSecret !== undefined) {
      if (!props.existingSecret) throw new Error('existingSecret="" must name the Secret that holds the Redis password');
      for (const prop of ['password', 'secretAnnotations'] as const) {
        if (props[prop] !== undefined) {
          throw new Error(`${prop}=${JSON.stringify(props[prop])} applies to the generated Secret, but existingSecret=${props.existingSecret} is set: nothing is generated`);
        }
      }
      if (props.existingSecretPasswordKey === '') throw new Error('existingSecretPasswordKey="" must name the key of the password in existingSecret');
    } else {
      if (props.existingSecretPasswordKey !== undefined) {
        throw new Error(`existingSecretPasswordKey=${JSON.stringify(props.existingSecretPasswordKey)} needs existingSecret (the generated Secret's key is "password")`);
      }
      new GeneratedSecret(this, 'Secret', {
        app,
        component: REDIS_COMPONENT,
        name,
        randomKeys: ['password'],
        fixedValues: { url },
        values: props.password === undefined ? undefined : { password: props.password },
        derivedValues: ({ password }) => ({ 'auth.conf': `requirepass "${password}"\n` }),
        annotations: props.secretAnnotations,
      });
    }
    // A generated Secret carries auth.conf itself (mounted: no shell needed, the real node's image has none);
    // an existing one has only the password, which an init container turns into auth.conf.
    const fromExistingSecret = props.existingSecret !== undefined;
    const passwordRef = { name: props.existingSecret ?? name, key: props.existingSecretPasswordKey ?? 'password' };
    // The URL is not secret: a value, so an existing Secret needs only the password.
    this.connection = { adapter: 'redis', secretName: passwordRef.name, url, urlKey: 'url', passwordKey: passwordRef.key };

    const redisConf = [
      `# Written by the Redis construct (infra/redis.ts). The password: auth.conf ${fromExistingSecret ? 'the init container writes from the Secret' : 'of the Secret, mounted'}.`,
      `include ${REDIS_AUTH_DIR}/auth.conf`,
      'dir /data',
      'appendonly yes',
      `maxmemory ${props.maxMemory ?? '192mb'}`,
      `maxmemory-policy ${REDIS_MAXMEMORY_POLICY}`,
      '',
    ].join('\n');
    this.configMap = addObject(this, 'ConfigMap', new ConfigMap({ metadata, data: { 'redis.conf': redisConf } }));

    // The StatefulSet's governing Service: stable pod DNS (<name>-0.<name>-headless), not-ready pods included.
    addObject(
      this,
      'HeadlessService',
      new Service({
        metadata: { ...metadata, name: `${name}-headless` },
        spec: {
          clusterIP: 'None',
          publishNotReadyAddresses: true,
          selector: podSelector,
          ports: [{ name: 'redis', port: REDIS_PORT, targetPort: 'redis', protocol: 'TCP' }],
        },
      }),
    );

    // One Redis holds every room's history: a node drain waits for an operator instead of evicting it.
    addObject(this, 'PodDisruptionBudget', new PodDisruptionBudget({ metadata, spec: { maxUnavailable: 0, selector: { matchLabels: podSelector } } }));

    addObject(
      this,
      'Service',
      new Service({
        metadata,
        spec: {
          type: 'ClusterIP',
          selector: podSelector,
          ports: [{ name: 'redis', port: REDIS_PORT, targetPort: 'redis', protocol: 'TCP' }],
        },
      }),
    );

    const authConfInit: IContainer = {
      name: 'auth-conf',
      image: props.image ?? 'redis:8.2.1-alpine',
      imagePullPolicy: 'IfNotPresent',
      command: ['sh', '-c', REDIS_AUTH_CONF_SCRIPT],
      env: [{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: passwordRef } }],
      resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '32Mi' } },
      securityContext: HARDENED_CONTAINER_SECURITY_CONTEXT,
      volumeMounts: [{ name: 'auth', mountPath: REDIS_AUTH_DIR }],
    };
    const tcpProbe = { tcpSocket: { port: 'redis' } };
    // PING with auth (redis-cli reads REDISCLI_AUTH; -e: an error reply such as NOAUTH or LOADING exits 1).
    // No shell: the image needs only redis-server and redis-cli.
    const pingProbe = { exec: { command: ['redis-cli', '-e', '-h', '127.0.0.1', '-p', String(REDIS_PORT), 'ping'] } };
    this.statefulSet = addObject(
      this,
      'StatefulSet',
      new StatefulSet({
        metadata,
        spec: {
          serviceName: `${name}-headless`,
          replicas: 1,
          selector: { matchLabels: podSelector },
          template: {
            metadata: {
              labels: metadata.labels,
              annotations: { 'checksum/config': createHash('sha256').update(redisConf).digest('hex') },
            },
            spec: {
              ...schedulingFields(props.scheduling),
              automountServiceAccountToken: false,
              securityContext: {
                runAsNonRoot: true,
                runAsUser: REDIS_UID,
                runAsGroup: REDIS_UID,
                fsGroup: REDIS_UID,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              ...(fromExistingSecret ? { initContainers: [authConfInit] } : {}),
              containers: [
                {
                  name: 'redis',
                  image: props.image ?? 'redis:8.2.1-alpine',
                  imagePullPolicy: 'IfNotPresent',
                  // The password comes from a mounted file (redis.conf includes it), never the command line, which
                  // any local user can read in /proc.
                  command: ['redis-server', '/etc/redis/redis.conf'],
                  env: [{ name: 'REDISCLI_AUTH', valueFrom: { secretKeyRef: passwordRef } }],
                  ports: [{ name: 'redis', containerPort: REDIS_PORT, protocol: 'TCP' }],
                  livenessProbe: { ...tcpProbe, periodSeconds: 10, failureThreshold: 3 },
                  readinessProbe: { ...pingProbe, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
                  resources: props.resources ?? { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
                  securityContext: HARDENED_CONTAINER_SECURITY_CONTEXT,
                  volumeMounts: [
                    { name: 'data', mountPath: '/data' },
                    { name: 'config', mountPath: '/etc/redis', readOnly: true },
                    { name: 'auth', mountPath: REDIS_AUTH_DIR, readOnly: true },
                  ],
                },
              ],
              volumes: [
                { name: 'config', configMap: { name } },
                fromExistingSecret
                  ? // In memory: the password never reaches the node's disk.
                    { name: 'auth', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }
                  : // Redis runs as 999 with fsGroup 999: group-readable.
                    { name: 'auth', secret: { secretName: name, items: [{ key: 'auth.conf', path: 'auth.conf' }], defaultMode: 0o440 } },
              ],
            },
          },
          volumeClaimTemplates: [
            {
              metadata: { name: 'data' },
              spec: {
                accessModes: ['ReadWriteOnce'],
                ...(isSet(props.storageClass) ? { storageClassName: props.storageClass } : {}),
                resources: { requests: { storage: props.storageSize ?? '1Gi' } },
              },
            },
          ],
        },
      }),
    );

    // Selecting the Redis pods with an Ingress policy denies every other source.
    this.networkPolicy = addObject(
      this,
      'NetworkPolicy',
      new NetworkPolicy({
        metadata,
        spec: {
          podSelector: { matchLabels: podSelector },
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: initialClients.map((matchLabels) => ({ podSelector: { matchLabels: { ...matchLabels } } })),
              ports: [{ port: REDIS_PORT, protocol: 'TCP' }],
            },
          ],
        },
      }),
    );
    this.node.addValidation({
      validate: () =>
        this.clientCount === 0
          ? [`Redis ${name}: no client may reach it; pass clientSelectors or call allowFrom(gateway.podSelector)`]
          : [],
    });
  }

  /** Lets pods with these labels reach the in-cluster Redis (no-op for an external Redis). */
  allowFrom(podSelector: Readonly<Record<string, string>>): void {
    if (!this.networkPolicy) return;
    this.networkPolicy.addJsonPatch(JsonPatch.add('/spec/ingress/0/from/-', { podSelector: { matchLabels: { ...podSelector } } }));
    this.clientCount += 1;
  }
}
