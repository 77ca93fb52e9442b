/**
 * What the dashboard shows, sampled once a second per server however many pages watch it
 * (GET /v1/dashboard streams it): this node's state, every member as far as it can be known,
 * the leader changes seen, and the last minutes of throughput and commit latency.
 *
 * A member's own positions come from its `/v1/status` when the server was given the members'
 * HTTP URLs (`--http-peers`; `abcast dev` gives them), fetched by this server, not by each
 * page, so a hundred open dashboards cost the cluster the same as one. Without them, a member
 * shows what this node knows: its role from the leader id and, when this node leads, how far
 * its log matches (the leader's progress).
 *
 * Sampling runs only while a page watches; the history is bounded (`samplesMax`).
 */
import { nodeExchange } from '../client/node-exchange.ts';
import type { NodeId } from '../raft/types.ts';
import type { Timer } from '../util/environment.ts';
import type { ServedStatus, ServerContext } from './context.ts';
import { readinessChecks, readyLagEntriesDefault } from './routes/health.ts';

export const sampleIntervalMs = 1000;
/** Five minutes of one-second samples. */
export const samplesMax = 300;
const leaderChangesMax = 20;
/** A member's status that does not arrive within this is shown as unreachable. */
const peerStatusTimeoutMs = 800;

export interface MemberView {
  readonly id: NodeId;
  readonly address: string | null;
  readonly voter: boolean;
  readonly role: string;
  /** ok: answered (or is this node); unreachable: its URL did not answer; unknown: no URL. */
  readonly health: 'ok' | 'unreachable' | 'unknown' | 'stopped';
  readonly httpUrl: string | null;
  readonly term: number | null;
  readonly commitIndex: number | null;
  readonly appliedIndex: number | null;
  readonly deliveredPosition: number | null;
  /** The leader's view of its log (log index), when this node leads. */
  readonly matchIndex: number | null;
  /** Log entries behind the highest commit index seen: applied, or matched when only that is known. */
  readonly lagEntries: number | null;
}

export interface Sample {
  readonly atMs: number;
  /** Positions delivered per second on this node over the last interval. */
  readonly deliveredPerSecond: number;
  /** Mean commit latency of broadcasts through this node's HTTP API in the interval; null: none. */
  readonly commitLatencyMs: number | null;
  readonly deliveredPosition: number;
}

export interface LeaderChange {
  readonly atMs: number;
  readonly term: number;
  readonly leader: NodeId | null;
}

export interface DashboardView {
  readonly node: {
    readonly id: NodeId;
    readonly role: string;
    readonly term: number;
    readonly leader: NodeId | null;
    readonly commitIndex: number;
    readonly appliedIndex: number;
    readonly deliveredPosition: number;
    readonly firstRetainedPosition: number;
    readonly pendingMessages: number;
    readonly ready: boolean;
    readonly readiness: string;
  };
  readonly members: readonly MemberView[];
  readonly leaderChanges: readonly LeaderChange[];
  readonly sample: Sample;
  /** The server checks tokens: admin actions need one. */
  readonly authRequired: boolean;
}

type Listener = (view: DashboardView) => void;

/** The subset of /v1/status the dashboard reads from a peer. */
interface PeerStatus {
  readonly role: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly deliveredIndex: number;
}

export class DashboardFeed {
  private readonly listeners = new Set<Listener>();
  private readonly samples: Sample[] = [];
  private readonly leaderChanges: LeaderChange[] = [];
  private timer: Timer | null = null;
  private last: { monotonicMs: number; position: number; count: number; sum: number } | null = null;
  private latest: DashboardView | null = null;
  private sampling = false;

  constructor(private readonly context: ServerContext) {}

  /** The samples kept, oldest first, and the latest view (null before the first sample). */
  history(): { samples: readonly Sample[]; latest: DashboardView | null } {
    return { samples: [...this.samples], latest: this.latest };
  }

  /** Starts sampling with the first listener; returns the unsubscribe. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.timer === null) {
      void this.sample();
      this.arm();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        this.timer?.cancel();
        this.timer = null;
        this.last = null;
      }
    };
  }

  private arm(): void {
    this.timer = this.context.environment.setTimer(
      sampleIntervalMs,
      () => {
        if (this.listeners.size === 0) return;
        void this.sample();
        this.arm();
      },
      { background: true },
    );
  }

  private async sample(): Promise<void> {
    // A slow peer must not stack samples on top of each other.
    if (this.sampling) return;
    this.sampling = true;
    try {
      const status = this.context.node.status();
      this.noteLeader(status);
      const peers = await this.peerStatuses(status);
      const view = this.view(status, peers);
      this.latest = view;
      this.samples.push(view.sample);
      if (this.samples.length > samplesMax)
        this.samples.splice(0, this.samples.length - samplesMax);
      for (const listener of this.listeners) listener(view);
    } finally {
      this.sampling = false;
    }
  }

  private noteLeader(status: ServedStatus): void {
    const previous = this.leaderChanges[this.leaderChanges.length - 1];
    if (previous !== undefined && previous.leader === status.leaderId) return;
    if (previous === undefined && status.leaderId === null) return;
    this.leaderChanges.push({
      atMs: this.context.environment.nowMs(),
      term: status.term,
      leader: status.leaderId,
    });
    if (this.leaderChanges.length > leaderChangesMax) this.leaderChanges.shift();
  }

  private async peerStatuses(status: ServedStatus): Promise<Map<NodeId, PeerStatus | null>> {
    const found = new Map<NodeId, PeerStatus | null>();
    const urls = this.context.httpPeers ?? new Map<NodeId, string>();
    // The cluster CA and the peer token, as backfill uses them (context.ts).
    const calls = this.context.peerCalls ?? {
      exchange: nodeExchange(this.context.environment),
      headers: {},
    };
    const ids = (status.members ?? []).map((member) => member.id).filter((id) => id !== status.id);
    await Promise.all(
      ids.map(async (id) => {
        const url = urls.get(id);
        if (url === undefined) return;
        try {
          const answer = await calls.exchange({
            method: 'GET',
            url: `${url}/v1/status`,
            headers: calls.headers,
            body: null,
            timeoutMs: peerStatusTimeoutMs,
            signal: new AbortController().signal,
          });
          // A peer that wants a token we do not have is not down: its state is just unknown.
          if (answer.status === 401 || answer.status === 403) return;
          found.set(id, answer.status === 200 ? (JSON.parse(answer.body) as PeerStatus) : null);
        } catch {
          found.set(id, null);
        }
      }),
    );
    return found;
  }

  private view(status: ServedStatus, peers: Map<NodeId, PeerStatus | null>): DashboardView {
    const checks = readinessChecks(status, readyLagEntriesDefault);
    const failed = checks.filter((check) => !check.ok);
    return {
      node: {
        id: status.id,
        role: status.role,
        term: status.term,
        leader: status.leaderId,
        commitIndex: status.commitIndex,
        appliedIndex: status.appliedIndex,
        deliveredPosition: status.lastPosition,
        firstRetainedPosition: status.firstRetainedPosition,
        pendingMessages: status.pendingMessageCount,
        ready: failed.length === 0,
        readiness: failed.length === 0 ? 'ready' : failed.map((check) => check.detail).join('; '),
      },
      members: memberViews(status, peers, this.context.httpPeers ?? new Map()),
      leaderChanges: [...this.leaderChanges],
      sample: this.nextSample(status),
      authRequired: this.context.auth !== null && this.context.auth !== undefined,
    };
  }

  private nextSample(status: ServedStatus): Sample {
    const { environment, metrics } = this.context;
    const monotonicMs = environment.monotonicMs();
    const totals = metrics.broadcastTotals();
    const now = {
      monotonicMs,
      position: status.lastPosition,
      count: totals.count,
      sum: totals.secondsSum,
    };
    const last = this.last;
    this.last = now;
    const elapsedSeconds = last === null ? 0 : (monotonicMs - last.monotonicMs) / 1000;
    const answered = last === null ? 0 : now.count - last.count;
    return {
      atMs: environment.nowMs(),
      deliveredPerSecond:
        last === null || elapsedSeconds <= 0 ? 0 : (now.position - last.position) / elapsedSeconds,
      commitLatencyMs:
        last === null || answered === 0 ? null : ((now.sum - last.sum) / answered) * 1000,
      deliveredPosition: status.lastPosition,
    };
  }
}

function memberViews(
  status: ServedStatus,
  peers: Map<NodeId, PeerStatus | null>,
  urls: ReadonlyMap<NodeId, string>,
): MemberView[] {
  const members = status.members ?? [];
  const known = [status.commitIndex, ...[...peers.values()].map((peer) => peer?.commitIndex ?? 0)];
  const commitMax = Math.max(...known);
  return members.map((member): MemberView => {
    const base = { id: member.id, address: member.address, voter: member.voter };
    const httpUrl = urls.get(member.id) ?? null;
    if (member.id === status.id) {
      return {
        ...base,
        role: status.role,
        health: status.stopped === null ? 'ok' : 'stopped',
        httpUrl,
        term: status.term,
        commitIndex: status.commitIndex,
        appliedIndex: status.appliedIndex,
        deliveredPosition: status.lastPosition,
        matchIndex: null,
        lagEntries: Math.max(0, commitMax - status.appliedIndex),
      };
    }
    const progress = status.progress?.find((one) => one.id === member.id);
    const matchIndex = progress?.matchIndex ?? null;
    const peer = peers.get(member.id);
    const guessedRole =
      member.id === status.leaderId ? 'leader' : member.voter ? 'follower' : 'learner';
    if (peer === undefined || peer === null) {
      return {
        ...base,
        role: guessedRole,
        health: peer === null ? 'unreachable' : 'unknown',
        httpUrl,
        term: null,
        commitIndex: null,
        appliedIndex: null,
        deliveredPosition: null,
        matchIndex,
        lagEntries: matchIndex === null ? null : Math.max(0, status.lastIndex - matchIndex),
      };
    }
    return {
      ...base,
      role: peer.role,
      health: 'ok',
      httpUrl,
      term: peer.term,
      commitIndex: peer.commitIndex,
      appliedIndex: peer.appliedIndex,
      deliveredPosition: peer.deliveredIndex,
      matchIndex,
      lagEntries: Math.max(0, commitMax - peer.appliedIndex),
    };
  });
}
