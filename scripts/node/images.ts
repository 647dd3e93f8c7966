/**
 * OCI image archives for the real node (docs/real-node.md, "Images"), built without Docker or a registry
 * and loadable with `ctr -n k8s.io images import <archive>`.
 *
 *   pause           scripts/node/pause.c, `gcc -static`, FROM scratch
 *   gateway         Node 24 (node_modules/.bin/node) + its shared libraries, production dependencies, app/,
 *                   dist/web: the same user, workdir, env, command and files as the repo's Dockerfile
 *                   (test/node/image-recipe.test.ts keeps the two recipes in step). It runs the drain
 *                   controller too: same image, `node app/controller/main.ts`.
 *   redis           Debian's redis-server and redis-cli + their shared libraries, non-root
 *   haproxy         Debian's haproxy + its shared libraries, non-root
 *   coredns         ./bin/coredns (static, `make tools`), FROM scratch, nonroot, cap_net_bind_service
 *   metrics-server  ./bin/metrics-server (static, `make tools`), FROM scratch, nobody
 *
 * Why binaries + `ldd` instead of an mmdebstrap rootfs for redis and haproxy: the manifests start both
 * without a shell (Redis reads its password from the Secret's auth.conf, mounted; its probe is `redis-cli -e ping`), so
 * the binary, its libraries and a passwd entry are all they need; that is ~10 MB instead of ~80 MB, takes
 * well under a second instead of ~50 s, needs no apt mirror at build time, and caches on the same stat
 * fingerprints as everything else here. The cost: the libraries are the host's (Debian 12's), so an
 * image is as patched as the machine that built it.
 *
 * Caching is content-addressed at two levels. Every layer is keyed by a fingerprint of its inputs (each
 * file's destination, mode, owner, and the source's size, mtime, ctime and inode; generated files by
 * content; this module's own source), so an unchanged layer is never rewritten; blobs are stored by their
 * sha256. An archive is rewritten only when its manifest digest changes. Slow inputs have their own keys:
 * the production `node_modules` (package.json + package-lock.json + npm version), the demo page bundle
 * (every file under app/ + scripts/build-web.ts + the lockfile), the pause binary (pause.c + gcc version).
 * Layers are reproducible: sorted entries, uid/gid 0 unless stated, mtime 0, gzip without a timestamp.
 *
 * Libraries: tar-stream writes the tar streams (layers and the outer archive), node:zlib gzips,
 * node:crypto hashes. Hand-written here: the OCI JSON documents (index, manifest, config — a few fields
 * each), the `ldd` output parser, the image-reference normalisation and the stat fingerprints.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, lstatSync, readdirSync, readFileSync, readlinkSync, type BigIntStats } from 'node:fs';
import { cp, mkdir, open, readdir, readFile, realpath, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { arch } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { type Header, pack, type Pack } from 'tar-stream';

const execFileAsync = promisify(execFile);

export const ROOT = resolve(import.meta.dirname, '..', '..');
/** Where archives and the build cache go unless `outDir` says otherwise (git-ignored, like the tools). */
export const DEFAULT_IMAGES_DIR = join(ROOT, 'bin', 'images');

export type ImageName = 'pause' | 'gateway' | 'redis' | 'haproxy' | 'coredns' | 'metrics-server';
export const IMAGE_NAMES: readonly ImageName[] = ['pause', 'gateway', 'redis', 'haproxy', 'coredns', 'metrics-server'];

/**
 * The gateway image, mirrored from the Dockerfile (test/node/image-recipe.test.ts parses both and fails
 * when they drift). `copies` are the final stage's COPY lines, relative to `workdir`.
 */
export const GATEWAY_RECIPE = {
  /** `FROM node:24-bookworm-slim`: the node binary the image carries must have this major version. */
  nodeMajor: 24,
  /** Where the base image keeps node (on PATH). */
  nodePath: '/usr/local/bin/node',
  user: '1000:1000',
  /** The base image's passwd/group entry for uid 1000. */
  userName: 'node',
  home: '/home/node',
  workdir: '/app',
  env: { NODE_ENV: 'production', HOST: '0.0.0.0', PORT: '3000' } as Readonly<Record<string, string>>,
  /** The base image's PATH, which the Dockerfile inherits. */
  path: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  cmd: ['node', 'app/gateway/main.ts'],
  /** The drain controller's command in the same image (the Deployment overrides `command`). */
  controllerCmd: ['node', 'app/controller/main.ts'],
  exposedPorts: ['3000/tcp', '9090/tcp'],
  /** Files are root-owned and read-only to the user (`COPY --chown=root:root`). */
  owner: 'root:root',
  copies: [
    { dest: 'node_modules', source: { kind: 'production-dependencies' } },
    { dest: 'package.json', source: { kind: 'context', path: 'package.json' } },
    { dest: 'app', source: { kind: 'context', path: 'app' } },
    { dest: 'dist/web', source: { kind: 'web-build' } },
  ] as const,
  /** `npm ci` arguments of the production-dependencies stage. */
  npmCi: ['ci', '--omit=dev', '--omit=peer', '--no-fund', '--no-audit'],
  /** What the build stage runs to produce dist/web. */
  webBuild: ['node', 'scripts/build-web.ts'],
} as const;

/** Pinned tool versions, read from scripts/tools.sh (the one place they are set). */
export function pinnedToolVersion(variable: string, root = ROOT): string {
  const script = readFileSync(join(root, 'scripts', 'tools.sh'), 'utf8');
  const match = new RegExp(`^${variable}=(v[0-9][^\\s#]*)`, 'm').exec(script);
  if (!match) throw new Error(`scripts/tools.sh does not pin ${variable}=v...`);
  return match[1]!;
}

/**
 * The references pod specs use. Tags are never `latest` (the kubelet would default to pulling); the
 * gateway's is the tag `make up` builds for kind. Everything else is under `localhost/`, a domain the
 * reference grammar keeps as it is, so what a pod spec says is exactly what containerd stores.
 */
export function imageRefs(root = ROOT): Record<ImageName, string> {
  return {
    pause: 'localhost/pause:local',
    gateway: 'realtime-gateway:dev',
    redis: 'localhost/redis:debian12',
    haproxy: 'localhost/haproxy:debian12',
    coredns: `localhost/coredns:${pinnedToolVersion('COREDNS_VERSION', root)}`,
    'metrics-server': `localhost/metrics-server:${pinnedToolVersion('METRICS_SERVER_VERSION', root)}`,
  };
}

/**
 * The name containerd's CRI plugin looks up for a pod's `image` (it normalises like Docker:
 * `realtime-gateway:dev` → `docker.io/library/realtime-gateway:dev`), and so the
 * `io.containerd.image.name` an archive must carry: `ctr images import` stores that annotation verbatim.
 */
export function normalizeImageRef(ref: string): string {
  let name = ref;
  let suffix = '';
  const at = name.indexOf('@');
  if (at >= 0) [name, suffix] = [name.slice(0, at), name.slice(at)];
  const lastSlash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > lastSlash) [name, suffix] = [name.slice(0, colon), name.slice(colon) + suffix];
  else if (!suffix) suffix = ':latest';
  const [first, ...rest] = name.split('/');
  const isDomain = rest.length > 0 && (first!.includes('.') || first!.includes(':') || first === 'localhost');
  let domain = isDomain ? first! : 'docker.io';
  let path = isDomain ? rest.join('/') : name;
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(path)) {
    throw new Error(`invalid image reference ${JSON.stringify(ref)}`);
  }
  return `${domain}/${path}${suffix}`;
}

export interface BuiltLayer {
  readonly name: string;
  /** sha256 of the gzipped layer (the manifest's layer digest). */
  readonly digest: string;
  /** sha256 of the uncompressed tar (the config's diff_id). */
  readonly diffId: string;
  readonly size: number;
  readonly unpackedBytes: number;
  readonly files: number;
  readonly cached: boolean;
}

export interface BuiltImage {
  readonly name: ImageName;
  /** What a pod spec's `image` says, e.g. `realtime-gateway:dev`. */
  readonly ref: string;
  /** What `ctr -n k8s.io images ls` shows after the import, e.g. `docker.io/library/realtime-gateway:dev`. */
  readonly storedRef: string;
  /** Absolute path of the OCI archive for `ctr -n k8s.io images import`. */
  readonly archive: string;
  readonly archiveBytes: number;
  readonly manifestDigest: string;
  /** The image ID `crictl images` shows. */
  readonly configDigest: string;
  readonly layers: readonly BuiltLayer[];
  /** Sum of the files' sizes in all layers. */
  readonly unpackedBytes: number;
  /** True when the archive was already current and nothing was written. */
  readonly cached: boolean;
  readonly durationMs: number;
  /** The OCI image config this build wrote (`config` is what runtimes read). */
  readonly config: OciImageConfig;
}

export interface BuildImagesOptions {
  /** Which images; all by default. */
  readonly images?: readonly ImageName[];
  /** Archives and cache. @default bin/images */
  readonly outDir?: string;
  /** Where `make tools` put coredns and metrics-server. @default $LOCALBIN, else bin */
  readonly localbin?: string;
  /** One line per step, e.g. to print it. */
  readonly onProgress?: (line: string) => void;
}

/** A failed build names the image and the step. */
export class ImageBuildError extends Error {
  readonly image: ImageName;
  readonly step: string;
  constructor(image: ImageName, step: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`image ${image}: ${step} failed: ${detail}`, { cause });
    this.name = 'ImageBuildError';
    this.image = image;
    this.step = step;
  }
}

/** The `config` of an OCI image config (runtime defaults). */
export interface OciRuntimeConfig {
  User?: string;
  Env: string[];
  WorkingDir?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  ExposedPorts?: Record<string, Record<string, never>>;
  StopSignal?: string;
  Labels?: Record<string, string>;
}

export interface OciImageConfig {
  architecture: string;
  os: 'linux';
  config: OciRuntimeConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history: { created_by: string; comment?: string }[];
}

// ------------------------------------------------------------------------------------------------
// Build

/**
 * Builds (or finds current) each requested image and returns where its archive is. Holds a lock on
 * `outDir`, so concurrent builders (the node harness and a test) take turns instead of racing.
 */
export async function buildImages(opts: BuildImagesOptions = {}): Promise<BuiltImage[]> {
  const outDir = resolve(opts.outDir ?? DEFAULT_IMAGES_DIR);
  const localbin = resolve(opts.localbin ?? process.env.LOCALBIN ?? join(ROOT, 'bin'));
  const names = opts.images ?? IMAGE_NAMES;
  for (const name of names) if (!IMAGE_NAMES.includes(name)) throw new Error(`unknown image ${name}; known: ${IMAGE_NAMES.join(', ')}`);
  const log = opts.onProgress ?? (() => {});
  await mkdir(join(outDir, 'blobs', 'sha256'), { recursive: true });
  await mkdir(join(outDir, 'cache'), { recursive: true });
  const release = await lockDir(outDir, log);
  try {
    const store = new BlobStore(outDir);
    const refs = imageRefs();
    const selfHash = sha256(readFileSync(import.meta.filename));
    const built: BuiltImage[] = [];
    for (const name of names) {
      const began = Date.now();
      const ctx: BuildContext = { name, outDir, localbin, store, selfHash, log: (line) => log(`[${name}] ${line}`) };
      const recipe = await RECIPES[name](ctx);
      built.push(await assemble(ctx, refs[name], recipe, began));
    }
    await prune(outDir);
    return built;
  } finally {
    await release();
  }
}

/** Every image (or `images`), progress lines to `log`: what the node harness calls. */
export function buildNodeImages(opts: Omit<BuildImagesOptions, 'onProgress'> & { readonly log?: (line: string) => void } = {}): Promise<BuiltImage[]> {
  const { log, ...rest } = opts;
  return buildImages({ ...rest, ...(log ? { onProgress: log } : {}) });
}

interface BuildContext {
  readonly name: ImageName;
  readonly outDir: string;
  readonly localbin: string;
  readonly store: BlobStore;
  /** sha256 of this file: a change to the recipes invalidates every layer. */
  readonly selfHash: string;
  readonly log: (line: string) => void;
}

interface LayerPlan {
  readonly name: string;
  readonly createdBy: string;
  readonly rootfs: Rootfs;
}

interface ImagePlan {
  readonly config: OciRuntimeConfig;
  readonly layers: readonly LayerPlan[];
}

async function step<T>(ctx: BuildContext, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ImageBuildError) throw err;
    throw new ImageBuildError(ctx.name, what, err);
  }
}

async function assemble(ctx: BuildContext, ref: string, plan: ImagePlan, began: number): Promise<BuiltImage> {
  const storedRef = normalizeImageRef(ref);
  const layers: BuiltLayer[] = [];
  for (const layer of plan.layers) layers.push(await step(ctx, `layer ${layer.name}`, () => buildLayer(ctx, layer)));

  const config: OciImageConfig = {
    architecture: ociArch(),
    os: 'linux',
    config: plan.config,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: plan.layers.map((l) => ({ created_by: l.createdBy, comment: `scripts/node/images.ts: ${ctx.name} ${l.name}` })),
  };
  const configBlob = await ctx.store.putJson(config);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configBlob.digest, size: configBlob.size },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
  };
  const manifestBlob = await ctx.store.putJson(manifest);
  const tag = ref.includes('@') ? undefined : ref.slice(ref.lastIndexOf(':') + 1);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: manifestBlob.digest,
        size: manifestBlob.size,
        platform: { architecture: config.architecture, os: 'linux' },
        annotations: { 'io.containerd.image.name': storedRef, ...(tag ? { 'org.opencontainers.image.ref.name': tag } : {}) },
      },
    ],
  };

  const archive = join(ctx.outDir, `${ctx.name}.tar`);
  const metaFile = join(ctx.outDir, `${ctx.name}.json`);
  const previous = await readJson<{ manifestDigest?: string; storedRef?: string; archiveBytes?: number }>(metaFile);
  const existing = await stat(archive).catch(() => null);
  const unpackedBytes = layers.reduce((a, l) => a + l.unpackedBytes, 0);
  const cached = previous?.manifestDigest === manifestBlob.digest && previous.storedRef === storedRef && existing?.size === previous.archiveBytes;
  let archiveBytes = existing?.size ?? 0;
  if (!cached) {
    archiveBytes = await step(ctx, 'archive', () =>
      writeArchive(archive, index, [manifestBlob.digest, configBlob.digest, ...layers.map((l) => l.digest)], ctx.store),
    );
  }
  const result: BuiltImage = {
    name: ctx.name,
    ref,
    storedRef,
    archive,
    archiveBytes,
    manifestDigest: manifestBlob.digest,
    configDigest: configBlob.digest,
    layers,
    unpackedBytes,
    cached,
    durationMs: Date.now() - began,
    config,
  };
  await writeFile(metaFile, `${JSON.stringify({ ...result, config: undefined, blobs: [manifestBlob.digest, configBlob.digest, ...layers.map((l) => l.digest)] }, null, 2)}\n`);
  ctx.log(
    `${ref}: ${cached ? 'up to date' : 'written'} — ${mb(archiveBytes)} archive, ${mb(unpackedBytes)} unpacked, ${layers.length} layer(s), ` +
      `${relative(process.cwd(), archive) || archive} (${((Date.now() - began) / 1000).toFixed(1)} s)`,
  );
  return result;
}

// ------------------------------------------------------------------------------------------------
// Recipes

type Recipe = (ctx: BuildContext) => Promise<ImagePlan>;

const ETC_NSSWITCH = 'passwd: files\ngroup: files\nhosts: files dns\n';

/** /etc/passwd and /etc/group for root and the given non-root users (no shells: there are none). */
function addUsers(fs: Rootfs, users: readonly { name: string; uid: number; gid: number; home: string }[]): void {
  const all = [{ name: 'root', uid: 0, gid: 0, home: '/root' }, ...users];
  fs.content('/etc/passwd', all.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:/sbin/nologin\n`).join(''));
  fs.content('/etc/group', all.map((u) => `${u.name}:x:${u.gid}:\n`).join(''));
}

const pauseRecipe: Recipe = async (ctx) => {
  const source = join(ROOT, 'scripts', 'node', 'pause.c');
  const binary = await step(ctx, 'gcc -static scripts/node/pause.c', async () => {
    const gcc = await run('gcc', ['--version'], 'install gcc and libc6-dev (apt-get install build-essential)');
    const key = sha256(Buffer.concat([await readFile(source), Buffer.from(gcc), Buffer.from(ctx.selfHash)])).slice(0, 16);
    const out = join(ctx.outDir, 'cache', 'pause', key, 'pause');
    if (!(await exists(out))) {
      ctx.log('compiling scripts/node/pause.c with gcc -static');
      await mkdir(dirname(out), { recursive: true });
      const tmp = `${out}.tmp-${process.pid}`;
      await run('gcc', ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror', '-o', tmp, source], 'install gcc and libc6-dev (apt-get install build-essential)');
      await rename(tmp, out);
    }
    return used(dirname(out), out);
  });
  const fs = new Rootfs();
  await step(ctx, 'rootfs', () => fs.file('/pause', binary, { mode: 0o755 }));
  return {
    // registry.k8s.io/pause runs as 65535:65535 with /pause as its entry point; so does this one.
    config: { User: '65535:65535', Env: [`PATH=${GATEWAY_RECIPE.path}`], WorkingDir: '/', Entrypoint: ['/pause'] },
    layers: [{ name: 'pause', createdBy: 'gcc -static -Os -s scripts/node/pause.c -o /pause', rootfs: fs }],
  };
};

const gatewayRecipe: Recipe = async (ctx) => {
  const r = GATEWAY_RECIPE;
  const [uid, gid] = r.user.split(':').map(Number) as [number, number];
  const node = await step(ctx, 'node binary', async () => {
    const path = await realpath(join(ROOT, 'node_modules', '.bin', 'node')).catch(() => {
      throw new Error('node_modules/.bin/node is missing: run npm ci (Node 24 comes from the `node` npm package)');
    });
    const version = (await run(path, ['--version'], 'run npm ci')).trim();
    if (Number(/^v(\d+)\./.exec(version)?.[1]) !== r.nodeMajor) {
      throw new Error(`${path} is ${version}, but the Dockerfile's base image is Node ${r.nodeMajor}`);
    }
    return { path, version };
  });

  const runtime = new Rootfs();
  await step(ctx, `node ${node.version} and its shared libraries (ldd)`, () => runtime.binary(r.nodePath, node.path));
  addUsers(runtime, [{ name: r.userName, uid, gid, home: r.home }]);
  runtime.content('/etc/nsswitch.conf', ETC_NSSWITCH);
  runtime.dir(r.home, { uid, gid });
  runtime.dir('/tmp', { mode: 0o1777 });

  // The production dependencies get a layer of their own (they change less often than app/).
  const deps = await step(ctx, `production dependencies (npm ${r.npmCi.join(' ')})`, () => productionDependencies(ctx));
  const web = await step(ctx, `demo page bundle (${r.webBuild.join(' ')})`, () => webBundle(ctx));
  const depsFs = new Rootfs();
  const appFs = new Rootfs();
  depsFs.dir(r.workdir);
  appFs.dir(r.workdir);
  await step(ctx, 'collect the files the Dockerfile copies', async () => {
    for (const copy of r.copies) {
      const dest = `${r.workdir}/${copy.dest}`;
      if (copy.source.kind === 'production-dependencies') await depsFs.tree(dest, deps);
      else if (copy.source.kind === 'web-build') await appFs.tree(dest, web);
      else {
        const src = join(ROOT, copy.source.path);
        if ((await stat(src)).isDirectory()) await appFs.tree(dest, src);
        else await appFs.file(dest, src);
      }
    }
  });

  return {
    config: {
      User: r.user,
      Env: [`PATH=${r.path}`, ...Object.entries(r.env).map(([k, v]) => `${k}=${v}`)],
      WorkingDir: r.workdir,
      Cmd: [...r.cmd],
      ExposedPorts: Object.fromEntries(r.exposedPorts.map((p) => [p, {}])),
      Labels: {
        'org.opencontainers.image.title': 'realtime-gateway',
        'org.opencontainers.image.description': `gateway (${r.cmd.join(' ')}) and drain controller (${r.controllerCmd.join(' ')}); Node ${node.version}`,
      },
    },
    layers: [
      { name: 'node runtime', createdBy: `node ${node.version} (node_modules/.bin/node) + ldd libraries, passwd for ${r.user}`, rootfs: runtime },
      { name: 'production dependencies', createdBy: `npm ${r.npmCi.join(' ')}`, rootfs: depsFs },
      { name: 'app', createdBy: `COPY package.json app dist/web ${r.workdir}`, rootfs: appFs },
    ],
  };
};

/** `npm ci --omit=dev` into a staging dir keyed by the lockfile, like the Dockerfile's deps stage. */
async function productionDependencies(ctx: BuildContext): Promise<string> {
  const npmVersion = await npmVersionOf(await which('npm', 'install npm'));
  const pkg = await readFile(join(ROOT, 'package.json'));
  const lock = await readFile(join(ROOT, 'package-lock.json')).catch(() => {
    throw new Error('package-lock.json is missing; npm ci needs it');
  });
  const key = sha256(Buffer.concat([pkg, lock, Buffer.from(npmVersion), Buffer.from(GATEWAY_RECIPE.npmCi.join(' '))])).slice(0, 16);
  const dir = join(ctx.outDir, 'cache', 'deps', key);
  const modules = join(dir, 'node_modules');
  if (await exists(join(dir, '.complete'))) return used(dir, modules);
  const began = Date.now();
  ctx.log(`npm ${GATEWAY_RECIPE.npmCi.join(' ')} (lockfile ${key}) into ${relative(ROOT, dir)}...`);
  const tmp = join(ctx.outDir, 'cache', 'deps', `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    await writeFile(join(tmp, 'package.json'), pkg);
    await writeFile(join(tmp, 'package-lock.json'), lock);
    await run('npm', [...GATEWAY_RECIPE.npmCi], 'install npm', { cwd: tmp });
    await writeFile(join(tmp, '.complete'), `${new Date().toISOString()}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  ctx.log(`production dependencies installed in ${((Date.now() - began) / 1000).toFixed(1)} s`);
  return used(dir, modules);
}

/** npm's version from its package.json (starting npm just to ask takes half a second). */
async function npmVersionOf(cli: string): Promise<string> {
  for (let dir = dirname(cli); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = await readJson<{ name?: string; version?: string }>(join(dir, 'package.json'));
    if (manifest?.name === 'npm' && manifest.version) return manifest.version;
  }
  return (await run('npm', ['--version'], 'install npm')).trim();
}

/** `node scripts/build-web.ts` (writes dist/web, as `npm start` does), cached by the page's sources. */
async function webBundle(ctx: BuildContext): Promise<string> {
  const inputs = new Rootfs();
  await inputs.tree('/app', join(ROOT, 'app'));
  await inputs.file('/build-web.ts', join(ROOT, 'scripts', 'build-web.ts'));
  await inputs.file('/package-lock.json', join(ROOT, 'package-lock.json'));
  const key = inputs.fingerprint(ctx.selfHash).slice(0, 16);
  const dir = join(ctx.outDir, 'cache', 'web', key);
  if (await exists(join(dir, '.complete'))) return used(dir, join(dir, 'web'));
  ctx.log(`bundling the demo page: ${GATEWAY_RECIPE.webBuild.join(' ')}`);
  await run(process.execPath, GATEWAY_RECIPE.webBuild.slice(1), 'run npm ci (esbuild)', { cwd: ROOT });
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await cp(join(ROOT, 'dist', 'web'), join(tmp, 'web'), { recursive: true });
  await writeFile(join(tmp, '.complete'), '');
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return used(dir, join(dir, 'web'));
}

const redisRecipe: Recipe = async (ctx) => {
  // The official image's `redis` user (infra/redis.ts runs the pod as 999:999).
  const uid = 999;
  const fs = new Rootfs();
  await step(ctx, 'redis-server, redis-cli and their shared libraries (ldd)', async () => {
    await fs.binary('/usr/bin/redis-server', await which('redis-server', 'apt-get install redis-server'));
    // redis-cli, so `kubectl exec … redis-cli` works (the chaos targets write drain plans with it).
    await fs.binary('/usr/bin/redis-cli', await which('redis-cli', 'apt-get install redis-tools'));
  });
  const version = /v=(\S+)/.exec(await run('redis-server', ['--version'], 'apt-get install redis-server'))?.[1] ?? 'unknown';
  addUsers(fs, [{ name: 'redis', uid, gid: uid, home: '/data' }]);
  fs.content('/etc/nsswitch.conf', ETC_NSSWITCH);
  fs.dir('/data', { uid, gid: uid });
  fs.dir('/tmp', { mode: 0o1777 });
  return {
    config: {
      User: `${uid}:${uid}`,
      Env: [`PATH=${GATEWAY_RECIPE.path}`],
      WorkingDir: '/data',
      Cmd: ['redis-server'],
      ExposedPorts: { '6379/tcp': {} },
      Labels: { 'org.opencontainers.image.title': 'redis', 'org.opencontainers.image.version': version },
    },
    layers: [{ name: 'redis', createdBy: `Debian redis-server ${version} + ldd libraries`, rootfs: fs }],
  };
};

const haproxyRecipe: Recipe = async (ctx) => {
  // The official haproxy image's user and paths.
  const uid = 99;
  const fs = new Rootfs();
  const binary = await which('haproxy', 'apt-get install haproxy');
  await step(ctx, 'haproxy and its shared libraries (ldd)', () => fs.binary('/usr/sbin/haproxy', binary));
  const version = /version (\S+)/.exec(await run(binary, ['-v'], 'apt-get install haproxy'))?.[1] ?? 'unknown';
  addUsers(fs, [{ name: 'haproxy', uid, gid: uid, home: '/var/lib/haproxy' }]);
  fs.content('/etc/nsswitch.conf', ETC_NSSWITCH);
  fs.dir('/var/lib/haproxy', { uid, gid: uid });
  fs.dir('/usr/local/etc/haproxy');
  fs.dir('/tmp', { mode: 0o1777 });
  return {
    config: {
      User: `${uid}:${uid}`,
      Env: [`PATH=${GATEWAY_RECIPE.path}`],
      WorkingDir: '/var/lib/haproxy',
      // What the official image's entry point adds: master-worker, foreground. The config comes from a ConfigMap.
      Cmd: ['haproxy', '-W', '-db', '-f', '/usr/local/etc/haproxy/haproxy.cfg'],
      // SIGUSR1 is HAProxy's soft stop: it finishes open connections (the official image does the same).
      StopSignal: 'SIGUSR1',
      Labels: { 'org.opencontainers.image.title': 'haproxy', 'org.opencontainers.image.version': version },
    },
    layers: [{ name: 'haproxy', createdBy: `Debian haproxy ${version} + ldd libraries`, rootfs: fs }],
  };
};

/** A static Go binary from ./bin (`make tools`), checked against the version tools.sh pins. */
async function goBinary(ctx: BuildContext, tool: string, variable: string): Promise<{ path: string; version: string }> {
  return step(ctx, `${tool} binary from make tools`, async () => {
    const version = pinnedToolVersion(variable);
    const path = join(ctx.localbin, tool);
    if (!(await exists(path)) || !(await exists(join(ctx.localbin, '.stamps', `${tool}@${version}`)))) {
      throw new Error(`${path} (${version}) is not built: run make tools (scripts/tools.sh builds it with CGO_ENABLED=0)`);
    }
    if ((await libraries(path)).length > 0) throw new Error(`${path} is dynamically linked; scripts/tools.sh builds it with CGO_ENABLED=0`);
    return { path, version };
  });
}

/** The static images' base: what distroless/static carries that these binaries use. */
async function staticBase(fs: Rootfs, users: { name: string; uid: number; home: string }[]): Promise<void> {
  addUsers(fs, [{ name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent' }, ...users.map((u) => ({ ...u, gid: u.uid }))]);
  for (const u of users) fs.dir(u.home, { uid: u.uid, gid: u.uid });
  fs.dir('/tmp', { mode: 0o1777 });
  if (await exists('/etc/ssl/certs/ca-certificates.crt')) await fs.file('/etc/ssl/certs/ca-certificates.crt', '/etc/ssl/certs/ca-certificates.crt', { mode: 0o644 });
}

/** security.capability = cap_net_bind_service+ep (VFS_CAP_REVISION_2), as `setcap` writes it. */
const NET_BIND_SERVICE_XATTR = String.fromCharCode(0x01, 0, 0, 0x02, 0, 0x04, 0, 0, ...new Array<number>(12).fill(0));

const corednsRecipe: Recipe = async (ctx) => {
  const bin = await goBinary(ctx, 'coredns', 'COREDNS_VERSION');
  const fs = new Rootfs();
  await staticBase(fs, [{ name: 'nonroot', uid: 65532, home: '/home/nonroot' }]);
  // Upstream's image runs as nonroot and binds :53 through this file capability.
  await fs.file('/coredns', bin.path, { mode: 0o755, pax: { 'SCHILY.xattr.security.capability': NET_BIND_SERVICE_XATTR } });
  return {
    config: {
      User: '65532:65532',
      Env: [`PATH=${GATEWAY_RECIPE.path}`],
      WorkingDir: '/',
      Entrypoint: ['/coredns'],
      ExposedPorts: { '53/tcp': {}, '53/udp': {} },
      Labels: { 'org.opencontainers.image.title': 'coredns', 'org.opencontainers.image.version': bin.version },
    },
    layers: [{ name: 'coredns', createdBy: `go install github.com/coredns/coredns@${bin.version} (CGO_ENABLED=0); setcap cap_net_bind_service=+ep`, rootfs: fs }],
  };
};

const metricsServerRecipe: Recipe = async (ctx) => {
  const bin = await goBinary(ctx, 'metrics-server', 'METRICS_SERVER_VERSION');
  const fs = new Rootfs();
  await staticBase(fs, []);
  await fs.file('/metrics-server', bin.path, { mode: 0o755 });
  return {
    // Upstream: FROM distroless/static, USER 65534, ENTRYPOINT ["/metrics-server"].
    config: {
      User: '65534:65534',
      Env: [`PATH=${GATEWAY_RECIPE.path}`],
      WorkingDir: '/',
      Entrypoint: ['/metrics-server'],
      Labels: { 'org.opencontainers.image.title': 'metrics-server', 'org.opencontainers.image.version': bin.version },
    },
    layers: [{ name: 'metrics-server', createdBy: `go install sigs.k8s.io/metrics-server/cmd/metrics-server@${bin.version} (CGO_ENABLED=0)`, rootfs: fs }],
  };
};

const RECIPES: Record<ImageName, Recipe> = {
  pause: pauseRecipe,
  gateway: gatewayRecipe,
  redis: redisRecipe,
  haproxy: haproxyRecipe,
  coredns: corednsRecipe,
  'metrics-server': metricsServerRecipe,
};

// ------------------------------------------------------------------------------------------------
// Root filesystems and layers

interface Entry {
  /** Without the leading slash, e.g. `usr/local/bin/node`. */
  readonly path: string;
  readonly type: 'file' | 'directory' | 'symlink';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly source?: string;
  readonly content?: Buffer;
  readonly linkname?: string;
  readonly pax?: Readonly<Record<string, string>>;
  readonly size: number;
  /** What decides whether the layer must be rebuilt: the source's identity, or the content's hash. */
  readonly fingerprint: string;
}

interface Owner {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

const statKey = (s: BigIntStats): string => `${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.ino}:${s.dev}`;
const clean = (path: string): string => {
  const p = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!p || p.split('/').some((part) => part === '..' || part === '.' || part === '')) throw new Error(`bad image path ${JSON.stringify(path)}`);
  return p;
};
/** Files root-owned; 0755 when the source is executable by anyone, else 0644: read-only to every user. */
const fileMode = (sourceMode: number): number => ((sourceMode & 0o111) !== 0 ? 0o755 : 0o644);

/** The files of one layer: what goes where, with which owner and mode. */
export class Rootfs {
  readonly #entries = new Map<string, Entry>();

  dir(path: string, o: Owner = {}): void {
    const p = clean(path);
    this.#put({ path: p, type: 'directory', mode: o.mode ?? 0o755, uid: o.uid ?? 0, gid: o.gid ?? 0, size: 0, fingerprint: 'dir' });
  }

  content(path: string, data: string | Buffer, o: Owner = {}): void {
    const content = Buffer.from(data);
    this.#put({ path: clean(path), type: 'file', mode: o.mode ?? 0o644, uid: o.uid ?? 0, gid: o.gid ?? 0, content, size: content.length, fingerprint: sha256(content) });
  }

  symlink(path: string, target: string): void {
    this.#put({ path: clean(path), type: 'symlink', mode: 0o777, uid: 0, gid: 0, linkname: target, size: 0, fingerprint: target });
  }

  /** A host file (symlinks followed) at `path`. */
  async file(path: string, source: string, o: Owner & { pax?: Record<string, string> } = {}): Promise<void> {
    const s = await stat(source, { bigint: true });
    if (!s.isFile()) throw new Error(`${source} is not a regular file`);
    this.#put({
      path: clean(path),
      type: 'file',
      mode: o.mode ?? fileMode(Number(s.mode)),
      uid: o.uid ?? 0,
      gid: o.gid ?? 0,
      source,
      size: Number(s.size),
      fingerprint: statKey(s),
      ...(o.pax ? { pax: o.pax } : {}),
    });
  }

  /**
   * A host directory tree at `path`, root-owned; symlinks stay symlinks. Synchronous fs calls on purpose:
   * thousands of awaited lstat calls through the thread pool take seconds on a busy machine.
   */
  async tree(path: string, source: string, exclude: (rel: string) => boolean = () => false): Promise<void> {
    const base = clean(path);
    this.dir(base);
    const walk = (dir: string, rel: string): void => {
      for (const name of readdirSync(dir).sort()) {
        const r = rel ? `${rel}/${name}` : name;
        if (exclude(r)) continue;
        const full = join(dir, name);
        const s = lstatSync(full, { bigint: true });
        const dest = `${base}/${r}`;
        if (s.isDirectory()) {
          this.dir(dest);
          walk(full, r);
        } else if (s.isSymbolicLink()) {
          this.symlink(dest, readlinkSync(full));
        } else if (s.isFile()) {
          this.#put({ path: dest, type: 'file', mode: fileMode(Number(s.mode)), uid: 0, gid: 0, source: full, size: Number(s.size), fingerprint: statKey(s) });
        } else {
          throw new Error(`${full}: only files, directories and symlinks can go into an image`);
        }
      }
    };
    walk(source, '');
  }

  /** A dynamically linked host binary at `path`, plus every shared library `ldd` lists, at the paths it lists. */
  async binary(path: string, source: string): Promise<void> {
    await this.file(path, source);
    for (const lib of await libraries(source)) await this.file(lib, lib, { mode: fileMode((await stat(lib)).mode) });
  }

  /** Every entry, with the parent directories nobody declared (0755, root), sorted so parents come first. */
  entries(): Entry[] {
    const all = new Map(this.#entries);
    for (const path of this.#entries.keys()) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i += 1) {
        const parent = parts.slice(0, i).join('/');
        if (!all.has(parent)) all.set(parent, { path: parent, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, fingerprint: 'dir' });
      }
    }
    return [...all.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  fingerprint(salt: string): string {
    const h = createHash('sha256').update(salt);
    for (const e of this.entries()) h.update(`${e.path}\0${e.type}\0${e.mode}\0${e.uid}\0${e.gid}\0${e.linkname ?? ''}\0${JSON.stringify(e.pax ?? {})}\0${e.fingerprint}\n`);
    return h.digest('hex');
  }

  #put(entry: Entry): void {
    const existing = this.#entries.get(entry.path);
    if (existing && existing.type !== entry.type) throw new Error(`/${entry.path} is added twice, as ${existing.type} and ${entry.type}`);
    this.#entries.set(entry.path, entry);
  }
}

/** The shared libraries `ldd` lists for a binary; none for a static one. */
export async function libraries(binary: string): Promise<string[]> {
  let out: string;
  try {
    out = (await execFileAsync('ldd', [binary], { encoding: 'utf8' })).stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('ldd is not installed (apt-get install libc-bin)');
    if (/not a dynamic executable|statically linked/.test(`${e.stdout ?? ''}${e.stderr ?? ''}`)) return [];
    throw new Error(`ldd ${binary} failed: ${(e.stderr ?? e.message).trim()}`);
  }
  if (/statically linked/.test(out)) return [];
  const libs: string[] = [];
  for (const line of out.split('\n').map((l) => l.trim()).filter(Boolean)) {
    if (line.includes('=> not found')) throw new Error(`ldd ${binary}: ${line}`);
    const arrow = /=>\s+(\/\S+)\s+\(0x/.exec(line);
    const direct = /^(\/\S+)\s+\(0x/.exec(line); // the dynamic loader itself
    const lib = arrow?.[1] ?? direct?.[1];
    if (lib) libs.push(lib);
  }
  if (libs.length === 0) throw new Error(`ldd ${binary} listed no libraries:\n${out}`);
  return libs;
}

/** Writes the layer blob unless one with the same input fingerprint exists. */
async function buildLayer(ctx: BuildContext, plan: LayerPlan): Promise<BuiltLayer> {
  const entries = plan.rootfs.entries();
  const key = plan.rootfs.fingerprint(ctx.selfHash);
  const cacheFile = join(ctx.outDir, 'cache', 'layers', `${key}.json`);
  const hit = await readJson<Omit<BuiltLayer, 'cached' | 'name'>>(cacheFile);
  if (hit && (await ctx.store.has(hit.digest))) return { ...hit, name: plan.name, cached: true };

  const began = Date.now();
  const unpackedBytes = entries.reduce((a, e) => a + e.size, 0);
  ctx.log(`layer ${plan.name}: ${entries.length} entries, ${mb(unpackedBytes)}, gzipping...`);
  const diff = createHash('sha256');
  const written = await ctx.store.write(async (sink) => {
    const tar = pack();
    const done = pipeline(tar, tap(diff), createGzip({ level: 6 }), sink);
    for (const e of entries) await addEntry(tar, e);
    tar.finalize();
    await done;
  });
  const layer = { digest: written.digest, diffId: `sha256:${diff.digest('hex')}`, size: written.size, unpackedBytes, files: entries.length };
  await mkdir(dirname(cacheFile), { recursive: true });
  await writeFile(cacheFile, `${JSON.stringify(layer)}\n`);
  ctx.log(`layer ${plan.name}: ${mb(written.size)} gzipped in ${((Date.now() - began) / 1000).toFixed(1)} s (${written.digest.slice(0, 19)})`);
  return { ...layer, name: plan.name, cached: false };
}

const EPOCH = new Date(0);

async function addEntry(tar: Pack, e: Entry): Promise<void> {
  const header: Partial<Header> & Pick<Header, 'name'> = {
    name: e.type === 'directory' ? `${e.path}/` : e.path,
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtime: EPOCH,
    size: e.type === 'file' ? e.size : 0,
    ...(e.linkname ? { linkname: e.linkname } : {}),
    ...(e.pax ? { pax: { ...e.pax } } : {}),
  };
  await new Promise<void>((resolveEntry, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolveEntry());
    if (e.type !== 'file') tar.entry(header, done);
    else if (e.content) tar.entry(header, e.content, done);
    else {
      const sink = tar.entry(header, (err) => done(err ? new Error(`${e.source}: ${err.message} (did it change during the build?)`) : null));
      const source = createReadStream(e.source!);
      source.on('error', reject);
      source.pipe(sink);
    }
  });
}

function tap(hash: Hash, count?: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      count?.(chunk.length);
      callback(null, chunk);
    },
  });
}

/** sha256-addressed blobs under OUT/blobs/sha256, written through a temp file and renamed into place. */
class BlobStore {
  readonly #dir: string;
  constructor(outDir: string) {
    this.#dir = join(outDir, 'blobs', 'sha256');
  }

  path(digest: string): string {
    return join(this.#dir, digest.replace(/^sha256:/, ''));
  }

  async has(digest: string): Promise<boolean> {
    return exists(this.path(digest));
  }

  async putJson(value: unknown): Promise<{ digest: string; size: number }> {
    const data = Buffer.from(JSON.stringify(value));
    const digest = `sha256:${sha256(data)}`;
    if (!(await this.has(digest))) await this.write(async (sink) => pipeline([data], sink));
    return { digest, size: data.length };
  }

  /** Streams a blob through `fill` into the store; returns its digest and size. */
  async write(fill: (sink: NodeJS.WritableStream) => Promise<void>): Promise<{ digest: string; size: number }> {
    const tmp = join(this.#dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      const file = createWriteStream(tmp);
      const counter = tap(hash, (n) => (size += n));
      const flushed = pipeline(counter, file);
      await fill(counter);
      await flushed;
      const digest = `sha256:${hash.digest('hex')}`;
      await rename(tmp, this.path(digest));
      return { digest, size };
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/** The OCI layout as one tar: oci-layout, index.json, blobs/sha256/*. */
async function writeArchive(archive: string, index: unknown, digests: string[], store: BlobStore): Promise<number> {
  const tmp = `${archive}.tmp-${process.pid}`;
  try {
    const tar = pack();
    const done = pipeline(tar, createWriteStream(tmp));
    const put = (name: string, data: string) => addEntry(tar, { path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from(data), size: Buffer.byteLength(data), fingerprint: '' });
    await put('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await put('index.json', JSON.stringify(index));
    for (const dir of ['blobs', 'blobs/sha256']) await addEntry(tar, { path: dir, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, fingerprint: '' });
    for (const digest of [...new Set(digests)]) {
      const source = store.path(digest);
      const s = await stat(source);
      await addEntry(tar, { path: `blobs/sha256/${digest.slice('sha256:'.length)}`, type: 'file', mode: 0o644, uid: 0, gid: 0, source, size: s.size, fingerprint: '' });
    }
    tar.finalize();
    await done;
    await rename(tmp, archive);
    return (await stat(archive)).size;
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Removes blobs, layer records and staging dirs that no current image uses (every image's last build is
 * in OUT/<name>.json), so the cache does not grow with every edit of app/.
 */
async function prune(outDir: string): Promise<void> {
  const keep = new Set<string>();
  for (const name of IMAGE_NAMES) {
    const meta = await readJson<{ blobs?: string[] }>(join(outDir, `${name}.json`));
    for (const d of meta?.blobs ?? []) keep.add(d.replace(/^sha256:/, ''));
  }
  const layersDir = join(outDir, 'cache', 'layers');
  for (const file of await readdir(layersDir).catch(() => [] as string[])) {
    const layer = await readJson<{ digest?: string }>(join(layersDir, file));
    if (!layer?.digest || !keep.has(layer.digest.replace(/^sha256:/, ''))) await rm(join(layersDir, file), { force: true });
  }
  const blobsDir = join(outDir, 'blobs', 'sha256');
  for (const file of await readdir(blobsDir)) if (!keep.has(file) && !file.startsWith('.tmp-')) await rm(join(blobsDir, file), { force: true });
  // Staging dirs: keep the most recently used of each kind (`used` touches it), which the last build took.
  for (const kind of ['deps', 'web', 'pause']) {
    const dir = join(outDir, 'cache', kind);
    const entries = await readdir(dir).catch(() => [] as string[]);
    const dated = await Promise.all(entries.filter((e) => !e.startsWith('.tmp-')).map(async (e) => ({ e, t: (await stat(join(dir, e))).mtimeMs })));
    dated.sort((a, b) => b.t - a.t);
    for (const { e } of dated.slice(1)) await rm(join(dir, e), { recursive: true, force: true });
  }
}

/** An exclusive lock on `dir` (a file holding our PID); a stale one (its PID gone) is taken over. */
async function lockDir(dir: string, log: (line: string) => void): Promise<() => Promise<void>> {
  const file = join(dir, '.lock');
  const deadline = Date.now() + 20 * 60_000;
  let said = false;
  for (;;) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        if ((await readFile(file, 'utf8').catch(() => '')).trim() === String(process.pid)) await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (!holder || !alive(holder)) {
      await rm(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${file}: another image build (pid ${holder}) has held the lock for 20 minutes`);
    if (!said) log(`waiting for the image build of pid ${holder} (${file})`);
    said = true;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ------------------------------------------------------------------------------------------------
// Small helpers

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Marks a cache dir as just used (prune keeps the most recent one) and returns `result`. */
async function used<T>(dir: string, result: T): Promise<T> {
  const now = new Date();
  await utimes(dir, now, now);
  return result;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

function ociArch(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const a = map[arch()];
  if (!a) throw new Error(`unsupported architecture ${arch()}`);
  return a;
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function which(command: string, install: string): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin'])) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      const s = await stat(candidate);
      if (s.isFile() && (s.mode & 0o111) !== 0) return await realpath(candidate);
    } catch {
      // not here
    }
  }
  throw new Error(`${command} is not installed: ${install}`);
}

/** Runs a command, returning stdout; the error carries the command's stderr (or how to install it). */
function run(command: string, args: readonly string[], install: string, opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(`${command} is not installed: ${install}`) : err));
    child.on('close', (code, signal) => {
      if (code === 0) resolveRun(stdout);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}:\n${(stderr || stdout).trim().split('\n').slice(-20).join('\n')}`));
    });
  });
}
