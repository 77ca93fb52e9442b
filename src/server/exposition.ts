/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: a handful of
 * counters, gauges and histograms do not need a library. Label sets are small and fixed by
 * the code (routes, statuses, peers), so no series is created from user input.
 */
import { assert } from '../util/assert.ts';

export type Labels = Readonly<Record<string, string>>;

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(labels: Labels): string {
  const names = Object.keys(labels);
  if (names.length === 0) return '';
  const parts = names.map((name) => {
    assert(labelName.test(name), `label name ${name} is valid`);
    return `${name}="${escapeLabelValue(labels[name] as string)}"`;
  });
  return `{${parts.join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** Builds one exposition: each family once, its HELP and TYPE first, then its samples. */
export class Exposition {
  private readonly lines: string[] = [];
  private readonly families = new Set<string>();

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    assert(metricName.test(name), `metric name ${name} is valid`);
    assert(!this.families.has(name), `metric family ${name} is written once`);
    this.families.add(name);
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    this.lines.push(`# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    return this;
  }

  /** A family with one unlabelled sample. */
  single(name: string, type: 'counter' | 'gauge', help: string, value: number): this {
    return this.family(name, type, help).sample(name, {}, value);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** Counts by label set; the label sets are bounded by the code that uses it. */
export class LabelledCounter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  increment(labels: Labels, by = 1): void {
    this.series(labels).value += by;
  }

  /**
   * The count of one label set, to add to directly: a caller counting often keeps it rather
   * than have the labels serialised to find it each time.
   */
  series(labels: Labels): { value: number } {
    const key = JSON.stringify(labels);
    let current = this.values.get(key);
    if (current === undefined) {
      current = { labels, value: 0 };
      this.values.set(key, current);
    }
    return current;
  }

  write(exposition: Exposition, name: string, help: string): void {
    exposition.family(name, 'counter', help);
    for (const { labels, value } of this.values.values()) exposition.sample(name, labels, value);
  }
}

export interface HistogramSeries {
  readonly labels: Labels;
  /** Per bucket, not cumulative; the last slot counts values above every bound. */
  readonly bucketCounts: number[];
  sum: number;
  count: number;
}

/** A histogram with fixed upper bounds, per label set. */
export class Histogram {
  private readonly seriesByKey = new Map<string, HistogramSeries>();

  constructor(private readonly upperBounds: readonly number[]) {
    assert(upperBounds.length > 0, 'a histogram has buckets');
    for (let at = 1; at < upperBounds.length; at++) {
      assert((upperBounds[at - 1] as number) < (upperBounds[at] as number), 'bounds increase');
    }
  }

  /** Records `value` `count` times (a run of messages answered at once shares its latency). */
  observe(labels: Labels, value: number, count = 1): void {
    this.observeIn(this.series(labels), value, count);
  }

  /** The series of one label set, for `observeIn` (a caller observing often keeps it). */
  series(labels: Labels): HistogramSeries {
    const key = JSON.stringify(labels);
    let series = this.seriesByKey.get(key);
    if (series === undefined) {
      series = {
        labels,
        bucketCounts: new Array(this.upperBounds.length + 1).fill(0),
        sum: 0,
        count: 0,
      };
      this.seriesByKey.set(key, series);
    }
    return series;
  }

  observeIn(series: HistogramSeries, value: number, count = 1): void {
    const bounds = this.upperBounds;
    let bucket = 0;
    while (bucket < bounds.length && !(value <= (bounds[bucket] as number))) bucket++;
    series.bucketCounts[bucket] = (series.bucketCounts[bucket] as number) + count;
    series.sum += value * count;
    series.count += count;
  }

  write(exposition: Exposition, name: string, help: string): void {
    exposition.family(name, 'histogram', help);
    for (const series of this.seriesByKey.values()) {
      let cumulative = 0;
      this.upperBounds.forEach((bound, at) => {
        cumulative += series.bucketCounts[at] as number;
        exposition.sample(`${name}_bucket`, { ...series.labels, le: String(bound) }, cumulative);
      });
      exposition.sample(`${name}_bucket`, { ...series.labels, le: '+Inf' }, series.count);
      exposition.sample(`${name}_sum`, series.labels, series.sum);
      exposition.sample(`${name}_count`, series.labels, series.count);
    }
  }
}
