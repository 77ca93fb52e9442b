/**
 * `npm run chaos -- [--nodes 3|5] [--seconds S] [--seed N] [--out DIR] [--faults k1,k2,…]`
 *
 * Runs real node processes under faults (run.ts) and ends with one line of JSON on stdout,
 * the summary; the exit code is 1 on any violation, 2 on a usage mistake. Progress goes to
 * stderr. Disk faults are opt-in (`--faults …,disk,full-disk`): until a node repairs a
 * corrupted log from its peers, a damaged node stays down for the rest of the run; a full
 * disk needs root (tmpfs mounts).
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { allFaultKinds, type FaultKind } from './nemesis.ts';
import { chaosTimings, runChaos } from './run.ts';

export const defaultFaultKinds: readonly FaultKind[] = allFaultKinds.filter(
  (kind) => kind !== 'disk' && kind !== 'full-disk',
);

function integer(name: string, low: number, high: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < low || value > high) {
      throw new InvalidArgumentError(`${name} takes an integer from ${low} to ${high}`);
    }
    return value;
  };
}

function faultList(text: string): FaultKind[] {
  if (text === 'all') return [...allFaultKinds];
  if (text === 'none') return [];
  const kinds = text
    .split(',')
    .map((kind) => kind.trim())
    .filter((kind) => kind !== '');
  for (const kind of kinds) {
    if (!allFaultKinds.includes(kind as FaultKind)) {
      throw new InvalidArgumentError(
        `unknown fault "${kind}"; known: ${allFaultKinds.join(', ')}, all, none`,
      );
    }
  }
  return kinds as FaultKind[];
}

function seedOf(text: string): number {
  const value = text.startsWith('0x') ? Number.parseInt(text.slice(2), 16) : Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new InvalidArgumentError('--seed takes an integer from 0 to 2^32-1 (decimal or 0x…)');
  }
  return value;
}

async function main(): Promise<void> {
  // Exit on a signal rather than die of it, so that the exit hooks run (tmpfs.ts unmounts).
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => process.exit(130));
  const program = new Command('chaos')
    .description('real node processes under faults, checked against the recorded history')
    .option('--nodes <n>', 'node processes (3 or 5)', integer('--nodes', 3, 7), 3)
    .option('--seconds <s>', 'length of the fault phase', integer('--seconds', 1, 86_400), 60)
    .option('--seed <n>', 'seed of the fault schedule and workload (default: random)', seedOf)
    .option('--out <dir>', 'write history.jsonl, logs/ and report.html there')
    .option(
      '--faults <list>',
      `comma-separated, or all / none (default ${defaultFaultKinds.join(',')})`,
      faultList,
    )
    .option(
      '--recovery-seconds <s>',
      'workload after the heal',
      integer('--recovery-seconds', 1, 600),
      10,
    )
    .option('--keep-leader', 'membership changes never remove the leader (a known stall)')
    .option('--quiet', 'no progress lines on stderr')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
    .parse(process.argv);
  const flags = program.opts<{
    nodes: number;
    seconds: number;
    seed?: number;
    out?: string;
    faults?: FaultKind[];
    recoverySeconds: number;
    keepLeader?: boolean;
    quiet?: boolean;
  }>();
  const seed = flags.seed ?? Math.floor(Math.random() * 0xffff_ffff);
  const out = flags.out === undefined ? null : resolve(flags.out);
  if (out !== null) await mkdir(out, { recursive: true });
  const { summary } = await runChaos({
    nodeCount: flags.nodes,
    seconds: flags.seconds,
    seed,
    kinds: flags.faults ?? defaultFaultKinds,
    out,
    ...chaosTimings,
    recoverySeconds: flags.recoverySeconds,
    leaderRemoval: flags.keepLeader !== true,
    verbose: flags.quiet !== true,
  });
  if (summary.violations > 0) {
    console.error(
      `chaos: ${summary.violations} violation(s); replay: npm run chaos -- --nodes ${summary.nodes} --seconds ${summary.seconds} --seed ${summary.seed} --faults ${(flags.faults ?? defaultFaultKinds).join(',')}${flags.keepLeader === true ? ' --keep-leader' : ''}`,
    );
  }
  console.log(JSON.stringify(summary));
  process.exitCode = summary.violations > 0 ? 1 : 0;
}

await main();
