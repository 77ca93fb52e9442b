// The retention and store flags of `abcast start`: durations and sizes parse with their
// units, forever is the default and refuses limits beside it, and a mistake is one CliError
// naming the flag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError } from '../../src/cli/commands/errors.ts';
import {
  parseDurationMs,
  parseSizeBytes,
  streamSettings,
} from '../../src/cli/commands/stream-flags.ts';

test('durations and sizes parse with their units', () => {
  assert.equal(parseDurationMs('retention-age', '7d'), 7 * 86_400_000);
  assert.equal(parseDurationMs('retention-age', '90m'), 5_400_000);
  assert.equal(parseDurationMs('retention-age', '500ms'), 500);
  assert.equal(parseSizeBytes('retention-bytes', '50GiB'), 50 * 2 ** 30);
  assert.equal(parseSizeBytes('retention-bytes', '10GB'), 10e9);
  assert.equal(parseSizeBytes('retention-bytes', '4096'), 4096);
  assert.throws(() => parseDurationMs('retention-age', '7'), /--retention-age/);
  assert.throws(() => parseSizeBytes('retention-bytes', '5 parsecs'), /--retention-bytes/);
});

test('forever by default; limits from flags or the config file; no forever beside a limit', () => {
  assert.deepEqual(streamSettings({}, {}).retention, { ageMs: null, bytesMax: null });
  const limited = streamSettings({ retentionAge: '1h' }, { retentionBytes: '1MiB' });
  assert.deepEqual(limited.retention, { ageMs: 3_600_000, bytesMax: 1 << 20 });
  assert.throws(
    () => streamSettings({ retention: 'forever', retentionAge: '1d' }, {}),
    (error: unknown) => error instanceof CliError && /forever/.test(error.message),
  );
  assert.throws(() => streamSettings({ retention: '7d' }, {}), CliError);
  const peers = streamSettings({ httpPeers: 'n2=http://127.0.0.1:8002,http://h:9' }, {});
  assert.deepEqual(peers.httpPeers, ['http://127.0.0.1:8002/', 'http://h:9/']);
});

test('--retention-topic gives topics an age of their own, or forever', () => {
  const flags = streamSettings({ retentionTopic: ['orders=30d', 'audit=forever'] }, {});
  assert.deepEqual(flags.retention.topics, { orders: 30 * 86_400_000, audit: null });
  const config = streamSettings({}, { retentionTopics: { 'a=b': '1h' } });
  assert.deepEqual(config.retention.topics, { 'a=b': 3_600_000 });
  assert.equal(streamSettings({}, {}).retention.topics, undefined);
  assert.throws(() => streamSettings({ retentionTopic: ['orders'] }, {}), /TOPIC=AGE/);
  assert.throws(() => streamSettings({ retentionTopic: ['orders=soon'] }, {}), CliError);
  assert.throws(
    () => streamSettings({ retentionTopic: ['orders=1d', 'orders=2d'] }, {}),
    /orders twice/,
  );
  assert.throws(() => streamSettings({ retentionTopic: ['$abcast/retention=1d'] }, {}), CliError);
});
