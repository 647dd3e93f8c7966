// Cluster add-ons that make the blueprint's manifests real on the node, each built from its Go module
// by `make tools` and packed into an image by images.ts:
//   - CoreDNS: the gateway finds Redis by Service name. It answers cluster.local only and forwards
//     nothing, so no pod's query leaves the machine.
//   - metrics-server: the HPA acts on real CPU and memory. It verifies the kubelet's serving certificate
//     with the cluster CA (no --kubelet-insecure-tls needed here, unlike on kind).
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Node } from './node.ts';
import { NODE } from './node.ts';
import { imageRefs } from './images.ts';

export async function installAddons(node: Node, step: (what: string) => void): Promise<void> {
  step(`storage: ${LOCAL_VOLUMES} static hostPath PersistentVolumes (no provisioner here; kind has local-path)`);
  await node.kubectl(['apply', '-f', '-'], { input: localVolumesManifest(node.dir) });
  step('CoreDNS and metrics-server');
  await node.kubectl(['apply', '--server-side', '-f', '-'], { input: coreDnsManifest() + metricsServerManifest() });
  step('waiting for CoreDNS and metrics-server to be Available');
  await node.kubectl(['-n', 'kube-system', 'wait', '--for=condition=Available', '--timeout=120s', 'deployment/coredns', 'deployment/metrics-server'])
    .catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await podDiagnostics(node, 'kube-system')}`);
    });
  step('waiting for the metrics API (v1beta1.metrics.k8s.io)');
  await node.kubectl(['wait', '--for=condition=Available', '--timeout=120s', 'apiservice/v1beta1.metrics.k8s.io']);
}

const LOCAL_VOLUMES = 6;

/**
 * Static PersistentVolumes without a StorageClass: a claim without one (the Redis StatefulSet's) binds to
 * them when the cluster has no default class. Their directories live under the node's own directory.
 */
function localVolumesManifest(nodeDir: string): string {
  return Array.from({ length: LOCAL_VOLUMES }, (_, i) => {
    const path = join(nodeDir, 'volumes', `pv-${i + 1}`);
    // Any pod user may write: the volume belongs to whichever claim binds it (Redis runs as 999).
    mkdirSync(path, { recursive: true, mode: 0o777 });
    chmodSync(path, 0o777);
    return `---
apiVersion: v1
kind: PersistentVolume
metadata: { name: rtgw-node-pv-${i + 1}, labels: { rtgw-node/volume: "true" } }
spec:
  capacity: { storage: 10Gi }
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: { path: ${path}, type: Directory }
`;
  }).join('');
}

const restricted = (add: string[] = []) => `
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: { drop: [ALL]${add.length ? `, add: [${add.join(', ')}]` : ''} }`;

function coreDnsManifest(): string {
  return `---
apiVersion: v1
kind: ServiceAccount
metadata: { name: coredns, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:coredns" }
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:coredns" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns" }
subjects: [{ kind: ServiceAccount, name: coredns, namespace: kube-system }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: coredns, namespace: kube-system }
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes ${NODE.clusterDomain} in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: coredns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  replicas: 1
  selector: { matchLabels: { k8s-app: kube-dns } }
  template:
    metadata: { labels: { k8s-app: kube-dns } }
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: RuntimeDefault } }
      containers:
      - name: coredns
        image: ${imageRefs().coredns}
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - { name: dns, containerPort: 53, protocol: UDP }
        - { name: dns-tcp, containerPort: 53, protocol: TCP }
        readinessProbe: { httpGet: { path: /ready, port: 8181 }, periodSeconds: 2 }
        livenessProbe: { httpGet: { path: /health, port: 8080 }, periodSeconds: 10 }
        resources: { requests: { cpu: 20m, memory: 32Mi }, limits: { memory: 128Mi } }
        volumeMounts: [{ name: config, mountPath: /etc/coredns, readOnly: true }]${
          // As upstream: the binary carries cap_net_bind_service (file capability) to bind :53 as nonroot.
          restricted(['NET_BIND_SERVICE'])}
      volumes: [{ name: config, configMap: { name: coredns } }]
---
apiVersion: v1
kind: Service
metadata: { name: kube-dns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  clusterIP: ${NODE.dnsServiceIp}
  selector: { k8s-app: kube-dns }
  ports:
  - { name: dns, port: 53, targetPort: 53, protocol: UDP }
  - { name: dns-tcp, port: 53, targetPort: 53, protocol: TCP }
`;
}

function metricsServerManifest(): string {
  return `---
apiVersion: v1
kind: ServiceAccount
metadata: { name: metrics-server, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:metrics-server" }
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "system:aggregated-metrics-reader"
  labels: { rbac.authorization.k8s.io/aggregate-to-view: "true", rbac.authorization.k8s.io/aggregate-to-edit: "true", rbac.authorization.k8s.io/aggregate-to-admin: "true" }
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:metrics-server" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server" }
subjects: [{ kind: ServiceAccount, name: metrics-server, namespace: kube-system }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "metrics-server:system:auth-delegator" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator" }
subjects: [{ kind: ServiceAccount, name: metrics-server, namespace: kube-system }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: "metrics-server-auth-reader", namespace: kube-system }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: "extension-apiserver-authentication-reader" }
subjects: [{ kind: ServiceAccount, name: metrics-server, namespace: kube-system }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: metrics-server, namespace: kube-system, labels: { k8s-app: metrics-server } }
spec:
  replicas: 1
  selector: { matchLabels: { k8s-app: metrics-server } }
  template:
    metadata: { labels: { k8s-app: metrics-server } }
    spec:
      serviceAccountName: metrics-server
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: RuntimeDefault } }
      containers:
      - name: metrics-server
        image: ${imageRefs()['metrics-server']}
        imagePullPolicy: Never
        args:
        - --cert-dir=/tmp
        - --secure-port=10250
        - --kubelet-preferred-address-types=InternalIP
        - --kubelet-certificate-authority=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        - --metric-resolution=15s
        ports: [{ name: https, containerPort: 10250 }]
        readinessProbe: { httpGet: { path: /readyz, port: https, scheme: HTTPS }, periodSeconds: 5 }
        resources: { requests: { cpu: 20m, memory: 48Mi }, limits: { memory: 256Mi } }
        volumeMounts: [{ name: tmp, mountPath: /tmp }]${restricted()}
      volumes: [{ name: tmp, emptyDir: {} }]
---
apiVersion: v1
kind: Service
metadata: { name: metrics-server, namespace: kube-system, labels: { k8s-app: metrics-server } }
spec:
  selector: { k8s-app: metrics-server }
  ports: [{ name: https, port: 443, targetPort: https }]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: v1beta1.metrics.k8s.io }
spec:
  service: { name: metrics-server, namespace: kube-system }
  group: metrics.k8s.io
  version: v1beta1
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
`;
}

/** Pod states and the last log lines of containers that are not ready: what a failed wait needs to say. */
export async function podDiagnostics(node: Pick<Node, 'kubectl'>, namespace: string): Promise<string> {
  const lines = [(await node.kubectl(['-n', namespace, 'get', 'pods', '-o', 'wide'], { allowFailure: true })).stdout];
  const pods = JSON.parse((await node.kubectl(['-n', namespace, 'get', 'pods', '-o', 'json'], { allowFailure: true })).stdout || '{"items":[]}') as {
    items: { metadata: { name: string }; status: { containerStatuses?: { name: string; ready: boolean }[] } }[];
  };
  for (const pod of pods.items) {
    for (const container of pod.status.containerStatuses ?? []) {
      if (container.ready) continue;
      const logs = await node.kubectl(['-n', namespace, 'logs', pod.metadata.name, '-c', container.name, '--tail=15'], { allowFailure: true });
      const previous = await node.kubectl(['-n', namespace, 'logs', pod.metadata.name, '-c', container.name, '--tail=15', '--previous'], { allowFailure: true });
      lines.push(`--- ${pod.metadata.name}/${container.name}:\n${(logs.stdout || logs.stderr).trim()}\n${previous.code === 0 ? `(previous run)\n${previous.stdout.trim()}` : ''}`);
    }
  }
  return lines.join('\n');
}
