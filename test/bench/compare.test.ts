// The race's pure parts (bench/compare): its flags are read as documented and bad ones are
// refused, and a fixed set of results renders to the tables, targets and chart expected —
// every row and level present, fsync called out, targets judged against their thresholds.
// Nothing here starts a server or times anything.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCompareArgs } from '../../bench/compare/args.ts';
import { decades, renderChart } from '../../bench/compare/chart.ts';
import { renderDoc } from '../../bench/compare/doc.ts';
import type { LoadResult } from '../../bench/compare/load.ts';
import { formatMs, throughputTable } from '../../bench/compare/render.ts';
import type { CompareResults, ResultRow } from '../../bench/compare/results.ts';
import { targetChecks } from '../../bench/compare/targets.ts';

const levels = [1, 16, 128, 10_000];

function run(inFlight: number, messagesPerSecond: number, p50Ms: number): LoadResult {
  return {
    inFlight,
    seconds: 10,
    acknowledged: messagesPerSecond * 10,
    messagesPerSecond,
    p50Ms,
    p99Ms: p50Ms * 4,
    maxMs: p50Ms * 10,
    errors: 0,
    firstError: null,
    clientCpuPercent: 30,
    serverCpuPercent: 110,
    loadAverage1m: 3.5,
  };
}

function row(id: string, fsync: boolean, rates: readonly number[], p50s: readonly number[]) {
  return {
    id,
    system: id.startsWith('abcast') ? 'abcast' : id,
    server: id.startsWith('abcast') ? 'abcast 0.1.0 (abc1234)' : `${id} 1.0`,
    client: `${id} client`,
    fsyncBeforeAck: fsync,
    durability: fsync ? 'fsynced first' : 'fsynced later',
    runs: levels.map((level, at) => run(level, rates[at]!, p50s[at]!)),
    failure: null,
  } as ResultRow;
}

const results: CompareResults = {
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:10:00.000Z',
  machine: {
    cpuModel: 'Test CPU',
    cores: 2,
    memoryGiB: 8,
    kernel: '6.1',
    node: '20.0.0',
    dataFileSystem: 'ext2/3/4 (/tmp)',
    nice: 10,
  },
  settings: {
    seconds: 10,
    warmupSeconds: 2,
    clusterWarmupSeconds: 5,
    inFlight: levels,
    payloadBytes: 256,
    postConnections: 128,
    catchUpMessages: 500_000,
  },
  loadAverage: { before: [1, 2, 3], after: [4, 5, 6] },
  rows: [
    row('etcd', true, [600, 1_800, 4_000, 3_000], [1.6, 8, 28, 2_400]),
    row('nats', false, [3_000, 14_000, 17_000, 12_000], [0.3, 1, 6, 700]),
    row('abcast-sdk-http', true, [700, 9_000, 80_000, 310_000], [0.9, 1.5, 1.4, 30]),
    row('abcast-sdk-binary', true, [900, 10_000, 50_000, 200_000], [0.55, 1.4, 2.1, 40]),
    {
      ...row('zookeeper', true, [0, 0, 0, 0], [0, 0, 0, 0]),
      runs: [],
      failure: 'java missing',
    },
  ],
  abcastPost: run(128, 9_000, 12),
  abcastCatchUp: { messages: 500_000, seconds: 0.8, messagesPerSecond: 625_000 },
  abcastFailure: null,
};

describe('bench:compare flags', () => {
  it('defaults to the whole race with the issue load levels, and writes the doc', () => {
    const settings = parseCompareArgs([]);
    assert.deepEqual(settings.only, ['etcd', 'zookeeper', 'nats', 'abcast']);
    assert.deepEqual(settings.inFlight, [1, 16, 128, 10_000]);
    assert.equal(settings.payloadBytes, 256);
    assert.equal(settings.out, 'bench/results/compare.json');
    assert.equal(settings.writeDoc, true);
    assert.equal(settings.install, true);
    assert.equal(settings.renderFrom, null);
  });

  it('--only keeps the race order, writes its own file, and leaves the doc alone', () => {
    const settings = parseCompareArgs(['--only', 'abcast,ETCD', '--seconds', '3']);
    assert.deepEqual(settings.only, ['etcd', 'abcast']);
    assert.equal(settings.out, 'bench/results/compare-etcd-abcast.json');
    assert.equal(settings.writeDoc, false);
    assert.equal(settings.seconds, 3);
    assert.equal(parseCompareArgs(['--only', 'abcast', '--doc']).writeDoc, true);
  });

  it('takes 0 warm-up seconds, lists of levels, and --no-install', () => {
    const settings = parseCompareArgs([
      '--warmup-seconds',
      '0',
      '--cluster-warmup-seconds',
      '0',
      '--in-flight',
      '1, 64',
      '--no-install',
      '--render-from',
      'old.json',
    ]);
    assert.equal(settings.renderFrom, 'old.json');
    assert.equal(settings.warmupSeconds, 0);
    assert.equal(settings.clusterWarmupSeconds, 0);
    assert.deepEqual(settings.inFlight, [1, 64]);
    assert.equal(settings.install, false);
  });

  it('refuses unknown systems, non-integers, zero levels and unknown flags', () => {
    assert.throws(() => parseCompareArgs(['--only', 'kafka']), /--only takes/);
    assert.throws(() => parseCompareArgs(['--seconds', '1.5']), /--seconds takes/);
    assert.throws(() => parseCompareArgs(['--in-flight', '1,0']), /--in-flight takes/);
    assert.throws(() => parseCompareArgs(['--seconds', '0']), /--seconds takes/);
    assert.throws(() => parseCompareArgs(['--bogus']));
  });
});

describe('bench:compare rendering', () => {
  it('formats milliseconds to about three digits', () => {
    assert.deepEqual([0.4123, 6.912, 27.64, 1204.4].map(formatMs), [
      '0.41',
      '6.91',
      '27.6',
      '1204',
    ]);
  });

  it('tables every system at every level, marks no fsync, and says why a system did not run', () => {
    const text = throughputTable(results);
    const lines = text.split('\n');
    assert.equal(lines.length, 2 + results.rows.length + 1);
    assert.match(
      lines.at(-1)!,
      /^\| target for the abcast SDK \(issue #14\) +\| yes +\| p50 ≤ 0\.6 ms +\| +\| ≥ 75,000\/s \(≥ 15× etcd\) +\| ≥ 300,000\/s +\|$/,
    );
    // Columns padded to one width, as the formatter (biome) wants Markdown tables.
    assert.ok(lines.every((line) => line.length === lines[0]!.length));
    assert.match(lines[1]!, /^\| -+ \| -+ \| -+ \| -+ \| -+ \| -+ \|$/);
    assert.match(
      lines[0]!,
      /\| 1 in flight +\| 16 in flight +\| 128 in flight +\| 10,000 in flight +\|$/,
    );
    assert.match(
      text,
      /\| nats 1\.0 \(nats client\) +\| \*\*no\*\* +\| 3,000\/s, 0\.30 \/ 1\.20 ms +\|/,
    );
    assert.match(text, /80,000\/s, 1\.40 \/ 5\.60 ms/);
    assert.match(text, /did not run: java missing/);
  });

  it('judges each target by the better SDK protocol and against etcd in the same run', () => {
    const checks = targetChecks(results);
    assert.deepEqual(
      checks.map((check) => check.met),
      [true, true, true, true, false, true],
    );
    assert.match(checks[1]!.measured, /^20\.0× \(etcd 4,000\/s\)/);
    assert.match(checks[3]!.measured, /HTTP 0\.90 ms; binary 0\.55 ms \(etcd 1\.60 ms\)/);
    const withoutAbcast = { ...results, rows: results.rows.slice(0, 2), abcastPost: null };
    assert.deepEqual(
      targetChecks({ ...withoutAbcast, abcastCatchUp: null }).map((check) => check.met),
      [null, null, null, null, null, null],
    );
  });

  it('puts the floor beside the race when it ran, and says why when it did not', () => {
    const floor = {
      runs: levels.map((level, at) => ({
        inFlight: level,
        messagesPerSecond: [2_000, 30_000, 140_000, 260_000][at]!,
        p50Ms: [0.45, 0.47, 0.78, 28][at]!,
        p99Ms: 3,
      })),
      failure: null,
    };
    const withFloor = { ...results, floor };
    const lines = throughputTable(withFloor).split('\n');
    assert.equal(lines.length, 2 + results.rows.length + 2);
    assert.match(
      lines.at(-2)!,
      /^\| floor: a bare replicated log \(bench\/floor\.ts\), not a product +\| yes +\| 2,000\/s, 0\.45 \/ 3\.00 ms +\|/,
    );
    assert.ok(lines.every((line) => line.length === lines[0]!.length));
    const checks = targetChecks(withFloor);
    assert.match(checks[0]!.measured, /binary 50,000\/s \(floor 140,000\/s\)$/);
    assert.match(checks[3]!.measured, /\(etcd 1\.60 ms, floor 0\.45 ms\)$/);
    // The floor informs; it does not move a target.
    assert.deepEqual(
      checks.map((check) => check.met),
      targetChecks(results).map((check) => check.met),
    );
    assert.match(renderDoc(withFloor, 'chart.svg'), /The floor line is not a product/);
    assert.doesNotMatch(renderDoc(results, 'chart.svg'), /floor/);
    const failed = { ...results, floor: { runs: [], failure: 'exited with 1' } };
    assert.match(throughputTable(failed), /did not run: exited with 1/);
    assert.doesNotMatch(targetChecks(failed)[3]!.measured, /floor/);
  });

  it('draws a bar per system and level, on decades spanning the values', () => {
    assert.deepEqual(decades([0.3, 2_400]), [0.1, 1, 10, 100, 1_000, 10_000]);
    assert.deepEqual(decades([]), [1, 10]);
    const svg = renderChart(results);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    const bars = svg.match(
      /<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="#[0-9a-f]{6}"><title>/g,
    );
    // Two panels, four systems that ran, four levels each.
    assert.equal(bars?.length, 2 * 4 * levels.length);
    assert.match(svg, /no fsync before ack/);
    assert.match(svg, /did not run \(java missing\)/);
    assert.ok(!/NaN|Infinity|undefined/.test(svg), 'every coordinate is a number');
  });

  it('writes the page with the chart, the conditions, the tables and the targets', () => {
    const page = renderDoc(results, 'images/performance-compare.svg');
    assert.match(page, /!\[[^\]]*\]\(images\/performance-compare\.svg\)/);
    assert.match(page, /2 cores \(Test CPU\)/);
    assert.match(page, /\*\*shared\*\*/);
    assert.match(
      page,
      /load average 1\.00 2\.00 3\.00 before the race and 4\.00 5\.00 6\.00 after/,
    );
    assert.match(page, /\| target \(issue #14\) +\| measured +\| met +\|/);
    assert.match(page, /\| 110% \/ 30% \(load 3\.5\) +\|/);
    assert.match(page, /625,000 msgs\/s over HTTP \(500,000 messages in 0\.80 s\)/);
  });
});
