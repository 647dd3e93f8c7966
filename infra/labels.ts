/**
 * Who the objects belong to: the values behind the standard `app.kubernetes.io/*` labels.
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/
 */
export interface AppIdentity {
  /** `app.kubernetes.io/name`: the application, shared by every installation. */
  readonly name: string;
  /** `app.kubernetes.io/instance`: this installation (the Helm release name). */
  readonly instance: string;
  /** `app.kubernetes.io/version`: the application version. */
  readonly version: string;
  /** `app.kubernetes.io/managed-by`: the tool that applies the objects. */
  readonly managedBy: string;
  /**
   * Extra labels on every object (the Helm chart adds `helm.sh/chart` here).
   * @default - none
   */
  readonly extraLabels?: Readonly<Record<string, string>>;
}

/** Labels that select a component's pods; they never change for the life of an installation. */
export function selectorLabels(app: AppIdentity, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': app.name,
    'app.kubernetes.io/instance': app.instance,
    'app.kubernetes.io/component': component,
  };
}

/** Every label an object of `component` carries. */
export function objectLabels(app: AppIdentity, component: string): Record<string, string> {
  return {
    ...selectorLabels(app, component),
    'app.kubernetes.io/version': app.version,
    'app.kubernetes.io/part-of': app.name,
    'app.kubernetes.io/managed-by': app.managedBy,
    ...app.extraLabels,
  };
}
