/**
 * The node's own numbers for /metrics, read from `status()` at scrape time: role and term,
 * log and delivery positions, storage and transport counters, and (when the runtime
 * reports the leader's progress) how far each follower lags.
 */
import { dropReasons } from '../transport/types.ts';
import type { HistogramSnapshot } from '../util/histogram.ts';
import type { ProcessMemory, ServedStatus } from './context.ts';
import type { Exposition } from './exposition.ts';

const roles = ['follower', 'preCandidate', 'candidate', 'leader'] as const;

export function writeNodeMetrics(exposition: Exposition, status: ServedStatus): void {
  exposition.family('abcast_role', 'gauge', 'The Raft role of this node: 1 for the current one.');
  for (const role of roles)
    exposition.sample('abcast_role', { role }, status.role === role ? 1 : 0);
  exposition
    .single('abcast_term', 'gauge', 'Current Raft term; it rises with each election.', status.term)
    .single(
      'abcast_leader_known',
      'gauge',
      '1 when this node knows a leader.',
      status.leaderId === null ? 0 : 1,
    )
    .single('abcast_commit_index', 'gauge', 'Raft log index known committed.', status.commitIndex)
    .single('abcast_applied_index', 'gauge', 'Raft log index applied here.', status.appliedIndex)
    .single(
      'abcast_messages_delivered_total',
      'counter',
      'Messages delivered here: the last delivered position in the total order.',
      status.lastPosition,
    )
    .single(
      'abcast_first_retained_position',
      'gauge',
      'Oldest position still readable here (older reads answer 410).',
      status.firstRetainedPosition,
    )
    .single(
      'abcast_pending_messages',
      'gauge',
      'Messages accepted here and not yet delivered.',
      status.pendingMessageCount,
    )
    .single(
      'abcast_voters',
      'gauge',
      'Voting members in the configuration.',
      status.config.voters.length,
    )
    .single(
      'abcast_learners',
      'gauge',
      'Learners in the configuration.',
      status.config.learners.length,
    );
  exposition
    .single(
      'abcast_leader_changes_total',
      'counter',
      'Times this node saw a new leader since it started.',
      status.leaderChangeCount,
    )
    .single(
      'abcast_proposals_total',
      'counter',
      'Batches this node appended to the log as leader (one entry each).',
      status.proposalCount,
    );
  writeHistogram(
    exposition,
    'abcast_batch_messages',
    'Messages per applied batch.',
    status.batchMessages,
  );
  writeHistogram(
    exposition,
    'abcast_fsync_duration_seconds',
    'Seconds per durable write (write plus fsync) before messages leave.',
    status.persistSeconds,
  );
  writeStorageMetrics(exposition, status);
  writeTransportMetrics(exposition, status);
  writeProgressMetrics(exposition, status);
}

function writeHistogram(
  exposition: Exposition,
  name: string,
  help: string,
  histogram: HistogramSnapshot,
): void {
  exposition.family(name, 'histogram', help);
  let cumulative = 0;
  histogram.upperBounds.forEach((bound, at) => {
    cumulative += histogram.bucketCounts[at] as number;
    exposition.sample(`${name}_bucket`, { le: String(bound) }, cumulative);
  });
  exposition.sample(`${name}_bucket`, { le: '+Inf' }, histogram.count);
  exposition.sample(`${name}_sum`, {}, histogram.sum);
  exposition.sample(`${name}_count`, {}, histogram.count);
}

function writeStorageMetrics(exposition: Exposition, status: ServedStatus): void {
  const storage = status.storage;
  exposition
    .single(
      'abcast_storage_appends_total',
      'counter',
      'Durable appends (one per Ready written).',
      storage.appendCount,
    )
    .single(
      'abcast_storage_entries_written_total',
      'counter',
      'Log entries written.',
      storage.entryCount,
    )
    .single(
      'abcast_storage_wal_records_total',
      'counter',
      'WAL records written (one per group commit).',
      storage.recordCount,
    )
    .single(
      'abcast_storage_fsyncs_total',
      'counter',
      'fsync and fdatasync calls.',
      storage.fsyncCount,
    )
    .single(
      'abcast_storage_wal_written_bytes_total',
      'counter',
      'Bytes written to WAL segments.',
      storage.walWrittenBytes,
    )
    .single(
      'abcast_storage_snapshot_written_bytes_total',
      'counter',
      'Bytes written to snapshot files.',
      storage.snapshotWrittenBytes,
    )
    .single(
      'abcast_storage_segments_created_total',
      'counter',
      'WAL segments created.',
      storage.segmentCreatedCount,
    )
    .single(
      'abcast_storage_segments_deleted_total',
      'counter',
      'WAL segments deleted after compaction.',
      storage.segmentDeletedCount,
    );
}

function writeTransportMetrics(exposition: Exposition, status: ServedStatus): void {
  const transport = status.transport;
  exposition
    .single(
      'abcast_transport_sent_frames_total',
      'counter',
      'Frames sent to peers.',
      transport.sentFrameCount,
    )
    .single(
      'abcast_transport_sent_bytes_total',
      'counter',
      'Bytes sent to peers, framing included.',
      transport.sentBytes,
    )
    .single(
      'abcast_transport_received_frames_total',
      'counter',
      'Frames received from peers.',
      transport.receivedFrameCount,
    )
    .single(
      'abcast_transport_received_bytes_total',
      'counter',
      'Bytes received from peers.',
      transport.receivedBytes,
    )
    .single(
      'abcast_transport_reconnects_total',
      'counter',
      'Peer connections re-established.',
      transport.reconnectCount,
    )
    .single(
      'abcast_transport_refused_connections_total',
      'counter',
      'Inbound handshakes refused.',
      transport.refusedConnectionCount,
    )
    .single(
      'abcast_transport_protocol_errors_total',
      'counter',
      'Connections closed for breaking the protocol.',
      transport.protocolErrorCount,
    );
  exposition.family(
    'abcast_transport_dropped_frames_total',
    'counter',
    'Frames dropped, by reason.',
  );
  for (const reason of dropReasons) {
    exposition.sample(
      'abcast_transport_dropped_frames_total',
      { reason },
      transport.droppedFrameCountByReason[reason],
    );
  }
  const peers = Object.entries(transport.peers).sort(([a], [b]) => (a < b ? -1 : 1));
  exposition.family('abcast_transport_peer_up', 'gauge', '1 when the link to the peer is open.');
  for (const [peer, link] of peers)
    exposition.sample('abcast_transport_peer_up', { peer }, link.state === 'open' ? 1 : 0);
  exposition.family(
    'abcast_transport_peer_buffered_bytes',
    'gauge',
    'Bytes waiting to be sent to the peer.',
  );
  for (const [peer, link] of peers)
    exposition.sample('abcast_transport_peer_buffered_bytes', { peer }, link.bufferedBytes);
}

function writeProgressMetrics(exposition: Exposition, status: ServedStatus): void {
  if (status.progress === undefined) return;
  exposition.family(
    'abcast_replication_lag_entries',
    'gauge',
    'Leader only: committed log entries a follower does not have yet.',
  );
  for (const follower of status.progress) {
    const lagEntries = Math.max(0, status.commitIndex - follower.matchIndex);
    exposition.sample('abcast_replication_lag_entries', { peer: follower.id }, lagEntries);
  }
}

/**
 * The process's memory: what the operating system holds for it (RSS, the figure to alert on),
 * and V8's share of it, the JavaScript heap and the buffers outside it, so that a node whose
 * RSS climbs shows which one grows. Names as Prometheus' and prom-client's process metrics.
 */
export function writeMemoryMetrics(exposition: Exposition, memory: ProcessMemory): void {
  exposition
    .single(
      'process_resident_memory_bytes',
      'gauge',
      'Resident memory of the node process.',
      memory.rss,
    )
    .single(
      'nodejs_heap_size_total_bytes',
      'gauge',
      'JavaScript heap V8 has reserved.',
      memory.heapTotal,
    )
    .single('nodejs_heap_size_used_bytes', 'gauge', 'JavaScript heap in use.', memory.heapUsed)
    .single(
      'nodejs_external_memory_bytes',
      'gauge',
      'Memory of objects outside the heap that V8 tracks (buffers, among others).',
      memory.external,
    )
    .single(
      'nodejs_array_buffers_bytes',
      'gauge',
      'Memory of ArrayBuffers and Buffers (part of the external memory).',
      memory.arrayBuffers,
    );
}
