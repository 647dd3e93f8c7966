// The sticky cookie's Secure and SameSite where the entry can set them: ingress-nginx and Traefik annotations,
// the HAProxy entry's `cookie` line (what the real haproxy makes of it: haproxy-entry.test.ts), through the
// chart's values and the constructs' props, and the combination browsers drop (SameSite=None without Secure).
import { App, Chart } from 'cdk8s';
import { beforeAll, describe, expect, it } from 'vitest';
import { RealtimeGateway } from '../../infra/realtime-gateway.ts';
import { helmTemplate, renderByKindAndName, requireHelm } from './helm.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered objects are read as plain JSON */
type Obj = Record<string, any>;

const FULLNAME = 'realtime-gateway';
const render = (values: object) => renderByKindAndName(values) as Map<string, Obj>;
const nginx = (entry: object = {}) => ({ entry: { kind: 'ingress', className: 'nginx', ...entry } });
const tls = { host: 'rt.example.com', tls: { enabled: true, secretName: 'rt-tls' } };

const nginxCookie = (objects: Map<string, Obj>) => {
  const annotations = objects.get(`Ingress/${FULLNAME}`)!.metadata.annotations as Record<string, string>;
  return { secure: annotations['nginx.ingress.kubernetes.io/session-cookie-secure'], sameSite: annotations['nginx.ingress.kubernetes.io/session-cookie-samesite'] };
};

describe('sticky cookie attributes in the chart', () => {
  beforeAll(() => {
    requireHelm();
  });

  it('ingress-nginx: Secure exactly when the Ingress terminates TLS, or when TLS is in front of it; SameSite=Lax by default', () => {
    expect(nginxCookie(render(nginx()))).toEqual({ secure: 'false', sameSite: 'Lax' });
    expect(nginxCookie(render(nginx(tls)))).toEqual({ secure: 'true', sameSite: 'Lax' });
    expect(nginxCookie(render(nginx({ cookieSecure: true, cookieSameSite: 'Strict' })))).toEqual({ secure: 'true', sameSite: 'Strict' });
    expect(nginxCookie(render(nginx({ ...tls, cookieSameSite: 'None' })))).toEqual({ secure: 'true', sameSite: 'None' });
  });

  it('Traefik: on the backend Service, SameSite in the lower case Traefik matches', () => {
    const objects = render(nginx({ className: 'traefik', ingress: { controller: 'traefik' }, cookieSecure: true, cookieSameSite: 'None' }));
    expect(objects.get(`Service/${FULLNAME}`)!.metadata.annotations).toMatchObject({
      'traefik.ingress.kubernetes.io/service.sticky.cookie.httponly': 'true',
      'traefik.ingress.kubernetes.io/service.sticky.cookie.secure': 'true',
      'traefik.ingress.kubernetes.io/service.sticky.cookie.samesite': 'none',
    });
    const plain = render(nginx({ className: 'traefik', ingress: { controller: 'traefik' } }));
    expect(plain.get(`Service/${FULLNAME}`)!.metadata.annotations).toMatchObject({
      'traefik.ingress.kubernetes.io/service.sticky.cookie.secure': 'false',
      'traefik.ingress.kubernetes.io/service.sticky.cookie.samesite': 'lax',
    });
  });

  it('HAProxy: HttpOnly and SameSite always, Secure with entry.cookieSecure', () => {
    const cookieLine = (values: object) =>
      (render(values).get(`ConfigMap/${FULLNAME}-entry`)!.data['haproxy.cfg'] as string).split('\n').find((l) => /^\s*cookie /.test(l))!.trim();
    expect(cookieLine({ entry: { kind: 'haproxy' } })).toBe('cookie rtgw-affinity insert indirect nocache dynamic httponly attr "SameSite=Lax"');
    expect(cookieLine({ entry: { kind: 'haproxy', cookieSecure: true, cookieSameSite: 'Strict' } })).toBe(
      'cookie rtgw-affinity insert indirect nocache dynamic httponly secure attr "SameSite=Strict"',
    );
  });

  it('refuses SameSite=None without Secure and a SameSite browsers do not know, naming the value', () => {
    expect(() => helmTemplate(nginx({ cookieSameSite: 'None' }))).toThrow(/\/entry\/cookieSecure': value must be true/);
    expect(() => helmTemplate({ entry: { kind: 'haproxy', cookieSameSite: 'None' } })).toThrow(/\/entry\/cookieSecure': value must be true/);
    expect(() => helmTemplate(nginx({ cookieSameSite: 'lax' }))).toThrow(/\/entry\/cookieSameSite': value must be one of 'Lax', 'Strict', 'None'/);
    expect(() => helmTemplate(nginx({ cookieSecure: 'always' }))).toThrow(/\/entry\/cookieSecure': got string, want boolean/);
  });

  it('the constructs refuse it too, naming the prop', () => {
    const synth = (entry: object) => () =>
      new RealtimeGateway(new Chart(new App({ outdir: '/nonexistent' }), 'c', { namespace: 'rt' }), 'rg', {
        app: { name: 'rt', instance: 'rt', version: '1', managedBy: 'test' },
        image: 'rt:1',
        entry: entry as never,
      });
    expect(synth({ kind: 'ingress', cookieSameSite: 'None' })).toThrow(/cookieSameSite=None needs cookieSecure=true/);
    expect(synth({ kind: 'ingress', cookieSameSite: 'None', host: 'rt.example.com', tlsSecretName: 'rt-tls' })).not.toThrow();
    expect(synth({ kind: 'haproxy', cookieSameSite: 'None', cookieSecure: true })).not.toThrow();
  });
});
