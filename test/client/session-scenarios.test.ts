/**
 * Runs every scenario in test/client/scenarios against the real SessionChain (the SDK's
 * exactly-once rules, pure) and a model of the nodes' session table, and proves that each
 * transcript matches, line for line, the reviewed expectation stored in the file; the
 * runner also checks at-most-once delivery and the order of resolved broadcasts after every
 * step: only a scenario of a broken variant (`config unsafe=…`) breaks one, and it must.
 * `UPDATE=1 npm test -- session-scenarios` rewrites the expectations: review that diff.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseScenario, renderScenario, runScenario } from './session-scenario-runner.ts';

const scenarioDirectory = fileURLToPath(new URL('./scenarios/', import.meta.url));
const updating = process.env.UPDATE === '1';

const names = readdirSync(scenarioDirectory)
  .filter((name) => name.endsWith('.txt'))
  .sort();

test('the session scenario directory holds scripts', () => {
  assert.ok(names.length >= 6, `too few scenarios in ${scenarioDirectory}`);
});

for (const name of names) {
  test(`session scenario ${name}`, () => {
    const path = join(scenarioDirectory, name);
    const script = parseScenario(name, readFileSync(path, 'utf8'));
    const transcript = runScenario(script);
    if (updating) {
      writeFileSync(path, renderScenario(script, transcript));
      return;
    }
    assert.ok(script.expected !== null, `${name} has no expected part; run with UPDATE=1`);
    assert.equal(transcript, script.expected, `${name}: the transcript differs`);
    // Only a broken variant may break a property, and it must: that is what it is for.
    const unsafe = script.commands.some((line) => /^config .*unsafe=/.test(line));
    assert.equal(transcript.includes('\n!!'), unsafe, `${name}: properties broken: ${unsafe}`);
  });
}
