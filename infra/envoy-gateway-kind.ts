import { Construct } from 'constructs';
import { GatewayClass } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass';
import { addObject } from './api-object.ts';

export interface EnvoyGatewayKindProps {
  /**
   * @default 'eg'
   */
  readonly gatewayClassName?: string;
}

/**
 * Cluster plumbing that only a kind cluster needs: the `eg` GatewayClass for Envoy Gateway. The proxy's
 * fixed NodePort, which kind-config.yaml maps to localhost, is the entry's EnvoyProxy (`envoyProxy:
 * {serviceType: NodePort, nodePort}`), so Envoy Gateway's own Service gets it and the Gateway is Programmed.
 */
export class EnvoyGatewayKind extends Construct {
  constructor(scope: Construct, id: string, props: EnvoyGatewayKindProps = {}) {
    super(scope, id);
    addObject(
      this,
      'GatewayClass',
      new GatewayClass({
        metadata: { name: props.gatewayClassName ?? 'eg' },
        spec: { controllerName: 'gateway.envoyproxy.io/gatewayclass-controller' },
      }),
    );
  }
}
