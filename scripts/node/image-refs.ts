// The image references pods on the node use (imagePullPolicy: Never): what images.ts tags its archives
// with, so a pod spec and the imported image always agree.
export const NODE_IMAGES = {
  pause: 'registry.k8s.io/pause:3.10',
  coredns: 'registry.k8s.io/coredns/coredns:v1.13.1',
  metricsServer: 'registry.k8s.io/metrics-server/metrics-server:v0.8.0',
} as const;
