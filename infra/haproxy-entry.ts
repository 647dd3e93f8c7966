import { createHash } from 'node:crypto';
import type { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import { addObject, HARDENED_CONTAINER_SECURITY_CONTEXT } from './api-object.ts';
import type { EntryBackend } from './gateway-api-entry.ts';
import { objectLabels, selectorLabels, type AppIdentity } from './labels.ts';
import { checkCookieAttributes, LIMITS, type CookieSameSite } from './limits.ts';
import { schedulingFields, type PodScheduling } from './pod-extensions.ts';

export interface HaproxyEntryProps {
  readonly app: AppIdentity;
  readonly backend: EntryBackend;
  /** Labels of the gateway pods: a headless Service over them is what HAProxy resolves. */
  readonly backendPodSelector: Readonly<Record<string, string>>;
  /**
   * Base name of the objects.
   * @default `${app.instance}-entry`
   */
  readonly name?: string;
  /**
   * HAProxy image (2.6 or newer).
   * @default 'haproxy:3.2'
   */
  readonly image?: string;
  /** @default 'IfNotPresent' */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** @default 1 */
  readonly replicas?: number;
  /**
   * How clients reach it. `NodePort` needs `nodePort`.
   * @default 'ClusterIP'
   */
  readonly serviceType?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  /** @default - assigned by the cluster */
  readonly nodePort?: number;
  /** @default 8080 */
  readonly port?: number;
  /** @default 'rtgw-affinity' */
  readonly cookieName?: string;
  /**
   * Mark the affinity cookie `Secure`. HAProxy here serves plain HTTP: set it when TLS is terminated in
   * front of it, so the browser sees https (a Secure cookie set over plain http is dropped).
   * @default false
   */
  readonly cookieSecure?: boolean;
  /**
   * The affinity cookie's `SameSite`; `None` needs `cookieSecure` (see IngressEntryProps.cookieSameSite).
   * @default 'Lax'
   */
  readonly cookieSameSite?: CookieSameSite;
  /**
   * Most gateway pods HAProxy keeps a server slot for (`server-template`).
   * @default 32
   */
  readonly maxServers?: number;
  /**
   * Connection limit; each proxied socket holds two descriptors, so keep it well under the pod's
   * open-file limit.
   * @default 8000
   */
  readonly maxConnections?: number;
  /** @default 'cluster.local' */
  readonly clusterDomain?: string;
  /** @default - 50m CPU and 64Mi requested, 256Mi limit */
  readonly resources?: IResourceRequirements;
  /**
   * Node selector, tolerations, priority class and image pull secrets of the HAProxy pods.
   * @default - none
   */
  readonly scheduling?: PodScheduling;
}

const HAPROXY_UID = 99; // the `haproxy` user of the official image

/**
 * A sticky, drain-aware entry that needs no controller: HAProxy follows the gateway pods through cluster
 * DNS (a headless Service that keeps not-ready pods, so a draining pod's live sessions stay pinned to it)
 * and health-checks `/readyz`, so new sessions go only to ready pods. The same rules as the local fleet's
 * HAProxy (`make dev`): cookie stickiness for long-polling, `force-persist` for requests of a live session.
 * For clusters without Envoy Gateway or a cookie-capable Ingress controller, and for the real node.
 */
export class HaproxyEntry extends Construct {
  readonly name: string;
  readonly port: number;
  readonly podSelector: Record<string, string>;
  readonly deployment: ApiObject;
  readonly service: ApiObject;
  readonly configMap: ApiObject;

  constructor(scope: Construct, id: string, props: HaproxyEntryProps) {
    super(scope, id);
    const app = props.app;
    this.name = props.name ?? `${app.instance}-entry`;
    this.port = props.port ?? 8080;
    this.podSelector = selectorLabels(app, 'entry');
    const serviceType = props.serviceType ?? 'ClusterIP';
    if (props.nodePort !== undefined && serviceType !== 'NodePort') {
      throw new Error(`nodePort=${props.nodePort} needs serviceType=NodePort (serviceType=${serviceType})`);
    }
    if (props.nodePort !== undefined && (props.nodePort < LIMITS.nodePort.minimum || props.nodePort > LIMITS.nodePort.maximum)) {
      throw new Error(`nodePort=${props.nodePort} is outside the default NodePort range ${LIMITS.nodePort.minimum}-${LIMITS.nodePort.maximum}`);
    }
    const maxServers = props.maxServers ?? 32;
    if (!Number.isInteger(maxServers) || maxServers < LIMITS.haproxyMaxServers.minimum || maxServers > LIMITS.haproxyMaxServers.maximum) {
      throw new Error(`maxServers=${maxServers} must be an integer from ${LIMITS.haproxyMaxServers.minimum} to ${LIMITS.haproxyMaxServers.maximum}`);
    }
    const maxConnections = props.maxConnections ?? 8000;
    const cookieSecure = props.cookieSecure ?? false;
    const cookieSameSite = props.cookieSameSite ?? 'Lax';
    checkCookieAttributes(cookieSecure, cookieSameSite);
    const podsService = `${this.name}-pods`;
    const labels = objectLabels(app, 'entry');

    addObject(this, 'PodsService', new Service({
      metadata: { name: podsService, labels },
      spec: {
        clusterIP: 'None',
        // Draining pods are not ready but still serve their live sessions until they close them.
        publishNotReadyAddresses: true,
        selector: { ...props.backendPodSelector },
        ports: [{ name: 'http', port: props.backend.port, targetPort: props.backend.port }],
      },
    }));

    const config = renderHaproxyEntryConfig({
      port: this.port,
      backendHost: `${podsService}.\${POD_NAMESPACE}.svc.${props.clusterDomain ?? 'cluster.local'}`,
      backendPort: props.backend.port,
      cookieName: props.cookieName ?? 'rtgw-affinity',
      cookieSecure,
      cookieSameSite,
      maxServers,
      maxConnections,
    });
    this.configMap = addObject(this, 'Config', new ConfigMap({ metadata: { name: this.name, labels }, data: { 'haproxy.cfg': config } }));

    this.deployment = addObject(this, 'Deployment', new Deployment({
      metadata: { name: this.name, labels },
      spec: {
        replicas: props.replicas ?? 1,
        selector: { matchLabels: this.podSelector },
        template: {
          metadata: {
            labels,
            // HAProxy reads its config only at start: a changed config must roll the pods.
            annotations: { 'checksum/config': createHash('sha256').update(config).digest('hex') },
          },
          spec: {
            ...schedulingFields(props.scheduling),
            automountServiceAccountToken: false,
            securityContext: { runAsNonRoot: true, runAsUser: HAPROXY_UID, runAsGroup: HAPROXY_UID, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [{
              name: 'haproxy',
              image: props.image ?? 'haproxy:3.2',
              imagePullPolicy: props.imagePullPolicy ?? 'IfNotPresent',
              command: ['haproxy'],
              args: ['-db', '-f', '/usr/local/etc/haproxy/haproxy.cfg'],
              env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
              ports: [{ name: 'http', containerPort: this.port }, { name: 'health', containerPort: 8404 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 'health' }, periodSeconds: 2 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'health' }, periodSeconds: 10 },
              resources: props.resources ?? { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              securityContext: HARDENED_CONTAINER_SECURITY_CONTEXT,
              volumeMounts: [
                { name: 'config', mountPath: '/usr/local/etc/haproxy', readOnly: true },
                { name: 'run', mountPath: '/var/run/haproxy' },
              ],
            }],
            volumes: [
              { name: 'config', configMap: { name: this.name } },
              { name: 'run', emptyDir: {} },
            ],
          },
        },
      },
    }));

    this.service = addObject(this, 'Service', new Service({
      metadata: { name: this.name, labels },
      spec: {
        type: serviceType,
        selector: this.podSelector,
        ports: [{ name: 'http', port: this.port, targetPort: 'http', ...(props.nodePort === undefined ? {} : { nodePort: props.nodePort }) }],
      },
    }));
  }
}

export interface HaproxyEntryConfig {
  port: number;
  /** DNS name of the headless Service; `${POD_NAMESPACE}` is expanded by HAProxy from the pod's env. */
  backendHost: string;
  backendPort: number;
  cookieName: string;
  /** @default false */
  cookieSecure?: boolean;
  /** @default 'Lax' */
  cookieSameSite?: string;
  maxServers: number;
  maxConnections: number;
}

/** haproxy.cfg of the entry. Pure, so tests and docs see exactly what runs. */
export function renderHaproxyEntryConfig(o: HaproxyEntryConfig): string {
  return `# Generated by infra/haproxy-entry.ts: a sticky, drain-aware entry for the gateway pods.
global
  maxconn ${o.maxConnections}
  nbthread 1

resolvers cluster
  # The pod's resolv.conf names the cluster DNS server.
  parse-resolv-conf
  # Room for one A record per gateway pod (HAProxy announces 512 bytes by default: about 28 records).
  accepted_payload_size 8192
  hold valid 5s
  hold obsolete 5s
  resolve_retries 3
  timeout resolve 1s
  timeout retry 1s

defaults
  mode http
  maxconn ${o.maxConnections}
  timeout connect 5s
  # A /readyz slowed by event-loop lag must not mark a pod DOWN (the check would time out at inter, 1 s).
  timeout check 2s
  # Long-polls are held up to the gateway's ping interval (20 s); these must be longer.
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  # WebSocket connections live for hours; after the upgrade this is the only timeout that applies.
  timeout tunnel 1h
  timeout client-fin 5s
  timeout server-fin 5s
  option redispatch
  retries 2

frontend health
  bind :8404
  http-request return status 200 content-type text/plain string ok if { path /healthz }

frontend gateway
  bind :${o.port}
  default_backend gateways

backend gateways
  balance roundrobin
  # Sticky sessions for Engine.IO long-polling. \`dynamic\` derives each cookie from the server's address,
  # so a cookie keeps naming the same pod when DNS reshuffles the server slots. No script reads it (httponly).
  cookie ${o.cookieName} insert indirect nocache dynamic httponly${o.cookieSecure ? ' secure' : ''} attr "SameSite=${o.cookieSameSite ?? 'Lax'}"
  dynamic-cookie-key "\${POD_NAMESPACE}"
  # Requests of a live session (they carry \`sid\`) stay on their pod even after it failed readiness: a
  # draining pod serves its sessions until it closes them at its paced rate.
  force-persist if { urlp(sid) -m found }
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 1s fall 2 rise 1 check resolvers cluster resolve-prefer ipv4 init-addr none
  server-template gw 1-${o.maxServers} "${o.backendHost}:${o.backendPort}"
`;
}
