// One run of the runtime simulation leaves nothing behind that changes the next: a range of
// seeds run one after another in one process, then again in the reverse order (so each has
// other runs before it), and a few of them each alone in a fresh process, give every seed
// the same outcome, step count and trace digest. A seed that fails at its turn in a sweep
// but passes alone would show here as a different fingerprint. And nothing in a run reads
// the wall clock, arms a real timer or draws real randomness: a run that did would depend on
// the machine's load, not on its seed alone.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fingerprintRun, type RunFingerprint } from '../../src/sim/runtime/fingerprint.ts';
import { formatSeed } from '../../src/sim/violation.ts';

const seedCount = Number(process.env.ABCAST_ISOLATION_SEEDS ?? 12);
const seeds = Array.from({ length: seedCount }, (_, offset) => 0x100 + offset);
/** The seeds that ran last in the forward pass (the most runs before them) run alone too. */
const aloneCount = 3;

type Patchable = Record<string, unknown>;

/**
 * Counts calls of the global clocks, timers and random sources while `body` runs. A real
 * setImmediate is allowed: the world uses it to let microtasks settle between steps.
 */
async function withRealSourcesCounted<T>(
  body: () => Promise<T>,
): Promise<{ value: T; calls: string[] }> {
  const calls: string[] = [];
  const sources: [Patchable, string, string][] = [
    [Date as unknown as Patchable, 'now', 'Date.now'],
    [performance as unknown as Patchable, 'now', 'performance.now'],
    [Math as unknown as Patchable, 'random', 'Math.random'],
    [globalThis as unknown as Patchable, 'setTimeout', 'setTimeout'],
    [globalThis as unknown as Patchable, 'setInterval', 'setInterval'],
    [globalThis.crypto as unknown as Patchable, 'getRandomValues', 'crypto.getRandomValues'],
    [globalThis.crypto as unknown as Patchable, 'randomUUID', 'crypto.randomUUID'],
  ];
  const restore = sources.map(([owner, name, label]) => {
    const real = owner[name] as (...args: unknown[]) => unknown;
    owner[name] = function (this: unknown, ...args: unknown[]) {
      calls.push(label);
      return real.apply(this, args);
    };
    return () => {
      owner[name] = real;
    };
  });
  try {
    return { value: await body(), calls };
  } finally {
    for (const undo of restore) undo();
  }
}

async function fingerprintsInOrder(order: readonly number[]): Promise<Map<number, RunFingerprint>> {
  const fingerprints = new Map<number, RunFingerprint>();
  for (const seed of order) fingerprints.set(seed, await fingerprintRun({ seed }));
  return fingerprints;
}

function fingerprintsAlone(order: readonly number[]): Map<number, RunFingerprint> {
  const child = fileURLToPath(new URL('./fingerprint-child.ts', import.meta.url));
  const fingerprints = new Map<number, RunFingerprint>();
  for (const seed of order) {
    // One process per seed: nothing ran in it before.
    const output = execFileSync(process.execPath, ['--import', 'tsx', child, formatSeed(seed)], {
      encoding: 'utf8',
    });
    fingerprints.set(seed, JSON.parse(output.trim()) as RunFingerprint);
  }
  return fingerprints;
}

test(`seeds ${formatSeed(seeds[0] as number)}..+${seedCount} run alike forwards, backwards and alone`, async (t) => {
  const counted = await withRealSourcesCounted(() => fingerprintsInOrder(seeds));
  const forward = counted.value;
  assert.deepEqual(counted.calls, [], 'a run reads no real clock, timer or random source');
  const backward = await fingerprintsInOrder([...seeds].reverse());
  const alone = fingerprintsAlone(seeds.slice(-aloneCount));
  assert.ok(
    [...forward.values()].some((fingerprint) => fingerprint.traceLines > 100),
    'the runs did something',
  );
  for (const seed of seeds) {
    const first = forward.get(seed);
    assert.deepEqual(backward.get(seed), first, `${formatSeed(seed)} after other seeds`);
    if (alone.has(seed)) assert.deepEqual(alone.get(seed), first, `${formatSeed(seed)} alone`);
  }
  t.diagnostic(
    [...forward.values()]
      .map((print) => `${formatSeed(print.seed)} ${print.property ?? 'ok'} ${print.steps}`)
      .join(', '),
  );
});
