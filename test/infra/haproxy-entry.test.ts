// The HAProxy entry construct: its config passes `haproxy -c` with the real binary, the real haproxy sets the
// sticky cookie's attributes, and bad props name themselves. (Its behaviour with real pods — DNS discovery,
// stickiness, drain — is tested on the real node.)
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chart, Testing } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { HaproxyEntry, renderHaproxyEntryConfig } from '../../infra/haproxy-entry.ts';
import { defaultApp } from '../../infra/profiles/common.ts';
import { validateManifest } from './validate-models.ts';
import { freePort, waitFor } from '../../scripts/fleet/ports.ts';

const backend = { serviceName: 'gw', port: 3000 };
const backendPodSelector = { 'app.kubernetes.io/component': 'gateway' };

function synth(props: Partial<ConstructorParameters<typeof HaproxyEntry>[2]> = {}) {
  const chart = new Chart(Testing.app(), 'test', { namespace: 'ns' });
  new HaproxyEntry(chart, 'Entry', { app: defaultApp(), backend, backendPodSelector, ...props });
  return Testing.synth(chart);
}

describe('HaproxyEntry', () => {
  it('renders a config the real haproxy accepts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'haproxy-entry-'));
    try {
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, renderHaproxyEntryConfig({
        port: 8080, backendHost: 'gw-pods.${POD_NAMESPACE}.svc.cluster.local', backendPort: 3000,
        cookieName: 'rtgw-affinity', maxServers: 8, maxConnections: 1000,
      }));
      // parse-resolv-conf needs a nameserver line; the check runs with the host's resolv.conf.
      const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', env: { ...process.env, POD_NAMESPACE: 'ns' } });
      expect(check.stderr + check.stdout).toMatch(/Configuration file is valid/);
      expect(check.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps draining pods resolvable and health-checks readiness, so live sessions stay and new ones move', () => {
    const objects = synth();
    for (const object of objects) validateManifest(object);
    const headless = objects.find((o) => o.kind === 'Service' && o.spec.clusterIP === 'None');
    expect(headless.spec).toMatchObject({ publishNotReadyAddresses: true, selector: backendPodSelector });
    const config = objects.find((o) => o.kind === 'ConfigMap').data['haproxy.cfg'] as string;
    expect(config).toContain('force-persist if { urlp(sid) -m found }');
    expect(config).toContain('option httpchk GET /readyz');
    // A /readyz slowed by event-loop lag does not time out at `inter` (test/fleet/haproxy-check-timeout.test.ts).
    expect(config).toMatch(/^\s*timeout check 2s$/m);
    expect(config).toContain(`${headless.metadata.name}.\${POD_NAMESPACE}.svc.cluster.local:3000`);
  });

  it('names the prop and value it refuses', () => {
    expect(() => synth({ nodePort: 30080 })).toThrow(/nodePort=30080 needs serviceType=NodePort/);
    expect(() => synth({ serviceType: 'NodePort', nodePort: 80 })).toThrow(/nodePort=80 is outside/);
    expect(() => synth({ maxServers: 0 })).toThrow(/maxServers=0/);
  });

  it('the real haproxy sets the sticky cookie HttpOnly, SameSite=Lax, and Secure only when asked (TLS in front)', async () => {
    const backendPort = await freePort();
    const server = createServer((_req, res) => res.writeHead(200).end('ok'));
    await new Promise<void>((resolve) => server.listen(backendPort, '127.0.0.1', resolve));
    const dir = mkdtempSync(join(tmpdir(), 'haproxy-entry-run-'));
    const setCookie = async (props: Partial<ConstructorParameters<typeof HaproxyEntry>[2]>) => {
      const port = await freePort();
      const config = (synth({ ...props, port, maxServers: 1 }).find((o) => o.kind === 'ConfigMap').data['haproxy.cfg'] as string)
        // The pods' DNS name stands for this machine's backend; the health port moves off 8404.
        .replace(/"[^"]*\$\{POD_NAMESPACE\}[^"]*:3000"/, `"127.0.0.1:${backendPort}"`)
        .replace('bind :8404', `bind 127.0.0.1:${await freePort()}`);
      const file = join(dir, `haproxy-${port}.cfg`);
      writeFileSync(file, config);
      const haproxy = spawn('haproxy', ['-db', '-f', file], { env: { ...process.env, POD_NAMESPACE: 'ns' }, stdio: 'ignore' });
      try {
        return await waitFor('haproxy answering with its cookie', async () => {
          const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => null);
          return res?.headers.get('set-cookie') ?? null;
        }, 10_000);
      } finally {
        haproxy.kill('SIGKILL');
      }
    };
    try {
      expect(await setCookie({ cookieName: 'rt' })).toMatch(/^rt=[0-9a-f]+; path=\/; HttpOnly; SameSite=Lax$/);
      expect(await setCookie({ cookieName: 'rt', cookieSecure: true, cookieSameSite: 'None' })).toMatch(/^rt=[0-9a-f]+; path=\/; HttpOnly; Secure; SameSite=None$/);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses SameSite=None without Secure (browsers drop such a cookie)', () => {
    expect(() => synth({ cookieSameSite: 'None' })).toThrow(/cookieSameSite=None needs cookieSecure=true/);
  });
});
