// A reader waiting for the next position reads it once it is delivered; if that read finds
// the record damaged, the store cuts it and the position becomes a hole. The reader must be
// told (not_held, so that a stream reads it from a peer), not left waiting for a delivery
// that, once the load stops, never comes (simulator seed 0x325b05, profile broad).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeliveryLog } from '../../src/broadcast/deliveries.ts';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import { MemoryStoreFiles, MessageStore } from '../../src/store/index.ts';
import { storedMessage } from '../support/stored-message.ts';

for (const reader of ['followRecords', 'followBatches'] as const) {
  test(`${reader}: a delivered position whose record is found damaged is not_held, not awaited`, async () => {
    const files = new MemoryStoreFiles();
    const log = new DeliveryLog({
      store: new MessageStore({ files, segmentBytesMax: 1 << 20 }),
      backfill: true,
      retainBytesMax: null,
    });
    for (let position = 1; position <= 34; position++) log.append(storedMessage(position));
    log.notify();
    const controller = new AbortController();
    const read: number[] = [];
    const follow =
      reader === 'followRecords'
        ? log.followRecords(35, () => 0, controller.signal)
        : log.followBatches(35, controller.signal);
    // The reader is waiting at 35 when it is delivered and its record rots on disk.
    const outcome = (async () => {
      for await (const step of follow) read.push(typeof step === 'number' ? step : step.length);
    })();
    await new Promise((resolve) => setImmediate(resolve));
    log.append(storedMessage(35));
    log.store.flush();
    const [name] = files.names().filter((candidate) => candidate.endsWith('.seg'));
    assert.ok(name !== undefined, 'the segment file');
    const last = Buffer.alloc(1);
    files.read(name, last, files.size(name) - 2);
    files.write(name, Buffer.from([(last[0] ?? 0) ^ 0x40]), files.size(name) - 2);
    log.notify();
    // Bounds a hang only: the fixed reader is told within a few turns of the loop.
    let hangTimer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      outcome.then(
        () => 'ended',
        (error: unknown) => error,
      ),
      new Promise((resolve) => {
        hangTimer = setTimeout(() => resolve('still waiting'), 10_000);
      }),
    ]);
    clearTimeout(hangTimer);
    controller.abort();
    assert.ok(settled instanceof BroadcastError, String(settled));
    assert.equal(settled.code, 'not_held');
    assert.deepEqual(read, []);
    // The store cut the segment at the damage: 35 is a hole for backfill to fill.
    assert.ok(log.missingRanges().some((range) => range.first <= 35 && range.last >= 35));
  });
}
