/**
 * Backup and restore (docs/ops.md).
 *
 * `abcast snapshot save FILE --node URL`: asks the node for a backup (GET /v1/snapshot, taken
 * at a committed index after a barrier) and writes it with a SHA-256 of its body: a header
 * line `{"format":"abcast-snapshot","version":1,"sha256":…,"bodyBytes":…}`, then the body.
 *
 * `abcast snapshot restore FILE --data DIR --id ID --peers LIST`: makes the data directory of
 * one member of a NEW cluster from it, run once per member with the same peer list: its log
 * starts at the snapshot (same index, term, session table, last position) with the new
 * members as its configuration and membership. Positions continue after the snapshot's, and
 * every session it holds still drops duplicates, and durable consumers keep their cursors. The
 * messages up to the snapshot's position stay in the file: the new cluster's retained range
 * begins after it (a read below answers 410 on every node).
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MembershipTable } from '../../broadcast/membership.ts';
import { StreamState } from '../../broadcast/stream-state.ts';
import { makeConfiguration } from '../../raft/config.ts';
import type { Configuration } from '../../raft/types.ts';
import { FileStorage } from '../../storage/file-storage.ts';
import { CliError } from './errors.ts';
import { defaultNodeUrl, getJsonWhileUnavailable, nodeUrl } from './http-client.ts';
import { parsePeers } from './start.ts';

export const snapshotFormat = 'abcast-snapshot';
export const snapshotVersion = 1;
/**
 * A backup of a large state with its messages takes a while to gather and send; a node that
 * answers 503 meanwhile (no leader confirmed its read yet) is asked again within it.
 */
const saveTimeoutMs = 120_000;

/** The body of a backup, as GET /v1/snapshot answers it. */
export interface SnapshotBody {
  readonly format: string;
  readonly version: number;
  readonly node: string;
  readonly takenAtMs: number;
  readonly index: number;
  readonly term: number;
  readonly config: Configuration;
  readonly position: number;
  /** The application state, base64: u32 length of the session table, it, membership JSON. */
  readonly state: string;
  readonly firstPosition: number;
  readonly messages: readonly {
    readonly position: number;
    readonly client: string;
    readonly seq: number;
    readonly topic: string;
    readonly payloadBase64: string;
  }[];
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The file's text: the header line with the body's checksum, then the body. */
export function encodeSnapshotFile(body: SnapshotBody): Buffer {
  const bodyBytes = Buffer.from(JSON.stringify(body));
  const header = {
    format: snapshotFormat,
    version: snapshotVersion,
    sha256: sha256Hex(bodyBytes),
    bodyBytes: bodyBytes.length,
  };
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), bodyBytes]);
}

/** Checks the header, the length and the checksum; a CliError names what is wrong. */
export function decodeSnapshotFile(file: Buffer, path: string): SnapshotBody {
  const newline = file.indexOf(0x0a);
  let header: { format?: unknown; version?: unknown; sha256?: unknown; bodyBytes?: unknown };
  try {
    header = JSON.parse(file.subarray(0, newline < 0 ? file.length : newline).toString('utf8'));
  } catch {
    throw new CliError(`${path} is not an abcast snapshot (no header line)`);
  }
  if (header.format !== snapshotFormat) {
    throw new CliError(`${path} is not an abcast snapshot`);
  }
  if (header.version !== snapshotVersion) {
    throw new CliError(
      `${path} is a snapshot of version ${String(header.version)}; this release reads version ${snapshotVersion}`,
    );
  }
  const body = file.subarray(newline + 1);
  if (body.length !== header.bodyBytes || sha256Hex(body) !== header.sha256) {
    throw new CliError(`${path} is damaged: its checksum does not match (truncated or changed)`);
  }
  const parsed = JSON.parse(body.toString('utf8')) as SnapshotBody;
  if (parsed.format !== snapshotFormat || parsed.version !== snapshotVersion) {
    throw new CliError(`${path} holds a body of another format`);
  }
  return parsed;
}

async function save(file: string, flags: { node: string; messages: boolean }): Promise<void> {
  const base = nodeUrl(flags.node);
  const path = flags.messages ? '/v1/snapshot' : '/v1/snapshot?messages=0';
  const body = await getJsonWhileUnavailable<SnapshotBody>(base, path, saveTimeoutMs);
  if (body.format !== snapshotFormat || body.version !== snapshotVersion) {
    throw new CliError(`${base} answered a snapshot of a format this release does not write`);
  }
  await writeFile(file, encodeSnapshotFile(body), { mode: 0o600 });
  console.log(
    `snapshot of node ${body.node} at position ${body.position} (log index ${body.index}, term ${body.term}, ${body.messages.length} messages) written to ${file}`,
  );
}

/**
 * The application state with its membership replaced by `members` (all voters), its consumers
 * kept, and retention's floor raised past `position`: the new cluster's message stores start
 * empty, so the messages up to the snapshot stay in the file, and every node answers a read
 * of them 410 with the same first position instead of looking for them on its peers.
 */
export function restoredState(
  state: Uint8Array,
  members: Readonly<Record<string, string>>,
  position: number,
): Buffer {
  const view = Buffer.from(state.buffer, state.byteOffset, state.byteLength);
  if (view.length < 4) throw new CliError('the snapshot state is too short');
  const sessionBytes = view.readUInt32LE(0);
  if (4 + sessionBytes > view.length) throw new CliError('the snapshot state is damaged');
  const table = new MembershipTable();
  table.apply({
    op: 'seed',
    members: Object.entries(members).map(([id, address]) => ({ id, address, voter: true })),
  });
  const [, streamsJson] = view
    .subarray(4 + sessionBytes)
    .toString('utf8')
    .split('\n');
  let streams: StreamState;
  try {
    streams =
      streamsJson === undefined ? new StreamState() : StreamState.fromJSON(JSON.parse(streamsJson));
  } catch {
    throw new CliError('the snapshot state is damaged: its stream part does not read');
  }
  streams.apply({ op: 'retain', before: position + 1 }, { lastPosition: position, logTimeMs: 0 });
  return Buffer.concat([
    view.subarray(0, 4 + sessionBytes),
    Buffer.from(`${JSON.stringify(table.toJSON())}\n${JSON.stringify(streams)}`),
  ]);
}

interface RestoreFlags {
  data: string;
  id: string;
  peers: string;
  clusterId: string;
}

async function restore(file: string, flags: RestoreFlags): Promise<void> {
  const body = decodeSnapshotFile(await readFile(file), file);
  const peers = parsePeers(flags.peers);
  if (!(flags.id in peers)) throw new CliError(`--peers does not include --id ${flags.id}`);
  const dataDir = resolve(flags.data);
  const { storage, persisted } = await FileStorage.open({
    dataDir,
    clusterId: flags.clusterId,
    nodeId: flags.id,
  });
  try {
    const empty =
      persisted.hardState === null && persisted.snapshot === null && persisted.entries.length === 0;
    if (!empty)
      throw new CliError(`${dataDir} already holds a node's data; restore into a new one`);
    const data = restoredState(Buffer.from(body.state, 'base64'), peers, body.position);
    await storage.append({
      hardState: { term: body.term, vote: null, commit: body.index },
      snapshot: {
        meta: {
          index: body.index,
          term: body.term,
          config: makeConfiguration(Object.keys(peers), []),
        },
        data,
      },
      entries: [],
    });
  } finally {
    await storage.close();
  }
  console.log(
    `node ${flags.id} restored in ${dataDir}: log index ${body.index}, term ${body.term}, next position ${body.position + 1}; start it with the same --peers and --cluster-id ${flags.clusterId}`,
  );
}

export function snapshotCommand(program: Command): void {
  const command = program
    .command('snapshot')
    .description('back a cluster up to a file, or make a new cluster from one');
  command
    .command('save <file>')
    .description(
      "write a consistent snapshot of the cluster's state, taken at a committed position",
    )
    .option('--node <url>', "a node's HTTP API", defaultNodeUrl)
    .option('--no-messages', 'leave out the delivered messages the node keeps (state only)')
    .action((file: string, flags: { node: string; messages: boolean }) => save(file, flags));
  command
    .command('restore <file>')
    .description('make the data directory of one member of a new cluster from a snapshot')
    .requiredOption('--data <dir>', 'the new data directory (must be empty or absent)')
    .requiredOption('--id <id>', 'this member of the new cluster')
    .requiredOption('--peers <list>', 'every member of the new cluster: n1=host:port,…')
    .option('--cluster-id <id>', 'the new cluster id (as abcast start --cluster-id)', 'abcast')
    .action((file: string, flags: RestoreFlags) => restore(file, flags));
}
