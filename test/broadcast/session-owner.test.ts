// Sessions belong to their sender: the session table binds a session to the owner and nonce
// of its seq 1 and refuses anyone else's messages in it (never delivered, never answered as
// a duplicate), identically after a snapshot; the batch carries owner and nonce in format 2
// and stays format 1, byte for byte, without them; the nodes' `$` namespace is refused to
// callers but written by the batch builder.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  batchFormatVersion,
  batchFormatVersionOwned,
  batchOf,
  type ClientMessage,
  decodeBatch,
  encodeBatch,
} from '../../src/broadcast/batch.ts';
import { checkBroadcast } from '../../src/broadcast/intake.ts';
import { SessionTable } from '../../src/broadcast/sessions.ts';

const options = { sessionTtlMs: 60_000, recentPositionsMax: 100 };
const payload = new Uint8Array([1]);

function message(
  clientId: string,
  seq: number,
  sender: { owner?: string; nonce?: string } = {},
): ClientMessage {
  return { clientId, seq, topic: '', payload, ...sender };
}

test('another owner in a started session is refused, not delivered or answered duplicate', () => {
  const table = new SessionTable(options);
  const alice = { owner: 'alice' };
  const bob = { owner: 'bob' };
  assert.deepEqual(table.apply(batchOf([message('s', 1, alice)], 1)), [
    { kind: 'delivered', position: 1 },
  ]);
  // bob's retry of seq 1 would be a duplicate if it were his; his seq 2 would be next.
  const refused = table.apply(batchOf([message('s', 1, bob), message('s', 2, bob)], 2));
  assert.deepEqual(refused, [
    { kind: 'refused', code: 'session_forbidden', expectedSeq: 0 },
    { kind: 'refused', code: 'session_forbidden', expectedSeq: 0 },
  ]);
  assert.equal(table.lastPosition, 1);
  assert.equal(table.foreignRefusal('s', 'bob', ''), 'session_forbidden');
  assert.equal(table.foreignRefusal('s', 'alice', ''), null);
  assert.deepEqual(table.apply(batchOf([message('s', 2, alice)], 3)), [
    { kind: 'delivered', position: 2 },
  ]);
});

test('two clients of one owner with one id: the second nonce is refused as a conflict', () => {
  const table = new SessionTable(options);
  table.apply(batchOf([message('shared', 1, { owner: 'w', nonce: 'first' })], 1));
  assert.deepEqual(
    table.apply(batchOf([message('shared', 1, { owner: 'w', nonce: 'second' })], 2)),
    [{ kind: 'refused', code: 'session_conflict', expectedSeq: 0 }],
  );
  // Without a nonce is another nonce too: a client that sent one always sends it.
  assert.equal(table.foreignRefusal('shared', 'w', ''), 'session_conflict');
  // The first client's retry is still its duplicate.
  assert.deepEqual(
    table.apply(batchOf([message('shared', 1, { owner: 'w', nonce: 'first' })], 3)),
    [{ kind: 'duplicate', position: 1 }],
  );
});

test('owners and nonces survive a snapshot; a table without them writes version 1', () => {
  const plain = new SessionTable(options);
  plain.apply(batchOf([message('p', 1)], 1));
  assert.equal(JSON.parse(new TextDecoder().decode(plain.toSnapshot())).version, 1);
  const owned = new SessionTable(options);
  owned.apply(batchOf([message('s', 1, { owner: 'alice', nonce: 'n1' }), message('p', 1)], 1));
  const snapshot = owned.toSnapshot();
  assert.equal(JSON.parse(new TextDecoder().decode(snapshot)).version, 2);
  const restored = SessionTable.fromSnapshot(snapshot, options);
  assert.equal(restored.foreignRefusal('s', 'bob', 'n1'), 'session_forbidden');
  assert.equal(restored.foreignRefusal('s', 'alice', 'n2'), 'session_conflict');
  assert.equal(restored.foreignRefusal('s', 'alice', 'n1'), null);
  assert.equal(restored.foreignRefusal('p', '', ''), null);
  // A version 1 snapshot reads as sessions of nobody.
  const old = SessionTable.fromSnapshot(plain.toSnapshot(), options);
  assert.equal(old.foreignRefusal('p', '', ''), null);
  assert.equal(old.foreignRefusal('p', 'alice', ''), 'session_forbidden');
});

test('a batch without owners or nonces is format 1; with them format 2, runs split by sender', () => {
  const plain = encodeBatch([message('a', 1), message('a', 2)], 5);
  assert.equal(plain[0], batchFormatVersion);
  const messages = [
    message('a', 1, { owner: 'alice', nonce: 'x' }),
    message('a', 2, { owner: 'alice', nonce: 'x' }),
    message('a', 3, { owner: 'bob' }),
    message('', 0),
  ];
  const owned = encodeBatch(messages, 5);
  assert.equal(owned[0], batchFormatVersionOwned);
  const decoded = decodeBatch(owned);
  assert.deepEqual(
    decoded.runs.map((run) => [
      run.clientId,
      run.firstSeq,
      run.payloads.length,
      run.owner,
      run.nonce,
    ]),
    [
      ['a', 1, 2, 'alice', 'x'],
      ['a', 3, 1, 'bob', ''],
      ['', 0, 1, '', ''],
    ],
  );
  assert.deepEqual(
    decoded.messages.map((one) => ({ ...one, payload: [...one.payload] })),
    messages.map((one) => ({ ...one, payload: [...one.payload] })),
  );
  // Cut anywhere in the trailer, the batch is refused whole.
  for (let cut = owned.length - 1; cut > plain.length; cut--) {
    assert.throws(() => decodeBatch(owned.subarray(0, cut)), { name: 'BatchFormatError' });
  }
});

test("the nodes' namespace: a caller's $ client id is refused, the batch builder writes one", () => {
  assert.throws(() => checkBroadcast(payload, { clientId: '$n1.00ff', seq: 1 }, 100), {
    code: 'invalid_argument',
    message: /must not start with \$/,
  });
  assert.throws(() => checkBroadcast(payload, { clientId: 'c', seq: 1, nonce: 'no spaces' }, 100), {
    code: 'invalid_argument',
  });
  const own = batchOf([message('$n1.00ff', 1)], 1);
  assert.equal(own.runs[0]?.clientId, '$n1.00ff');
});
