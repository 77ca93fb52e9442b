/**
 * Backfill: a node that restarted from a snapshot, joined late, or lost unsynced writes of
 * its message store in a crash lacks part of the retained range. In the background it
 * fetches the missing positions from its peers, page by page, checks every page (each
 * record's checksum, positions dense from the one asked for, none past the hole, and with
 * two peers or more the digest of another peer for the same range) and keeps them. Until a hole is filled, reads there are forwarded to a peer (peers.ts). Progress
 * shows in /v1/status (`store.missing`).
 *
 * Given no peers (no `--http-peers`), it fetches nothing but says so in the log when a hole
 * appears: reads there answer 503 not_held until an operator gives the node its peers, and
 * nothing else would tell them why.
 */
import type { NodeLogger } from '../broadcast/node.ts';
import type { StoredMessage } from '../store/index.ts';
import type { Environment, Timer } from '../util/environment.ts';
import type { PeerReads } from './peers.ts';

export interface BackfillNode {
  readonly id: string;
  missingRanges(): { first: number; last: number }[];
  fill(messages: readonly StoredMessage[]): number;
}

export interface BackfillOptions {
  readonly node: BackfillNode;
  readonly peers: PeerReads;
  readonly environment: Environment;
  readonly logger: NodeLogger;
  /** Positions asked for per request. */
  readonly pageCount: number;
  /** Pause between two looks for holes, and after a failed round. */
  readonly idleIntervalMs: number;
  /** Sent with every request (credentials, when the peers authenticate). */
  readonly headers?: Record<string, string>;
}

export class Backfill {
  /** Positions kept from peers since start. */
  filledCount = 0;
  /** Of the pages kept, those another peer's digest confirmed, and those on checksums only. */
  crossCheckedPageCount = 0;
  uncheckedPageCount = 0;
  lastError: string | null = null;
  private timer: Timer | null = null;
  private stopped = false;
  /** Without peers: the first position of the hole last reported, so each is said once. */
  private reportedHoleFirst: number | null = null;
  private readonly controller = new AbortController();

  constructor(private readonly options: BackfillOptions) {}

  start(): void {
    this.arm(0);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.controller.abort();
  }

  private arm(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.options.environment.setTimer(delayMs, () => void this.round(), {
      background: true,
    });
  }

  private async round(): Promise<void> {
    const { node, peers, logger, pageCount } = this.options;
    if (peers.count === 0) {
      this.reportHoles();
      this.arm(this.options.idleIntervalMs);
      return;
    }
    try {
      for (let range = node.missingRanges()[0]; range !== undefined && !this.stopped; ) {
        const count = Math.min(pageCount, range.last - range.first + 1);
        const page = await peers.records(range.first, count, {
          signal: this.controller.signal,
          ...(this.options.headers === undefined ? {} : { headers: this.options.headers }),
        });
        if (page === null || page.messages.length === 0) {
          this.lastError = `no peer serves position ${range.first} yet`;
          break;
        }
        const last = range.last;
        this.filledCount += node.fill(page.messages.filter((message) => message.position <= last));
        if (page.crossChecked) this.crossCheckedPageCount++;
        else this.uncheckedPageCount++;
        this.lastError = null;
        range = node.missingRanges()[0];
      }
    } catch (error) {
      if (this.stopped) return;
      this.lastError = error instanceof Error ? error.message : String(error);
      logger.warn({ node: node.id, reason: this.lastError }, 'backfill: a page was refused');
    }
    this.arm(this.options.idleIntervalMs);
  }

  private reportHoles(): void {
    const ranges = this.options.node.missingRanges();
    const first = ranges[0];
    if (first === undefined || first.first === this.reportedHoleFirst) return;
    this.reportedHoleFirst = first.first;
    const missingCount = ranges.reduce((sum, range) => sum + range.last - range.first + 1, 0);
    this.lastError = 'no peers to backfill from (--http-peers)';
    this.options.logger.warn(
      { node: this.options.node.id, firstMissing: first.first, missingCount },
      `backfill: ${missingCount} delivered positions from ${first.first} on are not in this node's store and no peers are given to fetch them from (--http-peers): reads of them answer 503 not_held here`,
    );
  }
}
