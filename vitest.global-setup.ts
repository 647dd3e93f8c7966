import { execFileSync } from 'node:child_process';

// Gateways under test serve the demo page; build its bundle once per run.
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build-web.ts'], { stdio: 'inherit' });
}
