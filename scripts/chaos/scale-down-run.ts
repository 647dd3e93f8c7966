// `make chaos-scale-down`: the scale-down scenario (controller-driven vs plain Deployment scale-down).
//   node scripts/chaos/scale-down-run.ts [--size ci|full] [--out DIR]
import { parseArgs } from 'node:util';
import { runScaleDownChaos, SCALE_DOWN_SIZES } from './scale-down.ts';

const { values } = parseArgs({ options: { size: { type: 'string', default: 'full' }, out: { type: 'string', default: 'scripts/chaos/results' } } });
if (values.size !== 'ci' && values.size !== 'full') {
  console.error(`--size must be ci or full, got ${values.size}`);
  process.exit(2);
}
const report = await runScaleDownChaos(SCALE_DOWN_SIZES[values.size], (line) => console.error(line), values.out);
const ok = report.runs.every((r) => r.lost === 0 && r.duplicates === 0 && r.reconnected === r.victimClients);
console.log(`scale-down: ${ok ? 'PASS' : 'FAIL'}`);
process.exit(ok ? 0 : 1);
