// Proves the snapshot stores keep the newest snapshot of a topic and never hand back a wrong
// one: saves racing in one process leave the newest on disk, and a torn, garbled or
// incomplete file is refused with corrupt_snapshot. Snapshots saved when the position was
// called `index` still load, from a file or from a store of the application's own, and
// the next save writes `position`; so do the barrier's and the task board's old states.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { barrierMachine } from '../../src/agents/barrier.ts';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { ReplicatedStateMachine } from '../../src/agents/rsm.ts';
import {
  encodeSnapshotFile,
  FileSnapshotStore,
  MemorySnapshotStore,
  type StateSnapshot,
} from '../../src/agents/snapshots.ts';
import { taskBoardMachine } from '../../src/agents/taskboard.ts';
import * as crc from '../../src/util/crc32.ts';

const snapshotAt = (index: number): StateSnapshot => ({
  topic: 'ledger',
  position: index,
  time: 1_000 + index,
  state: { index },
});

test('racing saves in one process leave the newest snapshot', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'abcast-snapshots-'));
  try {
    const store = new FileSnapshotStore(directory);
    for (let round = 0; round < 20; round++) {
      const newest = 1_000 * (round + 1);
      // The newer save starts first; the older one must not replace it.
      await Promise.all([store.save(snapshotAt(newest)), store.save(snapshotAt(newest - 1))]);
      assert.equal((await store.load('ledger'))?.position, newest, `round ${round}`);
    }
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('racing saves to the memory store leave the newest snapshot', async () => {
  const store = new MemorySnapshotStore();
  await Promise.all([store.save(snapshotAt(20)), store.save(snapshotAt(19))]);
  assert.equal((await store.load('ledger'))?.position, 20);
});

/** A file whose header and CRC are right for whatever body it carries. */
function fileWithBody(body: string): Buffer {
  const valid = encodeSnapshotFile(snapshotAt(1)).toString('latin1');
  const [magic, version] = valid.split(' ');
  const bytes = Buffer.from(body);
  const { crc32 } = crc;
  return Buffer.concat([
    Buffer.from(
      `${magic} ${version} ${crc32(bytes).toString(16).padStart(8, '0')} ${bytes.length}\n`,
    ),
    bytes,
  ]);
}

test('torn, garbled or incomplete snapshot files are refused with corrupt_snapshot', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'abcast-snapshots-'));
  try {
    const store = new FileSnapshotStore(directory);
    await store.save(snapshotAt(7));
    const path = join(directory, `${Buffer.from('ledger').toString('base64url')}.snapshot`);
    const whole = await readFile(path);
    const bad = [
      whole.subarray(0, whole.length - 3), // torn
      Buffer.concat([whole.subarray(0, whole.length - 2), Buffer.from('x}')]), // flipped
      Buffer.from('garbage'),
      Buffer.alloc(0),
      fileWithBody('{"topic":"ledger","index":3,"time":1}'), // no state
      fileWithBody('{"topic":"ledger","index":3,'), // a right CRC over a broken body
      fileWithBody('{"topic":"ledger","index":3,"time":null,"state":{}}'),
    ];
    for (const [at, bytes] of bad.entries()) {
      await writeFile(path, bytes);
      await assert.rejects(store.load('ledger'), { code: 'corrupt_snapshot' }, `case ${at}`);
    }
    // A save over a corrupt file replaces it.
    await store.save(snapshotAt(8));
    assert.equal((await store.load('ledger'))?.position, 8);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a topic of the longest length topics may have gets its snapshot saved and loaded', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'abcast-snapshots-'));
  try {
    const store = new FileSnapshotStore(directory);
    for (const topic of ['t'.repeat(200), `taskboard/${'é'.repeat(95)}`, 'short']) {
      await store.save({ ...snapshotAt(3), topic });
      const loaded = await store.load(topic);
      assert.equal(loaded?.topic, topic);
      assert.equal(loaded?.position, 3);
    }
    assert.equal(await store.load('t'.repeat(199)), null);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a snapshot saved with index loads as position, and is saved again with position', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'abcast-snapshots-'));
  try {
    const store = new FileSnapshotStore(directory);
    const path = join(directory, `${Buffer.from('ledger').toString('base64url')}.snapshot`);
    await writeFile(path, fileWithBody('{"topic":"ledger","index":5,"time":1005,"state":{"n":5}}'));
    const loaded = await store.load('ledger');
    assert.deepEqual(loaded, { topic: 'ledger', position: 5, time: 1005, state: { n: 5 } });
    await store.save({ ...(loaded as StateSnapshot), position: 6 });
    const text = (await readFile(path)).toString('utf8');
    assert.match(text, /"position":6/);
    assert.doesNotMatch(text, /"index"/);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test("a replica starts from an old-shaped snapshot of the application's own store", async () => {
  const log = new MemoryLog();
  for (let at = 1; at <= 3; at++) log.append({ add: at }, 'counter', 'writer');
  const oldShape = { topic: 'counter', index: 2, time: 0, state: { n: 3 } };
  const applied: number[] = [];
  const replica = await ReplicatedStateMachine.start<{ n: number }, { add: number }, number>({
    log: log.session(),
    topic: 'counter',
    machine: {
      initialState: () => ({ n: 0 }),
      apply: (state, command) => {
        state.n += command.add;
        return state.n;
      },
    },
    snapshotStore: {
      load: async () => oldShape as unknown as StateSnapshot,
      save: async () => undefined,
    },
    onApplied: (event) => applied.push(event.position),
  });
  try {
    // 3 at position 2, as the snapshot says; only position 3 is applied on top of it.
    await replica.waitUntil((state) => (state.n === 6 ? true : undefined));
    assert.equal(replica.appliedPosition, 3);
    assert.deepEqual(applied, [3]);
  } finally {
    await replica.close();
  }
});

test("the barrier's and the task board's states saved with index decode with position", () => {
  const barriers = barrierMachine.decodeState?.([
    [
      'b',
      {
        generation: 1,
        parties: null,
        arrived: [],
        history: [{ generation: 0, arrived: ['a'], index: 7, time: 70 }],
      },
    ],
  ]);
  assert.deepEqual(barriers?.barriers.get('b')?.history, [
    { generation: 0, arrived: ['a'], position: 7, time: 70 },
  ]);
  const board = taskBoardMachine.initialState();
  const encoded = taskBoardMachine.encodeState?.(board) as { tasks: unknown[] };
  const task = { id: '#4', postedIndex: 4 };
  const decoded = taskBoardMachine.decodeState?.({ ...encoded, tasks: [task] });
  assert.equal(decoded?.tasks.get('#4')?.postedPosition, 4);
  assert.equal(Object.hasOwn(decoded?.tasks.get('#4') ?? {}, 'postedIndex'), false);
});
