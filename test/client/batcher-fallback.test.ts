// The batcher's way back from a refused broadcastRun frame: the refusal (an older node's
// goAway) may come long after the frame went, and a session cut meanwhile ends the wait of
// messages in the run and aims them at new (client, seq) places. The batch request that
// replaces the frame carries only the messages still waiting, each under its own place.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BatchedBroadcast, BroadcastBatcher, singleBody } from '../../src/client/batcher.ts';
import type {
  HttpExchange,
  HttpExchangeRequest,
  RunExchangeAnswer,
} from '../../src/client/exchange.ts';
import type { Environment } from '../../src/util/environment.ts';

interface Message extends BatchedBroadcast {
  endpoint: string;
  sessionId: string;
  seq: number;
  batched: boolean;
}

const endpoint = 'http://n1';

function message(seq: number): Message {
  return { endpoint, sessionId: 's', seq, payload: `"m${seq}"`, topic: undefined, batched: true };
}

/** Timers fire when the test says; the batcher's only timer is its flush. */
function manualEnvironment(): Environment & { fireAll(): void } {
  let due: (() => void)[] = [];
  return {
    nowMs: () => 0,
    monotonicMs: () => 0,
    setTimer: (_delayMs, fire) => {
      due.push(fire);
      return { cancel: () => undefined };
    },
    random: () => 0,
    randomHex: (byteCount) => '0'.repeat(2 * byteCount),
    fireAll() {
      const firing = due;
      due = [];
      for (const fire of firing) fire();
    },
  };
}

/** A batcher over an exchange whose frames wait until the test refuses them. */
function fallbackBatcher() {
  const environment = manualEnvironment();
  const bodies: string[] = [];
  let refuseRun: (answer: RunExchangeAnswer | null) => void = () => undefined;
  const exchange: HttpExchange = Object.assign(
    async (request: HttpExchangeRequest) => {
      bodies.push(request.body ?? '');
      const body = JSON.parse(request.body ?? '{}') as { seq?: number; messages?: unknown[] };
      const results = (body.messages ?? [null]).map((_, at) => ({
        index: (body.seq ?? 0) + at,
        term: 1,
        duplicate: false,
      }));
      const value = body.messages === undefined ? results[0] : { results };
      return { status: 200, headers: {}, body: JSON.stringify(value) };
    },
    {
      broadcastRun: () =>
        new Promise<RunExchangeAnswer | null>((resolve) => {
          refuseRun = resolve;
        }),
    },
  );
  const answered: string[] = [];
  const batcher = new BroadcastBatcher<Message>({
    exchange,
    environment,
    requestTimeoutMs: 1_000,
    signal: new AbortController().signal,
    answered: (sent, outcome) => {
      sent.batched = false;
      answered.push(`${sent.payload} ${outcome.kind}`);
    },
    delivered: () => assert.fail('no frame is answered'),
  });
  const run = [message(1), message(2), message(3)];
  for (const each of run) batcher.send(each);
  environment.fireAll(); // the flush: seqs 1..3 go as one frame, which waits
  return {
    run,
    bodies,
    answered,
    /** The older node's goAway: the frame comes back null, and the batcher falls back. */
    async refuse() {
      refuseRun(null);
      for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

/** The cut of `cut` while it waited: its outcome was taken, and it is aimed at `seq`. */
function cutTo(cut: Message, sessionId: string, seq: number): void {
  cut.batched = false;
  cut.sessionId = sessionId;
  cut.seq = seq;
}

test('a run refused after its first message was cut files the rest at their own seqs', async () => {
  const { run, bodies, answered, refuse } = fallbackBatcher();
  const [first] = run as [Message, Message, Message];
  cutTo(first, 's~2', 1);
  await refuse();
  // Not {"client":"s~2","seq":1,…}: that would file m2 and m3 under seqs 2 and 3 of s~2,
  // which are other messages' places.
  assert.deepEqual(bodies, [
    '{"client":"s","seq":2,"messages":[{"payload":"m2"},{"payload":"m3"}]}',
  ]);
  assert.deepEqual(answered, ['"m2" ok', '"m3" ok']);
});

test('a run refused after a cut in its middle sends each message still waiting alone', async () => {
  const { run, bodies, answered, refuse } = fallbackBatcher();
  const [first, second, third] = run as [Message, Message, Message];
  cutTo(second, 's~2', 1);
  await refuse();
  assert.deepEqual(bodies.sort(), [singleBody(first), singleBody(third)].sort());
  assert.deepEqual(answered.sort(), ['"m1" ok', '"m3" ok']);
});

test('a run refused after all of it was cut sends nothing', async () => {
  const { run, bodies, answered, refuse } = fallbackBatcher();
  for (const [at, each] of run.entries()) cutTo(each, 's~2', at + 1);
  await refuse();
  assert.deepEqual(bodies, []);
  assert.deepEqual(answered, []);
});
