/**
 * Where a replicated state machine keeps its snapshots, so that a restarted or new replica
 * starts from the latest one instead of replaying the log from position 1 (which the
 * cluster may no longer keep). A snapshot is the state's JSON at one position, with the
 * log time there and the topic it belongs to.
 *
 * `FileSnapshotStore` writes one file per topic in a directory, replaced atomically
 * (temporary file, fsync, rename, directory fsync) and checked by CRC-32 when read. Point
 * several replicas at one shared directory, or copy the file to a new machine, to start
 * new replicas without a replay. `MemorySnapshotStore` is its in-process twin.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { nodeFileSystem } from '../storage/node-file-system.ts';
import { replaceFileAtomically } from '../util/atomic-file.ts';
import { crc32 } from '../util/crc32.ts';
import { AgentError } from './errors.ts';

export interface StateSnapshot {
  readonly topic: string;
  /** The last position the state includes. */
  readonly position: number;
  /** The log time at that position (ms). */
  readonly time: number;
  /** The encoded state (a JSON value). */
  readonly state: unknown;
}

export interface SnapshotStore {
  /** The newest snapshot of `topic`, or null when there is none. */
  load(topic: string): Promise<StateSnapshot | null>;
  /** Keeps `snapshot` unless a newer one of its topic is already kept. */
  save(snapshot: StateSnapshot): Promise<void>;
}

const magic = 'abcast-state-snapshot';
/** Longest base64 topic used as a file name as it is (plus `.snapshot` and a temp suffix). */
const fileNameTopicMax = 200;
const formatVersion = 1;

/** One file: a header line (magic, version, CRC-32 and length of the body), then the body. */
export function encodeSnapshotFile(snapshot: StateSnapshot): Buffer {
  const body = Buffer.from(JSON.stringify(snapshot));
  const header = `${magic} ${formatVersion} ${crc32(body).toString(16).padStart(8, '0')} ${body.length}\n`;
  return Buffer.concat([Buffer.from(header), body]);
}

export function decodeSnapshotFile(bytes: Buffer, where: string): StateSnapshot {
  const newline = bytes.indexOf(10);
  const fields = newline < 0 ? [] : bytes.subarray(0, newline).toString('latin1').split(' ');
  const corrupt = (why: string) =>
    new AgentError('corrupt_snapshot', `the snapshot ${where} is unreadable: ${why}`, { where });
  if (fields.length !== 4 || fields[0] !== magic) throw corrupt('no snapshot header');
  if (fields[1] !== String(formatVersion)) throw corrupt(`unknown format ${fields[1]}`);
  const body = bytes.subarray(newline + 1);
  if (body.length !== Number(fields[3])) throw corrupt('its length does not match (torn?)');
  if (crc32(body).toString(16).padStart(8, '0') !== fields[2]) throw corrupt('CRC mismatch');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw corrupt(`the body is not JSON (${(error as Error).message})`);
  }
  const snapshot = stateSnapshotOf(parsed);
  if (snapshot === null) throw corrupt('fields are missing');
  return snapshot;
}

/**
 * `value` as a StateSnapshot, or null when a field is missing. Snapshots saved before the
 * position was called `position` name it `index`: both are read, only `position` written.
 * Without `state` a replica would start from `undefined`: a wrong state, not an error.
 */
export function stateSnapshotOf(value: unknown): StateSnapshot | null {
  if (typeof value !== 'object' || value === null) return null;
  const fields = value as Partial<StateSnapshot> & { readonly index?: unknown };
  const { index, ...rest } = fields;
  const position = fields.position ?? index;
  if (
    typeof fields.topic !== 'string' ||
    typeof position !== 'number' ||
    !Number.isSafeInteger(position) ||
    position < 0 ||
    typeof fields.time !== 'number' ||
    !Object.hasOwn(fields, 'state')
  ) {
    return null;
  }
  return { ...(rest as StateSnapshot), position };
}

export class FileSnapshotStore implements SnapshotStore {
  /** The last save of each file in this process, which the next one waits for. */
  private readonly saving = new Map<string, Promise<void>>();

  constructor(readonly directory: string) {}

  private pathOf(topic: string): string {
    // Topics are free text; the file name is a file-system-safe form of it: reversible while
    // short, and for long topics (base64 of 200 bytes is longer than the 255 bytes a file
    // name may have) a prefix and a hash, which `~` (not base64url) keeps apart from the
    // short names. The file names its topic, and load() checks it.
    const encoded = Buffer.from(topic).toString('base64url');
    const name =
      encoded.length <= fileNameTopicMax
        ? encoded
        : `${encoded.slice(0, 64)}~${createHash('sha256').update(topic).digest('hex').slice(0, 40)}`;
    return join(this.directory, `${name}.snapshot`);
  }

  async load(topic: string): Promise<StateSnapshot | null> {
    const path = this.pathOf(topic);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    const snapshot = decodeSnapshotFile(bytes, path);
    if (snapshot.topic !== topic) {
      throw new AgentError('corrupt_snapshot', `${path} holds topic ${snapshot.topic}`, { path });
    }
    return snapshot;
  }

  /**
   * Saves of one topic in this process run one after another: two racing ones would both
   * find no newer snapshot kept, and the older could be renamed over the newer last.
   * (Processes sharing the directory still race; each rename leaves one whole snapshot.)
   */
  save(snapshot: StateSnapshot): Promise<void> {
    const path = this.pathOf(snapshot.topic);
    const previous = this.saving.get(path) ?? Promise.resolve();
    const saved = previous.then(() => this.saveNow(snapshot, path));
    const settled = saved.catch(() => undefined);
    this.saving.set(path, settled);
    void settled.then(() => {
      if (this.saving.get(path) === settled) this.saving.delete(path);
    });
    return saved;
  }

  private async saveNow(snapshot: StateSnapshot, path: string): Promise<void> {
    await mkdir(this.directory, { recursive: true });
    const kept = await this.load(snapshot.topic).catch(() => null);
    if (kept !== null && kept.position >= snapshot.position) return;
    // Replicas may share the directory: each writes its own temporary file, and the rename
    // makes one whole snapshot win.
    const temporaryPath = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await replaceFileAtomically({
      files: nodeFileSystem,
      path,
      chunks: [encodeSnapshotFile(snapshot)],
      temporaryPath,
      directory: dirname(path),
    });
  }
}

export class MemorySnapshotStore implements SnapshotStore {
  private readonly files = new Map<string, Buffer>();

  async load(topic: string): Promise<StateSnapshot | null> {
    const bytes = this.files.get(topic);
    return bytes === undefined ? null : decodeSnapshotFile(bytes, `in memory (${topic})`);
  }

  async save(snapshot: StateSnapshot): Promise<void> {
    // Compared and replaced in one step, so that racing saves keep the newest.
    const bytes = this.files.get(snapshot.topic);
    const kept =
      bytes === undefined ? null : decodeSnapshotFile(bytes, `in memory (${snapshot.topic})`);
    if (kept !== null && kept.position >= snapshot.position) return;
    this.files.set(snapshot.topic, encodeSnapshotFile(snapshot));
  }
}
