// The race's pure parts (bench/compare): its flags are read as documented and bad ones are
// refused, and a fixed set of results renders to the tables, targets and chart expected —
// every row and level present, fsync called out, targets judged against their thresholds.
// Repeated races fold into per-field medians that keep every race, and render as medians
// with their ranges. Nothing here starts a server or times anything.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFlags } from '../../bench/args.ts';
import { type CompareSettings, compareFlags } from '../../bench/compare/args.ts';
import { decades, renderChart } from '../../bench/compare/chart.ts';
import { renderDoc } from '../../bench/compare/doc.ts';
import type { LoadResult } from '../../bench/compare/load.ts';
import { median, medianOfRaces } from '../../bench/compare/median.ts';
import { cpuTable, formatMs, throughputTable } from '../../bench/compare/render.ts';
import type { CompareResults, ResultRow } from '../../bench/compare/results.ts';
import { targetChecks, targetTable } from '../../bench/compare/targets.ts';

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

/** The settings `argv` asks for; none of these asks for --help. */
function parseCompareArgs(argv: readonly string[]): CompareSettings {
  const outcome = parseFlags(argv, compareFlags);
  assert.ok(!outcome.help);
  return outcome.settings;
}

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
    assert.equal(settings.repeatCount, 1);
  });

  it('--repeat takes a positive integer and refuses anything else', () => {
    assert.equal(parseCompareArgs(['--repeat', '5']).repeatCount, 5);
    assert.equal(parseCompareArgs(['--repeat', ' 3 ', '--only', 'abcast']).repeatCount, 3);
    // `--repeat=` form: parseArgs takes `--repeat -2` for a flag without its value.
    for (const bad of ['0', '-2', '1.5', 'three', '', '1e2']) {
      assert.throws(
        () => parseCompareArgs([`--repeat=${bad}`]),
        new RegExp(`^FlagError: --repeat takes a positive integer, got "${bad}"$`),
        `--repeat ${JSON.stringify(bad)}`,
      );
    }
    assert.throws(() => parseCompareArgs(['--repeat']), /^FlagError: --repeat needs a value/);
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
    assert.throws(() => parseCompareArgs(['--bogus']), /^FlagError: unknown flag --bogus/);
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

  it("names the POST run's HTTP client, node:http for races that did not record one", () => {
    assert.match(
      renderDoc(results, 'chart.svg'),
      /128 kept-alive connections \(node:http, in Node/,
    );
    const recorded = { ...results, settings: { ...results.settings, postClient: 'undici' } };
    assert.match(renderDoc(recorded, 'chart.svg'), /128 kept-alive connections \(undici, in Node/);
    const wrk = { ...results, settings: { ...results.settings, postClient: 'wrk' } };
    assert.match(
      renderDoc(wrk, 'chart.svg'),
      /128 kept-alive connections \(wrk, a load generator in C/,
    );
  });
});

/** `base` with every figure scaled per field: one race of a repeated run. */
function race(
  base: CompareResults,
  scale: { rate: number; p50: number; p99: number; cpu: number; errors: number; at: number },
): CompareResults {
  const scaled = (one: LoadResult): LoadResult => ({
    ...one,
    messagesPerSecond: one.messagesPerSecond * scale.rate,
    p50Ms: one.p50Ms * scale.p50,
    p99Ms: one.p99Ms * scale.p99,
    serverCpuPercent: one.serverCpuPercent * scale.cpu,
    clientCpuPercent: one.clientCpuPercent * scale.cpu,
    errors: scale.errors,
    firstError: scale.errors === 0 ? null : `refused in race ${scale.at}`,
  });
  const catchUp = base.abcastCatchUp!;
  return {
    ...base,
    startedAt: `2026-01-01T0${scale.at}:00:00.000Z`,
    finishedAt: `2026-01-01T0${scale.at}:30:00.000Z`,
    loadAverage: { before: [scale.at, 0, 0], after: [scale.at + 0.5, 0, 0] },
    rows: base.rows.map((row) => ({ ...row, runs: row.runs.map(scaled) })),
    abcastPost: scaled(base.abcastPost!),
    abcastCatchUp: {
      ...catchUp,
      seconds: catchUp.seconds / scale.rate,
      messagesPerSecond: catchUp.messagesPerSecond * scale.rate,
      binary: { seconds: 1 / scale.rate, messagesPerSecond: 900_000 * scale.rate },
    },
    floor: {
      runs: levels.map((inFlight) => ({
        inFlight,
        messagesPerSecond: 1_000 * inFlight * scale.rate,
        // Scaled as the CPU is, so that the floor's median p50 is not the first race's.
        p50Ms: 0.5 * scale.cpu,
        p99Ms: 2 * scale.p99,
      })),
      failure: null,
    },
  };
}

const rowOf = (results: CompareResults, id: string) =>
  results.rows.find((candidate) => candidate.id === id)!;

describe('bench:compare medians of repeated races', () => {
  it('takes the middle value, or the mean of the two middle ones', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([40, 10, 30, 20]), 25);
    assert.equal(median([7]), 7);
    assert.throws(() => median([]), /at least one value/);
  });

  it('gives a single race back unchanged', () => {
    assert.equal(medianOfRaces([results]), results);
    assert.equal(medianOfRaces([results]).repeats, undefined);
  });

  it('takes each field of each row and level its own median over an odd count', () => {
    const races = [
      race(results, { rate: 1, p50: 2, p99: 1, cpu: 1, errors: 0, at: 1 }),
      race(results, { rate: 2, p50: 3, p99: 1, cpu: 3, errors: 2, at: 2 }),
      race(results, { rate: 3, p50: 1, p99: 5, cpu: 2, errors: 3, at: 3 }),
    ];
    const combined = medianOfRaces(races);
    const http = rowOf(combined, 'abcast-sdk-http');
    // The median rate is race 2's, the median p50 race 1's: fields are not taken as a run.
    assert.deepEqual(
      http.runs.map((one) => one.messagesPerSecond),
      [1_400, 18_000, 160_000, 620_000],
    );
    assert.deepEqual(
      http.runs.map((one) => one.p50Ms),
      [1.8, 3, 2.8, 60],
    );
    assert.deepEqual(
      http.runs.map((one) => one.p99Ms),
      [3.6, 6, 5.6, 120],
    );
    assert.deepEqual(
      http.runs.map((one) => [one.serverCpuPercent, one.clientCpuPercent]),
      levels.map(() => [220, 60]),
    );
    assert.deepEqual(
      http.runs.map((one) => [one.errors, one.firstError]),
      levels.map(() => [5, 'refused in race 2']),
    );
    assert.deepEqual(
      combined.rows.map((one) => one.id),
      results.rows.map((one) => one.id),
    );
    assert.equal(rowOf(combined, 'zookeeper').failure, 'java missing');
    assert.equal(combined.startedAt, '2026-01-01T01:00:00.000Z');
    assert.equal(combined.finishedAt, '2026-01-01T03:30:00.000Z');
    assert.deepEqual(combined.loadAverage, { before: [1, 0, 0], after: [3.5, 0, 0] });
    assert.equal(combined.abcastPost!.messagesPerSecond, 18_000);
    assert.equal(combined.abcastPost!.p50Ms, 24);
    assert.equal(combined.abcastPost!.errors, 5);
    assert.deepEqual(combined.abcastCatchUp, {
      messages: 500_000,
      seconds: 0.4,
      messagesPerSecond: 1_250_000,
      binary: { seconds: 0.5, messagesPerSecond: 1_800_000 },
    });
    assert.deepEqual(combined.floor, {
      runs: levels.map((inFlight) => ({
        inFlight,
        messagesPerSecond: 2_000 * inFlight,
        p50Ms: 1,
        p99Ms: 2,
      })),
      failure: null,
    });
    // Every race's own figures stay in the file.
    assert.deepEqual(combined.repeats, { count: 3, races });
    assert.deepEqual(JSON.parse(JSON.stringify(combined)).repeats.races, races);
  });

  it('means the two middle values over an even count', () => {
    const races = [4, 1, 3, 2].map((rate, at) =>
      race(results, { rate, p50: rate, p99: 1, cpu: 1, errors: 0, at: at + 1 }),
    );
    const combined = medianOfRaces(races);
    assert.deepEqual(
      rowOf(combined, 'etcd').runs.map((one) => one.messagesPerSecond),
      [1_500, 4_500, 10_000, 7_500],
    );
    assert.equal(rowOf(combined, 'etcd').runs[0]!.p50Ms, 4);
    assert.equal(combined.abcastPost!.messagesPerSecond, 22_500);
    assert.equal(combined.abcastCatchUp!.binary!.messagesPerSecond, 2_250_000);
    assert.equal(combined.floor!.runs[2]!.messagesPerSecond, 320_000);
    assert.equal(combined.repeats!.count, 4);
  });

  it('takes the races that ran when a row, the extras or the floor failed in some', () => {
    const [first, second, third] = [1, 2, 3].map((rate) =>
      race(results, { rate, p50: rate, p99: 1, cpu: 1, errors: 0, at: rate }),
    ) as [CompareResults, CompareResults, CompareResults];
    const failedEtcd = {
      ...second,
      rows: second.rows.map((one) =>
        one.id === 'etcd' ? { ...one, runs: [], failure: 'port taken' } : one,
      ),
      abcastPost: null,
      abcastCatchUp: null,
      abcastFailure: 'socket hang up',
      floor: { runs: [], failure: 'exited with 1' },
    };
    const { binary: _, ...httpOnly } = third.abcastCatchUp!;
    const combined = medianOfRaces([first, failedEtcd, { ...third, abcastCatchUp: httpOnly }]);
    // Races 1 and 3 ran etcd: the mean of their two values.
    assert.deepEqual(
      rowOf(combined, 'etcd').runs.map((one) => one.messagesPerSecond),
      [1_200, 3_600, 8_000, 6_000],
    );
    assert.equal(rowOf(combined, 'etcd').failure, null);
    assert.equal(rowOf(combined, 'nats').runs[0]!.messagesPerSecond, 6_000);
    assert.equal(combined.abcastPost!.messagesPerSecond, 18_000);
    assert.equal(combined.abcastCatchUp!.messagesPerSecond, 1_250_000);
    // Only race 1 measured the catch-up over binary.
    assert.equal(combined.abcastCatchUp!.binary!.messagesPerSecond, 900_000);
    assert.equal(combined.abcastFailure, null);
    assert.equal(combined.floor!.failure, null);
    assert.equal(combined.floor!.runs[0]!.messagesPerSecond, 2_000);

    const noneRan = medianOfRaces([failedEtcd, failedEtcd]);
    assert.equal(rowOf(noneRan, 'etcd').failure, 'port taken');
    assert.deepEqual(rowOf(noneRan, 'etcd').runs, []);
    assert.equal(noneRan.abcastPost, null);
    assert.equal(noneRan.abcastCatchUp, null);
    assert.equal(noneRan.abcastFailure, 'socket hang up');
    assert.deepEqual(noneRan.floor, { runs: [], failure: 'exited with 1' });
  });

  it('renders medians of N races with the range beside the throughput and p50 targets', () => {
    const third = race(results, { rate: 3, p50: 1, p99: 1, cpu: 1, errors: 0, at: 3 });
    // etcd at 128 in flight has a slow third race: 6,000/s, where its others make 4,000 and 8,000.
    const slowEtcd = {
      ...third,
      rows: third.rows.map((one) =>
        one.id === 'etcd'
          ? {
              ...one,
              runs: one.runs.map((each, at) =>
                at === 2 ? { ...each, messagesPerSecond: 6_000 } : each,
              ),
            }
          : one,
      ),
    };
    const combined = medianOfRaces([
      race(results, { rate: 1, p50: 2, p99: 1, cpu: 1, errors: 0, at: 1 }),
      race(results, { rate: 2, p50: 3, p99: 1, cpu: 1, errors: 0, at: 2 }),
      slowEtcd,
    ]);
    const throughput = throughputTable(combined).split('\n');
    assert.match(throughput[0]!, /^\| system \(client\), median of 3 races +\| fsync before ack /);
    assert.ok(throughput.every((line) => line.length === throughput[0]!.length));
    assert.match(cpuTable(combined), /^\| system \(client\), median of 3 races +\| 1 in flight /);
    assert.match(
      targetTable(combined),
      /\| measured, median of 3 races \(least–most\) +\| met +\|/,
    );
    const checks = targetChecks(combined);
    assert.equal(
      checks[0]!.measured,
      'HTTP 160,000/s (80,000–240,000); binary 100,000/s (50,000–150,000) (floor 256,000/s)',
    );
    // The medians' quotient 160,000 / 6,000, then 80,000 / 4,000 … 240,000 / 6,000 race by race.
    assert.equal(checks[1]!.measured, '26.7× (etcd 6,000/s); within each race 20.0–40.0×');
    assert.match(checks[2]!.measured, /^HTTP 620,000\/s \(310,000–930,000\); binary /);
    assert.equal(
      checks[3]!.measured,
      'HTTP 1.80 ms (0.90–2.70); binary 1.10 ms (0.55–1.65) (etcd 3.20 ms, floor 0.50 ms)',
    );
    // Judged on the medians: 1.10 ms misses the 0.6 ms p50 that race 3's 0.55 ms met.
    assert.equal(checks[3]!.met, false);
    const page = renderDoc(combined, 'chart.svg');
    assert.match(
      page,
      /in 3 races run one after the other: every figure on this page is the median of 3 races/,
    );
    assert.match(page, /latency p50 \/ p99, median of 3 races:/);
    assert.match(page, /\| system \(client\), median of 3 races +\| 1 in flight /);
    const svg = renderChart(combined);
    assert.match(svg, /log scale\), median of 3 races<\/text>/);
    assert.ok(!/NaN|Infinity|undefined/.test(svg), 'every coordinate is a number');
  });

  it('says nothing of medians or ranges for a single race', () => {
    const single = medianOfRaces([results]);
    for (const text of [
      throughputTable(single),
      cpuTable(single),
      targetTable(single),
      renderDoc(single, 'chart.svg'),
      renderChart(single),
    ]) {
      assert.doesNotMatch(text, /median|least–most/);
    }
    assert.match(renderDoc(single, 'chart.svg'), /, in one run\./);
    assert.doesNotMatch(targetChecks(single)[0]!.measured, /\(\d[\d,]*–/);
  });
});
