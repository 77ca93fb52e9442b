// Compaction by key on real processes: three `abcast start` nodes compact topic `accounts`
// (`--compact-topics`), with small store segments so that segments are sealed and cut while
// the test writes. Then, on every node alike: a message of `accounts` is compacted exactly
// when a newer one with its key lies before the cut (the newest per key always stays), other
// topics and messages without a key never are, positions are unchanged (dense, the same
// messages at the same places), digests agree, a stream skips compacted positions; and a
// node restarted keeps its compacted store. The rule itself is also checked as a pure
// function against a naive twin (fast-check).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { CompactionState } from '../../src/broadcast/compaction.ts';
import { connect } from '../../src/client/index.ts';
import { type StreamNodes, startStreamNodes } from '../cluster/stream-nodes.ts';
import { waitFor } from '../support/ports.ts';

test('a position is superseded exactly when a newer one of its key lies before the cut', () => {
  const messageArbitrary = fc.record({
    topic: fc.constantFrom('accounts', 'other'),
    key: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
  });
  fc.assert(
    fc.property(
      fc.array(messageArbitrary, { maxLength: 40 }),
      fc.integer({ min: 1, max: 45 }),
      (messages, cutAt) => {
        const state = new CompactionState();
        state.apply({ op: 'compact', topics: ['accounts'], before: 1 }, 0);
        messages.forEach((message, at) => {
          state.noteDelivered(message.topic, message.key, at + 1);
        });
        state.apply({ op: 'compact', topics: ['accounts'], before: cutAt }, messages.length);
        const cut = Math.min(cutAt, messages.length + 1);
        messages.forEach((message, at) => {
          const position = at + 1;
          // The naive twin: a later message of the same topic and key exists.
          const newer = messages.some(
            (other, index) =>
              index > at && other.topic === message.topic && other.key === message.key,
          );
          const expected =
            message.topic === 'accounts' && message.key !== undefined && position < cut && newer;
          assert.equal(state.isSuperseded({ ...message, position }), expected);
        });
        const copy = CompactionState.fromJSON(JSON.parse(JSON.stringify(state.toJSON())));
        assert.deepEqual(copy.toJSON(), state.toJSON());
      },
    ),
  );
});

let nodes: StreamNodes | null = null;

after(async () => {
  await nodes?.close();
});

interface Wire {
  readonly index: number;
  readonly topic: string | null;
  readonly key?: string;
  readonly payload: unknown;
  readonly compacted?: true;
}

async function readAll(url: string): Promise<Wire[]> {
  const messages: Wire[] = [];
  for (;;) {
    const page = await fetch(`${url}/v1/messages?from=${messages.length + 1}&limit=1000`).then(
      (answer) => answer.json(),
    );
    if (page.messages.length === 0) return messages;
    messages.push(...page.messages);
  }
}

/** Per message: whether a newer message of the same topic and key comes later. */
function supersededFlags(messages: readonly Wire[]): boolean[] {
  const seen = new Set<string>();
  const flags: boolean[] = new Array(messages.length).fill(false);
  for (let at = messages.length - 1; at >= 0; at--) {
    const message = messages[at] as Wire;
    if (message.key === undefined) continue;
    const id = `${message.topic}\u0000${message.key}`;
    flags[at] = seen.has(id);
    seen.add(id);
  }
  return flags;
}

test('compaction keeps the newest per key on every node, positions unchanged', {
  timeout: 90_000,
}, async () => {
  nodes = await startStreamNodes(['--compact-topics', 'accounts', '--store-segment-bytes', '4096']);
  const { urls } = nodes;
  const client = connect({ endpoints: urls });
  // Keys are followed from the record that names the topic, which the leader commits at once.
  await waitFor(async () => {
    const listed = await fetch(`${urls[0]}/v1/consumers`).then((answer) => answer.json());
    return listed.compaction.topics.includes('accounts');
  }, 'accounts compacted');
  const pad = 'x'.repeat(60);
  for (let round = 0; round < 12; round++) {
    const sent: Promise<unknown>[] = [];
    for (let key = 0; key < 10; key++) {
      sent.push(client.broadcast({ round, key, pad }, { topic: 'accounts', key: `acct-${key}` }));
    }
    sent.push(client.broadcast({ round, pad }, { topic: 'accounts' }));
    sent.push(client.broadcast({ round, pad }, { topic: 'orders', key: 'acct-1' }));
    await Promise.all(sent);
  }
  // Filler that seals the segments holding the accounts, so the cut passes them all.
  for (let filler = 0; filler < 100; filler++) await client.broadcast({ filler, pad });
  const last = (await client.broadcast({ done: true })).position as number;
  const compactedEverywhere = async () => {
    for (const url of urls) {
      const messages = await readAll(url);
      if (messages.length < last) return false;
      const flags = supersededFlags(messages);
      if (
        !messages.every((m, at) => (m.compacted === true) === (flags[at] && m.topic === 'accounts'))
      ) {
        return false;
      }
    }
    return true;
  };
  await waitFor(compactedEverywhere, 'every superseded account compacted on every node', 60_000);

  const reference = await readAll(urls[0] as string);
  assert.deepEqual(
    reference.map((m) => m.index),
    Array.from({ length: reference.length }, (_, at) => at + 1),
    'positions are dense and unchanged',
  );
  const flags = supersededFlags(reference);
  let compacted = 0;
  reference.forEach((message, at) => {
    if (message.compacted === true) {
      compacted++;
      assert.equal(message.payload, null);
      assert.equal(message.topic, 'accounts');
      assert.ok(flags[at], `position ${message.index} has a newer message of ${message.key}`);
    } else if (message.topic === 'accounts' && message.key !== undefined) {
      assert.ok(!flags[at], `position ${message.index} is the newest of ${message.key}`);
      assert.equal((message.payload as { round: number }).round, 11);
    }
  });
  assert.equal(compacted, 11 * 10, 'all but the newest of each of the 10 keys');
  for (const url of urls.slice(1)) assert.deepEqual(await readAll(url), reference);
  const digests = await Promise.all(
    urls.map((url) =>
      fetch(`${url}/v1/digest?from=1&count=${last}`).then((answer) => answer.json()),
    ),
  );
  assert.ok(
    digests.every((digest) => digest.digest === digests[0].digest),
    'digests agree',
  );

  // A stream skips compacted positions and yields every other one, in order.
  const streamed: number[] = [];
  const stop = new AbortController();
  for await (const message of client.subscribe({ from: 1, signal: stop.signal })) {
    streamed.push(message.position);
    if (message.position >= last) stop.abort();
  }
  assert.deepEqual(
    streamed,
    reference.filter((m) => m.compacted !== true).map((m) => m.index),
  );

  // A restarted node serves its compacted store as before.
  await nodes.restart(2);
  // It applies its log again (the records that compact included) and ends where the others are.
  const same = async () => {
    const messages = await readAll(urls[2] as string).catch(() => []);
    return JSON.stringify(messages.slice(0, last)) === JSON.stringify(reference.slice(0, last));
  };
  await waitFor(same, 'the restarted node serves the same compacted order', 30_000);
  client.close();
});
