// `abcast token create` into an --auth path that cannot be written fails as a CliError
// naming that path, not the raw error of the scratch file it writes first and renames.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createIdentity } from '../../src/cli/commands/auth-file.ts';
import { CliError } from '../../src/cli/commands/errors.ts';

test('an auth file in a directory that does not exist is named in the error', async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-token-file-'));
  const authPath = join(root, 'missing', 'auth.json');
  try {
    await assert.rejects(
      createIdentity({ authPath, name: 'reader', role: 'read', withToken: true, replace: false }),
      (error: unknown) => {
        assert.ok(error instanceof CliError, `a CliError, not ${String(error)}`);
        assert.ok(
          error.message.startsWith(`cannot write the auth file ${authPath}: `),
          error.message,
        );
        return true;
      },
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
