// The ring of a client window that empties is kept for the next client (pending.ts
// PendingTable.spareRing). A window stretched over far-apart seqs (each within the span a
// window may grow by) grows a ring of millions of slots; once that client leaves, keeping
// it would hold its memory for good and hand it from client to client.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ClientPending,
  type PendingMessage,
  PendingTable,
} from '../../src/broadcast/pending.ts';

function entryFor(clientId: string, seq: number): PendingMessage {
  return {
    message: { clientId, seq, topic: '', payload: new Uint8Array(0) },
    ownSession: false,
    waiter: null,
    otherWaiters: null,
    lastSentMs: 0,
    proposedIndex: null,
    queued: false,
    held: false,
    copiesSent: 0,
  };
}

function ringLength(window: ClientPending): number {
  return (window as unknown as { slots: unknown[] }).slots.length;
}

test('a ring stretched over far-apart seqs is not kept once its client leaves', () => {
  const table = new PendingTable();
  // 40 seqs, each just within the span a window may grow by from its top: one window.
  const spread = Array.from({ length: 40 }, (_, at) => entryFor('a', 1 + at * 65_535));
  for (const entry of spread) table.add(entry);
  const stretched = ringLength(table.forClient('a') as ClientPending);
  assert.ok(stretched >= 1 << 16, `the stretched window holds ${stretched} slots`);
  for (const entry of spread) table.delete(entry);
  // The next client sends a few consecutive seqs.
  const next = Array.from({ length: 8 }, (_, at) => entryFor('b', 1 + at));
  for (const entry of next) table.add(entry);
  const kept = ringLength(table.forClient('b') as ClientPending);
  assert.ok(kept <= 1 << 16, `a client with 8 pending seqs holds a ring of ${kept} slots`);
});

test("a client's window does not stretch with every far seq it sends while one seq waits", () => {
  // One seq waits (held behind a gap, say) while the client sends seqs ever further ahead,
  // each gone again at once (refused for the gap): only two are ever pending, yet each
  // stretched the window from its top by up to the span it may grow by, for good.
  const table = new PendingTable();
  table.add(entryFor('a', 1));
  for (let request = 1; request <= 40; request++) {
    const far = entryFor('a', 1 + request * 65_535);
    table.add(far);
    table.delete(far);
  }
  const window = table.forClient('a') as ClientPending;
  assert.equal(window.size, 1);
  const slots = ringLength(window);
  assert.ok(slots <= 1 << 17, `one pending seq holds a ring of ${slots} slots`);
});
