import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The demo page and its bundle (built by `node scripts/build-web.ts` into dist/web/). */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: `${root}app/web/index.html`, type: 'text/html; charset=utf-8' },
  '/app.js': { file: `${root}dist/web/app.js`, type: 'text/javascript; charset=utf-8' },
};

export function serveWeb(pathname: string, res: ServerResponse): boolean {
  const asset = ASSETS[pathname];
  if (!asset) return false;
  let body: Buffer;
  try {
    body = readFileSync(asset.file);
  } catch {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`${asset.file} is missing: run \`npm run build\` (or \`make build\`) first\n`);
    return true;
  }
  res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-cache' }).end(body);
  return true;
}
