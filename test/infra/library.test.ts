// The constructs as a library: one package export, nothing of app/ at run time (what infra needs of the
// gateway and controller is generated into infra/generated/ and checked here), and a platform team's cdk8s
// app (examples/platform-app) that imports it by package name and synthesizes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../app/gateway/config.ts';
import * as controllerApi from '../../app/controller/socket-gateway.ts';
import { generatedContracts, GENERATED_DIR } from '../../scripts/generate-infra-contracts.ts';
import { GATEWAY_SETTING_NAMES, OWNED_SETTINGS, socketGatewayCrd } from '../../infra/index.ts';
import { ROOT } from './helm.ts';
import { validateManifest } from './validate-models.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized objects are read as plain JSON */
type Obj = Record<string, any>;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe('the constructs library', () => {
  it('infra/generated/ is what app/ says today (run `make charts` after changing the gateway config or the SocketGateway API)', () => {
    for (const [file, text] of Object.entries(generatedContracts())) {
      expect(readFileSync(join(GENERATED_DIR, file), 'utf8'), `infra/generated/${file} is stale: run make charts`).toBe(text);
    }
    expect([...GATEWAY_SETTING_NAMES]).toEqual(Object.keys(SETTINGS));
    for (const owned of OWNED_SETTINGS) expect(GATEWAY_SETTING_NAMES).toContain(owned);
    expect(socketGatewayCrd({ a: 'b' })).toEqual(controllerApi.socketGatewayCrd({ a: 'b' }));
  });

  it('imports nothing outside infra/ but packages (no app/, no zod at run time)', () => {
    const infra = join(ROOT, 'infra');
    for (const file of tsFiles(infra)) {
      const source = readFileSync(file, 'utf8');
      for (const [, specifier] of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)) {
        if (specifier!.startsWith('.')) {
          const target = relative(infra, resolve(file, '..', specifier!));
          expect(target.startsWith('..'), `${relative(ROOT, file)} imports ${specifier}`).toBe(false);
        } else {
          expect(specifier, `${relative(ROOT, file)}`).not.toBe('zod');
        }
      }
    }
  });

  it('package.json exports it, with cdk8s, constructs and kubernetes-models as peers (installed for development too)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Obj;
    expect(pkg.exports['./infra']).toBe('./infra/index.ts');
    for (const peer of ['cdk8s', 'constructs', 'kubernetes-models', '@kubernetes-models/gateway-api', '@kubernetes-models/keda']) {
      expect(pkg.peerDependencies[peer], peer).toBeDefined();
      expect(pkg.devDependencies[peer], peer).toBe(pkg.peerDependencies[peer]);
      expect(pkg.dependencies[peer], `${peer} stays out of the gateway image`).toBeUndefined();
    }
  });

  it('examples/platform-app imports it by package name, adds a toleration and an env, and synthesizes valid objects', () => {
    const out = mkdtempSync(join(tmpdir(), 'platform-app-'));
    try {
      const run = spawnSync(process.execPath, [join(ROOT, 'examples', 'platform-app', 'main.ts'), out], { cwd: ROOT, encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      const objects = readdirSync(out).flatMap((f) => parseAllDocuments(readFileSync(join(out, f), 'utf8')).map((d) => d.toJS() as Obj));
      for (const object of objects) validateManifest(object as never);
      const byKey = new Map(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
      const pod = byKey.get('Deployment/chat')!.spec.template.spec;
      expect(pod.tolerations).toEqual([{ key: 'example.com/dedicated', operator: 'Equal', value: 'realtime', effect: 'NoSchedule' }]);
      expect(pod.containers[0].env).toContainEqual({ name: 'NAMESPACE_CONFIG_FILE', value: '/etc/chat/namespaces.yaml' });
      expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'namespaces', mountPath: '/etc/chat', readOnly: true });
      // Every pod of the blueprint runs on the dedicated pool.
      expect(byKey.get('StatefulSet/chat-redis')!.spec.template.spec.tolerations).toEqual(pod.tolerations);
      expect(byKey.get('Deployment/chat-controller')!.spec.template.spec.nodeSelector).toEqual({ 'example.com/pool': 'realtime' });
      // The shared Gateway: a route, no Gateway of its own; the handle's patch applied.
      expect([...byKey.keys()].filter((k) => k.startsWith('Gateway/'))).toEqual([]);
      expect(byKey.get('HTTPRoute/chat')!.spec.parentRefs).toEqual([{ name: 'shared-edge', namespace: 'gateways', sectionName: 'https' }]);
      expect(byKey.get('HorizontalPodAutoscaler/chat')!.spec.behavior.scaleUp.policies[0].value).toBe(6);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
