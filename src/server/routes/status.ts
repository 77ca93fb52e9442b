/**
 * GET /v1/status: this node's view of the cluster. `commitIndex` is a Raft log index (one
 * entry carries a batch of messages); `deliveredIndex` and `firstIndex` are positions in the
 * total order, like every other `index` of the API. `retained` is the range every node serves
 * (the same on all of them), `store` what this node holds of it.
 */
import type { RouteContext, ServedMember } from '../context.ts';
import { sendJson } from '../respond.ts';
import { queryParameters } from '../validate.ts';

export async function statusRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const { node, settings } = context.server;
  const status = node.status();
  const member = (id: string, voter: boolean): ServedMember => ({
    id,
    address:
      status.members?.find((known) => known.id === id)?.address ?? settings.peers.get(id) ?? null,
    voter,
  });
  sendJson(context.response, 200, {
    id: status.id,
    role: status.role,
    term: status.term,
    leader: status.leaderId,
    commitIndex: status.commitIndex,
    appliedIndex: status.appliedIndex,
    deliveredIndex: status.lastPosition,
    firstIndex: status.firstRetainedPosition,
    // The same on every node: retention's floor is recorded in the log.
    retained: {
      firstIndex: status.firstRetainedPosition,
      lastIndex: status.lastPosition,
      // Topics kept for an age of their own: a read of one starts at its firstIndex at least.
      topics: (status.topicRetention ?? []).map((entry) => ({
        topic: entry.topic,
        ageMs: entry.ageMs,
        firstIndex: entry.firstPosition,
      })),
    },
    // What this node holds of it; `missing` is what backfill still fetches from peers.
    ...(status.store === undefined
      ? {}
      : {
          store: {
            bytes: status.store.sizeBytes,
            segments: status.store.segmentCount,
            missing: status.store.missingCount,
            missingRanges: status.store.missingRanges.map((range) => ({
              firstIndex: range.first,
              lastIndex: range.last,
            })),
          },
        }),
    pendingMessages: status.pendingMessageCount,
    repairing: status.repairing ?? null,
    stopped: status.stopped,
    binary: context.server.binaryEndpoint?.url ?? null,
    members: [
      ...status.config.voters.map((id) => member(id, true)),
      ...status.config.learners.map((id) => member(id, false)),
    ],
  });
}
