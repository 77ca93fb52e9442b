/**
 * The flags of `abcast start` about the log as a stream: retention (`--retention forever`,
 * `--retention-age 7d`, `--retention-bytes 50GiB`, and per topic, repeatable,
 * `--retention-topic orders=30d` or `audit=forever`), the message store's segment size, and
 * the other nodes' HTTP addresses (`--http-peers`), which a node backfills its store from and
 * forwards reads of positions it lacks to.
 */
import type { Command } from 'commander';
import type { RetentionPolicy } from '../../broadcast/retention.ts';
import { segmentBytesMin } from '../../store/index.ts';
import { CliError } from './errors.ts';
import { tokenPattern } from './http-client.ts';

export interface StreamFlags {
  retention?: string;
  retentionAge?: string;
  retentionBytes?: string;
  retentionTopic?: string[];
  storeSegmentBytes?: string;
  snapshotIntervalBytes?: string;
  httpPeers?: string;
  backfillToken?: string;
  compactTopics?: string;
}

export interface StreamSettings {
  readonly retention: RetentionPolicy;
  /** Null for the default, 64 MiB. */
  readonly storeSegmentBytes: number | null;
  /** Applied bytes between two snapshots (the WAL is compacted to them); null: 64 MiB. */
  readonly snapshotIntervalBytes: number | null;
  /** Base URLs of the other nodes' HTTP APIs. */
  readonly httpPeers: readonly string[];
  /** A token of an identity that reads every topic, for backfill when peers authenticate. */
  readonly backfillToken: string | null;
  /** Topics compacted by key: the newest message per key stays. */
  readonly compactTopics: readonly string[];
}

const durationUnitsMs: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

const sizeUnitsBytes: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * `--retention-topic TOPIC=AGE` entries (AGE a duration or `forever`), or a config file's
 * `retentionTopics` object of topic → age: topic → ms (null: forever). Undefined for none.
 */
export function parseTopicRetention(
  value: unknown,
): Readonly<Record<string, number | null>> | undefined {
  if (value === undefined) return undefined;
  const entries: [string, string][] =
    typeof value === 'object' && value !== null && !Array.isArray(value)
      ? Object.entries(value as Record<string, unknown>).map(([topic, age]) => [topic, String(age)])
      : (Array.isArray(value) ? value : [value]).map((entry) => {
          const text = String(entry);
          const at = text.lastIndexOf('=');
          if (at <= 0) {
            throw new CliError(
              `--retention-topic takes TOPIC=AGE, such as orders=30d or audit=forever; not "${text}"`,
            );
          }
          return [text.slice(0, at), text.slice(at + 1)];
        });
  const topics: Record<string, number | null> = {};
  for (const [topic, age] of entries) {
    if (topic.startsWith('$abcast/')) {
      throw new CliError(`--retention-topic: ${topic} is the log's own record, not a topic`);
    }
    if (Object.hasOwn(topics, topic)) {
      throw new CliError(`--retention-topic gives ${topic} twice`);
    }
    topics[topic] = age.trim() === 'forever' ? null : parseDurationMs('retention-topic', age);
  }
  return entries.length === 0 ? undefined : topics;
}

/** "7d", "12h", "90m", "30s", "500ms" → milliseconds. */
export function parseDurationMs(flag: string, text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)$/.exec(text.trim());
  const valueMs =
    match === null
      ? Number.NaN
      : Math.round(Number(match[1]) * (durationUnitsMs[match[2] as string] as number));
  // Checked once rounded: "0.1ms" is no age at all, and the node asserts a positive one.
  if (!Number.isSafeInteger(valueMs) || valueMs < 1) {
    throw new CliError(`--${flag} takes a duration such as 7d, 12h, 90m or 30s; not "${text}"`);
  }
  return valueMs;
}

/** "50GiB", "512MiB", "10GB", "4096" → bytes. */
export function parseSizeBytes(flag: string, text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = sizeUnitsBytes[(match?.[2] ?? 'x').toLowerCase()];
  const valueBytes =
    match === null || unit === undefined ? Number.NaN : Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(valueBytes) || valueBytes < 1) {
    throw new CliError(`--${flag} takes a size such as 50GiB, 512MiB or 10GB; not "${text}"`);
  }
  return valueBytes;
}

/** `--store-segment-bytes`: a size, no less than the store's least segment size. */
function storeSegmentBytesOf(text: string): number {
  const segmentBytes = parseSizeBytes('store-segment-bytes', text);
  if (segmentBytes < segmentBytesMin) {
    throw new CliError(
      `--store-segment-bytes takes a size of at least ${segmentBytesMin} bytes; not "${text}"`,
    );
  }
  return segmentBytes;
}

/**
 * The entries of `--http-peers` ("n1=http://10.0.0.1:8001,http://h:9", or a config file's
 * object id → URL): each a URL, named by a member id or not. The dashboard shows the named
 * ones (httpPeerNames); the message store backfills from every one but the node's own.
 */
function httpPeerEntries(value: unknown): { readonly id: string | null; readonly url: string }[] {
  const parts =
    typeof value === 'object' && value !== null
      ? Object.entries(value as Record<string, unknown>).map(([id, url]) => `${id}=${String(url)}`)
      : String(value).split(',');
  return parts
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      const named = /^[^=/:]+=/.test(part);
      const id = named ? part.slice(0, part.indexOf('=')).trim() : null;
      const text = named ? part.slice(part.indexOf('=') + 1).trim() : part;
      let url: URL | null = null;
      try {
        url = new URL(text);
      } catch {}
      if (url === null || !/^https?:$/.test(url.protocol) || !/^\/?$/.test(url.pathname)) {
        throw new CliError(
          `--http-peers takes [id=]http(s)://host:port entries, comma-separated; not "${part}"`,
        );
      }
      return { id, url: url.origin };
    });
}

/** Member id → base URL of its HTTP API, for the dashboard: the named entries. */
export function httpPeerNames(value: unknown): Record<string, string> {
  const names: Record<string, string> = {};
  if (value === undefined) return names;
  for (const { id, url } of httpPeerEntries(value)) if (id !== null) names[id] = url;
  return names;
}

/** Every URL of `--http-peers` but `selfId`'s own, for backfill and forwarded reads. */
function parseUrls(value: unknown, selfId: string | null): string[] {
  return httpPeerEntries(value)
    .filter((entry) => selfId === null || entry.id !== selfId)
    .map((entry) => `${entry.url}/`);
}

export function streamSettings(
  flags: StreamFlags,
  config: Readonly<Record<string, unknown>>,
  selfId: string | null = null,
): StreamSettings {
  const text = (value: unknown): string | undefined =>
    value === undefined ? undefined : String(value);
  const retention = text(flags.retention ?? config.retention);
  const ageText = text(flags.retentionAge ?? config.retentionAge);
  const bytesText = text(flags.retentionBytes ?? config.retentionBytes);
  if (retention !== undefined && retention !== 'forever') {
    throw new CliError(
      '--retention takes "forever"; limits are --retention-age and --retention-bytes',
    );
  }
  if (retention === 'forever' && (ageText !== undefined || bytesText !== undefined)) {
    throw new CliError('--retention forever cannot go with --retention-age or --retention-bytes');
  }
  const segmentText = text(flags.storeSegmentBytes ?? config.storeSegmentBytes);
  const peersValue = flags.httpPeers ?? config.httpPeers;
  const snapshotText = text(flags.snapshotIntervalBytes ?? config.snapshotIntervalBytes);
  const topics = parseTopicRetention(flags.retentionTopic ?? config.retentionTopics);
  return {
    retention: {
      ageMs: ageText === undefined ? null : parseDurationMs('retention-age', ageText),
      bytesMax: bytesText === undefined ? null : parseSizeBytes('retention-bytes', bytesText),
      ...(topics === undefined ? {} : { topics }),
    },
    storeSegmentBytes: segmentText === undefined ? null : storeSegmentBytesOf(segmentText),
    httpPeers: peersValue === undefined ? [] : parseUrls(peersValue, selfId),
    backfillToken: backfillTokenOf(
      text(flags.backfillToken ?? config.backfillToken ?? process.env.ABCAST_BACKFILL_TOKEN),
    ),
    snapshotIntervalBytes:
      snapshotText === undefined ? null : parseSizeBytes('snapshot-interval-bytes', snapshotText),
    compactTopics: topicList(flags.compactTopics ?? config.compactTopics),
  };
}

/**
 * The backfill token, checked as `--token` is: it goes in a header of every backfill call,
 * where a line break or a space would fail each call, forever, long after the start.
 */
function backfillTokenOf(token: string | undefined): string | null {
  if (token === undefined || token === '') return null;
  if (!tokenPattern.test(token)) {
    throw new CliError(
      '--backfill-token (or ABCAST_BACKFILL_TOKEN) must be a token `abcast token create` printed',
    );
  }
  return token;
}

/** `--compact-topics a,b` or the config's list: topics, none reserved. */
function topicList(value: unknown): string[] {
  if (value === undefined) return [];
  const topics = Array.isArray(value) ? value.map(String) : String(value).split(',');
  const trimmed = topics.map((topic) => topic.trim()).filter((topic) => topic !== '');
  for (const topic of trimmed) {
    if (topic.startsWith('$') || Buffer.byteLength(topic) > 255) {
      throw new CliError(`--compact-topics: "${topic}" is not a topic clients may publish on`);
    }
  }
  return trimmed;
}

export function addStreamOptions(command: Command): Command {
  return command
    .option('--retention <forever>', 'keep every message (the default)')
    .option('--retention-age <duration>', 'delete messages older than this in log time, e.g. 7d')
    .option('--retention-bytes <size>', 'keep at most about this much, e.g. 50GiB')
    .option(
      '--retention-topic <topic=age>',
      'a topic kept for an age of its own in log time, or forever: orders=30d (repeatable)',
      (entry: string, previous: string[] = []) => [...previous, entry],
    )
    .option('--store-segment-bytes <size>', 'message store segment size (default 64MiB)')
    .option(
      '--compact-topics <topics>',
      'comma-separated topics compacted by key: the newest message per key stays (give every node the same)',
    )
    .option(
      '--snapshot-interval-bytes <size>',
      'applied bytes between two snapshots, which the WAL is compacted to (default 64MiB)',
    )
    .option(
      '--backfill-token <token>',
      'with --auth on the peers: a token of a read identity of every topic, for backfill and the dashboard (or ABCAST_BACKFILL_TOKEN)',
    );
}
