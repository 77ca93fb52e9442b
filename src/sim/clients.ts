/**
 * Simulated clients. Each has an id and sends seq 1, 2, 3 … one at a time: seq n+1 only after
 * n is acknowledged (that is what lets the session table drop retries by sequence). A client
 * retries a message it has no answer for — after a timeout, a refusal, a lost node or an
 * overwritten entry — possibly at another node, so one (client, seq) may be appended many
 * times; the session table must deliver it once.
 */
import type { MessageOutcome } from '../broadcast/sessions.ts';
import type { NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { Prng } from '../util/prng.ts';

export interface ClientRequest {
  readonly client: number;
  readonly seq: number;
  /** Which send of this seq; answers to older attempts are ignored. */
  readonly attempt: number;
}

/** What clients need from the world. */
export interface ClientHost {
  readonly nowTicks: number;
  readonly nodeCount: number;
  nodeIndexOf(id: NodeId): number | null;
  /** Hands the request to a node's inbox; false when the node is down or its inbox is full. */
  submit(nodeIndex: number, request: ClientRequest): boolean;
  scheduleClient(client: number, atTicks: number, timer: number): void;
  /** The checkers learn of each seq before it is sent anywhere. */
  issue(client: number, seq: number): void;
  /** The checkers verify each acknowledgement. */
  acknowledge(node: number, request: ClientRequest, position: number | null, index: number): void;
  noteClient(text: string): void;
}

export interface ClientTuning {
  readonly clientCount: number;
  readonly thinkTicksMax: number;
  readonly timeoutTicks: number;
}

type ClientPhase = 'idle' | 'waiting';

/** A retry waits at most 2^this timeouts (plus jitter). */
export const BACKOFF_DOUBLINGS_MAX = 3;

interface ClientState {
  seq: number;
  attempt: number;
  phase: ClientPhase;
  target: number;
  /** Only the newest scheduled timer counts. */
  timer: number;
  /** The pending timer re-sends to a chosen target, rather than timing out. */
  retrying: boolean;
  /** Sends of the current seq so far; the timeout doubles with each, up to a cap. */
  sendsOfSeq: number;
  /** One more message to send although issuing stopped (the liveness phase's last write). */
  finalOwed: boolean;
  acknowledgedCount: number;
}

export class SimClients {
  private readonly states: ClientState[] = [];
  /** Off in the liveness phase, after one last message each (see finishWithOneMore). */
  issuing = true;
  retries = 0;

  constructor(
    private readonly host: ClientHost,
    private readonly prng: Prng,
    private readonly tuning: ClientTuning,
  ) {
    assert(tuning.clientCount > 0, 'there are clients');
    assert(tuning.timeoutTicks > 0, 'client timeouts are positive');
    for (let client = 0; client < tuning.clientCount; client++) {
      this.states.push({
        seq: 0,
        attempt: 0,
        phase: 'idle',
        target: 0,
        timer: 0,
        retrying: false,
        sendsOfSeq: 0,
        finalOwed: false,
        acknowledgedCount: 0,
      });
      this.arm(client, this.prng.between(0, tuning.thinkTicksMax));
    }
  }

  get outstandingCount(): number {
    let count = 0;
    for (const state of this.states) if (state.phase === 'waiting') count++;
    return count;
  }

  get acknowledgedCount(): number {
    let count = 0;
    for (const state of this.states) count += state.acknowledgedCount;
    return count;
  }

  /** Clients still waiting, for a liveness report. */
  describeOutstanding(): string {
    return this.states
      .map((state, client) => (state.phase === 'waiting' ? `c${client} seq ${state.seq}` : null))
      .filter((text) => text !== null)
      .join(', ');
  }

  /**
   * Stops issuing, but owes every client one more message: after faults stop, the cluster
   * must commit something new, not merely finish what was already in flight.
   */
  finishWithOneMore(): void {
    this.issuing = false;
    for (const [client, state] of this.states.entries()) {
      state.finalOwed = true;
      if (state.phase === 'idle') this.arm(client, this.prng.between(0, this.tuning.thinkTicksMax));
    }
  }

  get finalOwedCount(): number {
    let count = 0;
    for (const state of this.states) if (state.finalOwed) count++;
    return count;
  }

  isCurrent(request: ClientRequest): boolean {
    const state = this.state(request.client);
    return (
      state.phase === 'waiting' && state.seq === request.seq && state.attempt === request.attempt
    );
  }

  onTimer(client: number, timer: number): void {
    const state = this.state(client);
    if (timer !== state.timer) return;
    if (state.phase === 'idle') {
      if (!this.issuing && !state.finalOwed) return;
      state.finalOwed = false;
      state.seq++;
      state.sendsOfSeq = 0;
      this.host.issue(client, state.seq);
      state.phase = 'waiting';
      state.target = this.prng.below(this.host.nodeCount);
      this.send(client);
      return;
    }
    if (state.retrying) {
      state.retrying = false;
    } else {
      // No answer in time: the node may be gone, partitioned or no longer leading.
      this.host.noteClient(`c${client} seq ${state.seq} timed out at n${state.target + 1}`);
      state.target = this.prng.below(this.host.nodeCount);
    }
    this.send(client);
  }

  /** The node is not leader (or busy); try the leader it names, or anyone. */
  onRefused(request: ClientRequest, leaderHint: NodeId | null): void {
    if (!this.isCurrent(request)) return;
    const state = this.state(request.client);
    const hinted = leaderHint === null ? null : this.host.nodeIndexOf(leaderHint);
    state.target = hinted ?? this.prng.below(this.host.nodeCount);
    this.retryAfter(request.client, this.prng.between(1, 3));
  }

  /** The node holding the request crashed or dropped it. */
  onLost(request: ClientRequest): void {
    if (!this.isCurrent(request)) return;
    this.state(request.client).target = this.prng.below(this.host.nodeCount);
    this.retryAfter(request.client, this.prng.between(1, 5));
  }

  /**
   * The node that accepted the request delivered the entry at its index: committed if the
   * term matches (then `outcome` is this message's), overwritten otherwise.
   */
  onResolved(
    node: number,
    request: ClientRequest,
    index: number,
    outcome: MessageOutcome | null,
  ): void {
    if (!this.isCurrent(request)) return;
    const state = this.state(request.client);
    // The simulated clients never use control topics, so 'control' means a bug here.
    if (outcome === null || outcome.kind === 'refused' || outcome.kind === 'control') {
      this.host.noteClient(
        `c${request.client} seq ${request.seq} overwritten at index ${index}, retrying`,
      );
      this.retryAfter(request.client, this.prng.between(0, 2));
      return;
    }
    this.host.acknowledge(node, request, outcome.position, index);
    state.phase = 'idle';
    state.acknowledgedCount++;
    if (this.issuing || state.finalOwed) {
      this.arm(request.client, this.prng.between(0, this.tuning.thinkTicksMax));
    }
  }

  private send(client: number): void {
    const state = this.state(client);
    state.attempt++;
    const request: ClientRequest = { client, seq: state.seq, attempt: state.attempt };
    if (this.host.submit(state.target, request)) {
      this.arm(client, this.timeoutTicks(state));
    } else {
      // The node is down or its inbox full: pick another soon, like a refused connection.
      state.target = this.prng.below(this.host.nodeCount);
      state.retrying = true;
      this.arm(client, this.prng.between(1, 3));
    }
  }

  /**
   * Exponential backoff with jitter: a fixed timeout would let clients re-propose faster
   * than a slow cluster commits, and every retry is another entry to replicate.
   */
  private timeoutTicks(state: ClientState): number {
    state.sendsOfSeq++;
    const doublings = Math.min(state.sendsOfSeq - 1, BACKOFF_DOUBLINGS_MAX);
    const base = this.tuning.timeoutTicks * 2 ** doublings;
    return base + this.prng.below(Math.ceil(base / 2));
  }

  private retryAfter(client: number, delayTicks: number): void {
    this.retries++;
    const state = this.state(client);
    // Bump the attempt now, so a late answer to the old one is ignored while we wait.
    state.attempt++;
    state.retrying = true;
    this.arm(client, delayTicks);
  }

  private arm(client: number, delayTicks: number): void {
    const state = this.state(client);
    assert(delayTicks >= 0, 'timers lie in the future');
    state.timer++;
    this.host.scheduleClient(client, this.host.nowTicks + delayTicks, state.timer);
  }

  private state(client: number): ClientState {
    const state = this.states[client];
    assert(state !== undefined, 'a known client');
    return state;
  }
}
