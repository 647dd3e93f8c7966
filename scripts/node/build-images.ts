// Builds the real node's OCI image archives (scripts/node/images.ts) and says where they are.
//   node scripts/node/build-images.ts [--only gateway,redis] [--out DIR] [--localbin DIR] [--json]
// Load one into containerd with: ctr -n k8s.io images import <archive>
import { listOption, parseOptions, usageError } from '../cli.ts';
import { buildImages, IMAGE_NAMES, ImageBuildError, type ImageName } from './images.ts';

const usage = `usage: node scripts/node/build-images.ts [--only ${IMAGE_NAMES.join(',')}] [--out DIR] [--localbin DIR] [--json]`;
const args = parseOptions(usage, {
  only: { type: 'string' },
  out: { type: 'string' },
  localbin: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
});
const only = listOption(args.only);
const unknown = only?.filter((name) => !IMAGE_NAMES.includes(name as ImageName)) ?? [];
if (unknown.length > 0) usageError(`unknown image ${unknown.join(', ')}; known: ${IMAGE_NAMES.join(', ')}`);

const began = Date.now();
try {
  const images = await buildImages({
    ...(only ? { images: only as ImageName[] } : {}),
    ...(args.out ? { outDir: args.out } : {}),
    ...(args.localbin ? { localbin: args.localbin } : {}),
    onProgress: (line) => console.error(line),
  });
  if (args.json) {
    console.log(JSON.stringify(images.map(({ config: _config, ...rest }) => rest), null, 2));
  } else {
    const rows = images.map((i) => [i.ref, `${(i.archiveBytes / 1024 / 1024).toFixed(1)} MB`, i.cached ? 'up to date' : 'built', i.archive]);
    const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) console.log(r.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell)).join('  '));
    console.log(`${images.length} image(s) in ${((Date.now() - began) / 1000).toFixed(1)} s; load one with: ctr -n k8s.io images import <archive>`);
  }
} catch (err) {
  console.error(err instanceof ImageBuildError ? `build-images: ${err.message}` : err);
  process.exit(1);
}
