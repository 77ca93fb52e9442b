// The simulator's command line: seeds in decimal or hex, every bad flag refused with one
// clear line and exit status 2, a passing run exits 0, a violation exits 1 and prints the
// replay command, and --trace prints one line per event.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { CliError, parseArgs, parseSeed } from '../../src/sim/cli.ts';

const root = new URL('../../', import.meta.url);

function sim(...args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/sim/cli.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
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
    mode: 'one',
    seed: 16,
    count: 1,
    trace: true,
    nodeCount: 5,
    unsafe: null,
    profile: 'default',
    faultPhaseTicks: 600,
  });
  const sweep = parseArgs([
    '--seeds',
    '20',
    '--from',
    '7',
    '--unsafe',
    'forgetVoteOnRestart',
    '--profile',
    'elections',
    '--ticks',
    '90',
  ]);
  assert.equal(sweep.mode, 'sweep');
  assert.equal(sweep.seed, 7);
  assert.equal(sweep.count, 20);
  assert.equal(sweep.unsafe, 'forgetVoteOnRestart');
  assert.equal(sweep.profile, 'elections');
  assert.equal(sweep.faultPhaseTicks, 90);
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
    ['--seed', '1', '--ticks', '0'],
    ['--seed', '1', '--verbose'],
  ];
  for (const argv of bad) assert.throws(() => parseArgs(argv), CliError, argv.join(' '));
});

test('a bad flag exits 2 with one line on stderr', () => {
  const result = sim('--seed', '1', '--nodes', '4');
  assert.equal(result.status, 2);
  assert.equal(result.stderr.trim().split('\n').length, 1);
  assert.match(result.stderr, /^sim: --nodes takes 3, 5 or 7/);
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

test('a sweep prints throughput and lists violations', () => {
  const result = sim('--seeds', '3', '--from', '0x1', '--unsafe', 'forgetVoteOnRestart');
  assert.equal(result.status, 1);
  assert.match(result.stdout, /3 seeds from 0x1 in [0-9.]+ s: [0-9.]+ seeds\/s, \d+ steps\/s/);
  assert.match(result.stdout, /3 violations:/);
});

test('a passing run exits 0; --trace prints one line per event', () => {
  const result = sim('--seed', '2', '--profile', 'calm', '--ticks', '60', '--trace');
  assert.equal(result.status, 0, result.stdout.slice(-2000));
  const lines = result.stdout.trimEnd().split('\n');
  assert.ok(lines.length > 50);
  assert.match(lines[0] as string, /^ +0 -- +world: profile=calm/);
  assert.ok(lines.some((line) => /n\d [FPCL]\/\d+ +send (Vote|PreVote) /.test(line)));
  assert.match(lines.at(-2) as string, /seed 0x2: ok/);
});
