/**
 * A window on the Ready loop for the simulator's checkers: called synchronously, at each
 * stage, with what the real runtime just did. Absent in production, where it costs one
 * comparison per stage. An observer must not call back into the node.
 */
import type { Entry, HardState, Ready, Snapshot } from '../raft/types.ts';
import type { DeliveredMessage } from './deliveries.ts';
import type { BroadcastError } from './errors.ts';

export interface NodeObserver {
  /** The core produced `ready`; nothing of it has been done yet. */
  readyTaken(ready: Ready): void;
  /**
   * What `ready` had to persist is durable (storage.append resolved), or nothing had to be
   * written; `hardStateWritten` is the hard state actually written with it, if any.
   */
  readyDurable(ready: Ready, hardStateWritten: HardState | null): void;
  /**
   * The committed entries of `ready` were applied (delivered to the session table). Those
   * durable before `ready` was taken may have been delivered before `readyDurable`.
   */
  readyApplied(ready: Ready): void;
  /**
   * Committed entries this node wrote before the outstanding Ready were applied while that
   * Ready's write was under way (after every entry the Ready itself delivers).
   */
  appliedDuringWrite(entries: readonly Entry[]): void;
  /** A snapshot of our own was saved and the core's log compacted to it. */
  compacted(snapshot: Snapshot): void;
  /** A message was delivered at its position (once per position, in order). */
  delivered(message: DeliveredMessage): void;
  /** The node stopped itself: its storage failed (STORAGE_FAILED) or it hit a bug (INTERNAL). */
  stopped(reason: BroadcastError): void;
}
