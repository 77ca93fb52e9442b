// Proves, with fast-check, that any sequence of valid appends, suffix overwrites, commits,
// compactions, leaders' snapshots and reopens — issued in concurrent bursts, with invalid
// requests mixed in — leaves both implementations holding exactly what a naive model of the
// log holds. Small segments make FileStorage rotate and delete segments along the way.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Entry, HardState, PersistedState, Snapshot } from '../../src/raft/types.ts';
import { StorageError } from '../../src/storage/errors.ts';
import type { AppendRequest, RaftStorage } from '../../src/storage/types.ts';
import { entry, HARNESSES, type Harness, plainEntries, snapshot } from './helpers.ts';

type Intent =
  | {
      type: 'append';
      back: number;
      sizes: number[];
      termBump: boolean;
      withHardState: boolean;
      voteFor: string | null;
    }
  | { type: 'commit'; advance: number }
  | { type: 'compact'; back: number }
  | { type: 'leaderSnapshot'; ahead: number; termBump: boolean }
  | { type: 'invalid'; which: number };

type Step = { type: 'burst'; intents: Intent[] } | { type: 'reopen' };

const intentArbitrary: fc.Arbitrary<Intent> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('append' as const),
      back: fc.nat({ max: 6 }),
      sizes: fc.array(fc.oneof(fc.nat({ max: 64 }), fc.integer({ min: 3000, max: 6000 })), {
        maxLength: 5,
      }),
      termBump: fc.boolean(),
      withHardState: fc.boolean(),
      voteFor: fc.constantFrom(null, 'n1', 'n2'),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ type: fc.constant('commit' as const), advance: fc.nat({ max: 6 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('compact' as const), back: fc.nat({ max: 4 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('leaderSnapshot' as const),
      ahead: fc.nat({ max: 8 }),
      termBump: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('invalid' as const), which: fc.nat({ max: 5 }) }),
  },
);

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('burst' as const),
      intents: fc.array(intentArbitrary, { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('reopen' as const) }) },
);

/** The naive model: the whole log after the snapshot as an array. */
class Model {
  snapshot: Snapshot | null = null;
  log: Entry[] = [];
  hardState: HardState | null = null;
  term = 1;

  get snapshotIndex(): number {
    return this.snapshot?.meta.index ?? 0;
  }
  get lastIndex(): number {
    return this.snapshotIndex + this.log.length;
  }
  get commit(): number {
    return this.hardState?.commit ?? 0;
  }
  termAt(index: number): number {
    if (index === this.snapshotIndex) return this.snapshot?.meta.term ?? 0;
    return this.log[index - this.snapshotIndex - 1]!.term;
  }
  nextHardState(commit: number, voteFor: string | null, termBump: boolean): HardState {
    const sameTerm = !termBump && this.hardState?.term === this.term;
    if (termBump) this.term += 1;
    const vote = sameTerm && this.hardState?.vote != null ? this.hardState.vote : voteFor;
    return { term: this.term, vote, commit };
  }
}

type Action =
  | { kind: 'append'; request: AppendRequest; apply: () => void }
  | { kind: 'compact'; snapshot: Snapshot; apply: () => void }
  | { kind: 'invalid'; request: AppendRequest };

/** Turns an intent into a request valid for the model (or a deliberately invalid one). */
function plan(model: Model, intent: Intent): Action | null {
  switch (intent.type) {
    case 'append': {
      const first = Math.max(
        model.snapshotIndex + 1,
        model.commit + 1,
        model.lastIndex + 1 - intent.back,
      );
      const term = model.term + (intent.termBump ? 1 : 0);
      const entries = intent.sizes.map((size, offset) => entry(first + offset, term, size));
      const hardState =
        intent.withHardState || intent.termBump
          ? model.nextHardState(model.commit, intent.voteFor, intent.termBump)
          : null;
      if (entries.length === 0 && hardState === null) return null;
      const request = { hardState, snapshot: null, entries };
      return {
        kind: 'append',
        request,
        apply: () => {
          if (entries.length > 0) model.log.length = first - model.snapshotIndex - 1;
          model.log.push(...entries);
          model.hardState = hardState ?? model.hardState;
        },
      };
    }
    case 'commit': {
      const commit = Math.min(model.lastIndex, model.commit + intent.advance);
      const hardState = model.nextHardState(commit, 'n1', false);
      return {
        kind: 'append',
        request: { hardState, snapshot: null, entries: [] },
        apply: () => {
          model.hardState = hardState;
        },
      };
    }
    case 'compact': {
      const index = Math.max(model.snapshotIndex, model.commit - intent.back);
      if (index === 0) return null;
      const taken = snapshot(index, model.termAt(index));
      return {
        kind: 'compact',
        snapshot: taken,
        apply: () => {
          model.log.splice(0, index - model.snapshotIndex);
          model.snapshot = taken;
        },
      };
    }
    case 'leaderSnapshot': {
      const index = Math.max(model.commit, model.snapshotIndex, 1) + intent.ahead;
      const hardState = model.nextHardState(index, 'n2', intent.termBump);
      const received = snapshot(index, model.term);
      return {
        kind: 'append',
        request: { hardState, snapshot: received, entries: [] },
        apply: () => {
          model.snapshot = received;
          model.log = [];
          model.hardState = hardState;
        },
      };
    }
    case 'invalid':
      return { kind: 'invalid', request: invalidRequest(model, intent.which) };
  }
}

function invalidRequest(model: Model, which: number): AppendRequest {
  const last = model.lastIndex;
  const hard = model.hardState ?? { term: model.term, vote: null, commit: 0 };
  const requests: AppendRequest[] = [
    { hardState: null, snapshot: null, entries: [entry(last + 2, model.term)] },
    { hardState: { ...hard, commit: last + 1 }, snapshot: null, entries: [] },
    { hardState: null, snapshot: null, entries: [entry(model.snapshotIndex, model.term)] },
    {
      hardState: { ...hard, term: model.hardState === null ? -1 : hard.term - 1 },
      snapshot: null,
      entries: [],
    },
    {
      hardState: null,
      snapshot: null,
      entries: [entry(last + 1, model.term), entry(last + 3, model.term)],
    },
    { hardState: null, snapshot: null, entries: [entry(last + 1, model.termAt(last) - 1)] },
  ];
  return requests[which % requests.length]!;
}

function assertMatches(model: Model, persisted: PersistedState): void {
  assert.deepEqual(persisted.snapshot?.meta ?? null, model.snapshot?.meta ?? null);
  assert.deepEqual(
    Array.from(persisted.snapshot?.data ?? []),
    Array.from(model.snapshot?.data ?? []),
  );
  assert.deepEqual(plainEntries(persisted.entries), plainEntries(model.log));
  assert.deepEqual(persisted.hardState, model.hardState);
  assert.equal(persisted.appliedIndex, model.snapshotIndex);
}

async function runBurst(model: Model, storage: RaftStorage, intents: Intent[]): Promise<void> {
  const pending: Promise<void>[] = [];
  for (const intent of intents) {
    const action = plan(model, intent);
    if (action === null) continue;
    if (action.kind === 'invalid') {
      pending.push(
        storage.append(action.request).then(
          () => assert.fail(`accepted an invalid request ${JSON.stringify(intent)}`),
          (error: unknown) => {
            assert.ok(error instanceof StorageError, String(error));
            assert.equal(error.code, 'INVALID_ARGUMENT');
          },
        ),
      );
      continue;
    }
    pending.push(
      action.kind === 'append'
        ? storage.append(action.request)
        : storage.saveSnapshot(action.snapshot),
    );
    action.apply();
  }
  await Promise.all(pending);
}

async function runSteps(harness: Harness, steps: Step[]): Promise<void> {
  const model = new Model();
  const options = { segmentBytesMax: 4096, groupBytesMax: 8192 };
  let { storage } = await harness.open(options);
  try {
    for (const step of steps) {
      if (step.type === 'burst') {
        await runBurst(model, storage, step.intents);
        continue;
      }
      await storage.close();
      const reopened = await harness.open(options);
      storage = reopened.storage;
      assertMatches(model, reopened.persisted);
    }
  } finally {
    await storage.close();
  }
  const final = await harness.open(options);
  await final.storage.close();
  assertMatches(model, final.persisted);
}

for (const { name, make } of HARNESSES) {
  describe(`${name} against a model log`, () => {
    it('holds exactly what the model holds after random requests and reopens', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(stepArbitrary, { minLength: 1, maxLength: 30 }),
          async (steps) => {
            const harness = await make();
            try {
              await runSteps(harness, steps);
            } finally {
              await harness.cleanup();
            }
          },
        ),
        { numRuns: name === 'FileStorage' ? 60 : 150, seed: 0x5eed },
      );
    });
  });
}
