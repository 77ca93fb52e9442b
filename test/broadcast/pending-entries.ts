// A pending message as the intake makes it, for tests of the pending table and run waiters.
import type { PendingMessage, RunWaiter } from '../../src/broadcast/pending.ts';

export function pendingEntryOf(
  seq: number,
  clientId = 'a',
  waiter: RunWaiter | null = null,
): PendingMessage {
  return {
    message: { clientId, seq, topic: '', payload: new Uint8Array(0) },
    ownSession: false,
    waiter,
    otherWaiters: null,
    lastSentMs: 0,
    proposedIndex: null,
    queued: false,
    held: false,
    copiesSent: 0,
  };
}
