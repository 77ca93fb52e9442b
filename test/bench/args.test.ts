// The bench scripts' flags (bench/args.ts): --help asks for the usage whatever else is on the
// line, parseArgs' own errors and every refused value become one FlagError line naming the
// flag, and the number readers take plain decimal digits only. Then real scripts, spawned
// with --help or a bad flag only (nothing is measured): usage on stdout and exit 0, or one
// error line and a hint on stderr and exit 2, never a stack trace. Every bench script reads
// its flags through flagsOrExit, so the same holds for each.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  FlagError,
  integerAtLeast,
  nonNegativeInteger,
  oneOf,
  parseFlags,
  positiveInteger,
  positiveIntegers,
  positiveNumber,
} from '../../bench/args.ts';

const root = new URL('../../', import.meta.url);

const spec = {
  usage: 'node bench/example.ts [flags]',
  options: {
    runs: { type: 'string', default: '3' },
    out: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
  read: (values: { runs: string; out?: string; quick: boolean }) => ({
    runCount: positiveInteger('runs', values.runs),
    out: values.out ?? null,
    quick: values.quick,
  }),
} as const;

/** The FlagError message `argv` is refused with. */
function refusal(argv: readonly string[]): string {
  try {
    parseFlags(argv, spec);
  } catch (error) {
    assert.ok(error instanceof FlagError, String(error));
    assert.equal(error.code, 'BAD_FLAGS');
    return error.message;
  }
  assert.fail(`${argv.join(' ')} was taken`);
}

/** The FlagError message `read` throws for `text`. */
function refusalOf(read: (text: string) => unknown, text: string): string {
  assert.throws(() => read(text), FlagError, JSON.stringify(text));
  try {
    read(text);
  } catch (error) {
    return (error as FlagError).message;
  }
  return '';
}

describe('parseFlags', () => {
  it('reads flags and defaults into settings', () => {
    assert.deepEqual(parseFlags([], spec), {
      help: false,
      settings: { runCount: 3, out: null, quick: false },
    });
    assert.deepEqual(parseFlags(['--runs', '5', '--out=x.json', '--quick'], spec), {
      help: false,
      settings: { runCount: 5, out: 'x.json', quick: true },
    });
  });

  it('answers --help and -h without reading a value, even beside bad flags', () => {
    const explode = {
      ...spec,
      read: () => assert.fail('read is not called for --help'),
    };
    for (const argv of [['--help'], ['-h'], ['--runs', 'abc', '--help'], ['--bogus', '-h']]) {
      assert.deepEqual(parseFlags(argv, explode), { help: true }, argv.join(' '));
    }
    // After `--`, --help is an argument, not a flag.
    assert.equal(refusal(['--', '--help']), 'unexpected argument "--help": only flags are taken');
  });

  it('names an unknown flag', () => {
    assert.equal(refusal(['--bogus']), 'unknown flag --bogus');
    assert.equal(refusal(['--bogus=3']), 'unknown flag --bogus');
    assert.equal(refusal(['-x']), 'unknown flag -x');
    assert.equal(refusal(['--no-quick']), 'unknown flag --no-quick');
  });

  it('names a flag without its value, or a value given to a switch', () => {
    assert.equal(refusal(['--runs']), '--runs needs a value');
    assert.equal(
      refusal(['--runs', '-1']),
      '--runs needs a value (one that starts with "-" goes as --runs=VALUE)',
    );
    assert.equal(refusal(['--quick=yes']), '--quick takes no value');
    assert.equal(refusal(['stray']), 'unexpected argument "stray": only flags are taken');
  });

  it('passes on the errors of read', () => {
    assert.equal(refusal(['--runs', 'abc']), '--runs takes a positive integer, got "abc"');
    assert.equal(refusal(['--runs=-1']), '--runs takes a positive integer, got "-1"');
  });

  it('takes --no-NAME for a boolean flag only when the spec allows it', () => {
    const outcome = parseFlags(['--no-quick'], {
      ...spec,
      options: { ...spec.options, quick: { type: 'boolean', default: true } },
      allowNegative: true,
    });
    assert.deepEqual(outcome, { help: false, settings: { runCount: 3, out: null, quick: false } });
  });
});

describe('number readers', () => {
  it('positiveInteger takes plain digits from 1', () => {
    for (const [text, value] of [
      ['1', 1],
      ['42', 42],
      [' 7 ', 7],
      ['007', 7],
    ] as const) {
      assert.equal(positiveInteger('runs', text), value);
    }
    for (const text of [
      'abc',
      '-1',
      '1.5',
      '',
      ' ',
      '0',
      '1e3',
      '0x10',
      '+1',
      '9007199254740993',
    ]) {
      assert.equal(
        refusalOf((bad) => positiveInteger('runs', bad), text),
        `--runs takes a positive integer, got "${text}"`,
      );
    }
  });

  it('nonNegativeInteger and integerAtLeast take their floor and refuse below it', () => {
    assert.equal(nonNegativeInteger('answer-delay-ms', '0'), 0);
    assert.equal(nonNegativeInteger('answer-delay-ms', '20'), 20);
    for (const text of ['abc', '-1', '1.5', '']) {
      assert.equal(
        refusalOf((bad) => nonNegativeInteger('answer-delay-ms', bad), text),
        `--answer-delay-ms takes an integer ≥ 0, got "${text}"`,
      );
    }
    assert.equal(integerAtLeast('payload-bytes', '2', 2), 2);
    assert.equal(
      refusalOf((bad) => integerAtLeast('payload-bytes', bad, 2), '1'),
      '--payload-bytes takes an integer ≥ 2, got "1"',
    );
  });

  it('positiveIntegers takes a comma-separated list of them', () => {
    assert.deepEqual(positiveIntegers('in-flight', '1,16,128,10000'), [1, 16, 128, 10_000]);
    assert.deepEqual(positiveIntegers('in-flight', '1, 64'), [1, 64]);
    assert.deepEqual(positiveIntegers('in-flight', '5'), [5]);
    for (const text of ['', 'abc', '1,', ',1', '1,,2', '1,0', '1,-1', '1.5', '1;2']) {
      assert.equal(
        refusalOf((bad) => positiveIntegers('in-flight', bad), text),
        `--in-flight takes positive integers separated by commas, got "${text}"`,
      );
    }
  });

  it('positiveNumber takes a positive decimal', () => {
    assert.equal(positiveNumber('seconds', '0.5'), 0.5);
    assert.equal(positiveNumber('seconds', '3'), 3);
    for (const text of ['abc', '-1', '0', '0.0', '', '.5', '1e3', 'Infinity', '1.']) {
      assert.equal(
        refusalOf((bad) => positiveNumber('seconds', bad), text),
        `--seconds takes a positive number, got "${text}"`,
      );
    }
  });

  it('oneOf takes a name of its list', () => {
    assert.equal(oneOf('protocol', 'http', ['http', 'binary']), 'http');
    assert.equal(
      refusalOf((bad) => oneOf('protocol', bad, ['http', 'binary']), 'ftp'),
      '--protocol takes one of http, binary, got "ftp"',
    );
  });
});

interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A bench script run with `argv`; a bound on its time in case it starts measuring. */
function script(name: string, argv: readonly string[]): Promise<Ran> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', `bench/${name}.ts`, ...argv],
      { cwd: root, timeout: 30_000, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const status = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        done({ status, stdout, stderr });
      },
    );
  });
}

const hint = 'run with --help for the flags';

describe('bench scripts', () => {
  it('print their usage for --help and one line and a hint for a bad flag', async () => {
    const [help, bogus, badValue, noWorkload] = await Promise.all([
      script('floor', ['--help']),
      script('floor', ['--bogus']),
      script('floor', ['--seconds', 'abc']),
      script('storage', ['--only', 'no-such-workload']),
    ]);
    assert.equal(help.status, 0, help.stderr);
    assert.equal(help.stderr, '');
    assert.match(help.stdout, /^npm run bench:floor -- \[flags\]\n/);
    for (const flag of ['--in-flight LIST', '--seconds N', '--payload-bytes N', '--out FILE']) {
      assert.ok(help.stdout.includes(flag), flag);
    }
    assert.match(help.stdout, /\(default 1,16,128,10000\)/);
    for (const [ran, line] of [
      [bogus, 'error: unknown flag --bogus'],
      [badValue, 'error: --seconds takes a positive integer, got "abc"'],
      [noWorkload, 'error: --only matches no workload: "no-such-workload"'],
    ] as const) {
      assert.equal(ran.status, 2, ran.stderr);
      assert.equal(ran.stderr, `${line}\n${hint}\n`);
      assert.equal(ran.stdout, '');
    }
  });

  it('all read their flags through flagsOrExit, not parseArgs', () => {
    const flagless = new Set(['args.ts', 'cpu-profile.ts']);
    const scripts = readdirSync(new URL('bench/', root)).filter(
      (name) => name.endsWith('.ts') && !flagless.has(name),
    );
    assert.ok(scripts.length >= 15, scripts.join(' '));
    for (const name of scripts) {
      const text = readFileSync(new URL(`bench/${name}`, root), 'utf8');
      assert.ok(text.includes('flagsOrExit('), `${name} reads its flags through flagsOrExit`);
      assert.ok(!/\bparseArgs\(/.test(text), `${name} calls no parseArgs of its own`);
    }
  });
});
