/**
 * The flags of a bench script, read with node's parseArgs: `--help` prints the script's usage,
 * and a bad flag or value becomes one FlagError line instead of a stack trace. Everything here
 * but flagsOrExit is pure, so tested (test/bench/args.test.ts).
 *
 *   const settings = flagsOrExit({
 *     usage,
 *     options: { runs: { type: 'string', default: '3' } },
 *     read: (values) => ({ runCount: positiveInteger('runs', values.runs) }),
 *   });
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A flag the script does not know, a missing value, or a value out of its range. */
export class FlagError extends Error {
  readonly code = 'BAD_FLAGS';
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

export type OptionTable = NonNullable<ParseArgsConfig['options']>;

const helpOption = { help: { type: 'boolean', short: 'h', default: false } } as const;

interface StrictConfig<T extends OptionTable> {
  args: string[];
  options: T & typeof helpOption;
  strict: true;
  allowPositionals: false;
  allowNegative: boolean;
}

/** What parseArgs reads for the table `T`: a string or boolean per flag, `help` added. */
export type FlagValues<T extends OptionTable> = ReturnType<
  typeof parseArgs<StrictConfig<T>>
>['values'];

export interface FlagSpec<T extends OptionTable, Settings> {
  /** Printed by --help: the command, then each flag with its meaning and default. */
  readonly usage: string;
  /** parseArgs' table; `help` (and `-h`) is added. */
  readonly options: T;
  /** Turns the values into the script's settings, throwing FlagError at a bad one. */
  readonly read: (values: FlagValues<T>) => Settings;
  /** `--no-NAME` sets a boolean flag to false. */
  readonly allowNegative?: boolean;
}

/** The spec as given, its flag names and settings type inferred: for a spec kept in a const. */
export function defineFlags<const T extends OptionTable, Settings>(
  spec: FlagSpec<T, Settings>,
): FlagSpec<T, Settings> {
  return spec;
}

export type FlagOutcome<Settings> =
  | { readonly help: true }
  | { readonly help: false; readonly settings: Settings };

/** parseArgs' own errors, as one line that names the flag. */
function flagErrorOf(error: unknown): FlagError {
  if (!(error instanceof Error)) return new FlagError(String(error));
  const code = (error as Error & { code?: unknown }).code;
  const name = /'(-[^' ]*)/.exec(error.message)?.[1];
  const quoted = /'([^']*)'/.exec(error.message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && name !== undefined) {
    return new FlagError(`unknown flag ${name}`);
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && quoted !== undefined) {
    return new FlagError(`unexpected argument "${quoted}": only flags are taken`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && name !== undefined) {
    if (error.message.includes('does not take an argument')) {
      return new FlagError(`${name} takes no value`);
    }
    // parseArgs takes `--seconds -1` for a flag without its value followed by another flag.
    if (error.message.includes('ambiguous')) {
      return new FlagError(
        `${name} needs a value (one that starts with "-" goes as ${name}=VALUE)`,
      );
    }
    return new FlagError(`${name} needs a value`);
  }
  return new FlagError(error.message.split('\n')[0] ?? error.message);
}

/** `--help` or `-h` anywhere before `--` asks for the usage, whatever else is wrong. */
function asksForHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return argv.slice(0, end === -1 ? argv.length : end).some((arg) => /^(--help|-h)$/.test(arg));
}

/** Reads `argv` (flags only, no script path) against the spec; throws FlagError. */
export function parseFlags<const T extends OptionTable, Settings>(
  argv: readonly string[],
  spec: FlagSpec<T, Settings>,
): FlagOutcome<Settings> {
  if (asksForHelp(argv)) return { help: true };
  let values: FlagValues<T>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { ...spec.options, ...helpOption },
      strict: true,
      allowPositionals: false,
      allowNegative: spec.allowNegative ?? false,
    } as StrictConfig<T>));
  } catch (error) {
    throw flagErrorOf(error);
  }
  return { help: false, settings: spec.read(values) };
}

/**
 * The script's settings from process.argv; exits 0 after printing the usage for --help, and 2
 * after one error line and a hint for a bad flag. Call it before the script starts any work.
 */
export function flagsOrExit<const T extends OptionTable, Settings>(
  spec: FlagSpec<T, Settings>,
  argv: readonly string[] = process.argv.slice(2),
): Settings {
  let outcome: FlagOutcome<Settings>;
  try {
    outcome = parseFlags(argv, spec);
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    process.stderr.write(`error: ${error.message}\nrun with --help for the flags\n`);
    process.exit(2);
  }
  if (outcome.help) {
    process.stdout.write(`${spec.usage}\n`);
    process.exit(0);
  }
  return outcome.settings;
}

/** A whole number of at least `least`, in plain decimal digits (no sign, point or exponent). */
export function integerAtLeast(flag: string, text: string, least: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < least) {
    const wanted = least === 1 ? 'a positive integer' : `an integer ≥ ${least}`;
    throw new FlagError(`--${flag} takes ${wanted}, got "${text}"`);
  }
  return value;
}

export function positiveInteger(flag: string, text: string): number {
  return integerAtLeast(flag, text, 1);
}

export function nonNegativeInteger(flag: string, text: string): number {
  return integerAtLeast(flag, text, 0);
}

/** A comma-separated list of positive integers, such as load levels `1,16,128`. */
export function positiveIntegers(flag: string, text: string): number[] {
  try {
    return text.split(',').map((item) => positiveInteger(flag, item));
  } catch {
    throw new FlagError(`--${flag} takes positive integers separated by commas, got "${text}"`);
  }
}

/** A positive decimal such as `0.5` or `3`, for durations that need not be whole. */
export function positiveNumber(flag: string, text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !Number.isFinite(value) || value <= 0) {
    throw new FlagError(`--${flag} takes a positive number, got "${text}"`);
  }
  return value;
}

/** One of a fixed set of names. */
export function oneOf<const Name extends string>(
  flag: string,
  text: string,
  names: readonly Name[],
): Name {
  if (!(names as readonly string[]).includes(text)) {
    throw new FlagError(`--${flag} takes one of ${names.join(', ')}, got "${text}"`);
  }
  return text as Name;
}
