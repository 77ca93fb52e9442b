// Proves that nothing acknowledged is lost when the writer is killed with SIGKILL: a child
// process appends (with overwrites, snapshots and segment rotation) and prints each request
// before it and each acknowledgement after it; the parent kills it mid-stream, reopens the
// directory, and requires the disk to hold exactly the effect of the first k requests for
// some k at least the acknowledged count. Several rounds run on one directory, with tiny
// segments and with larger ones, so that kills land mid-rotation and mid-preallocation.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { HardState, PersistedState } from '../../src/raft/types.ts';
import { StorageError } from '../../src/storage/errors.ts';
import { FileStorage } from '../../src/storage/file-storage.ts';
import type { StorageEvent } from '../../src/storage/types.ts';
import { Prng } from '../../src/util/prng.ts';
import {
  CLUSTER_ID,
  CRASH_SEGMENT_BYTES_MAX,
  entryData,
  makeTempDir,
  NODE_ID,
  removeDir,
} from './helpers.ts';

const WRITER = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url));
const ROUND_COUNT = 6;
/** Rounds alternate: rotation at nearly every request, then zero-filling that takes a while. */
const ROUND_SEGMENT_BYTES = [CRASH_SEGMENT_BYTES_MAX, 1024 * 1024] as const;
const CHILD_DEADLINE_MS = 30_000;

type Operation =
  | { seq: number; kind: 'snapshot'; index: number; term: number }
  | { seq: number; kind: 'append'; first: number; term: number; sizes: number[]; hard: HardState };

/** The state the parent expects, built from the child's requests. */
interface Model {
  snapshotIndex: number;
  snapshotTerm: number;
  /** index → [term, size] for indexes after the snapshot. */
  log: Map<number, [number, number]>;
  lastIndex: number;
  hardState: HardState | null;
}

function modelFrom(persisted: PersistedState): Model {
  const log = new Map<number, [number, number]>();
  for (const entry of persisted.entries) log.set(entry.index, [entry.term, entry.data.length]);
  const snapshotIndex = persisted.snapshot?.meta.index ?? 0;
  return {
    snapshotIndex,
    snapshotTerm: persisted.snapshot?.meta.term ?? 0,
    log,
    lastIndex: snapshotIndex + persisted.entries.length,
    hardState: persisted.hardState,
  };
}

function applyOperation(model: Model, operation: Operation): void {
  if (operation.kind === 'snapshot') {
    for (let index = model.snapshotIndex + 1; index <= operation.index; index++) {
      model.log.delete(index);
    }
    model.snapshotIndex = operation.index;
    model.snapshotTerm = operation.term;
    return;
  }
  for (let index = operation.first; index <= model.lastIndex; index++) model.log.delete(index);
  operation.sizes.forEach((size, offset) => {
    model.log.set(operation.first + offset, [operation.term, size]);
  });
  model.lastIndex = operation.first + operation.sizes.length - 1;
  model.hardState = operation.hard;
}

/** Why `persisted` differs from `model`, or null when it matches. */
function difference(model: Model, persisted: PersistedState): string | null {
  const snapshotIndex = persisted.snapshot?.meta.index ?? 0;
  if (snapshotIndex !== model.snapshotIndex) return `snapshot ${snapshotIndex}`;
  if (persisted.snapshot !== null) {
    const expected = entryData(snapshotIndex, model.snapshotTerm + 7, 64);
    if (!Buffer.from(persisted.snapshot.data).equals(expected)) return 'snapshot data';
  }
  if (snapshotIndex + persisted.entries.length !== model.lastIndex) {
    return `last index ${snapshotIndex + persisted.entries.length} != ${model.lastIndex}`;
  }
  for (const entry of persisted.entries) {
    const [term, size] = model.log.get(entry.index) ?? [-1, -1];
    if (entry.term !== term) return `term at ${entry.index}`;
    if (!Buffer.from(entry.data).equals(entryData(entry.index, term, size))) {
      return `data at ${entry.index}`;
    }
  }
  const hard = model.hardState;
  const expectedHard =
    hard === null ? null : { ...hard, commit: Math.max(hard.commit, model.snapshotIndex) };
  if (JSON.stringify(persisted.hardState) !== JSON.stringify(expectedHard)) return 'hard state';
  return null;
}

interface ChildRun {
  readonly operations: Operation[];
  readonly acknowledgedCount: number;
}

/** Runs the writer until `ackTarget` acknowledgements, then kills it with SIGKILL. */
async function runAndKill(options: {
  readonly dataDir: string;
  readonly seed: number;
  readonly ackTarget: number;
  readonly segmentBytesMax: number;
}): Promise<ChildRun> {
  const { dataDir, seed, ackTarget, segmentBytesMax } = options;
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', WRITER, dataDir, String(seed), String(segmentBytesMax)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const operations: Operation[] = [];
  let acknowledgedCount = 0;
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = setTimeout(() => child.kill('SIGKILL'), CHILD_DEADLINE_MS);
  try {
    for await (const line of createInterface({ input: child.stdout! })) {
      const message = JSON.parse(line) as { ack?: number; seq?: number };
      if (message.seq !== undefined) operations.push(message as Operation);
      if (message.ack === undefined) continue;
      acknowledgedCount += 1;
      assert.equal(message.ack, acknowledgedCount, 'acknowledgements come in request order');
      if (acknowledgedCount === ackTarget) child.kill('SIGKILL');
    }
    await exited;
  } finally {
    clearTimeout(deadline);
    child.kill('SIGKILL');
  }
  assert.equal(child.signalCode, 'SIGKILL', `the writer was killed, not ended: ${stderr}`);
  assert.equal(acknowledgedCount >= ackTarget, true, `reached ${ackTarget} acks: ${stderr}`);
  return { operations, acknowledgedCount };
}

describe('FileStorage under SIGKILL', () => {
  let root = '';
  before(async () => {
    root = await makeTempDir('crash');
  });
  after(async () => {
    await removeDir(root);
  });

  it('keeps every acknowledged request, round after round', async () => {
    const dataDir = join(root, 'data');
    const random = new Prng(0xc0ffee);
    let expected: PersistedState = {
      hardState: null,
      snapshot: null,
      entries: [],
      appliedIndex: 0,
    };
    let requestCount = 0;
    for (let round = 0; round < ROUND_COUNT; round++) {
      const ackTarget = random.between(30, 250);
      const segmentBytesMax = ROUND_SEGMENT_BYTES[round % ROUND_SEGMENT_BYTES.length]!;
      const seed = random.nextUint32();
      const run = await runAndKill({ dataDir, seed, ackTarget, segmentBytesMax });
      requestCount += run.operations.length;
      const { storage, persisted } = await FileStorage.open({
        dataDir,
        clusterId: CLUSTER_ID,
        nodeId: NODE_ID,
        segmentBytesMax,
      });
      await storage.close();
      // The disk holds the first k requests, k >= acknowledged: find that k.
      const model = modelFrom(expected);
      const reasons: string[] = [];
      let matchedCount: number | null = null;
      for (const [position, operation] of run.operations.entries()) {
        applyOperation(model, operation);
        if (position + 1 < run.acknowledgedCount) continue;
        const reason = difference(model, persisted);
        if (reason === null) {
          matchedCount = position + 1;
          break;
        }
        reasons.push(`after ${position + 1}: ${reason}`);
      }
      assert.notEqual(
        matchedCount,
        null,
        `round ${round}: ${run.acknowledgedCount} acknowledged; ${reasons.join('; ')}`,
      );
      expected = persisted;
    }
    assert.ok(requestCount > ROUND_COUNT * 30, `${requestCount} requests issued`);
  });

  it('refuses a directory a live process holds, and takes it over once that one is killed', async () => {
    const dataDir = join(root, 'locked');
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dataDir, '7'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = setTimeout(() => child.kill('SIGKILL'), CHILD_DEADLINE_MS);
    const events: StorageEvent[] = [];
    const open = () =>
      FileStorage.open({
        dataDir,
        clusterId: CLUSTER_ID,
        nodeId: NODE_ID,
        segmentBytesMax: CRASH_SEGMENT_BYTES_MAX,
        log: (event) => events.push(event),
      });
    try {
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const first = await lines.next();
      assert.match(String(first.value), /"ready":true/);
      const error = await open().then(
        () => assert.fail('a second process opened a locked directory'),
        (reason: unknown) => reason,
      );
      assert.ok(error instanceof StorageError, String(error));
      assert.equal(error.code, 'LOCKED');
      assert.equal(error.details.pid, child.pid);
      child.kill('SIGKILL');
      await exited;
    } finally {
      clearTimeout(deadline);
      child.kill('SIGKILL');
    }
    const { storage } = await open();
    assert.equal(events.filter((event) => event.type === 'staleLockRemoved').length, 1);
    await storage.close();
  });
});
