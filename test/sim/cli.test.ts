// The simulator's command line: seeds in decimal or hex, every bad flag refused with one
// clear line, a hint to run --help, and exit status 2; --help prints the flags and exits 0
// without running anything; a passing run exits 0, a violation exits 1 and prints the
// replay command, a sweep prints its throughput, and --trace prints one line per event.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { parseArgs } from '../../src/sim/cli.ts';
import { CliError, parseSeed } from '../../src/sim/cli-flags.ts';

const root = new URL('../../', import.meta.url);

function sim(...args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/sim/cli.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('seeds parse in decimal and hex, within u32', () => {
  assert.equal(parseSeed('42'), 42);
  assert.equal(parseSeed('0x2A'), 42);
  assert.equal(parseSeed('0xffffffff'), 0xffffffff);
  for (const bad of ['', '-1', '1.5', '0x', '0x1ffffffff', '4294967296', 'seed', '1e3']) {
    assert.throws(() => parseSeed(bad), CliError, bad);
  }
});

test('flags parse into one run or a sweep', () => {
  assert.deepEqual(parseArgs(['--seed', '0x10', '--trace', '--nodes', '5']), {
    seed: 16,
    count: null,
    from: 1,
    trace: true,
    nodeCount: 5,
    unsafe: null,
    profile: 'default',
    clients: 'mixed',
    faultPhaseMs: 8_000,
    walSegmentBytes: null,
  });
  const sweep = parseArgs([
    '--seeds',
    '20',
    '--from',
    '7',
    '--unsafe',
    'countStaleVotes',
    '--profile',
    'elections',
    '--clients',
    'plain',
    '--ms',
    '900',
    '--wal-segment-bytes',
    '4096',
  ]);
  assert.equal(sweep.seed, null);
  assert.equal(sweep.from, 7);
  assert.equal(sweep.count, 20);
  assert.equal(sweep.unsafe, 'countStaleVotes');
  assert.equal(sweep.profile, 'elections');
  assert.equal(sweep.clients, 'plain');
  assert.equal(sweep.faultPhaseMs, 900);
  assert.equal(sweep.walSegmentBytes, 4096);
});

test('bad flags are refused with a CliError', () => {
  const bad = [
    [],
    ['--seed', '1', '--seeds', '2'],
    ['--seed'],
    ['--seed', 'x'],
    ['--seeds', '0'],
    ['--seeds', '2', '--trace'],
    ['--seed', '1', '--nodes', '4'],
    ['--seed', '1', '--unsafe', 'fast'],
    ['--seed', '1', '--profile', 'wild'],
    ['--seed', '1', '--wal-segment-bytes', '2048'],
    ['--seed', '1', '--clients', 'few'],
    ['--seed', '1', '--ms', '0'],
    ['--seed', '1', '--verbose'],
  ];
  for (const argv of bad) assert.throws(() => parseArgs(argv), CliError, argv.join(' '));
});

test('a bad flag exits 2 with one line on stderr and a hint to run --help', () => {
  const cases = [
    { argv: ['--seed', '1', '--nodes', '4'], line: 'sim: --nodes takes 3 or 5' },
    { argv: ['--seed', '1', '--bogus'], line: 'sim: unknown flag "--bogus"' },
  ];
  for (const { argv, line } of cases) {
    const result = sim(...argv);
    assert.equal(result.status, 2);
    assert.equal(result.stderr, `${line}\nrun with --help for the flags\n`);
    assert.equal(result.stdout, '');
  }
});

test('--help prints the flags and exits 0, even beside other flags', () => {
  for (const argv of [['--help'], ['-h'], ['--seed', 'x', '--help']]) {
    const result = sim(...argv);
    assert.equal(result.status, 0);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^npm run sim -- /);
    for (const flag of ['--seeds', '--unsafe', '--profile', '--wal-segment-bytes']) {
      assert.ok(result.stdout.includes(flag), flag);
    }
  }
});

test('a violation exits 1 and prints the property and its replay command', () => {
  const result = sim('--seed', '1', '--unsafe', 'forgetVoteOnRestart');
  assert.equal(result.status, 1);
  assert.match(result.stdout, /property violated: vote durability/);
  assert.match(
    result.stdout,
    /replay: npm run sim -- --seed 0x1 --unsafe forgetVoteOnRestart --trace/,
  );
});

test('a sweep prints seeds/s and steps/s and counts violations', () => {
  const result = sim('--seeds', '2', '--from', '0x1', '--unsafe', 'forgetVoteOnRestart');
  assert.equal(result.status, 1);
  assert.match(result.stdout, /2 seeds from 0x1 in [0-9.]+ s: [0-9.]+ seeds\/s, \d+ steps\/s/);
  assert.match(result.stdout, /2 violations/);
});

test('a passing run exits 0; --trace prints one line per event', () => {
  const result = sim('--seed', '2', '--profile', 'calm', '--ms', '500', '--trace');
  assert.equal(result.status, 0, result.stdout.slice(-2000));
  const lines = result.stdout.trimEnd().split('\n');
  assert.ok(lines.length > 20);
  assert.match(lines[0] as string, /^ +0 profile=calm/);
  assert.ok(lines.some((line) => / n\d starts \(incarnation 1\)/.test(line)));
  assert.match(lines.at(-1) as string, /seed 0x2: ok/);
});
