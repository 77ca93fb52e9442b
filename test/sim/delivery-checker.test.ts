// The runtime's delivery checker, fed hand-made histories. Its per-client order check finds an
// out-of-order pair of resolved broadcasts at the same call as a naive twin that compares the
// new call with every earlier one: it looks only at the new call's neighbours by issue
// number, which suffices while the order held. A refusal in another's session is definite,
// a session delivers one client's messages, and a barrier covers what was acknowledged.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { NodeId } from '../../src/raft/types.ts';
import { DeliveryChecker } from '../../src/sim/runtime/delivery-checker.ts';
import { type Property, ViolationContext } from '../../src/sim/violation.ts';

class Recording extends ViolationContext {
  readonly failed: Property[] = [];

  override fail(property: Property, _detail: string, _nodes: readonly NodeId[]): void {
    this.failed.push(property);
  }
}

/** The call (by order of resolving) at which some pair first breaks issue order, or null. */
function naiveFirstBreak(resolutions: readonly { issue: number; position: number }[]) {
  for (let at = 0; at < resolutions.length; at++) {
    const call = resolutions[at] as { issue: number; position: number };
    for (const other of resolutions.slice(0, at)) {
      const inOrder =
        (other.issue < call.issue && other.position < call.position) ||
        (other.issue > call.issue && other.position > call.position);
      if (!inOrder) return at;
    }
  }
  return null;
}

test('the neighbour check and its naive twin find the first break at the same call', () => {
  const resolutions = fc
    .uniqueArray(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 25 })
    .chain((issues) =>
      fc.tuple(
        fc.shuffledSubarray(issues, { minLength: issues.length, maxLength: issues.length }),
        fc.array(fc.integer({ min: 1, max: 60 }), {
          minLength: issues.length,
          maxLength: issues.length,
        }),
        fc.boolean(),
      ),
    )
    .map(([order, positions, ordered]) => {
      // Half the runs keep positions in issue order, so most calls pass and a break is rare.
      const sorted = [...positions].sort((a, b) => a - b).map((p, at) => p + at);
      const byIssue = [...order].sort((a, b) => a - b);
      return order.map((issue, at) => ({
        issue,
        position: ordered ? (sorted[byIssue.indexOf(issue)] as number) : (positions[at] as number),
      }));
    });
  fc.assert(
    fc.property(resolutions, (calls) => {
      const context = new Recording({ seed: 1, nodeCount: null, unsafe: null, profile: null }, []);
      const checker = new DeliveryChecker(context);
      for (const call of calls) checker.onIssued('c0', call.issue, `#${call.issue}`, 0);
      let firstBreak: number | null = null;
      calls.forEach((call, at) => {
        checker.onSettled(
          `#${call.issue}`,
          { kind: 'resolved', position: call.position, duplicate: false },
          1,
        );
        if (firstBreak === null && context.failed.includes('per-client fifo')) firstBreak = at;
      });
      assert.equal(firstBreak, naiveFirstBreak(calls));
    }),
  );
});

function newChecker(): { checker: DeliveryChecker; context: Recording } {
  const context = new Recording({ seed: 1, nodeCount: null, unsafe: null, profile: null }, []);
  return { checker: new DeliveryChecker(context), context };
}

function delivered(position: number, clientId: string, seq: number, text: string) {
  return {
    position,
    index: position,
    term: 1,
    clientId,
    seq,
    topic: '',
    payload: new TextEncoder().encode(text),
    logTimeMs: 0,
  };
}

for (const code of ['session_forbidden', 'session_conflict']) {
  test(`a broadcast refused ${code} and delivered all the same is caught, either way round`, () => {
    const before = newChecker();
    before.checker.onNodeStarted('n1', 0);
    before.checker.onIssued('impostor', 1, 'i1', 0);
    before.checker.onSettled('i1', { kind: 'rejected', code }, 1);
    assert.deepEqual(before.context.failed, []);
    before.checker.onDelivered('n1', delivered(1, 'shared', 1, 'i1'), false);
    assert.deepEqual(before.context.failed, ['acknowledged delivery']);

    const after = newChecker();
    after.checker.onNodeStarted('n1', 0);
    after.checker.onIssued('impostor', 1, 'i1', 0);
    after.checker.onDelivered('n1', delivered(1, 'shared', 1, 'i1'), false);
    after.checker.onSettled('i1', { kind: 'rejected', code }, 1);
    assert.deepEqual(after.context.failed, ['acknowledged delivery']);
  });
}

test("a session delivers one client's messages, in sessions its SDK opens", () => {
  const { checker, context } = newChecker();
  checker.onClient('c0', 'shared');
  checker.onClient('twin', 'shared');
  checker.onClient('c1', 'sdk.01');
  checker.onNodeStarted('n1', 0);
  for (const [client, issue] of [
    ['c0', 1],
    ['twin', 1],
    ['c1', 1],
    ['c0', 2],
  ] as const) {
    checker.onIssued(client, issue, `${client}${issue}`, 0);
  }
  checker.onDelivered('n1', delivered(1, 'shared', 1, 'c01'), false);
  checker.onDelivered('n1', delivered(2, 'shared~2', 1, 'twin1'), false);
  checker.onDelivered('n1', delivered(3, 'sdk.01', 1, 'c11'), false);
  assert.deepEqual(context.failed, []);
  checker.onDelivered('n1', delivered(4, 'shared~2', 2, 'c02'), false);
  assert.deepEqual(context.failed, ['session ownership']);

  const stranger = newChecker();
  stranger.checker.onClient('c1', 'sdk.01');
  stranger.checker.onNodeStarted('n1', 0);
  stranger.checker.onIssued('c1', 1, 'c11', 0);
  stranger.checker.onDelivered('n1', delivered(1, 'shared', 1, 'c11'), false);
  assert.deepEqual(stranger.context.failed, ['session ownership']);
});

test('a barrier must cover every broadcast acknowledged before it began', () => {
  const { checker, context } = newChecker();
  checker.onNodeStarted('n1', 0);
  checker.onIssued('c0', 1, 'a', 0);
  checker.onIssued('c0', 2, 'b', 0);
  checker.onDelivered('n1', delivered(1, 'x', 1, 'a'), false);
  checker.onDelivered('n1', delivered(2, 'x', 2, 'b'), false);
  const early = checker.onBarrierStarted();
  checker.onSettled('a', { kind: 'resolved', position: 1, duplicate: false }, 1);
  checker.onSettled('b', { kind: 'resolved', position: 2, duplicate: false }, 1);
  const late = checker.onBarrierStarted();
  checker.onBarrierDone('c0', early, 0); // began before any acknowledgement: 0 will do
  checker.onBarrierDone('c0', late, 2);
  assert.deepEqual(context.failed, []);
  checker.onBarrierDone('c0', late, 1);
  assert.deepEqual(context.failed, ['linearizable read']);
  checker.onBarrierDone('c0', late, 3); // no node delivered 3
  assert.deepEqual(context.failed, ['linearizable read', 'linearizable read']);
});
