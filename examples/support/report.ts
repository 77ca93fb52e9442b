/**
 * What an example returns and prints: named checks that pass or fail with a detail, and
 * measured figures (durations, throughput). `main` prints it and exits 1 unless every check
 * passed; tests assert on the same report.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ExampleError } from './errors.ts';

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface Report {
  readonly example: string;
  readonly checks: readonly Check[];
  /** Measured figures, each named with its unit (`elapsedMs`, `transfersPerSecond`). */
  readonly figures: Readonly<Record<string, number | string>>;
  /** What happened along the way (faults injected, nodes restarted), in order. */
  readonly events: readonly string[];
}

export function check(name: string, ok: boolean, detail: string): Check {
  return { name, ok, detail };
}

export function allPassed(report: Report): boolean {
  return report.checks.length > 0 && report.checks.every((item) => item.ok);
}

/** The checks that failed, as one line each: what a test prints when it fails. */
export function failures(report: Report): string {
  return report.checks
    .filter((item) => !item.ok)
    .map((item) => `${item.name}: ${item.detail}`)
    .join('\n');
}

export function formatReport(report: Report): string {
  const lines = [`${report.example}`];
  for (const event of report.events) lines.push(`  · ${event}`);
  for (const [name, value] of Object.entries(report.figures)) {
    lines.push(`  ${name}: ${typeof value === 'number' ? round(value) : value}`);
  }
  for (const item of report.checks) {
    lines.push(`  ${item.ok ? 'PASS' : 'FAIL'}  ${item.name} — ${item.detail}`);
  }
  lines.push(allPassed(report) ? 'all checks passed' : 'SOME CHECKS FAILED');
  return lines.join('\n');
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/**
 * Runs an example's `run` from its main: prints the report and exits 0 only when every check
 * passed; a bad flag exits 2, anything thrown exits 1, each with one line on stderr.
 */
export async function runMain<Options>(
  parse: (argv: readonly string[]) => Options,
  run: (options: Options) => Promise<Report>,
): Promise<void> {
  let options: Options;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}`);
    process.exit(2);
  }
  try {
    const report = await run(options);
    console.log(formatReport(report));
    process.exit(allPassed(report) ? 0 : 1);
  } catch (error) {
    console.error(`the example failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  }
}

/** The flags every example takes, plus its own integer flags (`--transfers 2000`). */
export interface CommonFlags {
  readonly endpoints: readonly string[] | null;
  readonly quiet: boolean;
  readonly integers: Readonly<Record<string, number>>;
}

export function parseFlags(
  argv: readonly string[],
  integerDefaults: Readonly<Record<string, number>>,
): CommonFlags {
  const integerOptions = Object.fromEntries(
    Object.keys(integerDefaults).map((name) => [name, { type: 'string' as const }]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        endpoints: { type: 'string' },
        quiet: { type: 'boolean' },
        ...integerOptions,
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    const names = Object.keys(integerDefaults).map((name) => `--${name} <n>`);
    throw new ExampleError(
      'invalid_argument',
      `${(error as Error).message}\nflags: --endpoints http://…,http://… ${names.join(' ')} --quiet`,
    );
  }
  const integers: Record<string, number> = {};
  for (const [name, fallback] of Object.entries(integerDefaults)) {
    const text = values[name];
    integers[name] = text === undefined ? fallback : positiveInteger(name, String(text));
  }
  const endpoints =
    typeof values.endpoints === 'string'
      ? values.endpoints
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== '')
      : null;
  return { endpoints, quiet: values.quiet === true, integers };
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new ExampleError(
      'invalid_argument',
      `--${name} takes a positive integer, got "${text}"`,
      {
        field: name,
      },
    );
  }
  return value;
}

/** A short, stable fingerprint of a JSON value: how replicas and agents compare results. */
export function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** Logs progress lines unless quiet; what `run` is given so tests stay silent. */
export type Say = (line: string) => void;

export function sayer(quiet: boolean): Say {
  return quiet ? () => undefined : (line) => console.log(line);
}

/** True when the module at `moduleUrl` is the script node was asked to run. */
export function isEntry(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
