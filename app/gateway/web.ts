import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

type Assets = Record<string, { file: string; type: string }>;

/** The demo page and its bundle (built by `node scripts/build-web.ts` into dist/web/), on the public port. */
const PAGE: Assets = {
  '/': { file: `${root}app/web/index.html`, type: 'text/html; charset=utf-8' },
  '/app.js': { file: `${root}dist/web/app.js`, type: 'text/javascript; charset=utf-8' },
};

/** The fleet view, on the internal port: it reads `/fleet`, which only the internal port serves. */
const FLEET_VIEW: Assets = {
  '/': { file: `${root}app/web/fleet.html`, type: 'text/html; charset=utf-8' },
  '/fleet.js': { file: `${root}dist/web/fleet.js`, type: 'text/javascript; charset=utf-8' },
};

export const serveWeb = (pathname: string, res: ServerResponse): boolean => serve(PAGE, pathname, res);
export const serveFleetView = (pathname: string, res: ServerResponse): boolean => serve(FLEET_VIEW, pathname, res);

function serve(assets: Assets, pathname: string, res: ServerResponse): boolean {
  const asset = assets[pathname];
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
