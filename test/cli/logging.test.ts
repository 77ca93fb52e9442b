// Log output as an operator sees it. The start-up filter, on a fake clock: a peer that was
// never reached is a debug line during the grace period and a warning after it, or once its
// link had been open. Then two real `abcast start` processes, the second started only after
// the first logged that it cannot reach it: the first (piped, so JSON) shows that as a debug
// line and no warning, every line parses as JSON; the second (`--log-format pretty`) prints
// coloured text lines with the node's name.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  type ProcessLogger,
  prettyWanted,
  quietStartup,
  startupGraceMs,
} from '../../src/cli/logging.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { kill, spawnCli } from './helpers.ts';

function recorder(): { logger: ProcessLogger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (_fields: Readonly<Record<string, unknown>>, message: string) =>
    lines.push(`${level} ${message}`);
  return {
    lines,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  };
}

test('a peer not up yet is debug during the grace period, a warning after it', () => {
  let nowMs = 1000;
  const { logger, lines } = recorder();
  const quiet = quietStartup(logger, { startedMs: 1000, nowMs: () => nowMs });
  quiet.warn({ peer: 'n2', reason: 'ECONNREFUSED' }, 'transport link down');
  quiet.warn({ remote: 'x' }, 'transport refused a connection');
  quiet.info({ peer: 'n2' }, 'transport link open');
  quiet.warn({ peer: 'n2' }, 'transport link down');
  quiet.warn({ peer: 'n3' }, 'transport link down');
  nowMs = 1000 + startupGraceMs;
  quiet.warn({ peer: 'n4' }, 'transport link down');
  quiet.error({}, 'storage failed');
  assert.deepEqual(lines, [
    'debug transport link down (peer not up yet)',
    'warn transport refused a connection',
    'info transport link open',
    'warn transport link down',
    'debug transport link down (peer not up yet)',
    'warn transport link down',
    'error storage failed',
  ]);
});

test('auto is pretty on a terminal only; pretty and json are what they say', () => {
  assert.equal(prettyWanted('auto', true), true);
  assert.equal(prettyWanted('auto', false), false);
  assert.equal(prettyWanted('pretty', false), true);
  assert.equal(prettyWanted('json', true), false);
});

test('a starting node logs unreachable peers as debug, in JSON when piped; pretty on request', {
  timeout: 60_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-logs-'));
  const [peer1, peer2, http1, http2] = await freePorts(4);
  const peers = `n1=127.0.0.1:${peer1},n2=127.0.0.1:${peer2}`;
  const common = ['--peers', peers, '--log-level', 'debug', '--segment-bytes', String(1 << 20)];
  const first = spawnCli([
    'start',
    '--id',
    'n1',
    '--data',
    join(root, 'n1'),
    '--listen',
    `127.0.0.1:${peer1}`,
    '--http',
    `127.0.0.1:${http1}`,
    ...common,
  ]);
  let second: ReturnType<typeof spawnCli> | null = null;
  try {
    await waitFor(() => first.stdout().includes('peer not up yet'), 'n1 tries n2', 20_000);
    second = spawnCli([
      'start',
      '--id',
      'n2',
      '--data',
      join(root, 'n2'),
      '--listen',
      `127.0.0.1:${peer2}`,
      '--http',
      `127.0.0.1:${http2}`,
      '--log-format',
      'pretty',
      ...common,
    ]);
    await waitFor(() => first.stdout().includes('"transport link open"'), 'n1 reaches n2', 20_000);
    await waitFor(() => second!.stdout().includes('role changed'), 'n2 logs a role', 20_000);
    const records = first
      .stdout()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string; name: string });
    assert.ok(records.length > 0);
    assert.ok(records.every((record) => record.name === 'n1'));
    const warnings = records.filter((record) => record.level >= 40);
    assert.deepEqual(warnings, [], 'no warning while the peers come up');
    assert.ok(records.some((record) => record.level === 20 && /peer not up yet/.test(record.msg)));
    const pretty = second.stdout();
    const esc = String.fromCharCode(27);
    assert.ok(pretty.includes(`${esc}[32mINFO${esc}[39m (n2)`), pretty.slice(0, 400));
    assert.doesNotMatch(pretty, /^\{"level"/m);
  } finally {
    await kill(first);
    if (second !== null) await kill(second);
    await rm(root, { recursive: true, force: true });
  }
});
