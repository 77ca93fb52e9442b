// The message store against a naive twin (a Map of positions): random appends with holes,
// backfills, reads, topic reads, retention drops, cuts of the tail and reopenings give the
// same answers; and on
// disk, a torn tail is cut at open and a reopened store reads what it held from its indexes,
// a cut inside a frame reads back after a reopen; a batch of megabytes is written in chunks
// of at most 256 KiB.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DiskStoreFiles,
  MemoryStoreFiles,
  MessageStore,
  type StoredMessage,
  type StoreFiles,
} from '../../src/store/index.ts';
import { Segment } from '../../src/store/segment.ts';

const topics = ['a', 'b', 'c'];

function message(position: number): StoredMessage {
  return {
    position,
    index: position + 10,
    term: 2,
    clientId: position % 5 === 0 ? '' : `client-${position % 3}`,
    seq: position,
    topic: topics[position % 3] as string,
    payload: new TextEncoder().encode(`payload ${position} ${'x'.repeat(position % 40)}`),
    logTimeMs: 1_700_000_000_000 + position,
  };
}

function naiveRead(held: ReadonlySet<number>, from: number, limit: number): number[] {
  const positions: number[] = [];
  for (let p = from; held.has(p) && positions.length < limit; p++) positions.push(p);
  return positions;
}

type Step =
  | { kind: 'append'; count: number; skip: number }
  | { kind: 'backfill'; count: number }
  | { kind: 'drop'; fraction: number }
  | { kind: 'truncate'; fraction: number }
  | { kind: 'reopen' };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('append' as const),
    count: fc.integer({ min: 1, max: 60 }),
    skip: fc.integer({ min: 0, max: 30 }),
  }),
  fc.record({ kind: fc.constant('backfill' as const), count: fc.integer({ min: 1, max: 50 }) }),
  fc.record({ kind: fc.constant('drop' as const), fraction: fc.double({ min: 0, max: 0.5 }) }),
  fc.record({
    kind: fc.constant('truncate' as const),
    fraction: fc.double({ min: 0.5, max: 1, noNaN: true }),
  }),
  fc.record({ kind: fc.constant('reopen' as const) }),
);

function checkReads(store: MessageStore, held: ReadonlySet<number>, last: number): void {
  for (let from = 1; from <= last + 1; from += 7) {
    const got = store.read(from, 20).map((m) => m.position);
    assert.deepEqual(got, naiveRead(held, from, 20), `read from ${from}`);
    for (const m of store.read(from, 3)) assert.deepEqual(m, message(m.position));
    const page = store.readTopic('b', from, 5, 40);
    const expected: number[] = [];
    let next = from;
    for (let p = from; p < from + 40 && held.has(p); p++) {
      next = p + 1;
      if (message(p).topic === 'b') expected.push(p);
      if (expected.length === 5) break;
    }
    assert.deepEqual(
      page.messages.map((m) => m.position),
      expected,
      `topic read from ${from}`,
    );
    if (expected.length === 5) assert.equal(page.next, next);
  }
  assert.equal(store.lastPosition, Math.max(0, ...held));
}

test('the store answers as a map of positions, through holes, backfills, drops and reopens', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { maxLength: 25 }), (steps) => {
      const files = new MemoryStoreFiles();
      const open = () => new MessageStore({ files, segmentBytesMax: 900 });
      let store = open();
      const held = new Set<number>();
      let last = 0;
      for (const step of steps) {
        if (step.kind === 'append') {
          last += step.skip;
          for (let n = 0; n < step.count; n++) {
            last++;
            assert.equal(store.append(message(last)), true);
            held.add(last);
          }
        } else if (step.kind === 'backfill') {
          const ranges = store.ranges();
          const hole = ranges.length > 1 ? (ranges[0] as { last: number }).last + 1 : 0;
          for (let p = hole; hole > 0 && p < hole + step.count && !held.has(p); p++) {
            assert.equal(store.append(message(p)), true);
            held.add(p);
          }
        } else if (step.kind === 'drop') {
          const before = Math.floor(last * step.fraction);
          const summaries = store.summaries();
          store.dropBefore(before);
          for (const s of summaries) {
            if (s.last < before) for (let p = s.first; p <= s.last; p++) held.delete(p);
          }
        } else if (step.kind === 'truncate') {
          const after = Math.floor(last * step.fraction);
          store.truncateAfter(after);
          for (const p of [...held]) if (p > after) held.delete(p);
          last = Math.max(after, ...held, 0);
        } else {
          store.flush();
          if (steps.indexOf(step) % 2 === 0) store.close();
          store = open();
        }
        if (held.size > 0) assert.equal(store.append(message([...held][0] as number)), false);
        store.flush();
        checkReads(store, held, last);
      }
    }),
    { numRuns: 150 },
  );
});

function withDirectory(body: (directory: string) => void): void {
  const directory = mkdtempSync(join(tmpdir(), 'abcast-store-'));
  try {
    body(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test('on disk: a reopened store reads from its index files, and a torn tail is cut', () => {
  withDirectory((directory) => {
    const files = (): StoreFiles => new DiskStoreFiles(directory);
    let store = new MessageStore({ files: files(), segmentBytesMax: 4096 });
    for (let p = 1; p <= 500; p++) store.append(message(p));
    store.close();
    const names = readdirSync(directory);
    assert.ok(names.some((name) => name.endsWith('.idx')));
    store = new MessageStore({ files: files(), segmentBytesMax: 4096 });
    assert.deepEqual(store.ranges(), [{ first: 1, last: 500 }]);
    assert.deepEqual(store.read(250, 2), [message(250), message(251)]);
    for (let p = 501; p <= 520; p++) store.append(message(p));
    store.flush(); // no close: the index of the last segment is stale, as after a crash
    const lastSegment = readdirSync(directory)
      .filter((name) => name.endsWith('.seg'))
      .sort()
      .at(-1) as string;
    const path = join(directory, lastSegment);
    truncateSync(path, statSync(path).size - 5); // the last frame torn
    store = new MessageStore({ files: files(), segmentBytesMax: 4096 });
    // The torn frame goes whole, and only it: the frames before it read.
    const kept = store.lastPosition;
    assert.ok(kept >= 500 && kept < 520, `kept up to ${kept}`);
    assert.deepEqual(store.read(kept, 5), [message(kept)]);
    for (let p = kept + 1; p <= 520; p++) assert.equal(store.append(message(p)), true);
    store.flush();
    assert.deepEqual(
      store.read(518, 5).map((m) => m.position),
      [518, 519, 520],
    );
    store.close();
  });
});

test('on disk: a cut removes the saved indexes of the cut segment, so that no open trusts them', () => {
  withDirectory((directory) => {
    const open = () =>
      new MessageStore({ files: new DiskStoreFiles(directory), segmentBytesMax: 1 << 20 });
    let store = open();
    for (let p = 1; p <= 19; p++) store.append(message(p));
    store.close();
    const indexes = () => readdirSync(directory).filter((name) => /\.(idx|tix)$/.test(name));
    assert.equal(indexes().length, 2, 'a closed store saved its indexes');
    store = open();
    store.truncateAfter(8);
    assert.deepEqual(indexes(), []);
    for (let p = 9; p <= 19; p++) store.append(message(p));
    store.close();
    store = open();
    assert.deepEqual(store.ranges(), [{ first: 1, last: 19 }]);
    assert.deepEqual(
      store.read(1, 30),
      Array.from({ length: 19 }, (_, at) => message(at + 1)),
    );
    store.close();
  });
});

test('on disk: a cut inside a frame rewrites its header in place, and the frame reads after it', () => {
  withDirectory((directory) => {
    const open = (files = new DiskStoreFiles(directory)) =>
      new MessageStore({ files, segmentBytesMax: 1 << 20 });
    let store = open();
    for (let p = 1; p <= 19; p++) store.append(message(p));
    store.close();
    const files = new DiskStoreFiles(directory);
    store = open(files);
    store.truncateAfter(8); // inside the one frame 1…19: its header is rewritten and synced
    for (let p = 9; p <= 23; p++) store.append(message(p));
    store.flush();
    // The files written out, but not the store's index: the next open scans.
    files.close();
    store = open();
    assert.deepEqual(store.ranges(), [{ first: 1, last: 23 }]);
    assert.deepEqual(
      store.read(1, 30),
      Array.from({ length: 23 }, (_, at) => message(at + 1)),
    );
    store.close();
  });
});

test('a record larger than the read buffer is read whole wherever a read starts at it', () => {
  const files = new MemoryStoreFiles();
  const segment = new Segment(files, 1);
  const sizes = [400_000, 10, 300_000, 10];
  sizes.forEach((bytes, at) => {
    segment.append({
      position: at + 1,
      index: at + 1,
      term: 1,
      clientId: 'c',
      seq: at + 1,
      topic: 't',
      payload: new Uint8Array(bytes).fill(at + 1),
      logTimeMs: at + 1,
    });
  });
  segment.flush();
  for (let from = 1; from <= sizes.length; from++) {
    const visited: number[] = [];
    const count = segment.visit(from, sizes.length, Number.MAX_SAFE_INTEGER, (body) => {
      visited.push(body.length);
      return 0;
    });
    assert.equal(count, sizes.length - from + 1, `visited from ${from}`);
    assert.equal(visited.length, count);
    assert.deepEqual(
      segment.read(from, sizes.length).map((message) => message.payload.length),
      sizes.slice(from - 1),
    );
  }
  assert.equal(segment.damagedFrom, null);
});

test('a large batch is written in chunks: the pending buffer does not grow with the batch', () => {
  const writes: number[] = [];
  const files = new (class extends MemoryStoreFiles {
    override write(name: string, data: Buffer, offset: number): void {
      writes.push(data.length);
      super.write(name, data, offset);
    }
  })();
  const store = new MessageStore({ files, segmentBytesMax: 64 << 20 });
  const count = 20_000; // about 3 MiB of records, applied as one batch
  for (let position = 1; position <= count; position++) store.append(message(position));
  store.flush();
  assert.ok(writes.length > 4, `${writes.length} writes`);
  assert.ok(Math.max(...writes) <= 256 << 10, `largest write ${Math.max(...writes)} bytes`);
  assert.equal(store.read(1, count).length, count);
  for (const stored of store.read(count - 5, 10))
    assert.deepEqual(stored, message(stored.position));
});

test('an applied batch leaves the last segment buffered until it holds a write; reads see it', async () => {
  const writes: string[] = [];
  const files = new (class extends MemoryStoreFiles {
    override write(name: string, data: Buffer, offset: number): void {
      writes.push(name);
      super.write(name, data, offset);
    }
  })();
  const store = new MessageStore({ files, segmentBytesMax: 64 << 20 });
  for (let position = 1; position <= 100; position++) store.append(message(position));
  store.batchApplied();
  assert.deepEqual(writes, [], 'a small batch is not written on its own');
  assert.deepEqual(
    store.read(99, 5).map((m) => m.position),
    [99, 100],
    'a read writes what is buffered first',
  );
  assert.equal(writes.length, 1);
  // A hole filled behind the last segment (backfill): that segment is written at once.
  for (let position = 200; position <= 210; position++) store.append(message(position));
  writes.length = 0;
  store.batchApplied();
  assert.deepEqual(writes, []);
  for (let position = 101; position <= 150; position++) store.append(message(position));
  store.batchApplied();
  assert.deepEqual(writes, ['0000000000000001.seg'], 'the segment before the last one is written');
  writes.length = 0;
  await store.sync();
  assert.equal(writes.length, 1, 'a sync writes the last segment too');
  assert.equal(store.read(200, 20).length, 11);
});
