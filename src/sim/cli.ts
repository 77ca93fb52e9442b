/**
 * `npm run sim -- ...`: the simulation of the code users run (real nodes, the WAL over
 * simulated disks, HTTP routes, SDK clients; see runtime/world.ts). The flags are in `usage`.
 *
 * Exit status: 0 all runs passed (or --help), 1 a property was violated, 2 bad flags.
 */
import { asksForHelp, CliError, parseSeed } from './cli-flags.ts';
import {
  type ClientMix,
  clientMixes,
  describeRuntimeMix,
  type Profile,
  profiles,
} from './runtime/mix.ts';
import { sweepRuntime } from './runtime/run.ts';
import {
  defaultFaultPhaseMs,
  type RuntimeRunResult,
  type RuntimeUnsafe,
  runRuntimeSeed,
  runtimeUnsafeVariants,
} from './runtime/world.ts';
import { formatSeed } from './violation.ts';

/** `names`, comma-separated, in lines of at most `widthMax` characters after `indent`. */
function nameLines(names: readonly string[], indent: string, widthMax: number): string {
  const lines = [''];
  for (const [at, name] of names.entries()) {
    const item = at === names.length - 1 ? name : `${name},`;
    const last = lines.length - 1;
    const line = lines[last] as string;
    if (line !== '' && line.length + 1 + item.length > widthMax) lines.push(item);
    else lines[last] = line === '' ? item : `${line} ${item}`;
  }
  return lines.map((line) => `${indent}${line}`).join('\n');
}

const usageIndent = ' '.repeat(28);

export const usage = `npm run sim -- --seed N [--trace] | --seeds N [--from S] [flags]
  --seed N                  one run; N in decimal or 0x-hex
  --trace                   with --seed: print one line per event
  --seeds N                 N runs from seed S; prints seeds/s and steps/s
  --from S                  the first seed of --seeds (default 1)
  --nodes 3|5               cluster size (default: each seed draws one)
  --unsafe VARIANT          a deliberately broken core, node, WAL or SDK variant:
${nameLines(runtimeUnsafeVariants, usageIndent, 64)}
  --profile NAME            the fault mix: default draws a shape per seed; one of
${nameLines(
  profiles.filter((name) => name !== 'default'),
  usageIndent,
  64,
)} fixes one
  --clients plain           no shared client ids and no barriers (seeds found before they
                            came in replay their worlds); default mixed draws them per seed
  --ms T                    fault phase length in virtual milliseconds (default ${defaultFaultPhaseMs})
  --wal-segment-bytes B     every node's WAL segment size (default: each seed draws one);
                            small ones rotate and recycle segment files often`;

export interface SimCommand {
  seed: number | null;
  count: number | null;
  from: number;
  trace: boolean;
  nodeCount: number | null;
  unsafe: RuntimeUnsafe | null;
  profile: Profile;
  clients: ClientMix;
  faultPhaseMs: number;
  walSegmentBytes: number | null;
}

function wholeNumber(flag: string, text: string | undefined, low: number, high: number): number {
  if (
    text === undefined ||
    !/^[0-9]{1,9}$/.test(text) ||
    Number(text) < low ||
    Number(text) > high
  ) {
    throw new CliError(`bad ${flag} ${JSON.stringify(text)}: a whole number in [${low}, ${high}]`);
  }
  return Number(text);
}

export function parseArgs(argv: readonly string[]): SimCommand {
  const command: SimCommand = {
    seed: null,
    count: null,
    from: 1,
    trace: false,
    nodeCount: null,
    unsafe: null,
    profile: 'default',
    clients: 'mixed',
    faultPhaseMs: defaultFaultPhaseMs,
    walSegmentBytes: null,
  };
  for (let position = 0; position < argv.length; position++) {
    const flag = argv[position] as string;
    const value = () => {
      const next = argv[++position];
      if (next === undefined) throw new CliError(`${flag} needs a value`);
      return next;
    };
    if (flag === '--seed') command.seed = parseSeed(value());
    else if (flag === '--seeds') command.count = wholeNumber(flag, value(), 1, 100_000_000);
    else if (flag === '--from') command.from = parseSeed(value());
    else if (flag === '--trace') command.trace = true;
    else if (flag === '--nodes') {
      command.nodeCount = wholeNumber(flag, value(), 3, 5);
      if (command.nodeCount === 4) throw new CliError('--nodes takes 3 or 5');
    } else if (flag === '--unsafe') {
      const name = value();
      if (!(runtimeUnsafeVariants as readonly string[]).includes(name)) {
        throw new CliError(`unknown --unsafe ${name}: one of ${runtimeUnsafeVariants.join(', ')}`);
      }
      command.unsafe = name as RuntimeUnsafe;
    } else if (flag === '--profile') {
      const name = value();
      if (!(profiles as readonly string[]).includes(name)) {
        throw new CliError(`unknown --profile ${name}: one of ${profiles.join(', ')}`);
      }
      command.profile = name as Profile;
    } else if (flag === '--clients') {
      const name = value();
      if (!(clientMixes as readonly string[]).includes(name)) {
        throw new CliError(`unknown --clients ${name}: one of ${clientMixes.join(', ')}`);
      }
      command.clients = name as ClientMix;
    } else if (flag === '--ms') command.faultPhaseMs = wholeNumber(flag, value(), 1, 10_000_000);
    else if (flag === '--wal-segment-bytes') {
      command.walSegmentBytes = wholeNumber(flag, value(), 4096, 1 << 30);
    } else {
      throw new CliError(`unknown flag ${JSON.stringify(flag)}`);
    }
  }
  if ((command.seed === null) === (command.count === null)) {
    throw new CliError('give exactly one of --seed N or --seeds N');
  }
  if (command.trace && command.count !== null) {
    throw new CliError('--trace goes with --seed, not --seeds');
  }
  return command;
}

function summarize(result: RuntimeRunResult): string {
  const s = result.stats;
  return `seed ${formatSeed(result.seed)}: ${result.violation === null ? 'ok' : 'VIOLATION'} — ${s.virtualMs} virtual ms, ${s.steps} steps, ${s.framesSent} frames (${s.framesLost} lost on arrival), ${s.crashes} crashes, ${s.partitions} partitions, ${s.pauses} pauses, ${s.clockJumps} clock jumps, ${s.memberChanges} membership changes, ${s.transfers} transfers, ${s.campaigns} forced elections, ${s.corruptions} corruptions, ${s.diskStops} disk stops, ${s.calls} broadcasts (${s.foreignRefusals} refused in another's session, ${s.runFramesSent} broadcastRun frames, ${s.binaryConnections} binary connections, ${s.binaryResets} reset), ${s.barriers} barriers, ${s.subscribers} subscribers (${s.subscriberMessages} messages yielded, ${s.subscriberProgressMarks} progress marks), ${s.positions} positions, ${s.committedIndex} indexes committed in ${s.leaderTerms} leader terms`;
}

export async function main(argv: readonly string[]): Promise<number> {
  if (asksForHelp(argv)) {
    console.log(usage);
    return 0;
  }
  let command: SimCommand;
  try {
    command = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`sim: ${error.message}\nrun with --help for the flags`);
    return 2;
  }
  const options = {
    nodeCount: command.nodeCount,
    unsafe: command.unsafe,
    profile: command.profile,
    clients: command.clients,
    faultPhaseMs: command.faultPhaseMs,
    walSegmentBytes: command.walSegmentBytes,
  };
  if (command.seed !== null) {
    const traceSink = command.trace ? (line: string) => process.stdout.write(`${line}\n`) : null;
    const result = await runRuntimeSeed({ ...options, seed: command.seed, traceSink });
    if (!command.trace) console.log(describeRuntimeMix(result.mix));
    console.log(summarize(result));
    if (result.violation !== null) console.log(result.violation.message);
    return result.violation === null ? 0 : 1;
  }
  let lastProgressMs = performance.now();
  let done = 0;
  const report = await sweepRuntime({
    ...options,
    from: command.from,
    count: command.count ?? 1,
    clockMs: () => performance.now(),
    onResult: (result) => {
      done++;
      if (result.violation !== null) console.log(`${result.violation.message}\n`);
      if (performance.now() - lastProgressMs > 5000) {
        lastProgressMs = performance.now();
        process.stderr.write(`  ${done}/${command.count} seeds\n`);
      }
    },
  });
  console.log(
    `${report.seedsRun} seeds from ${formatSeed(command.from)} in ${(report.elapsedMs / 1000).toFixed(1)} s: ${report.seedsPerSecond.toFixed(1)} seeds/s, ${Math.round(report.stepsPerSecond)} steps/s, ${(report.virtualMs / report.elapsedMs).toFixed(0)}x real time (${report.steps} steps)`,
  );
  console.log(
    report.violations.length === 0 ? 'no violations' : `${report.violations.length} violations`,
  );
  return report.violations.length === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
