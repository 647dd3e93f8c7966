// The command-line plumbing shared by the scripts users run (scripts/, bench/): options parsed by
// node:util's parseArgs, `--help`, exit 2 with a message naming the option on bad input; and, for the
// long-running ones, commands typed on stdin and a clean stop on Ctrl-C.
import { createInterface } from 'node:readline';
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

/** On the first SIGINT or SIGTERM: says `<signal>: <doing> ...`, awaits `stop`, exits 0. */
export function stopOnSignals(doing: string, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: ${doing} ...`);
    await stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

/**
 * Commands typed on stdin, one a line (`<command> [arg]`), each run by its handler; a failing one prints
 * `<command>: <error>`, an unknown one says to type help.
 */
export function readCommands(handlers: Record<string, (arg: string | undefined) => unknown>): void {
  const commands = createInterface({ input: process.stdin });
  commands.on('line', (line) => {
    const [command, arg] = line.trim().split(/\s+/);
    const run = async (): Promise<void> => {
      if (command === undefined || command === '') return;
      if (!Object.hasOwn(handlers, command)) return console.log(`unknown command "${command}"; type help`);
      await handlers[command]!(arg);
    };
    run().catch((err: unknown) => console.error(`${command}: ${(err as Error).message}`));
  });
  // Without a terminal (stdin closed at once, e.g. under CI) keep running until a signal.
  commands.on('close', () => {});
}
