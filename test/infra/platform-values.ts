// Values that set every extension point of the chart, shared by the chart tests.

/** Every extension point a platform team sets (chart-extensions.test.ts checks where each lands). */
export const PLATFORM_VALUES = {
  imagePullSecrets: [{ name: 'regcred' }],
  podAnnotations: { 'example.com/team': 'realtime' },
  podLabels: { team: 'realtime' },
  nodeSelector: { 'example.com/pool': 'realtime' },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'realtime', effect: 'NoSchedule' }],
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] }] }] } } },
  priorityClassName: 'realtime-high',
  extraEnv: [{ name: 'NAMESPACE_CONFIG_FILE', value: '/etc/realtime/namespaces.yaml' }, { name: 'TEAM', valueFrom: { fieldRef: { fieldPath: 'metadata.labels[\'team\']' } } }],
  extraEnvFrom: [{ secretRef: { name: 'rt-api-keys' } }],
  extraVolumes: [{ name: 'namespaces', configMap: { name: 'rt-namespaces' } }],
  extraVolumeMounts: [{ name: 'namespaces', mountPath: '/etc/realtime', readOnly: true }],
  serviceAccount: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/realtime' } },
  redis: { internal: { storageClass: 'fast-ssd' } },
};
