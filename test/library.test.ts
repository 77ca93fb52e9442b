// The package as a user installs it: `import { startNode } from 'abcast'` resolves through
// package.json "exports" to the built JavaScript, with no TypeScript loader.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

test("import { startNode } from 'abcast' works from plain Node", () => {
  const output = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "import('abcast').then((m) => console.log(typeof m.startNode, typeof m.BroadcastError))",
    ],
    { encoding: 'utf8', execArgv: [] } as Parameters<typeof execFileSync>[2] & { encoding: 'utf8' },
  );
  assert.equal(output.trim(), 'function function');
});

test("import { connect } from 'abcast/client' works from plain Node", () => {
  const output = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "import('abcast/client').then((m) => console.log(typeof m.connect))",
    ],
    { encoding: 'utf8' },
  );
  assert.equal(output.trim(), 'function');
});
