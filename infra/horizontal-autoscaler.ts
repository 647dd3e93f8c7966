import type { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IHorizontalPodAutoscalerBehavior } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscalerBehavior';
import { addObject } from './api-object.ts';
import { objectLabels, type AppIdentity } from './labels.ts';
import { LIMITS } from './limits.ts';

/** What an autoscaler scales: anything with a `/scale` subresource (a Deployment now, the drain controller's resource later). */
export interface ScaleTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
}

/** Up fast, down slowly: every removed pod makes all its clients reconnect. */
export interface ScalingBehaviorProps {
  /**
   * Most pods added per 15 s (or 100 %, whichever is more).
   * @default 4
   */
  readonly scaleUpPods?: number;
  /**
   * The autoscaler looks back this long and uses the highest recommendation before removing pods.
   * @default 600
   */
  readonly scaleDownStabilizationSeconds?: number;
  /**
   * At most one pod is removed per this many seconds.
   * @default 120
   */
  readonly scaleDownPeriodSeconds?: number;
}

export function scalingBehavior(props: ScalingBehaviorProps = {}): IHorizontalPodAutoscalerBehavior {
  const scaleUpPods = props.scaleUpPods ?? 4;
  const stabilization = props.scaleDownStabilizationSeconds ?? 600;
  const period = props.scaleDownPeriodSeconds ?? 120;
  if (!Number.isInteger(scaleUpPods) || scaleUpPods < LIMITS.scaleUpPods.minimum) throw new Error(`scaleUpPods=${scaleUpPods} must be an integer >= ${LIMITS.scaleUpPods.minimum}`);
  // Scale-down must stay slower than scale-up (15 s periods): each removed pod reconnects all its clients.
  if (!Number.isInteger(period) || period < LIMITS.scaleDownPeriodSeconds.minimum) {
    throw new Error(`scaleDownPeriodSeconds=${period} must be an integer >= ${LIMITS.scaleDownPeriodSeconds.minimum} (one pod per period)`);
  }
  if (!Number.isInteger(stabilization) || stabilization < LIMITS.scaleDownStabilizationSeconds.minimum) {
    throw new Error(`scaleDownStabilizationSeconds=${stabilization} must be an integer >= ${LIMITS.scaleDownStabilizationSeconds.minimum} (a short window flaps pods)`);
  }
  return {
    scaleUp: {
      stabilizationWindowSeconds: 0,
      selectPolicy: 'Max',
      policies: [
        { type: 'Pods', value: scaleUpPods, periodSeconds: 15 },
        { type: 'Percent', value: 100, periodSeconds: 15 },
      ],
    },
    scaleDown: {
      stabilizationWindowSeconds: stabilization,
      selectPolicy: 'Min',
      policies: [{ type: 'Pods', value: 1, periodSeconds: period }],
    },
  };
}

export interface ReplicaRange {
  /**
   * @default 2
   */
  readonly minReplicas?: number;
  /**
   * @default 6
   */
  readonly maxReplicas?: number;
}

export function checkReplicaRange(range: ReplicaRange): { minReplicas: number; maxReplicas: number } {
  const minReplicas = range.minReplicas ?? 2;
  const maxReplicas = range.maxReplicas ?? 6;
  if (!Number.isInteger(minReplicas) || minReplicas < LIMITS.minReplicas.minimum) throw new Error(`minReplicas=${minReplicas} must be an integer >= ${LIMITS.minReplicas.minimum}`);
  if (!Number.isInteger(maxReplicas) || maxReplicas < minReplicas) {
    throw new Error(`maxReplicas=${maxReplicas} must be an integer >= minReplicas (${minReplicas})`);
  }
  return { minReplicas, maxReplicas };
}

export interface HorizontalAutoscalerProps extends ReplicaRange, ScalingBehaviorProps {
  readonly app: AppIdentity;
  readonly target: ScaleTarget;
  /**
   * Name of the HorizontalPodAutoscaler.
   * @default target.name
   */
  readonly name?: string;
  /**
   * Average CPU utilisation (% of requests) to keep.
   * @default 70
   */
  readonly targetCpuUtilization?: number;
  /**
   * Average memory utilisation (% of requests) to keep.
   * @default 80
   */
  readonly targetMemoryUtilization?: number;
}

/** An `autoscaling/v2` HPA on CPU and memory with a scale-up-fast, scale-down-slowly behavior. */
export class HorizontalAutoscaler extends Construct {
  /** The HorizontalPodAutoscaler, for patches (e.g. `addJsonPatch` of more metrics). */
  readonly resource: ApiObject;

  constructor(scope: Construct, id: string, props: HorizontalAutoscalerProps) {
    super(scope, id);
    const range = checkReplicaRange(props);
    const cpu = props.targetCpuUtilization ?? 70;
    const memory = props.targetMemoryUtilization ?? 80;
    const utilization = (name: 'cpu' | 'memory', averageUtilization: number) => ({
      type: 'Resource' as const,
      resource: { name, target: { type: 'Utilization' as const, averageUtilization } },
    });
    this.resource = addObject(
      this,
      'Resource',
      new HorizontalPodAutoscaler({
        metadata: { name: props.name ?? props.target.name, labels: objectLabels(props.app, 'autoscaler') },
        spec: {
          scaleTargetRef: { apiVersion: props.target.apiVersion, kind: props.target.kind, name: props.target.name },
          ...range,
          metrics: [utilization('cpu', cpu), utilization('memory', memory)],
          behavior: scalingBehavior(props),
        },
      }),
    );
  }
}
