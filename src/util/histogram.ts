import { assert } from './assert.ts';

/** Counts per bucket (not cumulative; the last slot is above every bound), sum and count. */
export interface HistogramSnapshot {
  readonly upperBounds: readonly number[];
  readonly bucketCounts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

/** A fixed-bucket histogram: O(buckets) per observation, no allocation. */
export class FixedHistogram {
  private readonly bucketCounts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly upperBounds: readonly number[]) {
    assert(upperBounds.length > 0, 'a histogram has buckets');
    for (let at = 1; at < upperBounds.length; at++) {
      assert((upperBounds[at - 1] as number) < (upperBounds[at] as number), 'bounds increase');
    }
    this.bucketCounts = new Array(upperBounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let bucket = 0;
    while (bucket < this.upperBounds.length && value > (this.upperBounds[bucket] as number))
      bucket++;
    this.bucketCounts[bucket] = (this.bucketCounts[bucket] as number) + 1;
    this.sum += value;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    return {
      upperBounds: this.upperBounds,
      bucketCounts: [...this.bucketCounts],
      sum: this.sum,
      count: this.count,
    };
  }
}
