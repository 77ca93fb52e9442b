/**
 * The race as an SVG chart: two panels, messages/s and p50 latency, each a group of bars
 * per load level with one bar per system and client, on logarithmic axes (the values span
 * three orders of magnitude). Plain SVG text, no fonts or scripts to load.
 */
import { formatCount, formatMs, repeatNote, rowLabel } from './render.ts';
import type { CompareResults, ResultRow } from './results.ts';

const colours = ['#8c8c8c', '#c9a227', '#4f9a94', '#3a6fb0', '#c0392b', '#7b4fa0', '#2e8b57'];
const widthPx = 960;
const panelHeightPx = 300;
const marginLeftPx = 70;
const marginRightPx = 20;
const legendLineHeightPx = 18;

interface Panel {
  readonly title: string;
  readonly value: (row: ResultRow, at: number) => number;
  /** A bar's value as its tooltip says it. */
  readonly label: (value: number) => string;
  /** A power of ten on the axis; default `label`. */
  readonly tick?: (value: number) => string;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Powers of ten around the values: the log axis's ticks. */
export function decades(values: readonly number[]): number[] {
  const positive = values.filter((value) => value > 0);
  if (positive.length === 0) return [1, 10];
  const low = Math.floor(Math.log10(Math.min(...positive)));
  const high = Math.max(low + 1, Math.ceil(Math.log10(Math.max(...positive))));
  return Array.from({ length: high - low + 1 }, (_, at) => 10 ** (low + at));
}

function panelSvg(results: CompareResults, panel: Panel, topPx: number): string {
  const rows = results.rows.filter((row) => row.failure === null);
  const levels = results.settings.inFlight;
  const values = rows.flatMap((row) => levels.map((_, at) => panel.value(row, at)));
  const ticks = decades(values);
  const plotTopPx = topPx + 30;
  const plotHeightPx = panelHeightPx - 60;
  const logLow = Math.log10(ticks[0] as number);
  const logSpan = Math.log10(ticks[ticks.length - 1] as number) - logLow;
  const yOf = (value: number) =>
    plotTopPx + plotHeightPx - ((Math.log10(value) - logLow) / logSpan) * plotHeightPx;
  const plotWidthPx = widthPx - marginLeftPx - marginRightPx;
  const groupWidthPx = plotWidthPx / levels.length;
  const barWidthPx = (groupWidthPx * 0.8) / Math.max(1, rows.length);
  const parts = [
    `<text x="${marginLeftPx}" y="${topPx + 18}" font-size="15" font-weight="bold">${escapeXml(panel.title)}</text>`,
  ];
  for (const tick of ticks) {
    const y = yOf(tick).toFixed(1);
    parts.push(
      `<line x1="${marginLeftPx}" x2="${widthPx - marginRightPx}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${marginLeftPx - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle">${escapeXml((panel.tick ?? panel.label)(tick))}</text>`,
    );
  }
  levels.forEach((level, at) => {
    const groupLeftPx = marginLeftPx + at * groupWidthPx + groupWidthPx * 0.1;
    rows.forEach((row, rowAt) => {
      const value = panel.value(row, at);
      if (!(value > 0)) return;
      const x = groupLeftPx + rowAt * barWidthPx;
      const y = yOf(value);
      const fill = colours[results.rows.indexOf(row) % colours.length];
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidthPx - 2).toFixed(1)}" height="${(plotTopPx + plotHeightPx - y).toFixed(1)}" fill="${fill}"><title>${escapeXml(`${rowLabel(row)}, ${formatCount(level)} in flight: ${panel.label(value)}`)}</title></rect>`,
      );
    });
    const centreX = (marginLeftPx + (at + 0.5) * groupWidthPx).toFixed(1);
    parts.push(
      `<text x="${centreX}" y="${plotTopPx + plotHeightPx + 18}" font-size="12" text-anchor="middle">${formatCount(level)} in flight</text>`,
    );
  });
  return parts.join('\n');
}

function legendSvg(results: CompareResults, topPx: number): string {
  return results.rows
    .map((row, at) => {
      const y = topPx + at * legendLineHeightPx;
      const fill = colours[at % colours.length];
      const fsync = row.fsyncBeforeAck ? 'fsync before ack' : 'no fsync before ack';
      const text = `${rowLabel(row)}: ${row.failure === null ? fsync : `did not run (${row.failure})`}`;
      return `<rect x="${marginLeftPx}" y="${y}" width="12" height="12" fill="${fill}"/><text x="${marginLeftPx + 18}" y="${y + 10}" font-size="12">${escapeXml(text)}</text>`;
    })
    .join('\n');
}

export function renderChart(results: CompareResults): string {
  const note = repeatNote(results);
  const panels: Panel[] = [
    {
      title: `Messages acknowledged per second, higher is better (${results.settings.payloadBytes} B each, log scale)${note}`,
      value: (row, at) => row.runs[at]?.messagesPerSecond ?? 0,
      label: formatCount,
    },
    {
      title: `Latency p50, send to acknowledgement, lower is better (ms, log scale)${note}`,
      value: (row, at) => row.runs[at]?.p50Ms ?? 0,
      label: formatMs,
      tick: (value) => (value >= 1 ? formatCount(value) : String(value)),
    },
  ];
  const legendTopPx = 10;
  const panelsTopPx = legendTopPx + results.rows.length * legendLineHeightPx + 10;
  const heightPx = panelsTopPx + panels.length * panelHeightPx;
  const body = [
    legendSvg(results, legendTopPx),
    ...panels.map((panel, at) => panelSvg(results, panel, panelsTopPx + at * panelHeightPx)),
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${widthPx}" height="${heightPx}" viewBox="0 0 ${widthPx} ${heightPx}" font-family="sans-serif">`,
    `<title>${escapeXml(`${[...new Set(results.rows.map((row) => row.server))].join(', ')}: messages per second and p50 latency at each load`)}</title>`,
    `<rect width="${widthPx}" height="${heightPx}" fill="#fff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
