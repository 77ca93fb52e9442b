/**
 * POST /v1/leader/transfer {"to"?}: asks the leader to hand leadership to `to`, or to the
 * most caught-up follower. Answers 202 once the leader started the transfer; it completes
 * when the target wins its election (watch /v1/status). Only the leader can transfer: a
 * follower answers 409 `not_leader` naming the leader.
 */
import type { NodeId } from '../../raft/types.ts';
import type { RouteContext, ServedStatus } from '../context.ts';
import { HttpError, invalidArgument } from '../errors.ts';
import { sendJson } from '../respond.ts';
import { optionalString, queryParameters, rejectUnknownFields } from '../validate.ts';
import { logRequest } from './members.ts';

/**
 * The follower to hand over to: the voter with the highest match index among those the
 * leader heard from recently, when the runtime reports progress; otherwise the first voter
 * whose link is open. Either is safe, since the leader brings the target up to date before
 * it lets it campaign (Raft thesis §3.10); the first is just faster.
 */
export function pickTransferTarget(status: ServedStatus): NodeId | null {
  const others = status.config.voters.filter((id) => id !== status.id);
  if (status.progress !== undefined) {
    const ranked = status.progress
      .filter((follower) => others.includes(follower.id) && follower.recentlyActive)
      .sort((a, b) => b.matchIndex - a.matchIndex || (a.id < b.id ? -1 : 1));
    if (ranked[0] !== undefined) return ranked[0].id;
  }
  const connected = others.filter((id) => status.transport.peers[id]?.state === 'open');
  return connected[0] ?? others[0] ?? null;
}

function refuseUnlessLeader(status: ServedStatus, peers: ReadonlyMap<NodeId, string>): void {
  if (status.role === 'leader') return;
  if (status.leaderId === null) {
    throw new HttpError(503, 'no_leader', 'no leader is known; retry shortly', {}, true);
  }
  throw new HttpError(
    409,
    'not_leader',
    `only the leader transfers leadership: ask ${status.leaderId}`,
    {
      leader: status.leaderId,
      leaderAddress: peers.get(status.leaderId) ?? null,
    },
  );
}

export async function transferRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const { node, settings } = context.server;
  const body = await context.readJson({ emptyAllowed: true });
  rejectUnknownFields(body, ['to']);
  const requested = optionalString(body, 'to', { bytesMax: 255, allowEmpty: false });
  const status = node.status();
  refuseUnlessLeader(status, settings.peers);
  if (requested !== undefined && !status.config.voters.includes(requested)) {
    throw invalidArgument('to', `to must name a voter (${status.config.voters.join(', ')})`);
  }
  if (requested === status.id) {
    throw new HttpError(409, 'transfer_refused', `${requested} already leads`, {
      leader: status.id,
    });
  }
  const target = requested ?? pickTransferTarget(status);
  if (target === null) {
    throw new HttpError(409, 'transfer_refused', 'there is no other voter to transfer to');
  }
  logRequest(context, 'leadership transfer requested', { to: target, from: status.id });
  const result = node.transferLeadership(target);
  if (!result.accepted) throw new HttpError(409, 'transfer_refused', result.detail, { to: target });
  sendJson(context.response, 202, { to: target, from: status.id, term: status.term });
}
