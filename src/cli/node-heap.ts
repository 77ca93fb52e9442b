/**
 * V8 heap settings for a process that runs a node (`abcast start`, and the node processes
 * tests and benchmarks fork), applied before the node starts.
 *
 * A loaded node keeps a small JavaScript heap (≈13 MB of old generation on a follower) while
 * its log's bytes live outside it, in ArrayBuffers that arrive at ≈50 MB/s. V8 counts the
 * external memory allocated since the last Mark-Compact against the old generation's room,
 * and after each one set the next limit only ≈16 MB above the live size (`--trace-gc
 * --trace-incremental-marking`: "size/limit/slack 12MB / 28MB / 16MB"): incremental marking
 * began again within a fraction of a second, and a follower ran a Mark-Compact every
 * 100–200 ms under load, ≈50 in 10 s. Growing the limit 4× from the live size (V8's own
 * largest factor, which it picks when collecting is cheap) leaves ≈40 MB of room on such a
 * heap: followers ran 4–8 Mark-Compacts in 5 s instead of ≈20, about what freeing the log's
 * compacted entries needs anyway (those die old, and only a Mark-Compact frees them). A
 * large heap is not let loose: V8 still caps every limit below the heap's maximum.
 */
import { setFlagsFromString } from 'node:v8';

export const nodeHeapGrowingPercent = 300;

const growingFlag = '--heap-growing-percent';

/**
 * Applies the settings above, unless the process was started with its own
 * `--heap-growing-percent`, on its command line or in NODE_OPTIONS (an operator's choice
 * wins). V8 reads this flag each time it sets a limit, so setting it after start-up takes
 * effect at the next collection.
 */
export function tuneNodeHeap(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
  setFlags: (flags: string) => void = setFlagsFromString,
): void {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  // V8 takes its flags with dashes or underscores alike.
  if (given.some((flag) => flag.replaceAll('_', '-').startsWith(growingFlag))) return;
  setFlags(`${growingFlag}=${nodeHeapGrowingPercent}`);
}
