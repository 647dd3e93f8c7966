// What can be checked here of the kind path (no Docker engine on this machine): the script parses and
// passes shellcheck, kind-config.yaml matches the manifests, the workflow and Dockerfile say what they must.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { KIND_NODE_PORT, KIND_VALUES } from '../../infra/profiles/kind.ts';
import { synthProfile } from '../../infra/synth.ts';
import { ENVOY_GATEWAY_VERSION } from '../../infra/gateway-api-entry.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML */

function run(command: string, args: string[], missing: string): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${command} is not installed: ${missing}`);
    throw new Error(`${command} ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

describe('scripts/up.sh', () => {
  it('parses (bash -n) and passes shellcheck', () => {
    run('bash', ['-n', join(ROOT, 'scripts/up.sh')], 'install bash');
    run('shellcheck', ['--severity=style', join(ROOT, 'scripts/up.sh')], 'apt-get install shellcheck (.ci/run installs it)');
  });

  // The deploy steps run for real against a kubelet in test/node/blueprint.test.ts; these check what only kind has.
  it('takes the Namespace (and its Pod Security labels) from the synthesized manifests, not from its own kubectl calls', () => {
    const script = read('scripts/deploy-profile.sh');
    expect(read('scripts/up.sh')).toContain('bash "$ROOT/scripts/deploy-profile.sh"');
    const namespace = synthProfile('kind').app!.find((o) => o.kind === 'Namespace')!;
    expect(script).toContain(`NAMESPACE="\${NAMESPACE:-${namespace.metadata.name}}"`);
    expect(script).toContain('apply -f "$DIST/app.yaml" --selector "kubernetes.io/metadata.name=$NAMESPACE"');
    expect(namespace.metadata.labels?.['kubernetes.io/metadata.name']).toBe(namespace.metadata.name);
    // Before the generated Secrets, which live in it.
    expect(script.indexOf('--selector "kubernetes.io/metadata.name')).toBeLessThan(script.indexOf('generated-secrets/*.yaml'));
    expect(script).not.toMatch(/create namespace|label namespace/);
  });

  it('pins Envoy Gateway at the version the constructs target and waits saying what for', () => {
    const script = `${read('scripts/up.sh')}\n${read('scripts/deploy-profile.sh')}`;
    // The version itself is pinned in tools.sh (the 'pins' test below runs up.sh's lines that read it).
    expect(script).toContain('ENVOY_GATEWAY_VERSION="$(pin ENVOY_GATEWAY_VERSION)"');
    expect(script).toContain('--kubelet-insecure-tls');
    expect(script.match(/rollout status/g)?.length).toBeGreaterThanOrEqual(2);
    for (const line of script.split('\n').filter((l) => /rollout status|kubectl.* wait /.test(l))) {
      expect(line.trimStart().startsWith('"${KUBECTL[@]}"'), line).toBe(true);
    }
  });
});

describe('scripts/up.sh and the Envoy Gateway entry', () => {
  it('installs Envoy Gateway with EnvoyPatchPolicy enabled (off by default; the entry ships one) and checks it was applied', () => {
    const up = read('scripts/up.sh');
    const install = up.slice(up.indexOf('helm upgrade --install eg'), up.indexOf('--wait --timeout 5m', up.indexOf('helm upgrade --install eg')));
    expect(install).toContain('--set config.envoyGateway.extensionApis.enableEnvoyPatchPolicy=true');
    const policy = synthProfile('kind').app!.find((o) => o.kind === 'EnvoyPatchPolicy')!;
    expect(up).toContain(`envoypatchpolicy/${policy.metadata.name}`);
    expect(up).toContain('conditions[?(@.type=="Programmed")]');
  });

  it('the documented helm install for kind sets the same proxy Service as the kind profile', () => {
    const docs = read('docs/infrastructure.md');
    const json = /--set-json 'entry\.gatewayApi\.envoyProxy\.service=(\{.*?\})'/.exec(docs)?.[1];
    expect(json, 'docs/infrastructure.md has no --set-json for the proxy Service').toBeDefined();
    expect(JSON.parse(json!)).toEqual(KIND_VALUES.entry.gatewayApi.envoyProxy.service);
  });
});

describe('bash scripts under pipefail', () => {
  const scripts = ['scripts', '.ci']
    .flatMap((dir) => readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }).map((f) => `${dir}/${f}`))
    .filter((f) => f.endsWith('.sh') || f === '.ci/run');

  it('never pipe into a reader that stops early (grep -q, grep -m, head): SIGPIPE fails the pipeline on success', () => {
    expect(scripts.length).toBeGreaterThanOrEqual(3);
    const offenders: string[] = [];
    for (const file of scripts) {
      const text = read(file);
      if (!/set -[a-z]*o pipefail|set -o pipefail/.test(text)) continue;
      text.split('\n').forEach((line, i) => {
        if (/^\s*#/.test(line)) return;
        if (/\|\s*(grep\s+(-[a-zA-Z]*[qm]|--quiet|--max-count)|head\b)/.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });

  it('pass shellcheck', () => {
    for (const file of scripts) run('shellcheck', ['--severity=style', join(ROOT, file)], 'apt-get install shellcheck (.ci/run installs it)');
  });

  it('up.sh deploys the KEDA version whose CRDs tools.sh fetches for the tests: one pin, in tools.sh', () => {
    const tools = read('scripts/tools.sh');
    const pinned = /^KEDA_VERSION=v(\S+)/m.exec(tools)?.[1];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    const up = read('scripts/up.sh');
    expect(up).not.toMatch(/KEDA_CHART_VERSION|keda.*--version "?\d/);
    expect(up).toMatch(/--repo https:\/\/kedacore\.github\.io\/charts --version "\$KEDA_VERSION"/);
    // What the script computes from tools.sh, run for real.
    const line = up.split('\n').find((l) => l.startsWith('KEDA_VERSION='))!;
    expect(run('bash', ['-c', `set -euo pipefail; ROOT=${JSON.stringify(ROOT)}; ${line}; echo "$KEDA_VERSION"`], 'install bash').trim()).toBe(pinned);
    for (const doc of ['README.md', 'docs/infrastructure.md']) expect(read(doc), doc).toMatch(new RegExp(`KEDA chart \\**${pinned!.replaceAll('.', '\\.')}\\b`));
  });
});

describe('pins', () => {
  const pinned = (name: string) => new RegExp(`^${name}=(\\S+)`, 'm').exec(read('scripts/tools.sh'))?.[1];

  it('kind, its node image, Envoy Gateway, the metrics-server and KEDA charts: one pin each, in tools.sh, which up.sh runs with', () => {
    expect(pinned('KIND_VERSION')).toMatch(/^v\d+\.\d+\.\d+$/);
    expect(pinned('KIND_NODE_IMAGE')).toMatch(/^kindest\/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/);
    expect(pinned('ENVOY_GATEWAY_VERSION')).toBe(ENVOY_GATEWAY_VERSION);
    // A copy anywhere else would drift: up.sh, kind-config.yaml and the workflow read tools.sh.
    for (const file of ['scripts/up.sh', 'kind-config.yaml', '.github/workflows/kind.yaml']) {
      expect(read(file), file).not.toContain(pinned('KIND_VERSION'));
      expect(read(file), file).not.toContain('kindest/node:');
    }

    // up.sh run for real up to the image build, with stand-ins for docker, kind, kubectl and helm that record
    // their arguments (no Docker engine here): the cluster is created on the pinned node image, and every
    // chart is installed at its pinned version.
    const bin = mkdtempSync(join(tmpdir(), 'rt-up-'));
    const log = join(bin, 'calls.log');
    const stub = (name: string, body: string) => writeFileSync(join(bin, name), `#!/usr/bin/env bash\necho "${name} $*" >> ${JSON.stringify(log)}\n${body}\n`, { mode: 0o755 });
    stub('docker', '[ "$1" = build ] && exit 97; exit 0');
    stub('kind', `[ "$1" = version ] && echo "kind ${pinned('KIND_VERSION')} go1.26 linux/amd64"; exit 0`);
    stub('kubectl', 'echo sessionPersistence; exit 0');
    stub('helm', 'exit 0');
    stub('node', 'exit 0');
    const result = spawnSync('bash', [join(ROOT, 'scripts/up.sh')], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/bin:/bin`, HOME: bin, WITH_KEDA: 'true', CLUSTER_NAME: 'pins' },
    });
    const calls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    rmSync(bin, { recursive: true, force: true });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(97);
    expect(result.stderr).not.toMatch(/warning: kind .* is the tested version/);
    expect(calls).toContain(`kind create cluster --name pins --config ${ROOT}/kind-config.yaml --image ${pinned('KIND_NODE_IMAGE')} --wait 120s`);
    const helmVersion = (chart: RegExp) => {
      const call = calls.find((c) => c.startsWith('helm upgrade --install') && chart.test(c));
      return call && /--version (\S+)/.exec(call)?.[1];
    };
    expect(helmVersion(/ eg oci:\/\/docker\.io\/envoyproxy\/gateway-helm /)).toBe(pinned('ENVOY_GATEWAY_VERSION'));
    expect(helmVersion(/ metrics-server metrics-server /)).toBe(pinned('METRICS_SERVER_CHART_VERSION'));
    expect(helmVersion(/ keda keda /)).toBe(pinned('KEDA_VERSION')!.replace(/^v/, ''));
  });
});

describe('kind-config.yaml', () => {
  const config = parse(read('kind-config.yaml'));

  it('has a control plane and two workers, with no node image of its own (up.sh passes the pinned one)', () => {
    expect(config.nodes.map((n: any) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
    for (const node of config.nodes) expect(node.image).toBeUndefined();
  });

  it('maps the entry NodePort the kind profile uses to localhost:8080', () => {
    const proxy = synthProfile('kind').app!.find((o) => o.kind === 'EnvoyProxy') as any;
    expect(proxy.spec.provider.kubernetes.envoyService.patch.value.spec.ports[0].nodePort).toBe(KIND_NODE_PORT);
    expect(config.nodes[0].extraPortMappings).toEqual([
      expect.objectContaining({ containerPort: KIND_NODE_PORT, hostPort: 8080 }),
    ]);
  });
});

describe('Dockerfile and workflow', () => {
  it('the image is multi-stage Node 24 bookworm-slim, production dependencies only, non-root', () => {
    const dockerfile = read('Dockerfile');
    const froms = dockerfile.match(/^FROM .*/gm) ?? [];
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^FROM node:24-bookworm-slim/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
    expect(dockerfile).toMatch(/CMD \["node", "app\/gateway\/main.ts"\]/);
    const deployment = synthProfile('kind').app!.find((o) => o.kind === 'Deployment') as any;
    expect(deployment.spec.template.spec.securityContext.runAsUser).toBe(1000);
    expect(read('.dockerignore').split('\n')).toEqual(expect.arrayContaining(['node_modules', '.git', 'dist']));
  });

  it('everything app/ imports at run time is a production dependency, so the --omit=dev image can run it', () => {
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
    const files = readdirSync(join(ROOT, 'app'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(10);
    const missing = new Set<string>();
    for (const file of files) {
      // Type-only imports are erased at run time and may come from devDependencies.
      for (const [, specifier] of read(`app/${file}`).matchAll(/^import (?!type )[^;]*? from '([^.'][^']*)'/gm)) {
        const name = specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!;
        if (!name.startsWith('node:') && !(name in pkg.dependencies)) missing.add(`${name} (app/${file})`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it('the kind workflow runs make up and make chaos-kind on kind', () => {
    const workflow = parse(read('.github/workflows/kind.yaml'));
    const steps = workflow.jobs.kind.steps.map((s: any) => s.run ?? s.uses);
    expect(steps).toEqual(expect.arrayContaining(['make up', 'make chaos-kind']));
    expect(workflow.jobs.kind.env.KIND_VERSION).toBeUndefined();
    const install = workflow.jobs.kind.steps.find((s: any) => s.name === 'Install kind and kubectl').run as string;
    // The workflow's own line that reads the pin, run for real.
    const line = install.split('\n').find((l) => l.startsWith('KIND_VERSION='))!;
    expect(run('bash', ['-c', `cd ${JSON.stringify(ROOT)}; ${line}; echo "$KIND_VERSION"`], 'install bash').trim()).toBe(/^KIND_VERSION=(\S+)/m.exec(read('scripts/tools.sh'))![1]);
  });
});
