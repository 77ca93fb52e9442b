// Every regression seed in test/sim/runtime-seeds.txt runs the runtime simulation (real
// nodes, WAL over simulated disks, SDK clients) without a violation.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseSeed } from '../../src/sim/cli-flags.ts';
import { type ClientMix, clientMixes, type Profile, profiles } from '../../src/sim/runtime/mix.ts';
import { runRuntimeSeed } from '../../src/sim/runtime/world.ts';
import { formatSeed } from '../../src/sim/violation.ts';

interface RuntimeRegressionSeed {
  readonly line: number;
  readonly seed: number;
  readonly profile: Profile;
  readonly clients: ClientMix;
  /** The sweep's --nodes; null lets the seed draw its cluster size. */
  readonly nodeCount: number | null;
  /** The sweep's --ms (the fault phase in virtual ms); null for the default. */
  readonly faultPhaseMs: number | null;
  /** The sweep's --wal-segment-bytes; null lets the seed draw its segment size. */
  readonly walSegmentBytes: number | null;
  readonly comment: string;
}

/**
 * One seed per line, optionally `profile=NAME` (the sweep's --profile), `clients=NAME`
 * (--clients), `nodes=3` or `nodes=5` (--nodes), `ms=T` (--ms) and `wal=B`
 * (--wal-segment-bytes), then `# why`; a line with anything else throws, so no seed is
 * skipped.
 */
function parseRuntimeSeeds(text: string): RuntimeRegressionSeed[] {
  const seeds: RuntimeRegressionSeed[] = [];
  text.split('\n').forEach((raw, offset) => {
    const hash = raw.indexOf('#');
    const body = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (body === '') return;
    const [seedText, ...settings] = body.split(/\s+/);
    let profile: Profile = 'default';
    let clients: ClientMix = 'mixed';
    let nodeCount: number | null = null;
    let faultPhaseMs: number | null = null;
    let walSegmentBytes: number | null = null;
    for (const setting of settings) {
      const [name, value] = setting.split('=') as [string, string | undefined];
      if (name === 'profile' && (profiles as readonly string[]).includes(value ?? '')) {
        profile = value as Profile;
      } else if (name === 'clients' && (clientMixes as readonly string[]).includes(value ?? '')) {
        clients = value as ClientMix;
      } else if (name === 'nodes' && (value === '3' || value === '5')) {
        nodeCount = Number(value);
      } else if (name === 'ms' && /^[1-9]\d{0,6}$/.test(value ?? '')) {
        faultPhaseMs = Number(value);
      } else if (name === 'wal' && /^[1-9]\d{3,9}$/.test(value ?? '')) {
        walSegmentBytes = Number(value);
      } else {
        throw new Error(`runtime-seeds.txt line ${offset + 1}: unknown setting ${setting}`);
      }
    }
    const comment = hash === -1 ? '' : raw.slice(hash + 1).trim();
    seeds.push({
      line: offset + 1,
      seed: parseSeed(seedText as string),
      profile,
      clients,
      nodeCount,
      faultPhaseMs,
      walSegmentBytes,
      comment,
    });
  });
  return seeds;
}

const seeds = parseRuntimeSeeds(
  readFileSync(new URL('./runtime-seeds.txt', import.meta.url), 'utf8'),
);

test('runtime-seeds.txt has seeds', () => {
  assert.ok(seeds.length >= 1);
});

for (const entry of seeds) {
  test(`runtime seed ${formatSeed(entry.seed)} (line ${entry.line}): ${entry.comment}`, async () => {
    const result = await runRuntimeSeed({
      seed: entry.seed,
      profile: entry.profile,
      clients: entry.clients,
      nodeCount: entry.nodeCount,
      ...(entry.faultPhaseMs === null ? {} : { faultPhaseMs: entry.faultPhaseMs }),
      walSegmentBytes: entry.walSegmentBytes,
    });
    assert.equal(result.violation, null, result.violation?.message);
  });
}
