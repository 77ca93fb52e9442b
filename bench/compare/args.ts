/** The flags of `npm run bench:compare -- [flags]`, read into settings; pure, so tested. */
import {
  defineFlags,
  FlagError,
  nonNegativeInteger,
  positiveInteger,
  positiveIntegers,
} from '../args.ts';

export const systemIds = ['etcd', 'zookeeper', 'nats', 'abcast'] as const;
export type SystemId = (typeof systemIds)[number];

export interface CompareSettings {
  /** Counted seconds of each load level. */
  readonly seconds: number;
  /** Seconds of load before the counted ones, at each level. */
  readonly warmupSeconds: number;
  /** Seconds of uncounted load at 128 in flight on each fresh cluster, before its levels. */
  readonly clusterWarmupSeconds: number;
  /** The load levels: messages in flight from the one client. */
  readonly inFlight: readonly number[];
  readonly payloadBytes: number;
  /** The systems to race, in the order they run. */
  readonly only: readonly SystemId[];
  /** Kept-alive connections for abcast's one-POST-per-message run. */
  readonly postConnections: number;
  /** Messages the catching-up subscriber reads from position 1. */
  readonly catchUpMessages: number;
  /** Where the results go (JSON). */
  readonly out: string;
  /** Rewrite docs/performance.md and its chart (the full race only, unless told). */
  readonly writeDoc: boolean;
  /** Run nothing: render the doc and chart from this results file (after editing the renderers). */
  readonly renderFrom: string | null;
  /** Install missing Debian packages with apt-get. */
  readonly install: boolean;
  /** How many times the whole race runs, one after the other; its figures are their medians. */
  readonly repeatCount: number;
}

export const usage = `npm run bench:compare -- [flags]
  --seconds N            counted seconds of each load level (default 10)
  --warmup-seconds N     seconds of load before they count, each level (default 2)
  --cluster-warmup-seconds N
                         load on each fresh cluster before its first level (default 5)
  --in-flight LIST       messages in flight, comma-separated (default 1,16,128,10000)
  --payload-bytes N      bytes per message (default 256)
  --only LIST            some of etcd,zookeeper,nats,abcast (default all, in that order)
  --post-connections N   abcast's POST-per-message run: kept-alive connections (default 128)
  --catch-up-messages N  abcast's subscriber reads positions 1..N (default 500000)
  --out FILE             results (default bench/results/compare.json for the full race,
                         compare-<systems>.json with --only)
  --doc / --no-doc       rewrite docs/performance.md and docs/images/performance-compare.svg
                         (default: only for the full race)
  --render-from FILE     run nothing: rewrite the doc and chart from a results file
  --repeat N             run the whole race N times in a row and report the medians (default 1)
  --no-install           do not apt-get install missing servers`;

function systemsOf(text: string): SystemId[] {
  const names = text.split(',').map((name) => name.trim().toLowerCase());
  for (const name of names) {
    if (!(systemIds as readonly string[]).includes(name)) {
      throw new FlagError(`--only takes some of ${systemIds.join(',')}, got "${name}"`);
    }
  }
  // The race's own order, each once, whatever order they were named in.
  return systemIds.filter((id) => names.includes(id));
}

export const compareFlags = defineFlags({
  usage,
  allowNegative: true,
  options: {
    seconds: { type: 'string', default: '10' },
    'warmup-seconds': { type: 'string', default: '2' },
    'cluster-warmup-seconds': { type: 'string', default: '5' },
    'in-flight': { type: 'string', default: '1,16,128,10000' },
    'payload-bytes': { type: 'string', default: '256' },
    only: { type: 'string' },
    'post-connections': { type: 'string', default: '128' },
    'catch-up-messages': { type: 'string', default: '500000' },
    out: { type: 'string' },
    doc: { type: 'boolean' },
    'render-from': { type: 'string' },
    install: { type: 'boolean', default: true },
    repeat: { type: 'string', default: '1' },
  },
  read: (values): CompareSettings => {
    const only = values.only === undefined ? [...systemIds] : systemsOf(values.only);
    const full = only.length === systemIds.length;
    return {
      seconds: positiveInteger('seconds', values.seconds),
      warmupSeconds: nonNegativeInteger('warmup-seconds', values['warmup-seconds']),
      clusterWarmupSeconds: nonNegativeInteger(
        'cluster-warmup-seconds',
        values['cluster-warmup-seconds'],
      ),
      inFlight: positiveIntegers('in-flight', values['in-flight']),
      payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
      only,
      postConnections: positiveInteger('post-connections', values['post-connections']),
      catchUpMessages: positiveInteger('catch-up-messages', values['catch-up-messages']),
      out:
        values.out ??
        (full ? 'bench/results/compare.json' : `bench/results/compare-${only.join('-')}.json`),
      writeDoc: values.doc ?? full,
      renderFrom: values['render-from'] ?? null,
      install: values.install,
      repeatCount: positiveInteger('repeat', values.repeat),
    };
  },
});
