// Bundles the demo page (and the client SDK it uses) for the browser into dist/web/app.js.
import { build } from 'esbuild';

await build({
  entryPoints: ['app/web/main.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: 'linked',
  outfile: 'dist/web/app.js',
  logLevel: 'warning',
});
