/**
 * The targets of issue #14 beside what the race measured. An SDK target counts as met by the
 * better of the SDK's two protocols (HTTP/JSON and binary), both shown.
 */
import type { LoadResult } from './load.ts';
import { formatCount, formatMs, repeatNote, table } from './render.ts';
import type { CompareResults } from './results.ts';

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  /** null: not measured in this run. */
  readonly met: boolean | null;
}

function runAt(results: CompareResults, rowId: string, inFlight: number): LoadResult | null {
  const row = results.rows.find((candidate) => candidate.id === rowId);
  const at = results.settings.inFlight.indexOf(inFlight);
  return at < 0 ? null : (row?.runs[at] ?? null);
}

/**
 * ` (least–most)` of a row's figure at `inFlight` across the repeated races that measured
 * it, beside the median; nothing for a single race.
 */
function rangeAt(
  results: CompareResults,
  where: { readonly rowId: string; readonly inFlight: number },
  pick: (run: LoadResult) => number,
  format: (value: number) => string,
): string {
  if (results.repeats === undefined) return '';
  const values = results.repeats.races.flatMap((race) => {
    const run = runAt(race, where.rowId, where.inFlight);
    return run === null ? [] : [pick(run)];
  });
  if (values.length === 0) return '';
  return ` (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

const sdkRows = [
  { id: 'abcast-sdk-http', name: 'HTTP' },
  { id: 'abcast-sdk-binary', name: 'binary' },
] as const;

interface SdkRun {
  readonly id: string;
  readonly name: string;
  readonly run: LoadResult;
}

/** `pick` of each SDK run at `inFlight`, as text and as the best value. */
function sdkRuns(results: CompareResults, inFlight: number): SdkRun[] {
  return sdkRows.flatMap(({ id, name }) => {
    const run = runAt(results, id, inFlight);
    return run === null ? [] : [{ id, name, run }];
  });
}

/** The floor's run at `inFlight` (bench/floor.ts), when the race measured one. */
function floorAt(results: CompareResults, inFlight: number) {
  return results.floor?.runs.find((run) => run.inFlight === inFlight) ?? null;
}

function throughputCheck(results: CompareResults, inFlight: number, least: number) {
  const runs = sdkRuns(results, inFlight);
  if (runs.length === 0) return { measured: 'not run', met: null, best: 0 };
  const best = Math.max(...runs.map(({ run }) => run.messagesPerSecond));
  const floor = floorAt(results, inFlight);
  const measured = `${runs
    .map(
      ({ id, name, run }) =>
        `${name} ${formatCount(run.messagesPerSecond)}/s${rangeAt(results, { rowId: id, inFlight }, (each) => each.messagesPerSecond, formatCount)}`,
    )
    .join('; ')}${floor === null ? '' : ` (floor ${formatCount(floor.messagesPerSecond)}/s)`}`;
  return { measured, met: best >= least, best };
}

/**
 * The ratio within each repeated race, least to most: the target compares systems in one run,
 * and the median ratio above is the medians' quotient.
 */
function raceRatios(results: CompareResults): string {
  if (results.repeats === undefined) return '';
  const ratios = results.repeats.races.flatMap((race) => {
    const etcd = runAt(race, 'etcd', 128);
    const best = throughputCheck(race, 128, 0).best;
    return etcd === null || etcd.messagesPerSecond === 0 || best === 0
      ? []
      : [best / etcd.messagesPerSecond];
  });
  if (ratios.length === 0) return '';
  return `; within each race ${Math.min(...ratios).toFixed(1)}–${Math.max(...ratios).toFixed(1)}×`;
}

function ratioCheck(results: CompareResults, bestSdk: number): TargetCheck {
  const etcd = runAt(results, 'etcd', 128);
  const target = 'the same, at least 15× etcd in the same run';
  if (etcd === null || etcd.messagesPerSecond === 0 || bestSdk === 0) {
    return { target, measured: 'not run', met: null };
  }
  const ratio = bestSdk / etcd.messagesPerSecond;
  return {
    target,
    measured: `${ratio.toFixed(1)}× (etcd ${formatCount(etcd.messagesPerSecond)}/s)${raceRatios(results)}`,
    met: ratio >= 15,
  };
}

function latencyCheck(results: CompareResults): TargetCheck {
  const target = '1 in flight through the SDK: p50 at most 0.6 ms';
  const runs = sdkRuns(results, 1);
  if (runs.length === 0) return { target, measured: 'not run', met: null };
  const etcd = runAt(results, 'etcd', 1);
  const floor = floorAt(results, 1);
  const besides = [
    ...(etcd === null ? [] : [`etcd ${formatMs(etcd.p50Ms)} ms`]),
    ...(floor === null ? [] : [`floor ${formatMs(floor.p50Ms)} ms`]),
  ];
  const beside = besides.length === 0 ? '' : ` (${besides.join(', ')})`;
  return {
    target,
    measured: `${runs
      .map(
        ({ id, name, run }) =>
          `${name} ${formatMs(run.p50Ms)} ms${rangeAt(results, { rowId: id, inFlight: 1 }, (each) => each.p50Ms, formatMs)}`,
      )
      .join('; ')}${beside}`,
    met: Math.min(...runs.map(({ run }) => run.p50Ms)) <= 0.6,
  };
}

export function targetChecks(results: CompareResults): TargetCheck[] {
  const at128 = throughputCheck(results, 128, 75_000);
  const window = throughputCheck(results, 10_000, 300_000);
  const post = results.abcastPost;
  const catchUp = results.abcastCatchUp;
  return [
    {
      target: '128 in flight through the SDK: at least 75,000 msgs/s',
      measured: at128.measured,
      met: at128.met,
    },
    ratioCheck(results, at128.best),
    {
      target: 'one client with a window of 10,000: at least 300,000 msgs/s',
      measured: window.measured,
      met: window.met,
    },
    latencyCheck(results),
    {
      target: `POST /v1/broadcast, a message per request, ${results.settings.postConnections} kept-alive connections: at least 10,000/s`,
      measured:
        post === null
          ? 'not run'
          : `${formatCount(post.messagesPerSecond)}/s, p50 ${formatMs(post.p50Ms)} ms, p99 ${formatMs(post.p99Ms)} ms, ${formatCount(post.errors)} errors`,
      met: post === null ? null : post.messagesPerSecond >= 10_000,
    },
    {
      target: 'a subscriber catching up from position 1: at least 500,000 msgs/s',
      measured:
        catchUp === null
          ? 'not run'
          : `HTTP ${formatCount(catchUp.messagesPerSecond)}/s${catchUp.binary === undefined ? '' : `; binary ${formatCount(catchUp.binary.messagesPerSecond)}/s`} (${formatCount(catchUp.messages)} messages)`,
      met:
        catchUp === null
          ? null
          : Math.max(catchUp.messagesPerSecond, catchUp.binary?.messagesPerSecond ?? 0) >= 500_000,
    },
  ];
}

export function targetTable(results: CompareResults): string {
  const lines = targetChecks(results).map((check) => [
    check.target,
    check.measured,
    check.met === null ? '—' : check.met ? 'yes' : '**no**',
  ]);
  const measured =
    results.repeats === undefined ? 'measured' : `measured${repeatNote(results)} (least–most)`;
  return table(['target (issue #14)', measured, 'met'], lines);
}
