// `abcast certs --days` ends within the dates a certificate can hold (to 9999-12-31, RFC 5280
// §4.1.2.5): a longer validity is refused naming the flag, before any file is written,
// where it used to write a CA whose end date no TLS library reads ("Bad time value").
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createCa } from '../../src/cli/certificates.ts';

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
