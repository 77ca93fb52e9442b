// Runs every scenario script in test/scenarios against real RaftCore instances and proves that
// each transcript matches, line for line, the reviewed expectation stored in the file.
// `UPDATE=1 npm test -- scenarios` rewrites the expectations instead; review that diff.
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadScenario, renderScenario, runScenario } from './scenario-runner.ts';

const scenarioDirectory = fileURLToPath(new URL('../scenarios/', import.meta.url));
const updating = process.env.UPDATE === '1';

const names = readdirSync(scenarioDirectory)
  .filter((name) => name.endsWith('.txt'))
  .sort();

test('the scenario directory holds scripts', () => {
  assert.ok(names.length > 0, `no scenarios in ${scenarioDirectory}`);
});

for (const name of names) {
  test(`scenario ${name}`, () => {
    const path = join(scenarioDirectory, name);
    const script = loadScenario(path, name);
    const transcript = runScenario(script);
    if (updating) {
      writeFileSync(path, renderScenario(script, transcript));
      return;
    }
    assert.ok(script.expected !== null, `${name} has no expected part; run with UPDATE=1`);
    assert.equal(transcript, script.expected, `${name}: the transcript differs`);
  });
}
