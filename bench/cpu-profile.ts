/**
 * What the benchmarks read of V8's `.cpuprofile` files (`--cpu-prof`), and how they name
 * and rank what they count: bench/profile.ts (self time per function and file) and
 * bench/catchup.ts (the samples of one time window).
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly hitCount?: number;
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The frame's file, relative to `root` when it is one of ours, else its URL or `(vm)`. */
export function frameFile(frame: ProfileNode['callFrame'], root: string): string {
  return frame.url.startsWith('file://')
    ? relative(root, fileURLToPath(frame.url))
    : frame.url || '(vm)';
}

/** `function file:line`, one line up from V8's zero-based line. */
export function frameName(frame: ProfileNode['callFrame'], root: string): string {
  return `${frame.functionName || '(anonymous)'} ${frameFile(frame, root)}:${frame.lineNumber + 1}`;
}

/** The `top` largest counts, each as a share of `total`, one per line. */
export function shareTable(
  counts: ReadonlyMap<string, number>,
  total: number,
  top: number,
): string {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, hits]) => `  ${((100 * hits) / total).toFixed(1).padStart(5)}%  ${name}`)
    .join('\n');
}
