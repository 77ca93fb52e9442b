// A run's outcomes are kept as numbers until read (pending.ts RunWaiter): read in place as a
// SettledRun (what a runAnswer frame reads) or as outcome objects (the library's answer).
// Proved over random runs: each slot delivered (with its own or a shared index and term, as
// a duplicate or not) or refused, settled in a random order; both readings must give every
// slot exactly what it was settled with, and the run must answer once, after its last slot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import {
  type BroadcastResult,
  type PendingMessage,
  PendingTable,
  RunWaiter,
  type SettledRun,
} from '../../src/broadcast/pending.ts';
import { pendingEntryOf } from './pending-entries.ts';

const slotOutcome = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('delivered' as const),
      position: fc.option(fc.integer({ min: 1, max: 2 ** 40 })),
      index: fc.option(fc.integer({ min: 1, max: 3 }), { freq: 8 }),
      term: fc.option(fc.integer({ min: 1, max: 2 }), { freq: 8 }),
      duplicate: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refused' as const) }) },
);

type SlotOutcome = typeof slotOutcome extends fc.Arbitrary<infer T> ? T : never;

const entryOf = (seq: number, waiter: RunWaiter) => pendingEntryOf(seq, 'a', waiter);

type Expected =
  | { readonly kind: 'delivered'; readonly result: BroadcastResult }
  | { readonly kind: 'refused'; readonly error: BroadcastError };

/** A run of `outcomes.length` slots from seq 10, settled in `order`; resolves when answered. */
function settledRun(
  outcomes: readonly SlotOutcome[],
  order: readonly number[],
): { waiter: RunWaiter; expected: Expected[]; answers: () => number } {
  let answers = 0;
  const waiter = new RunWaiter(10, outcomes.length, 0, () => answers++);
  const table = new PendingTable();
  const entries = outcomes.map((_, slot) => {
    const entry = entryOf(10 + slot, waiter);
    table.add(entry);
    waiter.waitOnNew(slot, entry);
    return entry;
  });
  waiter.seal();
  const expected: Expected[] = [];
  for (const slot of order) {
    const outcome = outcomes[slot] as SlotOutcome;
    const entry = entries[slot] as PendingMessage;
    assert.equal(answers, 0, 'answered only after the last slot');
    if (outcome.kind === 'delivered') {
      const { position, index, term, duplicate } = outcome;
      const result = { position, index, term, duplicate };
      expected[slot] = { kind: 'delivered', result };
      table.deliver(entry, result.position, result.index, result.term, result.duplicate);
    } else {
      const error = new BroadcastError('timeout', `slot ${slot}`, {});
      expected[slot] = { kind: 'refused', error };
      table.settle(entry, null, error);
    }
  }
  return { waiter, expected, answers: () => answers };
}

function readInPlace(settled: SettledRun, expected: readonly Expected[]): void {
  assert.equal(settled.count, expected.length);
  expected.forEach((want, slot) => {
    assert.equal(settled.delivered(slot), want.kind === 'delivered', `slot ${slot}`);
    if (want.kind === 'refused') assert.equal(settled.reason(slot), want.error);
    else {
      assert.equal(settled.position(slot), want.result.position);
      assert.equal(settled.index(slot), want.result.index);
      assert.equal(settled.term(slot), want.result.term);
      assert.equal(settled.duplicate(slot), want.result.duplicate);
    }
  });
}

test('a settled run reads in place and as outcome objects what each slot was settled with', () => {
  fc.assert(
    fc.property(
      fc
        .array(slotOutcome, { minLength: 1, maxLength: 40 })
        .chain((outcomes) =>
          fc.tuple(
            fc.constant(outcomes),
            fc.shuffledSubarray([...outcomes.keys()], { minLength: outcomes.length }),
          ),
        ),
      ([outcomes, order]) => {
        const { waiter, expected, answers } = settledRun(outcomes, order);
        assert.equal(answers(), 1, 'answered once, after the last slot');
        readInPlace(waiter, expected);
        const list = waiter.outcomeList();
        assert.deepEqual(
          list,
          expected.map((want) =>
            want.kind === 'delivered'
              ? { status: 'fulfilled', value: want.result }
              : { status: 'rejected', reason: want.error },
          ),
        );
        // Read in place after the objects were made, the run still says the same.
        readInPlace(waiter, expected);
      },
    ),
    { numRuns: 300 },
  );
});
