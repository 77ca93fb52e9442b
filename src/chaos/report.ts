/**
 * report.html for a chaos run: one self-contained page (inline SVG and CSS, no script, no
 * CDN) with the summary, a timeline of the faults above throughput and latency over time,
 * the nodes' final standing, and each violation with the history events around it.
 */
import type { CheckResult, NodeReading, Violation } from './checker.ts';
import type { FaultValue, HistoryEvent } from './history.ts';
import type { ChaosSummary } from './summary.ts';

export interface ReportInput {
  readonly summary: ChaosSummary;
  readonly result: CheckResult;
  readonly history: readonly HistoryEvent[];
  readonly readings: readonly NodeReading[];
}

interface FaultSpan {
  readonly kind: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly detail: string;
}

interface Bucket {
  acknowledged: number;
  unknown: number;
  failed: number;
  latenciesMs: number[];
}

const bucketMs = 1_000;
const width = 1100;
const marginLeft = 110;
const plotWidth = width - marginLeft - 20;

const faultColours: Readonly<Record<string, string>> = {
  kill: '#d62728',
  pause: '#ff7f0e',
  partition: '#9467bd',
  network: '#8c564b',
  clock: '#17becf',
  disk: '#e377c2',
  'full-disk': '#7b4173',
  membership: '#2ca02c',
  transfer: '#1f77b4',
  restart: '#7f7f7f',
  heal: '#000000',
  'subscription-ended': '#bcbd22',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** Fault start/end pairs (matched by kind and nodes), and one-off outcomes as short spans. */
export function faultSpans(history: readonly HistoryEvent[]): FaultSpan[] {
  const open = new Map<string, { fromMs: number; detail: string }>();
  const spans: FaultSpan[] = [];
  for (const event of history) {
    if (!event.f.startsWith('fault:')) continue;
    const kind = event.f.slice('fault:'.length);
    const value = event.value as FaultValue;
    const slot = `${kind}|${value.nodes.join(',')}`;
    if (value.phase === 'start') open.set(slot, { fromMs: event.timeMs, detail: value.detail });
    else if (value.phase === 'end' && open.has(slot)) {
      const begun = open.get(slot) as { fromMs: number; detail: string };
      open.delete(slot);
      spans.push({
        kind,
        fromMs: begun.fromMs,
        toMs: event.timeMs,
        detail: `${value.nodes.join(',')}: ${begun.detail}`,
      });
    } else {
      spans.push({
        kind,
        fromMs: event.timeMs,
        toMs: event.timeMs + 300,
        detail: `${value.nodes.join(',')}: ${value.detail}`,
      });
    }
  }
  return spans;
}

function buckets(history: readonly HistoryEvent[], endMs: number): Bucket[] {
  const list: Bucket[] = Array.from({ length: Math.ceil(endMs / bucketMs) + 1 }, () => ({
    acknowledged: 0,
    unknown: 0,
    failed: 0,
    latenciesMs: [],
  }));
  const invoked = new Map<number, number>();
  for (const event of history) {
    if (event.f !== 'broadcast') continue;
    if (event.type === 'invoke') {
      invoked.set(event.opId, event.timeMs);
      continue;
    }
    const bucket = list[Math.floor(event.timeMs / bucketMs)];
    if (bucket === undefined) continue;
    if (event.type === 'ok') {
      bucket.acknowledged++;
      const start = invoked.get(event.opId);
      if (start !== undefined) bucket.latenciesMs.push(event.timeMs - start);
    } else if (event.type === 'info') bucket.unknown++;
    else bucket.failed++;
  }
  return list;
}

function percentile(values: number[], fraction: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] as number;
}

function polyline(points: readonly [number, number][], colour: string): string {
  const text = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
  return `<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${text}"/>`;
}

const faultRowHeight = 16;

/** One row per fault kind, a bar per fault (its details in the bar's tooltip). */
function faultRows(
  spans: readonly FaultSpan[],
  kinds: readonly string[],
  x: (ms: number) => number,
): string[] {
  const parts: string[] = [];
  kinds.forEach((kind, row) => {
    const y = row * faultRowHeight + 5;
    parts.push(
      `<text x="${marginLeft - 6}" y="${y + 11}" text-anchor="end">${escapeHtml(kind)}</text>`,
    );
    for (const span of spans.filter((one) => one.kind === kind)) {
      const left = x(span.fromMs);
      const spanWidth = Math.max(2, x(span.toMs) - left);
      const tooltip = `${(span.fromMs / 1000).toFixed(1)}–${(span.toMs / 1000).toFixed(1)} s ${kind} ${span.detail}`;
      parts.push(
        `<rect x="${left.toFixed(1)}" y="${y}" width="${spanWidth.toFixed(1)}" height="${faultRowHeight - 4}" fill="${faultColours[kind] ?? '#555'}" opacity="0.75"><title>${escapeHtml(tooltip)}</title></rect>`,
      );
    }
  });
  return parts;
}

/** The timeline: one row per fault kind, then throughput, then latency (log scale). */
function timelineSvg(
  history: readonly HistoryEvent[],
  endMs: number,
  violations: readonly Violation[],
): string {
  const spans = faultSpans(history);
  const kinds = [...new Set(spans.map((span) => span.kind))];
  const faultsHeight = kinds.length * faultRowHeight + 10;
  const chartHeight = 140;
  const throughputTop = faultsHeight + 20;
  const latencyTop = throughputTop + chartHeight + 40;
  const height = latencyTop + chartHeight + 40;
  const x = (ms: number) => marginLeft + Math.min(1, ms / Math.max(1, endMs)) * plotWidth;
  const parts: string[] = faultRows(spans, kinds, x);
  const series = buckets(history, endMs);
  const throughputMax = series.reduce(
    (most, bucket) => Math.max(most, bucket.acknowledged + bucket.unknown + bucket.failed),
    1,
  );
  const yThroughput = (value: number) =>
    throughputTop + chartHeight - (value / throughputMax) * chartHeight;
  const at = (index: number) => x(index * bucketMs + bucketMs / 2);
  parts.push(axis(throughputTop, chartHeight, `${throughputMax}/s`, 'broadcasts per second'));
  const counts = [
    ['acknowledged', '#2ca02c'],
    ['unknown', '#ff7f0e'],
    ['failed', '#d62728'],
  ] as const;
  for (const [field, colour] of counts) {
    const points = series.map((bucket, index): [number, number] => [
      at(index),
      yThroughput(bucket[field]),
    ]);
    parts.push(polyline(points, colour));
  }
  const latencyMaxMs = series.reduce(
    (most, bucket) => Math.max(most, percentile(bucket.latenciesMs, 0.99)),
    10,
  );
  const logMax = Math.log10(latencyMaxMs);
  const yLatency = (ms: number) =>
    latencyTop + chartHeight - (Math.log10(Math.max(1, ms)) / logMax) * chartHeight;
  parts.push(
    axis(
      latencyTop,
      chartHeight,
      `${Math.round(latencyMaxMs)} ms`,
      'ack latency (log), p50 and p99',
      '1 ms',
    ),
  );
  // Seconds without an acknowledgement have no latency: the line breaks there.
  const runs: { bucket: Bucket; index: number }[][] = [];
  series.forEach((bucket, index) => {
    if (bucket.latenciesMs.length === 0) return;
    const run = runs.at(-1);
    if (run !== undefined && run.at(-1)?.index === index - 1) run.push({ bucket, index });
    else runs.push([{ bucket, index }]);
  });
  for (const [fraction, colour] of [
    [0.5, '#1f77b4'],
    [0.99, '#9467bd'],
  ] as const) {
    for (const run of runs) {
      const points = run.map(({ bucket, index }): [number, number] => [
        at(index),
        yLatency(percentile(bucket.latenciesMs, fraction)),
      ]);
      parts.push(polyline(points, colour));
    }
  }
  for (const violation of violations) {
    if (violation.timeMs === null) continue;
    parts.push(
      `<line x1="${x(violation.timeMs)}" x2="${x(violation.timeMs)}" y1="0" y2="${height - 30}" stroke="red" stroke-dasharray="3,2"><title>${escapeHtml(violation.message)}</title></line>`,
    );
  }
  for (
    let second = 0;
    second <= endMs / 1000;
    second += Math.max(1, Math.round(endMs / 1000 / 10))
  ) {
    parts.push(
      `<text x="${x(second * 1000)}" y="${height - 12}" text-anchor="middle">${second} s</text>`,
    );
  }
  const legend = [
    ['#2ca02c', 'acknowledged'],
    ['#ff7f0e', 'unknown outcome'],
    ['#d62728', 'failed'],
    ['#1f77b4', 'p50 latency'],
    ['#9467bd', 'p99 latency'],
  ]
    .map(
      ([colour, label], index) =>
        `<tspan x="${marginLeft + index * 150}" fill="${colour}">■ ${label}</tspan>`,
    )
    .join('');
  parts.push(`<text y="${height}">${legend}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 10}" font-family="sans-serif" font-size="11">${parts.join('\n')}</svg>`;
}

function axis(
  top: number,
  chartHeight: number,
  maxLabel: string,
  title: string,
  minLabel = '0',
): string {
  return [
    `<rect x="${marginLeft}" y="${top}" width="${plotWidth}" height="${chartHeight}" fill="#fafafa" stroke="#ccc"/>`,
    `<text x="${marginLeft - 6}" y="${top + 10}" text-anchor="end">${escapeHtml(maxLabel)}</text>`,
    `<text x="${marginLeft - 6}" y="${top + chartHeight}" text-anchor="end">${escapeHtml(minLabel)}</text>`,
    `<text x="${marginLeft}" y="${top - 5}">${escapeHtml(title)}</text>`,
  ].join('');
}

/** The events within two seconds of a violation, or touching its keys. */
function eventsAround(history: readonly HistoryEvent[], violation: Violation): HistoryEvent[] {
  const keys = new Set(violation.keys);
  const opIds = new Set<number>();
  for (const event of history) {
    const key = (event.value as { key?: string }).key;
    if (key !== undefined && keys.has(key)) opIds.add(event.opId);
  }
  const nearby = (event: HistoryEvent) =>
    violation.timeMs !== null &&
    Math.abs(event.timeMs - violation.timeMs) <= 2_000 &&
    event.f !== 'observe';
  const chosen = history.filter((event) => opIds.has(event.opId) || nearby(event));
  return chosen.length > 60
    ? [...chosen.filter((event) => opIds.has(event.opId)), ...chosen.filter(nearby).slice(0, 40)]
    : chosen;
}

export function renderReport(input: ReportInput): string {
  const { summary, result, history, readings } = input;
  // A loop, not Math.max(...): a long run has more events than a call takes arguments.
  const endMs = history.reduce((latest, event) => Math.max(latest, event.timeMs), 1);
  const summaryRows = Object.entries(summary)
    .map(
      ([name, value]) =>
        `<tr><th>${escapeHtml(name)}</th><td>${escapeHtml(JSON.stringify(value))}</td></tr>`,
    )
    .join('');
  const nodeRows = readings
    .map(
      (reading) =>
        `<tr><td>${escapeHtml(reading.node)}</td><td>${reading.standing}</td><td>${reading.messages.length}</td><td>${reading.messages[0]?.position ?? '-'}…${reading.messages.at(-1)?.position ?? '-'}</td><td>${escapeHtml(reading.error ?? '')}</td></tr>`,
    )
    .join('');
  const violationBlocks = result.violations
    .map((violation) => {
      const lines = eventsAround(history, violation)
        .map((event) => escapeHtml(JSON.stringify(event)))
        .join('\n');
      return `<div class="violation"><h3>${escapeHtml(violation.property)}${violation.timeMs === null ? '' : ` at ${(violation.timeMs / 1000).toFixed(3)} s`}</h3><p>${escapeHtml(violation.message)}</p><pre>${lines}</pre></div>`;
    })
    .join('');
  const verdict =
    summary.violations === 0
      ? '<p class="ok">No violations.</p>'
      : `<p class="bad">${summary.violations} violation(s).</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>abcast chaos run, seed ${summary.seed}</title>
<style>body{font-family:sans-serif;margin:20px;max-width:1200px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:11px}.ok{color:#2ca02c;font-weight:bold}.bad{color:#d62728;font-weight:bold}.violation{border-left:4px solid #d62728;padding-left:10px;margin:16px 0}</style>
</head><body>
<h1>abcast chaos run — seed ${summary.seed}, ${summary.nodes} nodes, ${summary.seconds} s</h1>
${verdict}
<h2>Timeline</h2>
${timelineSvg(history, endMs, result.violations)}
<h2>Summary</h2><table>${summaryRows}</table>
<h2>Nodes at the end</h2><table><tr><th>node</th><th>standing</th><th>messages</th><th>positions</th><th>error</th></tr>${nodeRows}</table>
<h2>Violations</h2>${violationBlocks || '<p>None.</p>'}
</body></html>
`;
}
