// Consumer groups, ack deadlines and compaction by key survive a snapshot: a random sequence
// of their records (fast-check) applied to the replicated stream state gives, after the
// application state is encoded as a snapshot and decoded again, the same state — and the
// same state again once more records are applied to both — so a node that restarts or joins
// from a snapshot decides slots, leases, redelivery and compaction as the others do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MembershipTable } from '../../src/broadcast/membership.ts';
import { SessionTable } from '../../src/broadcast/sessions.ts';
import { decodeAppState, encodeAppState } from '../../src/broadcast/snapshots.ts';
import { type StreamCommand, StreamState } from '../../src/broadcast/stream-state.ts';

const sessionOptions = { sessionTtlMs: 60_000, recentPositionsMax: 100 };

const member = fc.constantFrom('m1', 'm2', 'm3');
const commandArbitrary: fc.Arbitrary<StreamCommand> = fc.oneof(
  fc.record({
    op: fc.constant('join' as const),
    name: fc.constant('g'),
    member,
    leaseMs: fc.integer({ min: 500, max: 3000 }),
    slots: fc.dictionary(fc.integer({ min: 0, max: 31 }).map(String), fc.nat(60)),
  }),
  fc.record({ op: fc.constant('leave' as const), name: fc.constant('g'), member }),
  fc.record({
    op: fc.constant('gack' as const),
    name: fc.constant('g'),
    member,
    slots: fc.dictionary(fc.integer({ min: 0, max: 31 }).map(String), fc.nat(60)),
  }),
  fc.record({
    op: fc.constant('release' as const),
    name: fc.constant('g'),
    member,
    slot: fc.integer({ min: 0, max: 31 }),
  }),
  fc.record({
    op: fc.constant('configure' as const),
    name: fc.constantFrom('g', 'plain'),
    ackDeadlineMs: fc.option(fc.integer({ min: 100, max: 5000 }), { nil: null }),
  }),
  fc.record({
    op: fc.constant('compact' as const),
    topics: fc.constantFrom(['accounts'], ['accounts', 'devices'], []),
    before: fc.nat(60),
  }),
);

/** Applies commands, with keyed deliveries in between, as the applier does. */
function run(state: StreamState, commands: readonly StreamCommand[], start: number): void {
  commands.forEach((command, at) => {
    const position = start + at;
    state.compaction.noteDelivered(at % 2 === 0 ? 'accounts' : 'devices', `k${at % 4}`, position);
    state.apply(command, { lastPosition: position, logTimeMs: 1000 + 400 * position });
  });
}

test('the stream state of groups, deadlines and compaction is the same after a snapshot', () => {
  fc.assert(
    fc.property(
      fc.array(commandArbitrary, { maxLength: 30 }),
      fc.array(commandArbitrary, { maxLength: 10 }),
      (before, afterwards) => {
        const live = new StreamState();
        run(live, before, 1);
        const data = encodeAppState({
          sessions: new SessionTable(sessionOptions),
          membership: new MembershipTable(),
          streams: live,
        });
        const restored = decodeAppState(data, sessionOptions).streams;
        assert.deepEqual(restored.toJSON(), live.toJSON());
        run(live, afterwards, before.length + 1);
        run(restored, afterwards, before.length + 1);
        assert.deepEqual(restored.toJSON(), live.toJSON());
      },
    ),
  );
});
