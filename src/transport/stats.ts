/**
 * Counters shared by both transports, so `stats()` means the same thing on each.
 */
import type { NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { type DropReason, dropReasons, type PeerLinkStats, type TransportStats } from './types.ts';

function zeroByReason(): Record<DropReason, number> {
  const counts = {} as Record<DropReason, number>;
  for (const reason of dropReasons) counts[reason] = 0;
  return counts;
}

export class PeerCounters {
  sentFrameCount = 0;
  droppedFrameCount = 0;
}

export class TransportCounters {
  sentFrameCount = 0;
  sentBytes = 0;
  receivedFrameCount = 0;
  receivedBytes = 0;
  reconnectCount = 0;
  refusedConnectionCount = 0;
  protocolErrorCount = 0;
  private droppedFrameCount = 0;
  private readonly droppedByReason = zeroByReason();

  drop(reason: DropReason, frameCount: number, peer: PeerCounters | null): void {
    assert(Number.isSafeInteger(frameCount) && frameCount >= 0, 'a drop counts frames');
    this.droppedFrameCount += frameCount;
    this.droppedByReason[reason] += frameCount;
    if (peer !== null) peer.droppedFrameCount += frameCount;
  }

  sent(frameCount: number, peer: PeerCounters): void {
    this.sentFrameCount += frameCount;
    peer.sentFrameCount += frameCount;
  }

  snapshot(peers: Readonly<Record<NodeId, PeerLinkStats>>): TransportStats {
    return {
      sentFrameCount: this.sentFrameCount,
      sentBytes: this.sentBytes,
      receivedFrameCount: this.receivedFrameCount,
      receivedBytes: this.receivedBytes,
      droppedFrameCount: this.droppedFrameCount,
      droppedFrameCountByReason: { ...this.droppedByReason },
      reconnectCount: this.reconnectCount,
      refusedConnectionCount: this.refusedConnectionCount,
      protocolErrorCount: this.protocolErrorCount,
      peers,
    };
  }
}
