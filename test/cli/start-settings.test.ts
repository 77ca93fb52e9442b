// `abcast start` refuses, before anything starts, settings that would start a node that can
// never work or fail later with a message naming no flag: two members on one address (each
// reaches the same node, which refuses the one it is not) and a request timeout beyond what
// a timer holds (node:http refused it with its own RangeError), a WAL segment size the
// storage refuses (its message named its option, not the flag), a message store segment
// smaller than a block (taken, it made three files of every message), --force-new-cluster
// with --join, which ask for opposite things (it started, --join silently ignored), and a
// binary idle timeout or stream stall timeout that is no positive integer or beyond what a
// timer holds. Each is a
// CliError naming the flag; the bounds themselves still start.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError } from '../../src/cli/commands/errors.ts';
import { parsePeers, startSettings } from '../../src/cli/commands/start.ts';
import { streamSettings } from '../../src/cli/commands/stream-flags.ts';

const base = {
  id: 'n1',
  data: '/tmp/abcast-start-settings',
  listen: '127.0.0.1:7001',
  http: '127.0.0.1:8001',
  peers: 'n1=127.0.0.1:7001,n2=127.0.0.1:7002',
};

/** `run` rejects with a CliError whose message matches `says`. */
async function refused(run: () => Promise<unknown>, says: RegExp): Promise<void> {
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof CliError, `a CliError, not ${String(error)}`);
    assert.match(error.message, says);
    return true;
  });
}

test('--peers gives each member an address of its own', async () => {
  assert.deepEqual(parsePeers('n1=127.0.0.1:7001,n2=127.0.0.1:7002'), {
    n1: '127.0.0.1:7001',
    n2: '127.0.0.1:7002',
  });
  assert.throws(
    () => parsePeers('n1=127.0.0.1:7001,n2=127.0.0.1:7001'),
    /--peers gives 127\.0\.0\.1:7001 to both n1 and n2/,
  );
  assert.throws(() => parsePeers({ n1: '10.0.0.1:7001', n2: '10.0.0.1:7001' }), CliError);
  await refused(
    () =>
      startSettings({ ...base, peers: 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7002' }),
    /--peers gives 127\.0\.0\.1:7002 to both n2 and n3/,
  );
});

test('--request-timeout-ms is at most 2^31 - 1', async () => {
  const longest = await startSettings({ ...base, requestTimeoutMs: '2147483647' });
  assert.equal(longest.requestTimeoutMs, 2_147_483_647);
  for (const value of ['2147483648', '9007199254740991']) {
    await refused(
      () => startSettings({ ...base, requestTimeoutMs: value }),
      /--request-timeout-ms is at most 2147483647/,
    );
  }
});

for (const [flag, key] of [
  ['binary-idle-timeout-ms', 'binaryIdleTimeoutMs'],
  ['stream-stall-timeout-ms', 'streamStallTimeoutMs'],
] as const) {
  test(`--${flag} is a positive integer, at most 2^31 - 1`, async () => {
    assert.equal((await startSettings(base))[key], null);
    const longest = await startSettings({ ...base, [key]: '2147483647' });
    assert.equal(longest[key], 2_147_483_647);
    for (const value of ['0', '-1', '1.5', 'five']) {
      await refused(() => startSettings({ ...base, [key]: value }), new RegExp(`--${flag}`));
    }
    await refused(
      () => startSettings({ ...base, [key]: '2147483648' }),
      new RegExp(`--${flag} is at most 2147483647`),
    );
  });
}

test('--segment-bytes is within what the WAL takes', async () => {
  assert.equal((await startSettings({ ...base, segmentBytes: '4096' })).segmentBytes, 4096);
  for (const value of ['4095', String(2 ** 30 + 1)]) {
    await refused(
      () => startSettings({ ...base, segmentBytes: value }),
      /--segment-bytes takes an integer from 4096 to 1073741824/,
    );
  }
});

test('--store-segment-bytes is no less than a block of the store', async () => {
  const least = await startSettings({ ...base, storeSegmentBytes: '4KiB' });
  assert.equal(least.stream.storeSegmentBytes, 4096);
  // The store took it: every message then became a segment of three files of its own.
  for (const value of ['1', '4095']) {
    await refused(
      () => startSettings({ ...base, storeSegmentBytes: value }),
      new RegExp(`^--store-segment-bytes takes a size of at least 4096 bytes; not "${value}"$`),
    );
  }
  // A config file's storeSegmentBytes is held to the same floor.
  assert.throws(() => streamSettings({}, { storeSegmentBytes: 1 }), /--store-segment-bytes/);
});

test('--force-new-cluster does not go with --join', async () => {
  await refused(
    () => startSettings({ ...base, forceNewCluster: true, join: true }),
    /--force-new-cluster and --join do not go together/,
  );
  assert.equal((await startSettings({ ...base, forceNewCluster: true })).join, false);
});
