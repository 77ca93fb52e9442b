/**
 * Backup and restore (docs/ops.md).
 *
 * `abcast snapshot save FILE --node URL`: asks the node for a backup (GET /v1/snapshot, taken
 * at a committed index after a barrier) and streams it to the file with a SHA-256 of its
 * body (snapshot-file.ts): a header line, then the node's lines as it sent them, each
 * checked on the way; the file appears only once the whole answer arrived.
 *
 * `abcast snapshot restore FILE --data DIR --id ID --peers LIST`: makes the data directory of
 * one member of a NEW cluster from it, run once per member with the same peer list: its log
 * starts at the snapshot (same index, term, session table, last position) with the new
 * members as its configuration and membership. Positions continue after the snapshot's, and
 * every session it holds still drops duplicates, and durable consumers keep their cursors. The
 * messages up to the snapshot's position stay in the file: the new cluster's retained range
 * begins after it (a read below answers 410 on every node). The file is read a line at a
 * time and checked whole (checksum, length, every position, the end line) before anything
 * is written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { MembershipTable } from '../../broadcast/membership.ts';
import { StreamState } from '../../broadcast/stream-state.ts';
import { makeConfiguration } from '../../raft/config.ts';
import { FileStorage, isLogFileName } from '../../storage/file-storage.ts';
import { hasErrorCode } from '../../storage/file-system.ts';
import { METADATA_FILE_NAME } from '../../storage/metadata.ts';
import { nodeFileSystem } from '../../storage/node-file-system.ts';
import { assert } from '../../util/assert.ts';
import { CliError } from './errors.ts';
import { defaultNodeUrl, getStreamWhileUnavailable, nodeUrl } from './http-client.ts';
import { markRestoreDone, markRestoreStarted, refuseUnfinishedRestore } from './restore-marker.ts';
import {
  BodyChecker,
  fileHeaderLine,
  LineSplitter,
  lineBytesMax,
  messageLineBytesMax,
  readSnapshotFile,
  type SnapshotSummary,
} from './snapshot-file.ts';
import { parsePeers } from './start.ts';

/**
 * A node that answers 503 before the backup starts (no leader confirmed its read yet) is
 * asked again within this.
 */
const saveTimeoutMs = 120_000;
/** Once the answer flows, a node that sends nothing for this long is given up on. */
const saveIdleMsMax = 60_000;
/** Body bytes gathered before a write to the file. */
const writeBytesMin = 1 << 20;

/**
 * `action` on the file being written, its failure told as the file's (a missing or
 * read-only directory, a full disk), not as the node's answer breaking off.
 */
async function onDisk<T>(path: string, action: Promise<T>): Promise<T> {
  try {
    return await action;
  } catch (error) {
    throw new CliError(`could not write ${path}: ${(error as Error).message}`);
  }
}

/** Lines and their bytes on their way to the file, with its checksum and length. */
class BodyFile {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly hash = createHash('sha256');
  bodyBytes = 0;

  /** `handle` gets the body from `offset` on, after room for the header line. */
  constructor(
    private readonly handle: Awaited<ReturnType<typeof open>>,
    private readonly path: string,
    private readonly offset: number,
  ) {}

  add(line: Buffer): void {
    // Copied: a line may be a view of a chunk the stream reuses.
    this.pending.push(Buffer.from(line), Buffer.from('\n'));
    this.pendingBytes += line.length + 1;
  }

  /** Writes what was added once there is enough of it (or `all`). */
  async write(all: boolean): Promise<void> {
    if (this.pendingBytes === 0 || (!all && this.pendingBytes < writeBytesMin)) return;
    const bytes = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.hash.update(bytes);
    // Positioned writes: the header line is written at 0 before and after the body.
    await onDisk(
      this.path,
      this.handle.write(bytes, 0, bytes.length, this.offset + this.bodyBytes),
    );
    this.bodyBytes += bytes.length;
  }

  /** The checksum, once everything was written. */
  sha256(): string {
    return this.hash.digest('hex');
  }
}

/**
 * Reads the node's answer a chunk at a time into `handle` after its header line: each line
 * checked, none held longer than it takes to write it. Resolves with what the body held and
 * its checksum and length; throws a CliError when the answer is not a whole backup.
 */
async function writeBody(
  body: AsyncIterable<Uint8Array>,
  handle: Awaited<ReturnType<typeof open>>,
  options: {
    readonly base: string;
    readonly path: string;
    readonly offset: number;
    readonly idle: () => void;
  },
): Promise<SnapshotSummary & { readonly sha256: string; readonly bodyBytes: number }> {
  const { base } = options;
  const file = new BodyFile(handle, options.path, options.offset);
  const checker = new BodyChecker((what) => new CliError(`${base} sent no whole backup: ${what}`));
  const splitter = new LineSplitter(
    lineBytesMax,
    (bytesMax) => new CliError(`${base} sent a line longer than ${bytesMax} bytes`),
  );
  const onLine = (line: Buffer) => {
    checker.line(line);
    splitter.narrow(messageLineBytesMax);
    file.add(line);
  };
  for await (const chunk of body) {
    options.idle();
    splitter.push(chunk, onLine);
    await file.write(false);
  }
  if (splitter.restBytes > 0)
    throw new CliError(`${base} sent no whole backup: it stopped mid-line`);
  const summary = checker.finish();
  await file.write(true);
  return { ...summary, sha256: file.sha256(), bodyBytes: file.bodyBytes };
}

/** Gives up (aborts) once `arm`'s time passed without another `arm`. */
class Watchdog {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;

  arm(delayMs: number, reason: string): void {
    this.stop();
    this.timer = setTimeout(() => this.controller.abort(new CliError(reason)), delayMs);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * Streams the node's backup into a `.partial` file of its own beside `file` (its header line
 * written last, once the body's checksum is known), and renames it to `file` only once the
 * answer was whole, with every line checked, and synced: a failed save leaves no file that
 * looks like a backup.
 */
export async function saveSnapshot(
  file: string,
  flags: { readonly node: string; readonly messages: boolean },
): Promise<SnapshotSummary> {
  const base = nodeUrl(flags.node);
  const path = flags.messages ? '/v1/snapshot' : '/v1/snapshot?messages=0';
  const watchdog = new Watchdog();
  watchdog.arm(saveTimeoutMs, `${base} did not start the backup within ${saveTimeoutMs} ms`);
  // A name of this save's own: two saves to one FILE sharing `FILE.partial` would write into
  // one file, and the first to finish would rename it with the other's bytes still coming.
  const partial = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
  let handle: Awaited<ReturnType<typeof open>> | null = null;
  try {
    // Opened before the node is asked: a file that cannot be written costs it no backup.
    handle = await onDisk(partial, open(partial, 'w', 0o600));
    const placeholder = fileHeaderLine('0'.repeat(64), 0);
    await onDisk(partial, handle.write(placeholder, 0, placeholder.length, 0));
    const answer = await getStreamWhileUnavailable(base, path, {
      waitMs: saveTimeoutMs,
      headers: { accept: 'application/x-ndjson' },
      signal: watchdog.controller.signal,
    });
    // A release before format version 2 answers one JSON object, not lines.
    if ((answer.headers['content-type'] ?? '').startsWith('application/json')) {
      throw new CliError(
        `${base} answered a snapshot of version 1 (an earlier release); upgrade the node, or save with the abcast of its release`,
      );
    }
    const idle = () =>
      watchdog.arm(saveIdleMsMax, `${base} sent nothing for ${saveIdleMsMax} ms; backup abandoned`);
    idle();
    const written = await writeBody(answer.body as AsyncIterable<Uint8Array>, handle, {
      base,
      path: partial,
      offset: placeholder.length,
      idle,
    });
    watchdog.stop();
    const header = fileHeaderLine(written.sha256, written.bodyBytes);
    assert(header.length === placeholder.length, 'the header line fills the room left for it');
    await onDisk(partial, handle.write(header, 0, header.length, 0));
    await onDisk(partial, handle.datasync());
    await onDisk(partial, handle.close());
    handle = null;
    await onDisk(file, rename(partial, file));
    // The rename is durable only once the directory holding it is synced.
    await onDisk(file, nodeFileSystem.syncDirectory(dirname(file)));
    return written;
  } catch (error) {
    const { signal } = watchdog.controller;
    const reason: unknown = signal.aborted ? signal.reason : error;
    // Lets go of the connection when the failure was on this side (the file, a bad line).
    watchdog.controller.abort();
    await handle?.close().catch(() => {});
    await rm(partial, { force: true }).catch(() => {});
    if (reason instanceof CliError) throw reason;
    throw new CliError(
      `${base} sent no whole backup: the answer broke off (${(reason as Error).message})`,
    );
  } finally {
    watchdog.stop();
  }
}

async function save(file: string, flags: { node: string; messages: boolean }): Promise<void> {
  const { header, messageCount } = await saveSnapshot(file, flags);
  console.log(
    `snapshot of node ${header.node} at position ${header.position} (log index ${header.index}, term ${header.term}, ${messageCount} messages) written to ${file}`,
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

/**
 * Refuses a directory that holds a node's files before the restore marks it: the storage's
 * own check comes only once it is open, and by then the mark would sit among a live node's
 * files.
 */
async function refuseNodeData(dataDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dataDir);
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return;
    throw new CliError(`cannot read ${dataDir}: ${(error as Error).message}`);
  }
  const nodeFile = names.find((name) => name === METADATA_FILE_NAME || isLogFileName(name));
  if (nodeFile !== undefined) {
    throw new CliError(
      `${dataDir} already holds a node's data (${nodeFile}); restore into a new one`,
    );
  }
}

export interface RestoreFlags {
  data: string;
  id: string;
  peers: string;
  clusterId: string;
}

/**
 * Checks the whole file as it reads it (a line at a time: the messages are not kept), then
 * writes the data directory from its header: nothing is written from a file that fails.
 */
export async function restoreSnapshot(file: string, flags: RestoreFlags): Promise<void> {
  const peers = parsePeers(flags.peers);
  if (!(flags.id in peers)) throw new CliError(`--peers does not include --id ${flags.id}`);
  const { header: body } = await readSnapshotFile(file);
  // Made before the directory is opened: a state that does not read leaves no directory.
  const data = restoredState(Buffer.from(body.state, 'base64'), peers, body.position);
  const dataDir = resolve(flags.data);
  await refuseUnfinishedRestore(dataDir);
  await refuseNodeData(dataDir);
  await markRestoreStarted(dataDir);
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
  await markRestoreDone(dataDir);
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
    .action((file: string, flags: RestoreFlags) => restoreSnapshot(file, flags));
}
