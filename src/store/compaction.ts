/**
 * Compaction of one segment: every record the caller's rule says is superseded is written
 * again as its header alone, marked compacted (record.ts), and the segment is replaced
 * whole: written to a new file, renamed over the old one, opened again by a scan (its
 * indexes rebuilt). Positions never change, and a segment with nothing to compact is left
 * alone. Not synced, like the rest of the store: a crash in the middle leaves the old file or
 * the new one, and a torn one is cut at open and its hole filled from peers.
 */
import { assert } from '../util/assert.ts';
import type { StoreFiles } from './files.ts';
import { encodeRecord, type StoredMessage } from './record.ts';
import { Segment } from './segment.ts';

/** Records read and written at a time while rewriting. */
const rewriteBatchCount = 4096;

/** The message as compaction leaves it: header and key, no payload. */
export function compactedCopy(message: StoredMessage): StoredMessage {
  return { ...message, payload: new Uint8Array(0), compacted: true };
}

/**
 * Rewrites `segment` with the messages `superseded` picks compacted; returns the segment
 * that replaces it, or null when nothing in it was to compact.
 */
export function compactSegment(
  files: StoreFiles,
  segment: Segment,
  superseded: (message: StoredMessage) => boolean,
): Segment | null {
  const due = (message: StoredMessage) => message.compacted !== true && superseded(message);
  let any = false;
  for (let from = segment.first; from <= segment.last && !any; ) {
    const page = segment.read(from, rewriteBatchCount);
    any = page.some(due);
    from += page.length;
  }
  if (!any) return null;
  const temporary = `${segment.name}.compacting`;
  files.remove(temporary);
  let offset = 0;
  for (let from = segment.first; from <= segment.last; ) {
    const page = segment.read(from, rewriteBatchCount);
    assert(page.length > 0, 'a segment reads back what it holds');
    const chunk = Buffer.concat(
      page.map((message) => encodeRecord(due(message) ? compactedCopy(message) : message)),
    );
    files.write(temporary, chunk, offset);
    offset += chunk.length;
    from += page.length;
  }
  const { first, last } = segment;
  // The segment may hold the only copy of what it keeps (the WAL may be compacted past it):
  // the rewrite is durable before it takes the segment's name, and the name moves to it in
  // one rename, so a power cut finds the old file or the new one, never neither.
  files.sync([temporary]);
  files.remove(`${segment.name}.idx`);
  files.remove(`${segment.name}.tix`);
  files.rename(temporary, segment.name);
  files.sync([segment.name]);
  const replaced = new Segment(files, first);
  replaced.load();
  assert(replaced.last === last, 'compaction keeps every position');
  return replaced;
}
