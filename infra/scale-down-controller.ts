import { ApiObject, Chart, JsonPatch, type ApiObjectProps } from 'cdk8s';
import { Construct } from 'constructs';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IResourceRequirements } from 'kubernetes-models/v1/ResourceRequirements';
import type { IPolicyRule } from 'kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule';
import { API_GROUP, API_VERSION, KIND, PLURAL, socketGatewayCrd } from './generated/socket-gateway-crd.ts';
import { addObject, HARDENED_CONTAINER_SECURITY_CONTEXT } from './api-object.ts';
import { redisConnectionEnv, type RedisConnection } from './gateway.ts';
import type { ScaleTarget } from './horizontal-autoscaler.ts';
import { objectLabels, selectorLabels, type AppIdentity } from './labels.ts';
import { LIMITS } from './limits.ts';
import { schedulingFields, type PodScheduling } from './pod-extensions.ts';

/** The drain policy of the SocketGateway (docs/controller.md); unset fields take the CRD's defaults. */
export interface DrainPolicyProps {
  /**
   * Reconnects per second the surviving pods absorb, for the whole fleet.
   * @default 60
   */
  readonly reconnectBudgetPerSecond?: number;
  /**
   * Longest a controller-started drain may take.
   * @default 120
   */
  readonly windowSeconds?: number;
  /**
   * Upper bound of the reconnect hint.
   * @default - the window
   */
  readonly hintBoundSeconds?: number;
  /**
   * Wait past the window before a drain counts as timed out.
   * @default 15
   */
  readonly marginSeconds?: number;
}

export interface ScaleDownControllerProps {
  readonly app: AppIdentity;
  /** The image (the gateway's: one image, two entry points). */
  readonly image: string;
  /** The gateway Deployment the SocketGateway points at. */
  readonly deploymentName: string;
  /** The gateways' Redis (fleet stats, drain plans). */
  readonly redis: RedisConnection;
  /** Secret and key of the gateways' ADMIN_TOKEN (bearer token of `POST /admin/drain`). */
  readonly adminToken: { readonly secretName: string; readonly key: string };
  /**
   * Base name of the controller's objects; the SocketGateway is named like the Deployment.
   * @default `${app.instance}-controller`
   */
  readonly name?: string;
  /**
   * Controller replicas (one leads through a Lease, the others stand by).
   * @default 2
   */
  readonly replicas?: number;
  /**
   * @default 'IfNotPresent'
   */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * @default - requests 50m CPU / 64Mi, limit 256Mi memory
   */
  readonly resources?: IResourceRequirements;
  /**
   * The SocketGateway's spec.replicas. Leave unset when an HPA or KEDA owns the count, so applying the
   * manifests again does not reset it (the CRD defaults a new resource to 1; the autoscaler raises it).
   * @default - unset
   */
  readonly gatewayReplicas?: number;
  /**
   * A drain never starts when fewer ready serving pods than this would remain.
   * @default 1
   */
  readonly minReadyPods?: number;
  /**
   * @default - the CRD's defaults
   */
  readonly drain?: DrainPolicyProps;
  /**
   * Name of the gateway container port serving /admin/drain.
   * @default 'internal'
   */
  readonly internalPortName?: string;
  /**
   * The gateways' KEY_PREFIX.
   * @default 'rt'
   */
  readonly keyPrefix?: string;
  /**
   * Port of the controller's /healthz, /readyz and /metrics.
   * @default 8080
   */
  readonly metricsPort?: number;
  /**
   * Seconds a standby waits after the leader's last renewal before taking over.
   * @default 15
   */
  readonly leaseDurationSeconds?: number;
  /**
   * Ship the CustomResourceDefinition with these objects (the Helm chart ships it in crds/ instead).
   * @default true
   */
  readonly includeCrd?: boolean;
  /**
   * Node selector, tolerations, priority class and image pull secrets of the pods.
   * @default - none
   */
  readonly scheduling?: PodScheduling;
}

export const CONTROLLER_COMPONENT = 'controller';

/**
 * The scale-down controller (app/controller, docs/controller.md): its Deployment (2 replicas, leader
 * election on a Lease), ServiceAccount with a least-privilege Role in the gateway's namespace (no
 * wildcards; every verb is explained in docs/controller.md), the SocketGateway CRD and a default
 * SocketGateway pointing at the gateway Deployment. Autoscalers then target `scaleTarget`.
 */
export class ScaleDownController extends Construct {
  readonly name: string;
  /** Labels selecting the controller pods (for the Redis and gateway NetworkPolicies). */
  readonly podSelector: Record<string, string>;
  /** What an HPA or ScaledObject scales: the SocketGateway's /scale subresource. */
  readonly scaleTarget: ScaleTarget;
  readonly leaseName: string;
  readonly deployment: ApiObject;

  constructor(scope: Construct, id: string, props: ScaleDownControllerProps) {
    super(scope, id);
    const app = props.app;
    this.name = props.name ?? `${app.instance}-controller`;
    this.leaseName = this.name;
    const replicas = props.replicas ?? 2;
    const metricsPort = props.metricsPort ?? 8080;
    const leaseDuration = props.leaseDurationSeconds ?? 15;
    const keyPrefix = props.keyPrefix ?? 'rt';
    if (!Number.isInteger(replicas) || replicas < LIMITS.replicas.minimum) throw new Error(`replicas=${replicas} must be an integer >= ${LIMITS.replicas.minimum}`);
    if (!Number.isInteger(metricsPort) || metricsPort < 1 || metricsPort > 65_535) throw new Error(`metricsPort=${metricsPort} must be an integer in 1-65535`);
    if (!Number.isInteger(leaseDuration) || leaseDuration < LIMITS.leaseDurationSeconds.minimum) {
      throw new Error(`leaseDurationSeconds=${leaseDuration} must be an integer >= ${LIMITS.leaseDurationSeconds.minimum} (the controller derives its renew deadline and retry period from it)`);
    }
    if (!/^[A-Za-z0-9:_-]{1,32}$/.test(keyPrefix)) throw new Error(`keyPrefix=${JSON.stringify(keyPrefix)} must be 1-32 letters, digits, ":", "_" or "-"`);
    if (!props.adminToken.secretName || !props.adminToken.key) {
      throw new Error(`adminToken=${JSON.stringify(props.adminToken)} must name a Secret and a key (the gateways' ADMIN_TOKEN)`);
    }

    // Lower bounds here, naming the prop; the CRD's schema (the same zod source) checks the rest at apply.
    const atLeast = (prop: string, value: number | undefined, min: number, integer = true) => {
      if (value === undefined) return;
      if ((integer && !Number.isInteger(value)) || !(value >= min)) {
        throw new Error(`${prop}=${value} must be ${integer ? 'an integer ' : 'a number '}>= ${min}`);
      }
    };
    atLeast('gatewayReplicas', props.gatewayReplicas, 0);
    atLeast('minReadyPods', props.minReadyPods, LIMITS.minReadyPods.minimum);
    atLeast('drain.reconnectBudgetPerSecond', props.drain?.reconnectBudgetPerSecond, LIMITS.reconnectBudgetPerSecond.minimum, false);
    atLeast('drain.windowSeconds', props.drain?.windowSeconds, LIMITS.controllerDrainWindowSeconds.minimum);
    atLeast('drain.hintBoundSeconds', props.drain?.hintBoundSeconds, 0);
    atLeast('drain.marginSeconds', props.drain?.marginSeconds, LIMITS.controllerDrainMarginSeconds.minimum);
    const drain = Object.fromEntries(Object.entries(props.drain ?? {}).filter(([, v]) => v !== undefined));
    const spec = {
      deploymentName: props.deploymentName,
      ...(props.gatewayReplicas !== undefined ? { replicas: props.gatewayReplicas } : {}),
      ...(props.internalPortName !== undefined ? { internalPortName: props.internalPortName } : {}),
      ...(props.minReadyPods !== undefined ? { minReadyPods: props.minReadyPods } : {}),
      ...(Object.keys(drain).length > 0 ? { drain } : {}),
    };

    this.podSelector = selectorLabels(app, CONTROLLER_COMPONENT);
    const labels = objectLabels(app, CONTROLLER_COMPONENT);
    const metadata = { name: this.name, labels };
    this.scaleTarget = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, name: props.deploymentName };

    if (props.includeCrd ?? true) new SocketGatewayCrd(this, 'Crd', { app });
    new ApiObject(this, 'SocketGateway', {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: KIND,
      metadata: { name: props.deploymentName, labels },
      spec,
    } as ApiObjectProps);

    addObject(this, 'ServiceAccount', new ServiceAccount({ metadata, automountServiceAccountToken: false }));
    addObject(this, 'Role', new Role({ metadata, rules: controllerRules(this.leaseName) }));
    addObject(
      this,
      'RoleBinding',
      new RoleBinding({
        metadata,
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: this.name },
        subjects: [{ kind: 'ServiceAccount', name: this.name }],
      }),
    );

    const env: IEnvVar[] = [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'HOST', value: '0.0.0.0' },
      { name: 'PORT', value: String(metricsPort) },
      { name: 'LEASE_NAME', value: this.leaseName },
      { name: 'LEASE_DURATION_SECONDS', value: String(leaseDuration) },
      { name: 'KEY_PREFIX', value: keyPrefix },
      { name: 'REDIS_CLUSTER', value: String(props.redis.adapter === 'redis-cluster') },
      ...redisConnectionEnv(props.redis),
      { name: 'ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: props.adminToken.secretName, key: props.adminToken.key } } },
    ];
    const probe = (path: string) => ({ httpGet: { path, port: 'metrics' } });
    this.deployment = addObject(
      this,
      'Deployment',
      new Deployment({
        metadata,
        spec: {
          replicas,
          revisionHistoryLimit: 5,
          selector: { matchLabels: this.podSelector },
          template: {
            metadata: { labels },
            spec: {
              ...schedulingFields(props.scheduling),
              serviceAccountName: this.name,
              // The one pod of the blueprint that talks to the API server. Its token is declared here, not
              // automounted: the same projected volume the kubelet would inject (short-lived, audience-bound).
              automountServiceAccountToken: false,
              volumes: [
                {
                  name: 'kube-api-access',
                  projected: {
                    defaultMode: 0o644,
                    sources: [
                      { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
                      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                      { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
                    ],
                  },
                },
              ],
              // SIGTERM: finish the reconcile in flight (≤ 5 s), release the Lease.
              terminationGracePeriodSeconds: 15,
              securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
              topologySpreadConstraints: [
                {
                  maxSkew: 1,
                  topologyKey: 'kubernetes.io/hostname',
                  whenUnsatisfiable: 'ScheduleAnyway',
                  labelSelector: { matchLabels: this.podSelector },
                  matchLabelKeys: ['pod-template-hash'],
                },
              ],
              containers: [
                {
                  name: CONTROLLER_COMPONENT,
                  image: props.image,
                  imagePullPolicy: props.imagePullPolicy ?? 'IfNotPresent',
                  command: ['node', 'app/controller/main.ts'],
                  ports: [{ name: 'metrics', containerPort: metricsPort, protocol: 'TCP' }],
                  env,
                  livenessProbe: { ...probe('/healthz'), periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
                  readinessProbe: { ...probe('/readyz'), periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
                  resources: props.resources ?? { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
                  securityContext: HARDENED_CONTAINER_SECURITY_CONTEXT,
                  volumeMounts: [{ name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }],
                },
              ],
            },
          },
        },
      }),
    );
  }
}

export interface SocketGatewayCrdProps {
  readonly app: AppIdentity;
}

/**
 * The SocketGateway CustomResourceDefinition, generated from the zod schema in
 * app/controller/socket-gateway.ts. Cluster-scoped: profiles put it in a chart of its own
 * (`dist/<profile>/crds/`, applied before everything else), the Helm chart in `crds/`.
 */
export class SocketGatewayCrd extends Construct {
  constructor(scope: Construct, id: string, props: SocketGatewayCrdProps) {
    super(scope, id);
    const { 'app.kubernetes.io/instance': _instance, ...labels } = objectLabels(props.app, CONTROLLER_COMPONENT);
    // One CRD serves every installation in the cluster: no instance label.
    const crd = new ApiObject(this, 'Resource', socketGatewayCrd(labels) as unknown as ApiObjectProps);
    if (Chart.of(this).namespace) crd.addJsonPatch(JsonPatch.remove('/metadata/namespace'));
  }
}

/**
 * The controller's permissions, all in its own namespace (a Role, no ClusterRole). Why each verb:
 * docs/controller.md#rbac; test/cluster/rbac.ts holds the reviewed list.
 */
export function controllerRules(leaseName: string): IPolicyRule[] {
  return [
    { apiGroups: [API_GROUP], resources: [PLURAL], verbs: ['list', 'watch'] },
    { apiGroups: [API_GROUP], resources: [`${PLURAL}/status`], verbs: ['patch'] },
    { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list', 'watch'] },
    { apiGroups: ['apps'], resources: ['deployments/scale'], verbs: ['patch'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch', 'patch'] },
    { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: ['list', 'watch'] },
    { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create'] },
    // `create` cannot be limited to a name (the object does not exist yet); get/update only this Lease.
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [leaseName], verbs: ['get', 'update'] },
  ];
}
