// The runtime simulation's durability yardstick (AckedLog) accepts exactly what a power cut
// can leave of a node's log: the acknowledged log, or the acknowledged log with the one write
// in flight landed over its suffix; never a shorter or different log otherwise. Each case
// replays the observer calls a node makes and then judges a recovered state.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Entry, PersistedState, Ready, Snapshot } from '../../src/raft/types.ts';
import { AckedLog } from '../../src/sim/runtime/acked-log.ts';

function log(first: number, terms: readonly number[]): Entry[] {
  return terms.map((term, offset) => ({
    index: first + offset,
    term,
    kind: 'normal',
    data: new Uint8Array(0),
  }));
}

function ready(entries: readonly Entry[], snapshot: Snapshot | null = null): Ready {
  return {
    softState: null,
    hardState: null,
    snapshot,
    entriesToAppend: entries,
    messagesToSend: [],
    entriesToDeliver: [],
    readStates: [],
  };
}

function snapshotAt(index: number, term: number): Snapshot {
  return {
    meta: { index, term, config: { voters: ['n1'], learners: [] } },
    data: new Uint8Array(0),
  };
}

function recovered(entries: readonly Entry[], snapshot: Snapshot | null = null): PersistedState {
  return { hardState: null, snapshot, entries, appliedIndex: 0 };
}

/** Entries 1..4 acknowledged in term 2. */
function ackedOneToFour(): AckedLog {
  const acked = new AckedLog();
  acked.reset(recovered(log(1, [2, 2, 2, 2])));
  return acked;
}

describe('AckedLog.lossIn', () => {
  it('accepts a landed write that replaced the acknowledged suffix with a shorter one', () => {
    const acked = ackedOneToFour();
    acked.taken(ready(log(3, [3])));
    assert.equal(acked.lossIn('n1', recovered(log(1, [2, 2, 3]))), null);
    assert.equal(acked.lossIn('n1', recovered(log(1, [2, 2, 2, 2]))), null, 'or it never landed');
  });

  it("accepts a landed write whose terms are below the ones it replaced (a newer leader's log)", () => {
    const acked = new AckedLog();
    acked.reset(recovered(log(1, [1, 3])));
    acked.taken(ready(log(2, [1, 4])));
    assert.equal(acked.lossIn('n1', recovered(log(1, [1, 1, 4]))), null);
  });

  it('accepts a landed snapshot install that reset the log', () => {
    const acked = ackedOneToFour();
    acked.taken(ready(log(10, [3]), snapshotAt(9, 3)));
    assert.equal(acked.lossIn('n1', recovered(log(10, [3]), snapshotAt(9, 3))), null);
  });

  it('accepts a loss that recovery reports as damage, and only from where it says', () => {
    const acked = ackedOneToFour();
    const damaged = (entries: readonly Entry[], firstLostIndex: number): PersistedState => ({
      ...recovered(entries),
      damage: { firstLostIndex, lastIndexSeen: 4, termBound: 2 },
    });
    assert.equal(acked.lossIn('n1', damaged(log(1, [2, 2]), 3)), null);
    assert.match(acked.lossIn('n1', damaged(log(1, [2]), 3)) ?? '', /up to 1, below/);
  });

  it('refuses a shorter log when no write was in flight', () => {
    const acked = ackedOneToFour();
    acked.taken(ready(log(3, [3])));
    acked.durable();
    acked.append(log(3, [3]));
    assert.match(acked.lossIn('n1', recovered(log(1, [2, 2]))) ?? '', /up to 2, below .* 3/);
  });

  it('refuses a log that differs from the write in flight', () => {
    const acked = ackedOneToFour();
    acked.taken(ready(log(3, [3])));
    assert.match(acked.lossIn('n1', recovered(log(1, [2, 2]))) ?? '', /up to 2, below .* 4/);
    assert.match(acked.lossIn('n1', recovered(log(1, [2, 2, 3, 3]))) ?? '', /term 3 at index 3/);
    assert.match(acked.lossIn('n1', recovered(log(1, [2, 5, 3]))) ?? '', /term 5 at index 2/);
  });

  it('refuses an acknowledged entry replaced by a newer term that no write carried', () => {
    const acked = ackedOneToFour();
    assert.match(acked.lossIn('n1', recovered(log(1, [2, 2, 2, 3]))) ?? '', /term 3 at index 4/);
  });
});
