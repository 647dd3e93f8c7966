import type { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { addObject } from './api-object.ts';
import type { EntryBackend } from './gateway-api-entry.ts';
import { objectLabels, type AppIdentity } from './labels.ts';
import { checkCookieAttributes, type CookieSameSite } from './limits.ts';
import { mergeExtra } from './pod-extensions.ts';

export interface IngressEntryProps {
  readonly app: AppIdentity;
  readonly backend: EntryBackend;
  /** The backend Service object: Traefik reads its sticky-cookie settings from Service annotations. */
  readonly backendService: ApiObject;
  /**
   * Which controller's annotations to write: an nginx-compatible one, or Traefik.
   * @default 'nginx'
   */
  readonly controller?: 'nginx' | 'traefik';
  /**
   * `ingressClassName`.
   * @default - same as `controller`
   */
  readonly className?: string;
  /**
   * Name of the Ingress.
   * @default app.instance
   */
  readonly name?: string;
  /**
   * @default - any host
   */
  readonly host?: string;
  /**
   * Terminate TLS with the certificate in this Secret (needs `host`).
   * @default - plain HTTP
   */
  readonly tlsSecretName?: string;
  /**
   * @default 'rtgw-affinity'
   */
  readonly cookieName?: string;
  /**
   * Mark the affinity cookie `Secure` (sent over HTTPS only). Set it without `tlsSecretName` when TLS is
   * terminated in front of the Ingress controller (a cloud load balancer): the browser still sees https.
   * @default true with `tlsSecretName`, else false
   */
  readonly cookieSecure?: boolean;
  /**
   * The affinity cookie's `SameSite`. `Lax` suits a page and gateway on the same site; a page on another
   * site calling the gateway with credentials needs `None` (and `cookieSecure`).
   * @default 'Lax'
   */
  readonly cookieSameSite?: CookieSameSite;
  /**
   * Proxy read/send timeout (nginx), long enough for WebSockets between heartbeats and 25 s long-polls.
   * @default 3600
   */
  readonly timeoutSeconds?: number;
  /**
   * More Ingress annotations (e.g. cert-manager's issuer, an auth or rate-limit middleware). The construct's
   * own (nginx affinity and timeouts) are refused here: set them through `cookieName` and `timeoutSeconds`.
   * @default - none
   */
  readonly annotations?: Readonly<Record<string, string>>;
}

/**
 * The entry point with session affinity, Ingress flavour, for clusters without a Gateway API
 * implementation. Cookie affinity is `persistent` so scaling up does not remap existing sessions.
 */
export class IngressEntry extends Construct {
  readonly ingress: ApiObject;

  constructor(scope: Construct, id: string, props: IngressEntryProps) {
    super(scope, id);
    const controller = props.controller ?? 'nginx';
    const cookieName = props.cookieName ?? 'rtgw-affinity';
    const cookieSecure = props.cookieSecure ?? props.tlsSecretName !== undefined;
    const cookieSameSite = props.cookieSameSite ?? 'Lax';
    checkCookieAttributes(cookieSecure, cookieSameSite);
    const timeout = String(props.timeoutSeconds ?? 3600);
    if (props.tlsSecretName !== undefined && props.host === undefined) {
      throw new Error(`tlsSecretName=${JSON.stringify(props.tlsSecretName)} needs host: a TLS Ingress names the host it serves`);
    }
    const own: Record<string, string> =
      controller === 'nginx'
        ? {
            'nginx.ingress.kubernetes.io/affinity': 'cookie',
            'nginx.ingress.kubernetes.io/affinity-mode': 'persistent',
            'nginx.ingress.kubernetes.io/session-cookie-name': cookieName,
            'nginx.ingress.kubernetes.io/session-cookie-secure': String(cookieSecure),
            'nginx.ingress.kubernetes.io/session-cookie-samesite': cookieSameSite,
            'nginx.ingress.kubernetes.io/proxy-read-timeout': timeout,
            'nginx.ingress.kubernetes.io/proxy-send-timeout': timeout,
          }
        : {};
    const annotations = mergeExtra(own, props.annotations, 'annotations');
    if (controller === 'traefik') {
      // Traefik takes stickiness from the Service; its timeouts are per entryPoint (docs/infrastructure.md).
      props.backendService.metadata.addAnnotation('traefik.ingress.kubernetes.io/service.sticky.cookie', 'true');
      props.backendService.metadata.addAnnotation('traefik.ingress.kubernetes.io/service.sticky.cookie.name', cookieName);
      props.backendService.metadata.addAnnotation('traefik.ingress.kubernetes.io/service.sticky.cookie.httponly', 'true');
      props.backendService.metadata.addAnnotation('traefik.ingress.kubernetes.io/service.sticky.cookie.secure', String(cookieSecure));
      // Traefik matches only lower case (none, lax, strict).
      props.backendService.metadata.addAnnotation('traefik.ingress.kubernetes.io/service.sticky.cookie.samesite', cookieSameSite.toLowerCase());
    }
    const backend = { service: { name: props.backend.serviceName, port: { number: props.backend.port } } };
    this.ingress = addObject(
      this,
      'Ingress',
      new Ingress({
        metadata: { name: props.name ?? props.app.instance, labels: objectLabels(props.app, 'entry'), annotations },
        spec: {
          ingressClassName: props.className ?? controller,
          rules: [
            {
              ...(props.host === undefined ? {} : { host: props.host }),
              http: { paths: [{ path: '/', pathType: 'Prefix', backend }] },
            },
          ],
          ...(props.tlsSecretName === undefined ? {} : { tls: [{ hosts: [props.host!], secretName: props.tlsSecretName }] }),
        },
      }),
    );
  }
}
