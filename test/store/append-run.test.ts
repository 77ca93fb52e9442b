// A run of messages without a key is appended by the applier in one call
// (`MessageStore.appendRun`), without an object per message. This proves that it writes the
// same files as appending the same messages one by one, whatever the runs' sizes, offsets,
// segment size limits, batch ends and first position, and that the store then reads the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemoryStoreFiles, MessageStore, type StoredRun } from '../../src/store/index.ts';

interface RunSpec {
  readonly clientId: string;
  readonly firstSeq: number;
  readonly topic: string;
  readonly payloadSizes: readonly number[];
  /** The run's first messages were duplicates: the store gets those from here on. */
  readonly from: number;
  /** An applied batch ends after this run (the store may write what it buffered). */
  readonly batchEnds: boolean;
}

const runSpec = fc
  .record({
    clientId: fc.constantFrom('', 'c1', 'client-ü'),
    firstSeq: fc.integer({ min: 1, max: 1_000_000 }),
    topic: fc.constantFrom('', 'orders', 'topic/ä'),
    // Long runs too (fast-check's arrays are short unless told): a run crosses the sparse
    // index's every-64th positions, the 256 KiB write buffer and segment ends.
    payloadSizes: fc
      .integer({ min: 1, max: 300 })
      .chain((count) =>
        fc.array(fc.integer({ min: 0, max: 4000 }), { minLength: count, maxLength: count }),
      ),
    fromShare: fc.double({ min: 0, max: 1, noNaN: true }),
    batchEnds: fc.boolean(),
  })
  .map(
    ({ fromShare, ...rest }): RunSpec => ({
      ...rest,
      firstSeq: rest.clientId === '' ? 0 : rest.firstSeq,
      from: Math.min(rest.payloadSizes.length, Math.floor(fromShare * rest.payloadSizes.length)),
    }),
  );

function runOf(spec: RunSpec, at: number): StoredRun {
  return {
    index: 10 + at,
    term: 2,
    clientId: spec.clientId,
    firstSeq: spec.firstSeq,
    topic: spec.topic,
    logTimeMs: 1_700_000_000_000 + at * 7,
    payloads: spec.payloadSizes.map((size, offset) => new Uint8Array(size).fill(offset & 0xff)),
  };
}

function filesOf(files: MemoryStoreFiles): Map<string, string> {
  const contents = new Map<string, string>();
  for (const name of files.names().sort()) {
    const bytes = Buffer.alloc(files.size(name));
    files.read(name, bytes, 0);
    contents.set(name, bytes.toString('hex'));
  }
  return contents;
}

test('appendRun writes and reads as appending its messages one by one', () => {
  fc.assert(
    fc.property(
      fc.array(runSpec, { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 1, max: 200 }),
      fc.oneof(fc.integer({ min: 2_000, max: 80_000 }), fc.integer({ min: 80_000, max: 2 << 20 })),
      (specs, startPosition, segmentBytesMax) => {
        const byRun = new MemoryStoreFiles();
        const byMessage = new MemoryStoreFiles();
        const runStore = new MessageStore({ files: byRun, segmentBytesMax });
        const messageStore = new MessageStore({ files: byMessage, segmentBytesMax });
        let position = startPosition;
        specs.forEach((spec, at) => {
          const run = runOf(spec, at);
          runStore.appendRun(run, spec.from, position);
          for (let offset = spec.from; offset < run.payloads.length; offset++) {
            messageStore.append({
              position,
              index: run.index,
              term: run.term,
              clientId: run.clientId,
              seq: run.clientId === '' ? 0 : run.firstSeq + offset,
              topic: run.topic,
              payload: run.payloads[offset] as Uint8Array,
              logTimeMs: run.logTimeMs,
            });
            position++;
          }
          if (spec.batchEnds) {
            runStore.batchApplied();
            messageStore.batchApplied();
          }
        });
        runStore.flush();
        messageStore.flush();
        assert.deepEqual(filesOf(byRun), filesOf(byMessage));
        assert.deepEqual(runStore.ranges(), messageStore.ranges());
        const count = position - startPosition;
        if (count === 0) return;
        assert.deepEqual(
          runStore.read(startPosition, count + 1),
          messageStore.read(startPosition, count + 1),
        );
        for (const topic of ['', 'orders', 'topic/ä']) {
          assert.deepEqual(
            runStore.readTopic(topic, startPosition, count, count),
            messageStore.readTopic(topic, startPosition, count, count),
          );
        }
      },
    ),
    { numRuns: 150 },
  );
});
