// Compaction by key in the store, a slice at a time: the segment being written is never
// rewritten; no slice reads or writes more than its bound, however large the segment; a
// segment judged once is not read again unless a record of it was superseded since; a power
// cut at any file operation of a compaction leaves every position readable, as written or
// compacted, and compaction then finishes; and syncs: segments found at open count as
// synced, and a sync runs off the event loop while the store goes on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompactionState, firstOfKey } from '../../src/broadcast/compaction.ts';
import { SimFileSystem } from '../../src/sim/sim-file-system.ts';
import { SimStoreFiles } from '../../src/sim/sim-store-files.ts';
import {
  compactSliceBytes,
  compactSliceRecords,
  type SupersededRule,
} from '../../src/store/compaction.ts';
import {
  compactedCopy,
  MemoryStoreFiles,
  MessageStore,
  type StoredMessage,
  type StoreFiles,
} from '../../src/store/index.ts';
import { Prng } from '../../src/util/prng.ts';
import { storedMessage } from '../support/stored-message.ts';

const keyCount = 5;

/** Keys cycle over `keyCount`: every position but the last `keyCount` has a newer one. */
function keyed(position: number, pad = 40): StoredMessage {
  return {
    ...storedMessage(position, { topic: 'accounts', payload: `${position} ${'x'.repeat(pad)}` }),
    key: `k${position % keyCount}`,
  };
}

function supersededUpTo(last: number): SupersededRule {
  return (message) => message.position <= last - keyCount;
}

/** Every file operation counted, by name; `before` may cut the power ahead of one. */
class CountingFiles implements StoreFiles {
  readBytes = 0;
  writtenBytes = 0;
  operations = 0;
  readonly writesByName = new Map<string, number>();
  readonly renames: string[] = [];
  readonly syncs: string[][] = [];
  before: (operation: number) => void = () => undefined;

  constructor(private readonly inner: StoreFiles) {}

  private count(): void {
    this.operations++;
    this.before(this.operations);
  }

  names(): string[] {
    this.count();
    return this.inner.names();
  }
  size(name: string): number {
    this.count();
    return this.inner.size(name);
  }
  read(name: string, buffer: Buffer, offset: number): number {
    this.count();
    const bytes = this.inner.read(name, buffer, offset);
    this.readBytes += bytes;
    return bytes;
  }
  write(name: string, data: Buffer, offset: number): void {
    this.count();
    this.writtenBytes += data.length;
    this.writesByName.set(name, (this.writesByName.get(name) ?? 0) + 1);
    this.inner.write(name, data, offset);
  }
  truncate(name: string, sizeBytes: number): void {
    this.count();
    this.inner.truncate(name, sizeBytes);
  }
  remove(name: string): void {
    this.count();
    this.inner.remove(name);
  }
  readText(name: string): string | null {
    this.count();
    return this.inner.readText(name);
  }
  writeText(name: string, text: string): void {
    this.count();
    this.inner.writeText(name, text);
  }
  rename(from: string, to: string): void {
    this.count();
    this.renames.push(to);
    this.inner.rename(from, to);
  }
  async sync(names: readonly string[]): Promise<void> {
    this.count();
    this.syncs.push([...names]);
    await this.inner.sync(names);
  }

  syncNow(name: string): void {
    this.count();
    this.syncs.push([name]);
    this.inner.syncNow(name);
  }
  close(): void {
    this.inner.close();
  }
}

async function compactAll(
  store: MessageStore,
  before: number,
  rule: SupersededRule,
): Promise<number> {
  let slices = 0;
  while ((await store.compactSlice(before, rule)).worked) slices++;
  return slices;
}

function readAll(store: MessageStore): StoredMessage[] {
  const messages: StoredMessage[] = [];
  for (const range of store.ranges()) {
    for (let from = range.first; from <= range.last; ) {
      const page = store.read(from, 1000);
      messages.push(...page);
      from += page.length;
    }
  }
  return messages;
}

test('the segment being written is never rewritten, even with positions before the cut', async () => {
  const files = new CountingFiles(new MemoryStoreFiles());
  const store = new MessageStore({ files, segmentBytesMax: 2048 });
  // Up to the tenth record of some segment: that last segment has records before the cut.
  let last = 0;
  do store.append(keyed(++last));
  while (last < 60 || last - (store.summaries().at(-1)?.first ?? last) < 10);
  store.flush();
  const open = store.summaries().at(-1);
  assert.ok(open !== undefined && open.first < last - keyCount, 'the last segment has due records');
  const openName = `${String(open.first).padStart(16, '0')}.seg`;
  const writesBefore = files.writesByName.get(openName) ?? 0;
  await compactAll(store, last + 1, supersededUpTo(last));
  assert.ok(!files.renames.includes(openName), 'the open segment was not replaced');
  assert.equal(files.writesByName.get(openName) ?? 0, writesBefore, 'nor written to');
  for (const message of readAll(store)) {
    const due: boolean = message.position < open.first && message.position <= last - keyCount;
    assert.equal(message.compacted === true, due, `position ${message.position}`);
  }
  // Once sealed, it is compacted too.
  for (let position = last + 1; store.summaries().at(-1)?.first === open.first; position++) {
    store.append(keyed(position));
  }
  store.flush();
  await compactAll(store, last + 1, supersededUpTo(last));
  for (const message of readAll(store)) {
    const due = message.position <= last - keyCount;
    assert.equal(message.compacted === true, due, `position ${message.position}`);
  }
});

test('each slice reads and writes a bounded amount, however large the segment', async () => {
  const files = new CountingFiles(new MemoryStoreFiles());
  const store = new MessageStore({ files, segmentBytesMax: 8 << 20 });
  const last = 5 * compactSliceRecords;
  for (let position = 1; position <= last; position++) store.append(keyed(position, 200));
  // Past a hole: a second segment begins, and the large one is sealed.
  store.append(keyed(last + 10));
  store.flush();
  const recordBytesMax = 400;
  let slices = 0;
  for (;;) {
    files.readBytes = 0;
    files.writtenBytes = 0;
    const slice = await store.compactSlice(last + 1, supersededUpTo(last));
    if (!slice.worked) break;
    slices++;
    // A read may run one chunk (256 KiB) past the records it keeps.
    const readBound =
      Math.min(compactSliceRecords * recordBytesMax, compactSliceBytes) + (256 << 10);
    assert.ok(files.readBytes <= readBound, `slice ${slices} read ${files.readBytes} bytes`);
    assert.ok(
      files.writtenBytes <= compactSliceRecords * recordBytesMax,
      `slice ${slices} wrote ${files.writtenBytes} bytes`,
    );
  }
  assert.ok(slices > 5, `the work took ${slices} slices`);
  const compacted = readAll(store).filter((message) => message.compacted === true);
  assert.equal(compacted.length, last - keyCount);
});

test('a segment judged once is read again only from where it stopped, or once superseded', async () => {
  const files = new CountingFiles(new MemoryStoreFiles());
  const store = new MessageStore({ files, segmentBytesMax: 4096 });
  const last = 400;
  // Each key once: nothing superseded, so a judged segment has nothing to rewrite.
  const unique = (position: number) => ({ ...keyed(position), key: `u${position}` });
  for (let position = 1; position <= last; position++) store.append(unique(position));
  store.flush();
  const never: SupersededRule = () => false;
  await compactAll(store, last + 1, never);
  files.readBytes = 0;
  assert.equal(await compactAll(store, last + 1, never), 0, 'nothing is judged again');
  assert.equal(files.readBytes, 0);
  // A newer message of position 3's key: its segment is judged again, and compacted.
  store.noteSuperseded(3);
  const rule: SupersededRule = (message) => message.position === 3;
  assert.ok((await compactAll(store, last + 1, rule)) > 0);
  assert.ok(files.readBytes > 0);
  const compacted = readAll(store).filter((message) => message.compacted === true);
  assert.deepEqual(
    compacted.map((message) => message.position),
    [3],
  );
  assert.deepEqual(compacted[0], compactedCopy(unique(3)));
});

test('a power cut at any file operation of a compaction loses no position', async () => {
  const last = 120;
  const segmentBytesMax = 1024;
  const rule = supersededUpTo(last);
  const expected = (position: number) =>
    rule(keyed(position)) ? compactedCopy(keyed(position)) : keyed(position);
  // How many file operations a whole compaction makes, on a disk that never fails.
  const prepare = async (seed: number) => {
    const disk = new SimFileSystem({ prng: new Prng(seed), sectorBytes: 64 });
    const files = new CountingFiles(new SimStoreFiles(disk, '/data/messages'));
    const store = new MessageStore({ files, segmentBytesMax });
    for (let position = 1; position <= last; position++) store.append(keyed(position));
    // The WAL would be compacted past these now: the store holds the only copy.
    await store.sync();
    files.operations = 0;
    return { disk, files, store };
  };
  const whole = await prepare(1);
  await compactAll(whole.store, last + 1, rule);
  const total = whole.files.operations;
  assert.ok(total > 20, `${total} operations`);
  for (let cutAt = 1; cutAt <= total; cutAt++) {
    for (const seed of [cutAt, cutAt + 1000]) {
      const { disk, files, store } = await prepare(seed);
      files.before = (operation) => {
        if (operation === cutAt) disk.powerCut();
      };
      await compactAll(store, last + 1, rule).catch((error: unknown) => {
        assert.match(String(error), /EIO/);
      });
      const reopened = new MessageStore({
        files: new SimStoreFiles(disk, '/data/messages'),
        segmentBytesMax,
      });
      const context = `cut at operation ${cutAt} of ${total}, seed ${seed}`;
      assert.deepEqual(reopened.ranges(), [{ first: 1, last }], context);
      for (const message of readAll(reopened)) {
        const written = keyed(message.position);
        assert.ok(
          JSON.stringify(message) === JSON.stringify(written) ||
            JSON.stringify(message) === JSON.stringify(compactedCopy(written)),
          `${context}: position ${message.position}`,
        );
      }
      // Compaction finishes after the restart.
      await compactAll(reopened, last + 1, rule);
      const open = reopened.summaries().at(-1)?.first ?? 0;
      for (const message of readAll(reopened)) {
        if (message.position >= open) continue; // the segment being written waits its seal
        assert.deepEqual(message, expected(message.position), `${context}, then finished`);
      }
    }
  }
});

test('segments found at open count as synced; a sync runs while the store goes on', async () => {
  const memory = new MemoryStoreFiles();
  const first = new MessageStore({ files: memory, segmentBytesMax: 1024 });
  for (let position = 1; position <= 60; position++) first.append(keyed(position));
  first.close();
  let release: () => void = () => undefined;
  const files = new CountingFiles(memory);
  const held = new (class extends CountingFiles {
    override async sync(names: readonly string[]): Promise<void> {
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      await super.sync(names);
      await released;
    }
  })(memory);
  const store = new MessageStore({ files: held, segmentBytesMax: 1024 });
  const found = store.summaries().map((summary) => summary.first);
  assert.ok(found.length > 2);
  store.append(keyed(61));
  const written = store.summaries().at(-1)?.first;
  const syncing = store.sync();
  // Only the segment written since open is synced, not the ones found on disk.
  assert.equal(held.syncs.length, 1);
  assert.deepEqual(held.syncs[0], [`${String(written).padStart(16, '0')}.seg`]);
  // The store goes on while the sync runs; what is appended meanwhile is not counted synced.
  store.append(keyed(62));
  store.flush();
  release();
  await syncing;
  const again = store.sync();
  assert.equal(held.syncs.length, 2, 'the record appended during the sync is synced next');
  release();
  await again;
  await store.sync();
  assert.equal(held.syncs.length, 2, 'then nothing is left to sync');
  assert.equal(files.syncs.length, 0);
});

test('a compaction whose copy fails to write or sync is dropped, and tried again', async () => {
  for (const failing of ['write', 'sync'] as const) {
    let armed = false;
    const files = new (class extends CountingFiles {
      override write(name: string, data: Buffer, offset: number): void {
        if (armed && failing === 'write' && name.endsWith('.compacting')) {
          armed = false;
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        }
        super.write(name, data, offset);
      }
      override async sync(names: readonly string[]): Promise<void> {
        if (armed && failing === 'sync' && names.some((name) => name.endsWith('.compacting'))) {
          armed = false;
          throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        }
        await super.sync(names);
      }
    })(new MemoryStoreFiles());
    const store = new MessageStore({ files, segmentBytesMax: 1024 });
    const last = 60;
    for (let position = 1; position <= last; position++) store.append(keyed(position));
    store.flush();
    const rule = supersededUpTo(last);
    armed = true;
    await assert.rejects(compactAll(store, last + 1, rule), /ENOSPC|EIO/, failing);
    assert.equal(armed, false, `the ${failing} failed once`);
    // The failure was transient: the next slices compact every sealed segment.
    await compactAll(store, last + 1, rule);
    const open = store.summaries().at(-1)?.first ?? 0;
    for (const message of readAll(store)) {
      const due = message.position < open && rule(message);
      assert.equal(message.compacted === true, due, `${failing}: position ${message.position}`);
    }
  }
});

test('a message applied before its topic was compacted goes once a newer one of its key arrives', async () => {
  const store = new MessageStore({ files: new MemoryStoreFiles(), segmentBytesMax: 1024 });
  const state = new CompactionState();
  const rule: SupersededRule = (message) => state.isSuperseded(message);
  // As the applier (src/broadcast/applier.ts) delivers and applies a cut: the position a
  // message supersedes is noted in the store, and a cut after keys were first followed has
  // every segment judged again.
  let keysFollowedSinceCut = false;
  const deliver = (message: StoredMessage) => {
    store.append(message);
    const superseded = state.noteDelivered(message.topic, message.key, message.position);
    if (superseded > 0) store.noteSuperseded(superseded);
    else if (superseded === firstOfKey) keysFollowedSinceCut = true;
  };
  const cut = (before: number, lastPosition: number) => {
    state.apply({ op: 'compact', topics: ['accounts'], before }, lastPosition);
    if (keysFollowedSinceCut) store.forgetCompaction();
    keysFollowedSinceCut = false;
  };
  const early = 60;
  for (let position = 1; position <= early; position++) deliver(keyed(position));
  store.flush();
  // The topic is compacted from here on, and a first cut judges what is sealed: nothing is
  // superseded yet, as no key is followed from before.
  cut(early + 1, early);
  await compactAll(store, state.before, rule);
  // Newer messages of every key: the early ones are superseded, and go at the next cut.
  const last = 2 * early;
  for (let position = early + 1; position <= last; position++) deliver(keyed(position));
  store.flush();
  cut(last + 1, last);
  await compactAll(store, state.before, rule);
  const open = store.summaries().at(-1)?.first ?? 0;
  assert.ok(open > early, 'the early positions are all sealed');
  for (const message of readAll(store)) {
    if (message.position > early) continue;
    assert.ok(rule(message), `position ${message.position} is superseded`);
    assert.equal(message.compacted, true, `position ${message.position} is compacted`);
  }
});

test('positions cut as damaged and filled again are judged again', async () => {
  const memory = new MemoryStoreFiles();
  const store = new MessageStore({ files: memory, segmentBytesMax: 1024 });
  const last = 60;
  for (let position = 1; position <= last; position++) store.append(keyed(position));
  store.flush();
  const sealed = store.summaries()[1];
  assert.ok(sealed !== undefined && sealed.last < (store.summaries().at(-1)?.first ?? 0));
  const damaged = sealed.last;
  const rule: SupersededRule = (message) => message.position === damaged;
  await compactAll(store, last + 1, rule);
  assert.equal(store.read(damaged, 1)[0]?.compacted, true);
  // Its record damaged on disk: a read cuts it, and backfill fills it again from a peer that
  // has not compacted it yet.
  const name = `${String(sealed.first).padStart(16, '0')}.seg`;
  const lastByte = memory.size(name) - 1;
  const byte = Buffer.alloc(1);
  memory.read(name, byte, lastByte);
  memory.write(name, Buffer.from([(byte[0] as number) ^ 0xff]), lastByte);
  // The cut takes the damaged record's whole frame (record.ts): what precedes it in the
  // frame goes too, and backfill fills all of it.
  const kept = store.read(sealed.first, 1000).at(-1)?.position ?? sealed.first - 1;
  assert.ok(kept < damaged, 'cut at the damage');
  for (let position = kept + 1; position <= damaged; position++) {
    assert.ok(store.append(keyed(position)));
  }
  store.flush();
  await compactAll(store, last + 1, rule);
  assert.equal(store.read(damaged, 1)[0]?.compacted, true, 'compacted again');
});
