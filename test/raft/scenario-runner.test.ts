// Tests of the scenario machinery itself: scripts parse and render back unchanged, a bad script
// fails with its file and line, and the safety checks and the in-memory disk reject what they
// must. Small inline scripts drive real cores, so these also pin the transcript format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry } from '../../src/raft/types.ts';
import { DeliveryLedger, logMismatch, type TermView } from './scenario-checks.ts';
import { formatEntries, formatMessage } from './scenario-format.ts';
import { parseScenario, renderScenario, runScenario } from './scenario-runner.ts';
import { ContractViolation, ScenarioStorage } from './scenario-storage.ts';

function run(lines: readonly string[]): string {
  return runScenario(parseScenario('inline.txt', ['# inline', ...lines].join('\n')));
}

function entry(index: number, term: number): Entry {
  return { index, term, kind: 'normal', data: new TextEncoder().encode(`e${index}`) };
}

test('a script renders back to itself with its transcript as the expectation', () => {
  const text = '# header\ncluster 1\n\n# a comment\nstatus\n';
  const script = parseScenario('round.txt', text);
  const transcript = runScenario(script);
  const rendered = renderScenario(script, transcript);
  const reparsed = parseScenario('round.txt', rendered);
  assert.equal(reparsed.expected, transcript);
  assert.deepEqual(reparsed.header, ['# header']);
  assert.equal(renderScenario(reparsed, transcript), rendered);
  assert.match(transcript, /^> cluster 1\n1: follower term=1 .*\n\n# a comment\n> status\n/);
});

test('a script without a header comment is refused', () => {
  assert.throws(() => parseScenario('bare.txt', 'cluster 3\n'), /bare\.txt:1: .*# comment/);
});

test('script mistakes name the file and line', () => {
  assert.throws(() => run(['cluster 3', 'frobnicate 1']), /inline\.txt:3: unknown command/);
  assert.throws(() => run(['cluster 3', 'propose 1 data=x colour=red']), /unknown option colour/);
  assert.throws(() => run(['tick 1']), /the first command is cluster/);
  assert.throws(() => run(['cluster 3', 'cluster 3']), /only one per scenario/);
  assert.throws(() => run(['cluster 3', 'deliver type=Apend']), /unknown message type Apend/);
  assert.throws(() => run(['cluster 3', 'crash 2', 'propose 2 data=x']), /node 2 is down/);
  assert.throws(() => run(['cluster 3', 'compact 1 9']), /compact: index must be in/);
  assert.throws(() => run(['cluster 3', 'tick x']), /natural number/);
});

test('a single node elects itself and delivers its proposal', () => {
  const transcript = run(['cluster 1', 'campaign 1', 'propose 1 data=hello']);
  assert.match(transcript, /1: leader term=2 vote=1 leader=1/);
  assert.match(transcript, /1: propose hello -> 3\/2\n1: deliver 3\/2 hello$/);
  assert.doesNotMatch(transcript, /!!/);
});

test('the ledger reports two different entries delivered at one index', () => {
  const ledger = new DeliveryLedger();
  assert.equal(ledger.record('1', { index: 3, term: 2, content: 'data a' }, 2), null);
  assert.equal(ledger.record('2', { index: 3, term: 2, content: 'data a' }, 3), null);
  const problem = ledger.record('3', { index: 3, term: 3, content: 'noop' }, 3);
  assert.match(problem ?? '', /agreement: 3 delivered 3\/3 noop but 1 delivered 3\/2 data a/);
  assert.deepEqual(
    ledger.requiredOfLeader(3, 0).map((fact) => fact.index),
    [3],
  );
  assert.deepEqual(ledger.requiredOfLeader(2, 0), []);
});

test('log comparison checks only the indexes both logs still hold', () => {
  const view = (snapshotIndex: number, terms: number[]): TermView => ({
    snapshotIndex,
    lastIndex: snapshotIndex + terms.length,
    termAt: (index) => terms[index - snapshotIndex - 1],
  });
  assert.equal(logMismatch(view(0, [1, 2, 2]), view(2, [2])), null);
  assert.match(logMismatch(view(0, [1, 2]), view(0, [1, 3])) ?? '', /at 2 is 2, the core's is 3/);
  assert.match(logMismatch(view(0, [1]), view(0, [1, 1])) ?? '', /ends at 1, the core's at 2/);
});

test('the in-memory disk refuses gaps and backward terms, and keeps a matching suffix', () => {
  const storage = new ScenarioStorage();
  storage.append([entry(1, 1), entry(2, 1), entry(3, 2)]);
  assert.throws(() => storage.append([entry(5, 2)]), ContractViolation);
  assert.throws(() => storage.append([entry(2, 3), entry(3, 2)]), ContractViolation);
  const overwritten = new ScenarioStorage();
  overwritten.append([entry(1, 1), entry(2, 1), entry(3, 1)]);
  assert.equal(formatEntries(overwritten.append([entry(2, 2)])), '2/1 e2, 3/1 e3');
  const config = { voters: ['1'], learners: [] };
  storage.installSnapshot({ meta: { index: 2, term: 1, config }, data: new Uint8Array(0) });
  assert.equal(storage.snapshotIndex, 2);
  assert.deepEqual(
    storage.entries.map((kept) => kept.index),
    [3],
  );
  storage.installSnapshot({ meta: { index: 3, term: 5, config }, data: new Uint8Array(0) });
  assert.deepEqual(storage.entries, []);
});

test('the hard state never goes back in term and never changes a cast vote', () => {
  const storage = new ScenarioStorage();
  storage.writeHardState({ term: 2, vote: '1', commit: 0 });
  assert.throws(() => storage.writeHardState({ term: 1, vote: null, commit: 0 }), /term 1 < 2/);
  assert.throws(() => storage.writeHardState({ term: 2, vote: '3', commit: 0 }), /vote changed/);
  storage.writeHardState({ term: 3, vote: '3', commit: 0 });
});

test('messages print in one line with their fields in a fixed order', () => {
  const line = formatMessage({
    type: 'AppendResponse',
    from: '3',
    to: '1',
    term: 2,
    success: false,
    index: 7,
    hintIndex: 4,
    hintTerm: 1,
  });
  assert.equal(line, '3->1 AppendResponse term=2 reject index=7 hint=4/1');
  const entries = Array.from({ length: 9 }, (_, position) => entry(position + 1, 1));
  assert.equal(formatEntries(entries), '1/1 e1, 2/1 e2, 3/1 e3, 4/1 e4, ..., 9/1 e9 (9)');
});
