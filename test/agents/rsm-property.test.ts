// Property: whatever the commands, the traffic on other topics, the snapshot interval and
// the points where a replica restarts from its snapshot, every replica ends with the state
// a plain fold of the topic's commands gives, and each submitter gets the fold's result.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { ReplicatedStateMachine } from '../../src/agents/rsm.ts';
import { MemorySnapshotStore } from '../../src/agents/snapshots.ts';
import type { StateMachine } from '../../src/agents/state-machine.ts';

type Op = { push: number } | { pop: true } | { noise: number };
interface Stack {
  items: number[];
  popped: number;
}

const stack: StateMachine<Stack, { push: number } | { pop: true }, number | null> = {
  initialState: () => ({ items: [], popped: 0 }),
  apply(state, command) {
    if ('push' in command) {
      state.items.push(command.push);
      return state.items.length;
    }
    const top = state.items.pop() ?? null;
    if (top !== null) state.popped += 1;
    return top;
  },
};

function fold(ops: readonly Op[]): { state: Stack; results: (number | null)[] } {
  const state = stack.initialState();
  const results: (number | null)[] = [];
  for (const op of ops) {
    if ('noise' in op) continue;
    results.push(stack.apply(state, op, { position: 0, time: 0, client: null }));
  }
  return { state, results };
}

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ push: fc.integer({ min: -1000, max: 1000 }) }),
  fc.constant({ pop: true as const }),
  fc.record({ noise: fc.nat(9) }),
);

test('replicas restarted from snapshots at any point agree with a plain fold', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArbitrary, { maxLength: 60 }),
      fc.integer({ min: 1, max: 7 }),
      fc.array(fc.nat(60), { maxLength: 4 }),
      async (ops, snapshotEveryCommands, restartPoints) => {
        const log = new MemoryLog();
        const store = new MemorySnapshotStore();
        const options = {
          topic: 'stack',
          machine: stack,
          snapshotStore: store,
          snapshotEveryCommands,
          checkDeterminism: true,
        };
        const writer = await ReplicatedStateMachine.start({ ...options, log: log.session() });
        let restarted = await ReplicatedStateMachine.start({ ...options, log: log.session() });
        const results: (number | null)[] = [];
        for (const [at, op] of ops.entries()) {
          if ('noise' in op) log.append(op, 'elsewhere', 'noise');
          else results.push(await writer.submit(op));
          if (restartPoints.includes(at)) {
            await restarted.close();
            restarted = await ReplicatedStateMachine.start({ ...options, log: log.session() });
          }
        }
        const expected = fold(ops);
        assert.deepEqual(results, expected.results);
        const fresh = await ReplicatedStateMachine.start({
          ...options,
          log: log.session(),
          snapshotStore: undefined,
        });
        for (const replica of [writer, restarted, fresh]) {
          assert.deepEqual(await replica.read(), expected.state);
          assert.equal(replica.appliedPosition, log.lastPosition);
        }
        await Promise.all([writer.close(), restarted.close(), fresh.close()]);
      },
    ),
    { numRuns: 120 },
  );
});
