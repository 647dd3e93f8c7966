// Bundles the demo page (and the client SDK it uses) into dist/web/app.js, and the fleet view (served
// on the internal port) into dist/web/fleet.js.
import { build } from 'esbuild';

await build({
  entryPoints: { app: 'app/web/main.ts', fleet: 'app/web/fleet.ts' },
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  outdir: 'dist/web',
  logLevel: 'warning',
});
