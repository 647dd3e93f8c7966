import type { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { addObject } from './api-object.ts';
import {
  checkReplicaRange,
  scalingBehavior,
  type ReplicaRange,
  type ScaleTarget,
  type ScalingBehaviorProps,
} from './horizontal-autoscaler.ts';
import { objectLabels, type AppIdentity } from './labels.ts';
import { LIMITS } from './limits.ts';

export interface KedaAutoscalerProps extends ReplicaRange, ScalingBehaviorProps {
  readonly app: AppIdentity;
  readonly target: ScaleTarget;
  /** JSON endpoint that reports the fleet's connected sockets (KEDA `metrics-api` scaler polls it). */
  readonly socketsUrl: string;
  /**
   * Where the total socket count is in that JSON (GJSON path).
   * @default 'sockets'
   */
  readonly valueLocation?: string;
  /**
   * Connected sockets per pod to aim for; KEDA divides the total by this.
   * @default 1000
   */
  readonly socketsPerPod?: number;
  /**
   * Name of the ScaledObject.
   * @default target.name
   */
  readonly name?: string;
}

/**
 * A KEDA ScaledObject that scales on connected sockets per pod (no Prometheus needed), with the same
 * scale-up-fast, scale-down-slowly behavior as the HPA variant.
 */
export class KedaAutoscaler extends Construct {
  /** The ScaledObject, for patches (e.g. more triggers). */
  readonly resource: ApiObject;

  constructor(scope: Construct, id: string, props: KedaAutoscalerProps) {
    super(scope, id);
    const range = checkReplicaRange(props);
    const socketsPerPod = props.socketsPerPod ?? 1000;
    if (!Number.isInteger(socketsPerPod) || socketsPerPod < LIMITS.socketsPerPod.minimum) throw new Error(`socketsPerPod=${socketsPerPod} must be an integer >= ${LIMITS.socketsPerPod.minimum}`);
    this.resource = addObject(
      this,
      'Resource',
      new ScaledObject({
        metadata: { name: props.name ?? props.target.name, labels: objectLabels(props.app, 'autoscaler') },
        spec: {
          scaleTargetRef: { apiVersion: props.target.apiVersion, kind: props.target.kind, name: props.target.name },
          minReplicaCount: range.minReplicas,
          maxReplicaCount: range.maxReplicas,
          pollingInterval: 15,
          advanced: { horizontalPodAutoscalerConfig: { behavior: scalingBehavior(props) } },
          triggers: [
            {
              type: 'metrics-api',
              metricType: 'AverageValue',
              metadata: {
                url: props.socketsUrl,
                valueLocation: props.valueLocation ?? 'sockets',
                targetValue: String(socketsPerPod),
                format: 'json',
              },
            },
          ],
        },
      }),
    );
  }
}
