// The command-line plumbing shared by the scripts users run (scripts/, bench/): options parsed by
// node:util's parseArgs, `--help`, and exit 2 with a message naming the option on bad input.
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type HelpOption = { help: { type: 'boolean'; short?: string; default: false } };

/** Exits 2 with `message` (and the usage, when given): what the user typed is wrong. */
export function usageError(message: string, usage?: string): never {
  console.error(usage === undefined ? message : `${message}\n${usage}`);
  process.exit(2);
}

/**
 * The options of the command line (`options` must declare `help`): `--help` prints `helpText` and exits
 * 0; an unknown or malformed option exits 2 with parseArgs's message and the usage.
 */
export function parseOptions<const O extends Options & HelpOption>(usage: string, options: O, helpText: string = usage): ReturnType<typeof parseArgs<{ options: O }>>['values'] {
  let values: ReturnType<typeof parseArgs<{ options: O }>>['values'];
  try {
    values = parseArgs<{ options: O }>({ options }).values;
  } catch (err) {
    usageError((err as Error).message, usage);
  }
  if ((values as { help?: boolean }).help) {
    console.log(helpText);
    process.exit(0);
  }
  return values;
}

/** `--name=raw` as an integer from 1 to `max`, or exit 2 naming the option. */
export function positiveIntOption(name: string, raw: string, max: number, usage: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) usageError(`--${name}=${raw}: must be an integer from 1 to ${max}`, usage);
  return value;
}

/** A comma-separated option (`--only a,b`) as its non-empty items; undefined when not given. */
export function listOption(raw: string | undefined): string[] | undefined {
  return raw?.split(',').map((s) => s.trim()).filter(Boolean);
}
