import { Construct } from 'constructs';
import { GatewayClass } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass';
import { Service } from 'kubernetes-models/v1/Service';
import { addObject } from './api-object.ts';

export interface EnvoyGatewayKindProps {
  /** Name and namespace of the Gateway whose proxy pods get the fixed NodePort. */
  readonly gatewayName: string;
  readonly gatewayNamespace: string;
  /** The Gateway's listener port (>= 1024, so Envoy listens on it unchanged). */
  readonly listenerPort: number;
  /**
   * NodePort that kind-config.yaml maps to the host.
   * @default 30080
   */
  readonly nodePort?: number;
  /**
   * @default 'eg'
   */
  readonly gatewayClassName?: string;
  /**
   * Namespace Envoy Gateway runs its proxies in (its Helm chart's namespace).
   * @default 'envoy-gateway-system'
   */
  readonly envoyNamespace?: string;
}

/**
 * Cluster plumbing that only a kind cluster needs: the `eg` GatewayClass for Envoy Gateway, and a
 * NodePort Service with a fixed port in front of the Envoy proxy pods, which kind-config.yaml maps to
 * localhost (there is no LoadBalancer on kind).
 */
export class EnvoyGatewayKind extends Construct {
  constructor(scope: Construct, id: string, props: EnvoyGatewayKindProps) {
    super(scope, id);
    if (props.listenerPort < 1024) {
      throw new Error(`listenerPort=${props.listenerPort}: Envoy Gateway remaps ports below 1024 inside the proxy pod; use 1024 or above`);
    }
    const className = props.gatewayClassName ?? 'eg';
    addObject(
      this,
      'GatewayClass',
      new GatewayClass({
        metadata: { name: className },
        spec: { controllerName: 'gateway.envoyproxy.io/gatewayclass-controller' },
      }),
    );
    addObject(
      this,
      'NodePort',
      new Service({
        metadata: { name: `${props.gatewayName}-kind-nodeport`, namespace: props.envoyNamespace ?? 'envoy-gateway-system' },
        spec: {
          type: 'NodePort',
          externalTrafficPolicy: 'Cluster',
          selector: {
            'gateway.envoyproxy.io/owning-gateway-name': props.gatewayName,
            'gateway.envoyproxy.io/owning-gateway-namespace': props.gatewayNamespace,
          },
          ports: [{ name: 'http', port: props.listenerPort, targetPort: props.listenerPort, nodePort: props.nodePort ?? 30080, protocol: 'TCP' }],
        },
      }),
    );
  }
}
