// Mistakes given to `abcast certs` are CliErrors naming the flag: a --days that ends past
// the dates a certificate can hold (9999-12-31, RFC 5280 §4.1.2.5) is refused before any
// file is written, where it used to write a CA whose end date no TLS library reads ("Bad
// time value"); a --dir that is a file says so, where the line was mkdir's own EEXIST.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createCa } from '../../src/cli/certificates.ts';
import { CliError } from '../../src/cli/commands/errors.ts';

test('--days past the year 9999 is refused; up to it the dates read back', async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-certs-days-'));
  try {
    const tooLong = join(root, 'too-long');
    await assert.rejects(createCa(tooLong, 99_999_999), /--days 99999999 ends past 9999-12-31/);
    await assert.rejects(access(tooLong), 'nothing was written');
    // About 7,900 years from now: still a date the certificate holds.
    const paths = await createCa(join(root, 'long'), 2_900_000);
    const certificate = new X509Certificate(await readFile(paths.certificatePath));
    const endYear = new Date(certificate.validTo).getUTCFullYear();
    assert.ok(endYear > 9000 && endYear <= 9999, `ends in ${endYear}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a --dir that is a file is named in the error', async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-certs-dir-'));
  try {
    const file = join(root, 'file');
    await writeFile(file, 'not a directory');
    await assert.rejects(createCa(file, 30), (error: unknown) => {
      assert.ok(error instanceof CliError, `a CliError, not ${String(error)}`);
      assert.ok(error.message.startsWith(`--dir ${file} cannot hold the CA: `), error.message);
      return true;
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
