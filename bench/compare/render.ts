/**
 * The race's results as Markdown tables and an SVG chart: pure functions of the results, so
 * the same JSON always renders the same page (and the tests can check it).
 */
import type { LoadResult } from './load.ts';
import type { CompareResults, ResultRow } from './results.ts';

export function formatCount(count: number): string {
  return Math.round(count).toLocaleString('en-US');
}

/** Milliseconds with about three significant digits: 0.412, 6.91, 27.6, 1204. */
export function formatMs(ms: number): string {
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}

/** `, median of N races` when the results fold repeated races, else nothing. */
export function repeatNote(results: CompareResults): string {
  return results.repeats === undefined ? '' : `, median of ${results.repeats.count} races`;
}

export function rowLabel(row: ResultRow): string {
  return `${row.server} (${row.client})`;
}

function runCell(
  run: Pick<LoadResult, 'messagesPerSecond' | 'p50Ms' | 'p99Ms'> & { errors?: number },
): string {
  const errors =
    run.errors === undefined || run.errors === 0 ? '' : `, **${formatCount(run.errors)} errors**`;
  return `${formatCount(run.messagesPerSecond)}/s, ${formatMs(run.p50Ms)} / ${formatMs(run.p99Ms)} ms${errors}`;
}

/** A Markdown table with its columns padded to one width, as the formatter writes them. */
export function table(header: readonly string[], lines: readonly (readonly string[])[]): string {
  const widths = header.map((cell, at) =>
    Math.max(3, cell.length, ...lines.map((line) => (line[at] ?? '').length)),
  );
  const row = (cells: readonly string[]) =>
    `| ${widths.map((width, at) => (cells[at] ?? '').padEnd(width)).join(' | ')} |`;
  return [row(header), row(widths.map((width) => '-'.repeat(width))), ...lines.map(row)].join('\n');
}

/** Issue #14's targets for the abcast SDK at the load levels that have one. */
const sdkTargets: Readonly<Record<number, string>> = {
  1: 'p50 ≤ 0.6 ms',
  128: '≥ 75,000/s (≥ 15× etcd)',
  10000: '≥ 300,000/s',
};

/**
 * Messages/s, p50 / p99 per load level, one line per system and client, and a last line
 * with the targets for the abcast SDK beside them.
 */
export function throughputTable(results: CompareResults): string {
  const levels = results.settings.inFlight;
  const header = [
    `system (client)${repeatNote(results)}`,
    'fsync before ack',
    ...levels.map((level) => `${formatCount(level)} in flight`),
  ];
  const lines = results.rows.map((row) => [
    rowLabel(row),
    row.fsyncBeforeAck ? 'yes' : '**no**',
    ...(row.failure === null
      ? levels.map((_, at) => {
          const run = row.runs[at];
          return run === undefined ? '—' : runCell(run);
        })
      : levels.map(() => `did not run: ${row.failure}`)),
  ]);
  const floor = results.floor;
  if (floor !== undefined) {
    lines.push([
      'floor: a bare replicated log (bench/floor.ts), not a product',
      'yes',
      ...levels.map((level) => {
        if (floor.failure !== null) return `did not run: ${floor.failure}`;
        const run = floor.runs.find((candidate) => candidate.inFlight === level);
        return run === undefined ? '—' : runCell(run);
      }),
    ]);
  }
  const targets = ['target for the abcast SDK (issue #14)', 'yes'];
  lines.push([...targets, ...levels.map((level) => sdkTargets[level] ?? '')]);
  return table(header, lines);
}

/**
 * CPU of the servers (three processes) and of the client, in % of one core, per level, with
 * the machine's load average as the level began: on a shared machine the two go together.
 */
export function cpuTable(results: CompareResults): string {
  const levels = results.settings.inFlight;
  const header = [
    `system (client)${repeatNote(results)}`,
    ...levels.map((level) => `${formatCount(level)} in flight`),
  ];
  const lines = results.rows.map((row) => [
    rowLabel(row),
    ...levels.map((_, at) => {
      const run = row.runs[at];
      if (run === undefined) return '—';
      return `${run.serverCpuPercent}% / ${run.clientCpuPercent}% (load ${run.loadAverage1m.toFixed(1)})`;
    }),
  ]);
  return table(header, lines);
}

export function durabilityTable(results: CompareResults): string {
  const seen = new Set<string>();
  const lines: string[][] = [];
  for (const row of results.rows) {
    if (seen.has(row.system)) continue;
    seen.add(row.system);
    lines.push([row.server, row.fsyncBeforeAck ? 'yes' : '**no**', row.durability]);
  }
  return table(['system', 'fsync before ack', 'what an acknowledgement means by default'], lines);
}
