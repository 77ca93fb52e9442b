// Proves the SDK adapter's merge of a subscription and its progress callback against a fake
// client: marks and entries come out in stream order, a long run of progress marks with no
// entry holds no growing set of reactions on the pending read, and sessions the client moves
// to (`~n`) are recognised as its own however late the adapter was made.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientLog } from '../../src/agents/client-log.ts';
import type { LogEvent } from '../../src/agents/log.ts';
import { ReplicatedStateMachine } from '../../src/agents/rsm.ts';
import {
  type Client,
  ClientError,
  type Message,
  type SubscribeOptions,
} from '../../src/client/index.ts';

/** A pending promise that counts how many reactions are attached to it. */
function countingPending<T>(): { promise: Promise<T>; reactions: () => number } {
  let count = 0;
  const promise = new Promise<T>(() => undefined);
  const then = promise.then.bind(promise);
  Object.defineProperty(promise, 'then', {
    value: (...args: Parameters<typeof then>) => {
      count += 1;
      return then(...args);
    },
  });
  return { promise, reactions: () => count };
}

test('a long run of progress marks without entries attaches no reaction per mark', async () => {
  let onProgress: ((index: number) => void) | undefined;
  const pending = countingPending<IteratorResult<Message, void>>();
  const subscription = {
    next: () => pending.promise,
    return: async () => ({ done: true as const, value: undefined }),
  };
  const client = {
    clientId: 'c',
    baseClientId: 'c',
    subscribe(options: SubscribeOptions) {
      onProgress = options.onProgress;
      return subscription;
    },
  } as unknown as Client;
  const stop = new AbortController();
  const events = new ClientLog(client).follow({ from: 1, topics: ['t'], signal: stop.signal });
  const marks = 5_000;
  let seen: LogEvent | undefined;
  for (let index = 1; index <= marks; index++) {
    // The adapter waits on the read and the progress: a mark arrives while it waits.
    const step = events.next();
    await new Promise<void>((resolve) => setImmediate(resolve));
    onProgress?.(index);
    seen = (await step).value as LogEvent;
  }
  assert.deepEqual(seen, { kind: 'passed', position: marks });
  assert.ok(pending.reactions() <= 4, `${pending.reactions()} reactions on one pending read`);
  stop.abort();
  await events.return(undefined);
});

test('every session the client moves to counts as its own, even made after it moved', () => {
  const client = { baseClientId: 'sdk.a', clientId: 'sdk.a~2' };
  const log = new ClientLog(client as unknown as Client);
  assert.ok(log.isOwnSession('sdk.a~2'));
  assert.ok(log.isOwnSession('sdk.a'), 'the session it started in');
  // A node refused a seq: the client goes on in its next session.
  client.clientId = 'sdk.a~3';
  assert.ok(log.isOwnSession('sdk.a~3'), 'the session the client is in now');
  assert.ok(!log.isOwnSession('sdk.b'));
  assert.ok(!log.isOwnSession('sdk.ab'));
  assert.ok(!log.isOwnSession(null));
});

test('SDK errors map to the agents: compacted mid-follow, an unavailable append', async () => {
  let failFollow: ((error: Error) => void) | undefined;
  const client = {
    clientId: 'c',
    baseClientId: 'c',
    subscribe: () => ({
      next: () =>
        new Promise((_, reject) => {
          failFollow = reject;
        }),
      return: async () => ({ done: true as const, value: undefined }),
    }),
    broadcast: async () => {
      throw new ClientError('unavailable', 'no endpoint accepted the broadcast', {});
    },
    barrier: async () => 0,
  } as unknown as Client;
  const replica = await ReplicatedStateMachine.start({
    log: new ClientLog(client),
    topic: 't',
    machine: { initialState: () => ({}), apply: () => 1 },
    onError: () => undefined,
  });
  await assert.rejects(replica.submit({}), { code: 'unknown_outcome' });
  await new Promise<void>((resolve) => setImmediate(resolve));
  failFollow?.(new ClientError('compacted', 'position 1 is no longer kept', { firstPosition: 50 }));
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(replica.failure?.code, 'snapshot_too_old');
  await assert.rejects(replica.read(), { code: 'stopped' });
  await replica.close();
});
