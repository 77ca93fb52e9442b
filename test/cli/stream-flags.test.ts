// The retention and store flags of `abcast start`: durations and sizes parse with their
// units, forever is the default and refuses limits beside it, and a mistake is one CliError
// naming the flag (also a duration that rounds to no time at all, a size past 2^53 bytes,
// and a backfill token that could not go in a header).
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

test('a duration below a millisecond, or past 2^53 units, is a mistake naming the flag', () => {
  assert.equal(parseDurationMs('retention-age', '0.5ms'), 1);
  assert.throws(() => parseDurationMs('retention-age', '0.4ms'), /--retention-age/);
  // The node asserts a positive age: this reached it as 0 and stopped the start.
  assert.throws(() => streamSettings({ retentionTopic: ['orders=0.0001ms'] }, {}), CliError);
  assert.throws(() => parseDurationMs('retention-age', '99999999999999999999d'), CliError);
  assert.throws(() => parseSizeBytes('retention-bytes', '99999999TiB'), /--retention-bytes/);
});

test('a backfill token is checked as a client token is', () => {
  const token = 'abcast_fjlkf4dLnixHaK21QKtjHFJ3J0vpR4S_nzajORB1UsM';
  assert.equal(streamSettings({ backfillToken: token }, {}).backfillToken, token);
  assert.equal(streamSettings({}, {}).backfillToken, null);
  for (const bad of ['a b', 'a\nb']) {
    assert.throws(() => streamSettings({ backfillToken: bad }, {}), /--backfill-token/);
    assert.throws(() => streamSettings({}, { backfillToken: bad }), /--backfill-token/);
  }
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
