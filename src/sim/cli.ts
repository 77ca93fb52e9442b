/**
 * `npm run sim -- ...`: run one seed (optionally with its trace) or sweep many.
 *
 *   --seed N [--trace]        one run; N in decimal or 0x-hex
 *   --seeds N [--from S]      N runs from seed S (default 1); prints throughput and failures
 *   --nodes 3|5|7             cluster size (default: each seed draws one)
 *   --unsafe VARIANT          a deliberately broken core variant
 *   --profile NAME            the fault mix: default draws a shape per seed; broad, elections,
 *                             figure8, calm fix one
 *   --ticks T                 fault phase length in ticks
 *
 *   --runtime                 the real runtime instead of the core alone: real nodes, the
 *                             WAL over simulated disks, SDK clients (see runtime/cli.ts)
 *
 * Exit status: 0 all runs passed, 1 a property was violated, 2 bad flags.
 */
import { type UnsafeVariant, unsafeVariants } from '../raft/core.ts';
import { CliError, parseSeed } from './cli-flags.ts';
import { describeMix, type Profile, profiles } from './fault-mix.ts';
import { defaultFaultPhaseTicks, runSeed, sweep } from './run.ts';
import type { RunResult } from './stats.ts';
import { formatSeed } from './violation.ts';

export { CliError, parseSeed };

export interface CliCommand {
  readonly mode: 'one' | 'sweep';
  readonly seed: number;
  readonly count: number;
  readonly trace: boolean;
  readonly nodeCount: number | null;
  readonly unsafe: UnsafeVariant | null;
  readonly profile: Profile;
  readonly faultPhaseTicks: number;
}

function parseCount(flag: string, text: string, low: number, high: number): number {
  if (!/^[0-9]{1,9}$/.test(text) || Number(text) < low || Number(text) > high) {
    throw new CliError(
      `bad ${flag} ${JSON.stringify(text)}: expected a whole number in [${low}, ${high}]`,
    );
  }
  return Number(text);
}

interface Draft {
  seed: number | null;
  count: number | null;
  from: number;
  trace: boolean;
  nodeCount: number | null;
  unsafe: UnsafeVariant | null;
  profile: Profile;
  faultPhaseTicks: number;
}

function oneOf<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) {
    throw new CliError(`unknown ${flag} ${JSON.stringify(text)}: one of ${allowed.join(', ')}`);
  }
  return text as T;
}

/** Applies one flag to the draft; `value` reads the flag's argument. */
function applyFlag(draft: Draft, flag: string, value: () => string): void {
  switch (flag) {
    case '--seed':
      draft.seed = parseSeed(value());
      return;
    case '--seeds':
      draft.count = parseCount(flag, value(), 1, 100_000_000);
      return;
    case '--from':
      draft.from = parseSeed(value());
      return;
    case '--trace':
      draft.trace = true;
      return;
    case '--nodes':
      draft.nodeCount = parseCount(flag, value(), 3, 7);
      if (![3, 5, 7].includes(draft.nodeCount)) throw new CliError('--nodes takes 3, 5 or 7');
      return;
    case '--unsafe':
      draft.unsafe = oneOf(flag, value(), unsafeVariants);
      return;
    case '--profile':
      draft.profile = oneOf(flag, value(), profiles);
      return;
    case '--ticks':
      draft.faultPhaseTicks = parseCount(flag, value(), 1, 10_000_000);
      return;
    default:
      throw new CliError(
        `unknown flag ${JSON.stringify(flag)}; use --seed N [--trace] or --seeds N [--from S], with --nodes, --unsafe, --profile, --ticks`,
      );
  }
}

export function parseArgs(argv: readonly string[]): CliCommand {
  const draft: Draft = {
    seed: null,
    count: null,
    from: 1,
    trace: false,
    nodeCount: null,
    unsafe: null,
    profile: 'default',
    faultPhaseTicks: defaultFaultPhaseTicks,
  };
  for (let position = 0; position < argv.length; position++) {
    const flag = argv[position] as string;
    applyFlag(draft, flag, () => {
      const next = argv[++position];
      if (next === undefined) throw new CliError(`${flag} needs a value`);
      return next;
    });
  }
  if ((draft.seed === null) === (draft.count === null)) {
    throw new CliError('give exactly one of --seed N or --seeds N');
  }
  if (draft.trace && draft.count !== null)
    throw new CliError('--trace goes with --seed, not --seeds');
  return {
    mode: draft.seed === null ? 'sweep' : 'one',
    seed: draft.seed ?? draft.from,
    count: draft.count ?? 1,
    trace: draft.trace,
    nodeCount: draft.nodeCount,
    unsafe: draft.unsafe,
    profile: draft.profile,
    faultPhaseTicks: draft.faultPhaseTicks,
  };
}

function summarize(result: RunResult): string {
  const s = result.stats;
  return `seed ${formatSeed(result.seed)}: ${result.violation === null ? 'ok' : 'VIOLATION'} — ${s.ticks} ticks, ${s.steps} steps, ${s.messagesSent} messages (${s.messagesLost} lost), ${s.crashes} crashes, ${s.partitions} partitions, ${s.leaderTerms} leader terms, ${s.configChanges} config changes, ${s.compactions} compactions, ${s.snapshotsInstalled} snapshots installed, ${s.acknowledged} acknowledged, ${s.positions} positions, ${s.reads} reads`;
}

function runOne(command: CliCommand): number {
  const traceSink = command.trace ? (line: string) => process.stdout.write(`${line}\n`) : null;
  const result = runSeed({ ...command, seed: command.seed, traceSink });
  if (!command.trace) console.log(describeMix(result.mix));
  console.log(summarize(result));
  console.log(`trace fingerprint ${formatSeed(result.fingerprint)}`);
  if (result.violation !== null) console.log(result.violation.message);
  return result.violation === null ? 0 : 1;
}

function runSweep(command: CliCommand): number {
  let lastProgressMs = performance.now();
  let done = 0;
  const report = sweep({
    ...command,
    from: command.seed,
    count: command.count,
    onResult: (result) => {
      done++;
      if (result.violation !== null) console.log(`${result.violation.message}\n`);
      const now = performance.now();
      if (now - lastProgressMs > 5000) {
        lastProgressMs = now;
        process.stderr.write(`  ${done}/${command.count} seeds\n`);
      }
    },
  });
  const failed = report.violations.length;
  console.log(
    `${report.seedsRun} seeds from ${formatSeed(command.seed)} in ${(report.elapsedMs / 1000).toFixed(1)} s: ${report.seedsPerSecond.toFixed(1)} seeds/s, ${Math.round(report.stepsPerSecond)} steps/s, ${Math.round(report.ticksPerSecond)} simulated ticks/s (${report.steps} steps, ${report.ticks} ticks)`,
  );
  console.log(failed === 0 ? 'no violations' : `${failed} violations:`);
  for (const result of report.violations) {
    const violation = result.violation;
    if (violation === null) continue;
    console.log(`  ${violation.property} at seed ${formatSeed(result.seed)}: ${violation.detail}`);
  }
  return failed === 0 ? 0 : 1;
}

export function main(argv: readonly string[]): number {
  let command: CliCommand;
  try {
    command = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`sim: ${error.message}`);
    return 2;
  }
  return command.mode === 'one' ? runOne(command) : runSweep(command);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  if (argv.includes('--runtime')) {
    // Loaded after this module has finished evaluating: runtime/cli.ts imports parseSeed back.
    void import('./runtime/cli.ts')
      .then(({ runtimeMain }) => runtimeMain(argv.filter((flag) => flag !== '--runtime')))
      .then((code) => {
        process.exitCode = code;
      });
  } else process.exitCode = main(argv);
}
