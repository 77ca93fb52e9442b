// A short chaos run as part of `npm test`: three real `abcast start` processes behind fault
// proxies, the SDK and raw HTTP clients, and 30 s of faults (kills, pauses, partitions of
// every shape, loss/delay/duplication, clock jumps when libfaketime is installed, a full disk
// when running as root, membership changes that may remove the leader, leadership
// transfers); then the checker over the history and every node's delivered sequence, and
// `abcast verify` over the live members, must find nothing, and faults must really have
// happened. Longer runs: docs/chaos.md. CHAOS_SEED=<n> replays another seed.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chaosTimings, runChaos } from '../../src/chaos/run.ts';

/**
 * The lines of the nodes' logs that tell why a request failed inside a node (an HTTP
 * handler's unexpected error, with its stack): a violation that names a 500 `internal`
 * answer is explained only there, and the logs are gone once the test ends.
 */
async function handlerFailures(logDir: string): Promise<string> {
  const lines: string[] = [];
  for (const name of (await readdir(logDir).catch(() => [])).sort()) {
    const text = await readFile(join(logDir, name), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (line.includes('HTTP handler failed')) lines.push(`${name}: ${line}`);
    }
  }
  return lines.length === 0 ? 'no HTTP handler failed' : lines.slice(0, 20).join('\n');
}

// Seed 4 draws a full disk and membership changes (one removed the leader when tried), where
// 0x5eed drew neither; timing still varies from run to run.
const seed = Number(process.env.CHAOS_SEED ?? 4);
const kinds = [
  'kill',
  'pause',
  'partition',
  'network',
  'clock',
  'full-disk',
  'membership',
  'transfer',
] as const;

test('30 s of faults on 3 nodes: no violation', { timeout: 240_000 }, async () => {
  const out = await mkdtemp(join(tmpdir(), 'abcast-chaos-test-'));
  try {
    const { summary, result } = await runChaos({
      nodeCount: 3,
      seconds: 30,
      seed,
      kinds,
      out,
      ...chaosTimings,
      leaderRemoval: true,
      verbose: false,
    });
    const replay = `replay: npm run chaos -- --nodes 3 --seconds 30 --seed ${seed} --faults ${kinds.join(',')} --out DIR`;
    if (result.violations.length > 0) {
      const failures = await handlerFailures(join(out, 'logs'));
      assert.deepEqual(result.violations, [], `${JSON.stringify(summary)}\n${failures}\n${replay}`);
    }
    assert.equal(summary.violations, 0);
    // The nemesis really ran: faults of more than one kind. How many fit in 30 s depends on the
    // machine (a membership change or a full disk takes longer on a loaded one): a bound of 5
    // held until a clean-clone CI run on a slow day got 4 (a full disk, two membership
    // changes, network faults) and no violation.
    const injected = Object.values(summary.faults).reduce((sum, count) => sum + count, 0);
    const kindsInjected = Object.values(summary.faults).filter((count) => count > 0).length;
    assert.ok(
      injected >= 3 && kindsInjected >= 2,
      `faults were injected: ${JSON.stringify(summary.faults)}`,
    );
    assert.ok(summary.acknowledged > 100, `the workload ran: ${summary.acknowledged} acknowledged`);
    assert.ok(summary.barriers > 0, 'barrier reads ran');
    assert.match(summary.verify, /^\d nodes agree on positions \d+\.\.\d+$/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
