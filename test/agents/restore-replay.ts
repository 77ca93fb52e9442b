/**
 * The property every primitive's reducer must have, for the primitives' tests: for random
 * command streams (foreign and garbage payloads among them), a replica restored from the
 * snapshot encoding at any position matches one that replayed from position 1, refused
 * input changes nothing, and no result shares an object with the state.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StateMachine } from '../../src/agents/state-machine.ts';

/** Negative `token`/`ticket`/`incarnation` fields point that many positions back, so that
 * random commands often name a real claim, grant or join. */
function resolveRefs(payload: unknown, index: number): unknown {
  const fields = payload as Record<string, unknown> | null;
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return payload;
  for (const field of ['token', 'ticket', 'incarnation']) {
    const value = fields[field];
    if (typeof value === 'number' && value < 0) fields[field] = Math.max(1, index + value);
  }
  return fields;
}

/** Changes every object and array in `value`: a result must not share any with the state. */
function poison(value: unknown): void {
  if (Array.isArray(value)) {
    for (const item of value) poison(item);
    value.push('poison');
  } else if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) poison(item);
    (value as Record<string, unknown>).poison = true;
  }
}

/**
 * Folds `steps` with the reducer as a replica does (a payload that does not parse changes
 * nothing) from `from` on, poisoning every result; returns the outcomes.
 */
function foldSteps<S>(
  machine: StateMachine<S, never, unknown>,
  state: S,
  steps: readonly { payload: unknown; advanceMs: number }[],
  from: number,
  startMs: number,
): string[] {
  const outcomes: string[] = [];
  let timeMs = startMs;
  for (let at = 0; at < steps.length; at++) {
    const step = steps[at] as { payload: unknown; advanceMs: number };
    timeMs += step.advanceMs;
    if (at < from) continue;
    const before = JSON.stringify(machine.encodeState?.(state));
    let command: never;
    try {
      command = machine.parseCommand?.(resolveRefs(structuredClone(step.payload), at + 1)) as never;
    } catch {
      assert.equal(
        JSON.stringify(machine.encodeState?.(state)),
        before,
        'bad input changes nothing',
      );
      outcomes.push('refused');
      continue;
    }
    try {
      const result = machine.apply(state, command, { position: at + 1, time: timeMs, client: 'c' });
      outcomes.push(JSON.stringify(result) ?? 'undefined');
      const after = JSON.stringify(machine.encodeState?.(state));
      poison(result);
      assert.equal(
        JSON.stringify(machine.encodeState?.(state)),
        after,
        'a result aliases the state',
      );
    } catch (error) {
      outcomes.push(`threw ${(error as Error).message}`);
    }
  }
  return outcomes;
}

/**
 * For random command sequences: at every position, the state restored from its snapshot
 * encoding equals the live one, and a replica restored there and fed the rest of the
 * commands gives the same outcomes and ends in the same state as one that replayed all.
 */
export function checkRestoreMatchesReplay<S>(
  machine: StateMachine<S, never, unknown>,
  payloads: fc.Arbitrary<unknown>,
): void {
  const step = fc.record({ payload: payloads, advanceMs: fc.integer({ min: 0, max: 40 }) });
  const property = fc.property(
    fc.array(step, { minLength: 5, maxLength: 40, size: 'max' }),
    (steps) => {
      const replayed = machine.initialState();
      const outcomes = foldSteps(machine, replayed, steps, 0, 1_000);
      for (let at = 0; at <= steps.length; at += 1) {
        const prefix = machine.initialState();
        foldSteps(machine, prefix, steps.slice(0, at), 0, 1_000);
        const encoded = JSON.parse(JSON.stringify(machine.encodeState?.(prefix)));
        const restored = machine.decodeState?.(encoded) as S;
        assert.deepStrictEqual(restored, prefix, `restored at ${at}`);
        const rest = foldSteps(machine, restored, steps, at, 1_000);
        assert.deepEqual(rest, outcomes.slice(at), `outcomes after a restore at ${at}`);
        assert.deepStrictEqual(restored, replayed, `the end state after a restore at ${at}`);
      }
    },
  );
  fc.assert(property, { numRuns: 60 });
}
