/**
 * The realtime-gateway constructs as a library (package export `realtime-gateway-blueprint/infra`):
 * `RealtimeGateway` for the whole blueprint, or its parts to compose your own. Peer dependencies: cdk8s,
 * constructs; the objects are typed with kubernetes-models. Nothing here imports the gateway's code: what
 * the constructs know of it is generated into infra/generated/ (scripts/generate-infra-contracts.ts).
 */
export {
  RealtimeGateway,
  type RealtimeGatewayProps,
  type AutoscalingOptions,
  type AuthOptions,
  type ControllerOptions,
  type GatewayApiEntryOptions,
  type HaproxyEntryOptions,
  type IngressEntryOptions,
  type InternalPortOptions,
  type MonitoringOptions,
} from './realtime-gateway.ts';
export {
  Gateway,
  namespacePeer,
  JWT_KEYS_MOUNT_PATH,
  NAMESPACES_MOUNT_PATH,
  NAMESPACES_FILE_KEY,
  API_KEYS_MOUNT_PATH,
  OWNED_SETTINGS,
  type ServerApiOptions,
  type GatewayAuthSecret,
  type GatewayProps,
  type JwtPublicKeySource,
  type RedisConnection,
} from './gateway.ts';
export { Redis, type ExternalRedis, type RedisProps } from './redis.ts';
export {
  GatewayApiEntry,
  GATEWAY_API_VERSION,
  ENVOY_GATEWAY_VERSION,
  ENVOY_OVERRIDE_HOST_STATUSES,
  type EntryBackend,
  type EnvoyProxyProps,
  type GatewayApiEntryProps,
} from './gateway-api-entry.ts';
export { IngressEntry, type IngressEntryProps } from './ingress-entry.ts';
export { HaproxyEntry, type HaproxyEntryProps } from './haproxy-entry.ts';
export { HorizontalAutoscaler, scalingBehavior, type HorizontalAutoscalerProps, type ReplicaRange, type ScaleTarget, type ScalingBehaviorProps } from './horizontal-autoscaler.ts';
export { KedaAutoscaler, type KedaAutoscalerProps } from './keda-autoscaler.ts';
export { ScaleDownController, type DrainPolicyProps, type ScaleDownControllerProps } from './scale-down-controller.ts';
export { GatewayMonitoring, gatewayAlerts, type AlertRule, type GatewayMonitoringProps } from './monitoring.ts';
export { GeneratedSecret, GENERATED_SECRET_ANNOTATION, type GeneratedSecretProps } from './generated-secret.ts';
export { RestrictedNamespace, POD_SECURITY_RESTRICTED_LABELS, type RestrictedNamespaceProps } from './restricted-namespace.ts';
export { resolveDrainTiming, DRAIN_DEFAULTS, type DrainProps, type DrainTiming } from './drain-timing.ts';
export { objectLabels, selectorLabels, type AppIdentity } from './labels.ts';
export { isSet, type PodExtensions, type PodScheduling } from './pod-extensions.ts';
export { LIMITS, COOKIE_NAME_PATTERN, COOKIE_SAME_SITE_VALUES, type CookieSameSite, type NumberLimit } from './limits.ts';
export { GATEWAY_SETTING_NAMES, type SettingName } from './generated/gateway-settings.ts';
export { socketGatewayCrd } from './generated/socket-gateway-crd.ts';
