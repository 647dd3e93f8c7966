// `make chaos` / `make chaos-kind`: end gateway pods under load and report what clients felt.
//   node scripts/chaos/run.ts --size ci|full [--target local|kind|node] [--out DIR] [--budget N] [--only graceful,sigkill]
import { listOption, parseOptions, usageError } from '../cli.ts';
import { type ChaosSize, type ChaosTargetName, runChaos, SCENARIOS } from './chaos.ts';

const usage = 'usage: node scripts/chaos/run.ts --size ci|full [--target local|kind|node] [--out DIR] [--budget N (kind only)] [--only NAME,...]';
const args = parseOptions(
  usage,
  {
    size: { type: 'string', default: 'ci' },
    target: { type: 'string', default: 'local' },
    out: { type: 'string', default: 'scripts/chaos/results' },
    budget: { type: 'string' },
    only: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  `${usage}\nscenarios: ${SCENARIOS.map((s) => `${s.name} — ${s.description}`).join('\n           ')}`,
);
if (args.size !== 'ci' && args.size !== 'full') usageError(`--size must be ci or full, got ${args.size}`, usage);
if (args.target !== 'local' && args.target !== 'kind' && args.target !== 'node') usageError(`--target must be local, kind or node, got ${args.target}`, usage);
const budget = args.budget === undefined ? undefined : Number(args.budget);
if (budget !== undefined && !(budget > 0)) usageError(`--budget must be a positive number of reconnects per second, got ${args.budget}`);
const only = listOption(args.only);
const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}

const report = await runChaos({
  size: args.size as ChaosSize,
  target: args.target as ChaosTargetName,
  outDir: args.out,
  command: `node scripts/chaos/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
  ...(budget === undefined ? {} : { budgetPerSecond: budget }),
  ...(only ? { only } : {}),
  log: (line) => console.error(line),
});
console.log(`chaos: ${report.passed ? 'PASS' : 'FAIL'} in ${(report.durationMs / 1_000).toFixed(1)} s`);
process.exit(report.passed ? 0 : 1);
