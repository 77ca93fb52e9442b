// The runtime's per-client order check finds an out-of-order pair of resolved broadcasts at
// the same call as a naive twin that compares the new call with every earlier one: it looks
// only at the new call's neighbours by issue number, which suffices while the order held.
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
