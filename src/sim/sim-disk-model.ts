/**
 * The simulated disk's data model (sim-file-system.ts): files as inodes holding what the
 * cache shows and what the platters hold, directories with durable and pending entries.
 * Kept apart from the file system's operations and fault injection, which drive it.
 */
import { posix } from 'node:path';
import { assert } from '../util/assert.ts';

/** A byte array that grows, with its length kept apart from its capacity. */
export class Bytes {
  private store = new Uint8Array(0);
  length = 0;

  static copyOf(source: Bytes): Bytes {
    const copy = new Bytes();
    copy.write(source.view(0, source.length), 0);
    return copy;
  }

  view(from: number, to: number): Uint8Array {
    assert(from >= 0 && from <= to && to <= this.length, 'a view lies within the bytes');
    return this.store.subarray(from, to);
  }

  write(data: Uint8Array, positionBytes: number): void {
    const end = positionBytes + data.length;
    if (end > this.store.length) {
      const grown = new Uint8Array(Math.max(end, this.store.length * 2, 4096));
      grown.set(this.store.subarray(0, this.length));
      this.store = grown;
    }
    // A write past the end leaves zeros in the gap: the store beyond `length` is zeros.
    this.store.set(data, positionBytes);
    this.length = Math.max(this.length, end);
  }

  /** Drops the bytes from `length` on, keeping the zeros-beyond-length invariant. */
  truncate(length: number): void {
    assert(Number.isSafeInteger(length) && length >= 0, 'a length is a size');
    if (length >= this.length) return;
    this.store.fill(0, length, this.length);
    this.length = length;
  }

  byteAt(position: number): number {
    assert(position >= 0 && position < this.length, 'a byte within the bytes');
    return this.store[position]!;
  }

  setByte(position: number, value: number): void {
    assert(position >= 0 && position < this.length, 'a byte within the bytes');
    this.store[position] = value;
  }
}

export interface PendingWrite {
  readonly positionBytes: number;
  readonly data: Uint8Array;
}

export class Inode {
  live = new Bytes();
  durable = new Bytes();
  /** Written since the last datasync, oldest first. */
  pending: PendingWrite[] = [];
  openCount = 0;
  constructor(readonly inodeId: number) {}
}

export type Entry =
  | { readonly kind: 'file'; readonly inodeId: number }
  | { readonly kind: 'directory' };

/** One directory change, applied atomically (a rename is two entries changing at once). */
export type DirectoryChange = readonly { readonly name: string; readonly entry: Entry | null }[];

export class Directory {
  live = new Map<string, Entry>();
  durable = new Map<string, Entry>();
  pending: DirectoryChange[] = [];

  change(change: DirectoryChange): void {
    applyChange(this.live, change);
    this.pending.push(change);
  }
}

export function applyChange(entries: Map<string, Entry>, change: DirectoryChange): void {
  for (const { name, entry } of change) {
    if (entry === null) entries.delete(name);
    else entries.set(name, entry);
  }
}

/**
 * Changes a byte on the disk. Reads see the change too, unless an unsynced write there is
 * still in the cache (the cached byte differs from the disk's).
 */
export function corruptAtRest(
  inode: Inode,
  position: number,
  change: (byte: number) => number,
): void {
  const before = inode.durable.byteAt(position);
  const after = change(before);
  inode.durable.setByte(position, after);
  if (position < inode.live.length && inode.live.byteAt(position) === before) {
    inode.live.setByte(position, after);
  }
}

export function normalize(path: string): string {
  assert(path.length > 0, 'a path is not empty');
  const normalized = posix.resolve('/', path);
  assert(normalized.startsWith('/'), 'simulated paths are absolute');
  return normalized;
}
