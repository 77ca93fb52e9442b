// Proves the NodeObserver sees the Ready loop as it runs: on a one-node cluster with small
// snapshot intervals, every Ready is taken, made durable and applied in that order with no
// other Ready in between, deliveries come while it is handled and never before the entry is
// durable (before the Ready's write only entries below its first append), at dense positions,
// and compactions report snapshots at increasing, already applied indexes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeliveredMessage } from '../../src/broadcast/deliveries.ts';
import type { NodeObserver } from '../../src/broadcast/observer.ts';
import type { Entry, HardState, Ready, Snapshot } from '../../src/raft/types.ts';
import { encode, TwinCluster } from './twin-cluster.ts';

type Event =
  | { readonly stage: 'taken'; readonly ready: Ready }
  | { readonly stage: 'applied'; readonly ready: Ready }
  | { readonly stage: 'durable'; readonly ready: Ready; readonly hardState: HardState | null }
  | { readonly stage: 'duringWrite'; readonly entries: readonly Entry[] }
  | { readonly stage: 'compacted'; readonly snapshot: Snapshot }
  | { readonly stage: 'delivered'; readonly message: DeliveredMessage };

class Recorder implements NodeObserver {
  readonly events: Event[] = [];
  readyTaken(ready: Ready): void {
    this.events.push({ stage: 'taken', ready });
  }
  readyDurable(ready: Ready, hardState: HardState | null): void {
    this.events.push({ stage: 'durable', ready, hardState });
  }
  readyApplied(ready: Ready): void {
    this.events.push({ stage: 'applied', ready });
  }
  appliedDuringWrite(entries: readonly Entry[]): void {
    this.events.push({ stage: 'duringWrite', entries });
  }
  compacted(snapshot: Snapshot): void {
    this.events.push({ stage: 'compacted', snapshot });
  }
  delivered(message: DeliveredMessage): void {
    this.events.push({ stage: 'delivered', message });
  }
  stopped(): void {}
}

test('the observer sees every Ready taken, durable and applied, in order', async () => {
  const observer = new Recorder();
  const cluster = await TwinCluster.start({
    ids: ['n1'],
    tuning: { observer, snapshotIntervalBytes: 256 },
  });
  try {
    const leader = await cluster.waitForLeader();
    const node = cluster.node(leader);
    for (let round = 0; round < 20; round++) {
      await Promise.all([0, 1, 2].map((at) => node.broadcast(encode(`r${round}-${at}`))));
    }
    let open: Ready | null = null;
    let durable = false;
    let lastPosition = 0;
    let lastCompacted = 0;
    let appliedIndex = 0;
    for (const event of observer.events) {
      if (event.stage === 'taken') {
        assert.equal(open, null, 'one Ready at a time');
        open = event.ready;
        durable = false;
      } else if (event.stage === 'durable') {
        assert.ok(event.ready === open, 'durable: the Ready taken');
        durable = true;
        const written = event.ready.entriesToAppend.length > 0 && event.ready.hardState !== null;
        if (written) assert.ok(event.hardState === event.ready.hardState, 'its hard state written');
      } else if (event.stage === 'applied') {
        assert.ok(event.ready === open, 'applied: the Ready taken');
        assert.ok(durable, 'applied after durable');
        appliedIndex = Math.max(appliedIndex, event.ready.entriesToDeliver.at(-1)?.index ?? 0);
        open = null;
      } else if (event.stage === 'duringWrite') {
        assert.ok(open !== null && !durable, "during a Ready's write");
        const firstAppended = open.entriesToAppend[0]?.index ?? Number.POSITIVE_INFINITY;
        assert.ok((event.entries.at(-1)?.index ?? 0) < firstAppended, 'written before it');
        appliedIndex = event.entries.at(-1)?.index ?? appliedIndex;
      } else if (event.stage === 'delivered') {
        assert.ok(open !== null, 'delivered while a Ready is handled');
        // Before the Ready's write only what was durable before it: below its first append.
        const firstAppended = open.entriesToAppend[0]?.index ?? Number.POSITIVE_INFINITY;
        assert.ok(durable || event.message.index < firstAppended, 'delivered once durable');
        assert.equal(event.message.position, lastPosition + 1, 'dense positions');
        lastPosition = event.message.position;
      } else {
        assert.ok(event.snapshot.meta.index > lastCompacted, 'compactions move forward');
        assert.ok(event.snapshot.meta.index <= appliedIndex, 'to an applied index');
        lastCompacted = event.snapshot.meta.index;
      }
    }
    assert.equal(lastPosition, 60, 'every message delivered once');
    assert.ok(lastCompacted > 0, 'the log was compacted at least once');
  } finally {
    await cluster.close();
  }
});
