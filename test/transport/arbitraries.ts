/**
 * fast-check generators of valid frames, shared by the codec properties and the conformance
 * suite. They cover every frame type, edge values (0, 2^53 - 1), empty and non-empty data,
 * and node ids in any script.
 */
import fc from 'fast-check';
import { encodeConfiguration } from '../../src/raft/config.ts';
import {
  type Configuration,
  type Entry,
  type EntryKind,
  type Message,
  type NodeId,
  termMax,
} from '../../src/raft/types.ts';
import type { Frame } from '../../src/transport/types.ts';

export const nodeIdArbitrary: fc.Arbitrary<NodeId> = fc.oneof(
  fc.constantFrom('n1', 'n2', 'n3', 'node-4'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
);

const safeMax = Number.MAX_SAFE_INTEGER;

/** Records with an ordinary prototype, as the decoder builds them (deepStrictEqual compares). */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

export const naturalArbitrary: fc.Arbitrary<number> = fc.oneof(
  fc.nat({ max: 300 }),
  fc.constantFrom(0, 127, 128, 16_383, 16_384, 2 ** 32, safeMax),
  fc.maxSafeNat(),
);

/** Terms stop at `termMax`, past which the receiver refuses a frame (see validate.ts). */
export const termArbitrary: fc.Arbitrary<number> = fc.oneof(
  fc.nat({ max: 300 }),
  fc.constantFrom(0, 127, 128, 16_383, 16_384, 2 ** 32, termMax),
  fc.nat({ max: termMax }),
);

const bytesArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 48 }),
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ minLength: 200, maxLength: 600 }),
);

const configurationArbitrary: fc.Arbitrary<Configuration> = fc
  .uniqueArray(nodeIdArbitrary, { maxLength: 7 })
  .chain((ids) =>
    fc.nat({ max: ids.length }).map((voterCount) => ({
      voters: ids.slice(0, voterCount).sort(),
      learners: ids.slice(voterCount).sort(),
    })),
  );

const entryKindArbitrary: fc.Arbitrary<EntryKind> = fc.constantFrom('normal', 'noop', 'config');

/** An Append whose entries are dense, with terms that never decrease nor pass the sender's. */
const appendArbitrary = fc
  .record({
    prevLogIndex: fc.oneof(fc.nat({ max: 1000 }), fc.nat({ max: safeMax - 100 })),
    prevLogTerm: fc.oneof(fc.nat({ max: 10 }), fc.nat({ max: 2 ** 50 })),
    increments: fc.array(
      record({
        termIncrease: fc.oneof(fc.constant(0), fc.nat({ max: 2 ** 20 })),
        kind: entryKindArbitrary,
        data: bytesArbitrary,
        // A configuration entry must decode to one with a voter, or the receiver refuses it.
        config: configurationArbitrary
          .filter((config) => config.voters.length > 0)
          .map(encodeConfiguration),
      }),
      { maxLength: 6 },
    ),
    termLead: fc.nat({ max: 1000 }),
    commit: naturalArbitrary,
  })
  .map(({ prevLogIndex, prevLogTerm, increments, termLead, commit }) => {
    let term = prevLogTerm;
    const entries: Entry[] = increments.map((increment, position) => {
      term += increment.termIncrease;
      return {
        index: prevLogIndex + 1 + position,
        term,
        kind: increment.kind,
        data: increment.kind === 'config' ? increment.config : increment.data,
      };
    });
    return { prevLogIndex, prevLogTerm, entries, commit, term: term + termLead };
  });

type Body = Omit<Message, 'from' | 'to' | 'term'>;

function messageArbitrary(): fc.Arbitrary<Omit<Message, 'from' | 'to'>> {
  const withTerm = <T extends Body>(body: fc.Arbitrary<T>) =>
    fc.tuple(body, termArbitrary).map(([fields, term]) => ({ ...fields, term }));
  return fc.oneof(
    withTerm(
      record({
        type: fc.constant('PreVote' as const),
        lastLogIndex: naturalArbitrary,
        lastLogTerm: termArbitrary,
      }),
    ),
    withTerm(record({ type: fc.constant('PreVoteResponse' as const), granted: fc.boolean() })),
    withTerm(
      record({
        type: fc.constant('Vote' as const),
        lastLogIndex: naturalArbitrary,
        lastLogTerm: termArbitrary,
        transfer: fc.boolean(),
      }),
    ),
    withTerm(record({ type: fc.constant('VoteResponse' as const), granted: fc.boolean() })),
    appendArbitrary.map((append) => ({ type: 'Append' as const, ...append })),
    withTerm(
      record({
        type: fc.constant('AppendResponse' as const),
        success: fc.boolean(),
        index: naturalArbitrary,
        hintIndex: naturalArbitrary,
        hintTerm: termArbitrary,
      }),
    ),
    withTerm(
      record({
        type: fc.constant('Heartbeat' as const),
        commit: naturalArbitrary,
        readRound: naturalArbitrary,
      }),
    ),
    withTerm(
      record({ type: fc.constant('HeartbeatResponse' as const), readRound: naturalArbitrary }),
    ),
    withTerm(
      record({
        type: fc.constant('Snapshot' as const),
        snapshot: record({
          meta: record({
            index: naturalArbitrary,
            term: termArbitrary,
            config: configurationArbitrary,
          }),
          data: bytesArbitrary,
        }),
      }),
    ),
    withTerm(record({ type: fc.constant('TimeoutNow' as const) })),
    withTerm(
      record({
        type: fc.constant('ReadIndex' as const),
        requestId: fc.string({ unit: 'binary', maxLength: 40 }),
      }),
    ),
    withTerm(
      record({
        type: fc.constant('ReadIndexResponse' as const),
        requestId: fc.string({ unit: 'binary', maxLength: 40 }),
        index: fc.option(naturalArbitrary, { nil: null }),
      }),
    ),
  ) as fc.Arbitrary<Omit<Message, 'from' | 'to'>>;
}

function runtimeFrameArbitrary(): fc.Arbitrary<Omit<Frame, 'from' | 'to'>> {
  return fc.oneof(
    record({
      type: fc.constant('Forward' as const),
      requestId: naturalArbitrary,
      data: bytesArbitrary,
    }),
    record({
      type: fc.constant('ForwardResult' as const),
      requestId: naturalArbitrary,
      result: fc.oneof(
        record({ index: naturalArbitrary, term: termArbitrary }),
        record({
          code: fc.string({ unit: 'binary', minLength: 1, maxLength: 16 }),
          leaderId: fc.option(nodeIdArbitrary, { nil: null }),
        }),
      ),
    }),
  );
}

/** Any frame between any two node ids. */
export const frameArbitrary: fc.Arbitrary<Frame> = fc
  .tuple(fc.oneof(messageArbitrary(), runtimeFrameArbitrary()), nodeIdArbitrary, nodeIdArbitrary)
  .map(([body, from, to]) => ({ ...body, from, to }) as Frame);

/** Frame bodies to readdress: the conformance suite fills in real node ids. */
export const frameBodyArbitrary: fc.Arbitrary<Omit<Frame, 'from' | 'to'>> = fc.oneof(
  messageArbitrary(),
  runtimeFrameArbitrary(),
);
