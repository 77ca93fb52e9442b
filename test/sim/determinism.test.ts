// A seed reproduces a run bit for bit: two runs of one seed have the same trace fingerprint,
// statistics and trace lines (and tracing does not change the run), different seeds differ,
// and a violation replays at the same step with the same report.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashString } from '../../src/sim/hash.ts';
import { runSeed } from '../../src/sim/run.ts';

function traced(seed: number): { lines: string[]; fingerprint: number } {
  const lines: string[] = [];
  const result = runSeed({ seed, faultPhaseTicks: 300, traceSink: (line) => lines.push(line) });
  return { lines, fingerprint: result.fingerprint };
}

test('one seed, one run: fingerprint, statistics and trace lines are identical', () => {
  for (const seed of [7, 0xdeadbeef]) {
    const first = runSeed({ seed, faultPhaseTicks: 300 });
    const second = runSeed({ seed, faultPhaseTicks: 300 });
    assert.equal(first.fingerprint, second.fingerprint);
    assert.deepEqual(first.stats, second.stats);
    assert.deepEqual(first.mix, second.mix);
    const withTrace = traced(seed);
    assert.equal(withTrace.fingerprint, first.fingerprint, 'tracing does not change the run');
    assert.ok(withTrace.lines.length > 100, 'a trace has a line per event');
    const again = traced(seed);
    assert.equal(hashString(again.lines.join('\n')), hashString(withTrace.lines.join('\n')));
  }
});

test('different seeds explore different runs', () => {
  const fingerprints = new Set(
    [1, 2, 3, 4, 5].map((seed) => runSeed({ seed, faultPhaseTicks: 200 }).fingerprint),
  );
  assert.equal(fingerprints.size, 5);
});

test('a violation replays at the same step with the same report', () => {
  const run = () =>
    runSeed({
      seed: 2,
      unsafe: 'grantTwoVotesPerTerm',
      profile: 'elections',
      disabledProperties: ['vote durability'],
    });
  const first = run();
  const second = run();
  assert.ok(first.violation !== null, 'the unsafe variant is caught');
  assert.equal(second.violation?.message, first.violation.message);
  assert.equal(second.violation?.place.step, first.violation.place.step);
});
