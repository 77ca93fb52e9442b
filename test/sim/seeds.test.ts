// Every regression seed in test/sim/seeds.txt replays as recorded: seeds without expect= run
// clean, and seeds with it fail on exactly that property (so a checker that stops catching
// an unsafe variant is noticed).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { runSeed } from '../../src/sim/run.ts';
import { formatSeed } from '../../src/sim/violation.ts';
import { parseSeedFile } from './seed-file.ts';

const seeds = parseSeedFile(readFileSync(new URL('./seeds.txt', import.meta.url), 'utf8'));

test('seeds.txt has seeds', () => {
  assert.ok(seeds.length >= 10);
});

for (const entry of seeds) {
  const settings = [
    entry.unsafe === null ? '' : ` unsafe=${entry.unsafe}`,
    entry.profile === 'default' ? '' : ` profile=${entry.profile}`,
    entry.disabled.length === 0 ? '' : ` off=${entry.disabled.join(',')}`,
  ].join('');
  test(`seed ${formatSeed(entry.seed)}${settings} (line ${entry.line}): ${entry.comment}`, () => {
    const result = runSeed({
      seed: entry.seed,
      nodeCount: entry.nodeCount,
      profile: entry.profile,
      faultPhaseTicks: entry.faultPhaseTicks,
      unsafe: entry.unsafe,
      disabledProperties: entry.disabled,
    });
    if (entry.expect === null) {
      assert.equal(result.violation, null, result.violation?.message);
    } else {
      assert.ok(result.violation !== null, `expected a ${entry.expect} violation, the run passed`);
      assert.equal(result.violation.property, entry.expect, result.violation.message);
    }
  });
}
