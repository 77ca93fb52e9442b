/**
 * Parses test/sim/seeds.txt: one regression seed per line with optional key=value settings
 * and a comment. Bad lines throw with their line number, so a typo cannot skip a seed.
 */
import { type UnsafeVariant, unsafeVariants } from '../../src/raft/core.ts';
import { parseSeed } from '../../src/sim/cli.ts';
import { type Profile, profiles } from '../../src/sim/fault-mix.ts';
import { type Property, properties } from '../../src/sim/violation.ts';

export interface RegressionSeed {
  readonly line: number;
  readonly seed: number;
  readonly nodeCount: number | null;
  readonly profile: Profile;
  readonly faultPhaseTicks: number | undefined;
  readonly unsafe: UnsafeVariant | null;
  readonly disabled: Property[];
  readonly expect: Property | null;
  readonly comment: string;
}

function property(text: string, line: number): Property {
  const name = text.replaceAll('_', ' ');
  if (!(properties as readonly string[]).includes(name)) {
    throw new Error(`seeds.txt line ${line}: unknown property ${text}`);
  }
  return name as Property;
}

export function parseSeedFile(text: string): RegressionSeed[] {
  const seeds: RegressionSeed[] = [];
  text.split('\n').forEach((raw, offset) => {
    const line = offset + 1;
    const hash = raw.indexOf('#');
    const body = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (body === '') return;
    const [seedText, ...settings] = body.split(/\s+/);
    const entry: {
      -readonly [K in keyof RegressionSeed]: RegressionSeed[K];
    } = {
      line,
      seed: parseSeed(seedText as string),
      nodeCount: null,
      profile: 'default',
      faultPhaseTicks: undefined,
      unsafe: null,
      disabled: [],
      expect: null,
      comment: hash === -1 ? '' : raw.slice(hash + 1).trim(),
    };
    for (const setting of settings) {
      const [key, value] = setting.split('=');
      if (value === undefined || value === '')
        throw new Error(`seeds.txt line ${line}: bad setting ${setting}`);
      switch (key) {
        case 'nodes':
          entry.nodeCount = Number(value);
          break;
        case 'profile':
          if (!(profiles as readonly string[]).includes(value))
            throw new Error(`seeds.txt line ${line}: unknown profile ${value}`);
          entry.profile = value as Profile;
          break;
        case 'ticks':
          entry.faultPhaseTicks = Number(value);
          break;
        case 'unsafe':
          if (!(unsafeVariants as readonly string[]).includes(value))
            throw new Error(`seeds.txt line ${line}: unknown variant ${value}`);
          entry.unsafe = value as UnsafeVariant;
          break;
        case 'off':
          entry.disabled = value.split(',').map((name) => property(name, line));
          break;
        case 'expect':
          entry.expect = property(value, line);
          break;
        default:
          throw new Error(`seeds.txt line ${line}: unknown key ${key}`);
      }
    }
    seeds.push(entry);
  });
  return seeds;
}
