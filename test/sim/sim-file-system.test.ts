// Proves the simulated disk models what real disks do to a WAL: synced data and synced
// directory entries survive a power cut exactly, unsynced writes survive sector by sector
// (torn, never half a sector), unsynced directory changes may be lost (a rename whole or not
// at all), a renamed file keeps its bytes (a recycled WAL segment shows its old records past
// what was written over them), lost and misdirected writes hide behind a successful datasync, EIO drops the
// unsynced writes from the disk while reads still see them, a full disk refuses with ENOSPC,
// corruption at rest changes exactly what it reports, and one seed replays one outcome.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimFileSystem, type SimFileSystemOptions } from '../../src/sim/sim-file-system.ts';
import type { FileSystem } from '../../src/storage/file-system.ts';
import { Prng } from '../../src/util/prng.ts';

const SECTOR_BYTES = 512;

function disk(seed: number, options: Partial<SimFileSystemOptions> = {}): SimFileSystem {
  return new SimFileSystem({ prng: new Prng(seed), ...options });
}

/** Sector `index` of a test pattern: every byte names its sector, never zero. */
function pattern(sectorCount: number, salt = 0): Uint8Array {
  const bytes = new Uint8Array(sectorCount * SECTOR_BYTES);
  for (let position = 0; position < bytes.length; position++) {
    bytes[position] = ((Math.floor(position / SECTOR_BYTES) + salt) % 255) + 1;
  }
  return bytes;
}

async function writeFile(
  files: FileSystem,
  path: string,
  data: Uint8Array,
  sync: { readonly file: boolean; readonly directory: boolean },
): Promise<void> {
  const handle = await files.open(path, 'createExclusive');
  await handle.write([data], 0);
  if (sync.file) await handle.datasync();
  await handle.close();
  if (sync.directory) await files.syncDirectory('/d');
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => assert.fail('expected a failure'),
    (reason: unknown) => reason,
  );
  return String((error as { code?: unknown }).code);
}

async function exists(files: FileSystem, path: string): Promise<boolean> {
  return files.readFile(path).then(
    () => true,
    () => false,
  );
}

async function madeDisk(seed: number, options: Partial<SimFileSystemOptions> = {}) {
  const files = disk(seed, options);
  await files.makeDirectory('/d');
  await files.syncDirectory('/');
  return files;
}

describe('SimFileSystem', () => {
  it('keeps synced data and synced directory entries exactly across a power cut', async () => {
    const files = await madeDisk(1);
    const data = pattern(9);
    await writeFile(files, '/d/a', data, { file: true, directory: true });
    files.powerCut();
    assert.deepEqual(await files.readFile('/d/a'), data);
    assert.deepEqual(await files.readdir('/d'), ['a']);
    assert.equal(files.counters().faultCount, 0);
  });

  it('keeps or loses each unsynced sector whole: a write tears at sector boundaries', async () => {
    const files = await madeDisk(2);
    const old = pattern(64, 0);
    await writeFile(files, '/d/a', old, { file: true, directory: true });
    const handle = await files.open('/d/a', 'readWrite');
    const fresh = pattern(64, 100);
    await handle.write([fresh], 0);
    assert.deepEqual(await files.readFile('/d/a'), fresh, 'reads see unsynced writes');
    files.powerCut();
    const after = await files.readFile('/d/a');
    let keptCount = 0;
    for (let sector = 0; sector < 64; sector++) {
      const range = [sector * SECTOR_BYTES, (sector + 1) * SECTOR_BYTES] as const;
      const got = after.subarray(...range);
      const isFresh = got.every((byte, offset) => byte === fresh[range[0] + offset]);
      const isOld = got.every((byte, offset) => byte === old[range[0] + offset]);
      assert.ok(isFresh || isOld, `sector ${sector} is old or new, whole`);
      if (isFresh) keptCount += 1;
    }
    assert.ok(keptCount > 0 && keptCount < 64, `a torn write: ${keptCount} of 64 sectors kept`);
    assert.equal(files.counters().lostSectorCount, 64 - keptCount);
  });

  it('keeps the bytes of a renamed file: a recycled one shows its old content past a new write, torn or not', async () => {
    const files = await madeDisk(12);
    const old = pattern(32, 0);
    await writeFile(files, '/d/wal-1', old, { file: true, directory: true });
    // As the WAL recycles a segment: renamed, synced, then written from the start.
    await files.rename('/d/wal-1', '/d/wal-2');
    await files.syncDirectory('/d');
    const handle = await files.open('/d/wal-2', 'readWrite');
    const fresh = pattern(16, 100);
    await handle.write([fresh], 0);
    const before = await files.readFile('/d/wal-2');
    assert.equal(before.length, old.length, 'the file keeps its size');
    assert.deepEqual(before.subarray(fresh.length), old.subarray(fresh.length), 'stale past it');
    files.powerCut();
    const after = await files.readFile('/d/wal-2');
    assert.deepEqual(after.subarray(fresh.length), old.subarray(fresh.length));
    for (let sector = 0; sector < 16; sector++) {
      const range = [sector * SECTOR_BYTES, (sector + 1) * SECTOR_BYTES] as const;
      const got = after.subarray(...range);
      const isFresh = got.every((byte, offset) => byte === fresh[range[0] + offset]);
      const isOld = got.every((byte, offset) => byte === old[range[0] + offset]);
      assert.ok(isFresh || isOld, `sector ${sector} is the stale one or the new one, whole`);
    }
    assert.ok(files.counters().lostSectorCount > 0, 'the unsynced write was torn');
  });

  it('keeps a readWriteDurable write once it resolves; a power cut before may tear it', async () => {
    const old = pattern(64, 0);
    const fresh = pattern(64, 100);
    const files = await madeDisk(3);
    await writeFile(files, '/d/a', old, { file: true, directory: true });
    const handle = await files.open('/d/a', 'readWriteDurable');
    await handle.write([fresh], 0);
    files.powerCut();
    assert.deepEqual(await files.readFile('/d/a'), fresh, 'resolved means durable, no datasync');

    // The write is two operations, the sync second: cut the power between them.
    const queued: { fire: () => void }[] = [];
    const held = disk(4, { schedule: (_delayMs, fire) => queued.push({ fire }) });
    const pump = async (stepsMax: number): Promise<void> => {
      // Bounded: at most `stepsMax` operations fire.
      for (let step = 0; step < stepsMax && queued.length > 0; step++) {
        queued.shift()?.fire();
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const made = held.makeDirectory('/d').then(() => held.syncDirectory('/'));
    await pump(100);
    await made;
    const created = writeFile(held, '/d/a', old, { file: true, directory: true });
    await pump(100);
    await created;
    const opening = held.open('/d/a', 'readWriteDurable');
    await pump(100);
    const writing = (await opening).write([fresh], 0);
    void writing.catch(() => undefined);
    await pump(1);
    assert.equal(queued.length, 1, 'written, its sync waiting');
    held.powerCut();
    await pump(1);
    assert.equal(await codeOf(writing), 'EIO', 'an interrupted durable write fails');
    const reading = held.readFile('/d/a');
    await pump(1);
    const after = await reading;
    const lost = held.counters().lostSectorCount;
    assert.ok(lost > 0 && lost < 64, `torn: ${lost} of 64 sectors lost`);
    assert.notDeepEqual(after, fresh);
  });

  it('loses an unsynced file, or its tail, and grows a file only as far as kept sectors', async () => {
    let lostCount = 0;
    for (let seed = 0; seed < 16; seed++) {
      const files = await madeDisk(seed);
      await writeFile(files, '/d/a', pattern(4), { file: false, directory: true });
      files.powerCut();
      const after = await files.readFile('/d/a');
      assert.ok(after.length <= 4 * SECTOR_BYTES && after.length % SECTOR_BYTES === 0);
      if (after.length < 4 * SECTOR_BYTES) lostCount += 1;
    }
    assert.ok(lostCount > 0, 'some power cuts lose unsynced data');
  });

  it('makes directory entries durable only once the directory is synced', async () => {
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 32; seed++) {
      const files = await madeDisk(seed);
      await writeFile(files, '/d/old', pattern(1), { file: true, directory: true });
      await writeFile(files, '/d/new', pattern(1, 7), { file: true, directory: false });
      await files.rename('/d/old', '/d/renamed');
      files.powerCut();
      const names = (await files.readdir('/d')).join(',');
      // A rename is atomic: the old name or the new one, never both or neither.
      assert.ok(
        ['old', 'renamed', 'new,old', 'new,renamed'].includes(names),
        `unexpected names ${names}`,
      );
      outcomes.add(names);
    }
    assert.ok(outcomes.size >= 3, `the power cuts lost different changes: ${[...outcomes]}`);
    const files = await madeDisk(3);
    await writeFile(files, '/d/new', pattern(1), { file: true, directory: false });
    await files.syncDirectory('/d');
    files.powerCut();
    assert.deepEqual(await files.readdir('/d'), ['new'], 'a synced directory keeps its entries');
  });

  it('loses a new directory whose parent was not synced, with what it holds', async () => {
    let lostCount = 0;
    for (let seed = 0; seed < 16; seed++) {
      const files = disk(seed);
      assert.equal(await files.makeDirectory('/x/y'), '/x');
      assert.equal(await files.makeDirectory('/x/y'), null);
      const handle = await files.open('/x/y/f', 'createExclusive');
      await handle.datasync();
      await files.syncDirectory('/x/y');
      files.powerCut();
      if (!(await exists(files, '/x/y/f'))) lostCount += 1;
    }
    assert.ok(lostCount > 0, 'an unsynced parent loses its new directory');
  });

  it('refuses writes past the capacity with ENOSPC, writing nothing', async () => {
    const files = await madeDisk(4, { capacityBytes: 1000 });
    const handle = await files.open('/d/a', 'createExclusive');
    await handle.write([new Uint8Array(800).fill(1)], 0);
    assert.equal(await codeOf(handle.write([new Uint8Array(300).fill(2)], 800)), 'ENOSPC');
    await handle.write([new Uint8Array(100).fill(3)], 700); // overwrites need no space
    assert.equal(await handle.sizeBytes(), 800);
    assert.equal(files.counters().noSpaceErrorCount, 1);
  });

  it('fails a datasync with EIO, after which the disk lacks what reads still return', async () => {
    const files = await madeDisk(5);
    await writeFile(files, '/d/a', pattern(2), { file: true, directory: true });
    files.setFaults({ datasyncErrorProbability: 1 });
    const handle = await files.open('/d/a', 'readWrite');
    const fresh = pattern(2, 50);
    await handle.write([fresh], 0);
    assert.equal(await codeOf(handle.datasync()), 'EIO');
    assert.deepEqual(await files.readFile('/d/a'), fresh, 'the page cache still has it');
    files.setFaults({ datasyncErrorProbability: 0 });
    await handle.datasync(); // succeeds, and syncs nothing: the failed pages were dropped
    files.powerCut();
    assert.deepEqual(await files.readFile('/d/a'), pattern(2), 'the disk never got it');
    assert.equal(files.counters().datasyncErrorCount, 1);
  });

  it('hides a lost write behind a successful datasync', async () => {
    const files = await madeDisk(6, { faults: { lostWriteProbability: 1 } });
    await writeFile(files, '/d/a', pattern(2), { file: true, directory: true });
    assert.deepEqual(await files.readFile('/d/a'), pattern(2));
    files.powerCut();
    assert.equal((await files.readFile('/d/a')).length, 0);
    assert.equal(files.counters().lostWriteCount, 1);
  });

  it('puts a misdirected write sectors away from where it belongs', async () => {
    const files = await madeDisk(7, { faults: { misdirectedWriteProbability: 1 } });
    const handle = await files.open('/d/a', 'createExclusive');
    await handle.write([new Uint8Array(16 * SECTOR_BYTES)], 0);
    await handle.datasync(); // the zeros land somewhere: the file is at least this long
    await handle.write([new Uint8Array(SECTOR_BYTES).fill(9)], 8 * SECTOR_BYTES);
    await handle.datasync();
    await files.syncDirectory('/d');
    files.powerCut();
    const after = await files.readFile('/d/a');
    const sectorsHolding9 = [];
    for (let sector = 0; sector * SECTOR_BYTES < after.length; sector++) {
      if (after[sector * SECTOR_BYTES] === 9) sectorsHolding9.push(sector);
    }
    assert.equal(sectorsHolding9.length, 1);
    assert.notEqual(sectorsHolding9[0], 8);
    assert.equal(files.counters().misdirectedWriteCount, 2);
  });

  it('flips exactly one bit, and zeroes exactly one sector, of a file at rest', async () => {
    const files = await madeDisk(8);
    const data = pattern(4);
    await writeFile(files, '/d/a', data, { file: true, directory: true });
    const flip = files.flipBit();
    assert.equal(flip?.path, '/d/a');
    const flipped = await files.readFile('/d/a');
    let differingBits = 0;
    for (let position = 0; position < data.length; position++) {
      const diff = (flipped[position] ?? 0) ^ (data[position] ?? 0);
      for (let bit = diff; bit !== 0; bit >>= 1) differingBits += bit & 1;
      if (diff !== 0) assert.equal(position, flip?.offsetBytes);
    }
    assert.equal(differingBits, 1);
    files.powerCut();
    assert.deepEqual(await files.readFile('/d/a'), flipped, 'the flip is on the disk');
    const zeroed = files.zeroSector('/d/a');
    assert.ok(zeroed !== null && zeroed.offsetBytes % SECTOR_BYTES === 0);
    const after = await files.readFile('/d/a');
    assert.ok(
      after.subarray(zeroed.offsetBytes, zeroed.offsetBytes + SECTOR_BYTES).every((b) => b === 0),
    );
    assert.equal(files.counters().faultCount, 2);
  });

  it('completes operations when the simulator fires them; a power cut fails those in flight', async () => {
    const queued: { delayMs: number; fire: () => void }[] = [];
    const files = disk(9, {
      schedule: (delayMs, fire) => queued.push({ delayMs, fire }),
      delayMs: (operation) => (operation === 'datasync' ? 5 : 0),
    });
    const pump = async (): Promise<void> => {
      // Bounded: the test issues a handful of operations.
      for (let step = 0; step < 100 && queued.length > 0; step++) {
        queued.shift()?.fire();
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const opening = files.open('/a', 'createExclusive');
    assert.equal(queued.length, 1);
    await pump();
    const handle = await opening;
    const writing = handle.write([pattern(1)], 0);
    await pump();
    await writing;
    const syncing = codeOf(handle.datasync());
    assert.equal(queued[0]?.delayMs, 5);
    files.powerCut();
    await pump();
    assert.equal(await syncing, 'EIO');
    const sizing = codeOf(handle.sizeBytes());
    await pump();
    assert.equal(await sizing, 'EIO', 'a handle opened before the power cut is dead');
  });

  it('replays one outcome from one seed', async () => {
    const run = async (seed: number): Promise<string> => {
      const files = await madeDisk(seed);
      await writeFile(files, '/d/a', pattern(32), { file: false, directory: false });
      await writeFile(files, '/d/b', pattern(32, 3), { file: true, directory: false });
      files.powerCut();
      const names = await files.readdir('/d');
      const contents = await Promise.all(names.map((name) => files.readFile(`/d/${name}`)));
      return JSON.stringify([names, contents.map((bytes) => Array.from(bytes).join(''))]);
    };
    assert.equal(await run(11), await run(11));
    const outcomes = new Set(await Promise.all([1, 2, 3, 4, 5].map(run)));
    assert.ok(outcomes.size > 1, 'different seeds draw different losses');
  });
});
