/**
 * Raft's promises as they show on the wire between real nodes, checked as each frame leaves:
 * at most one leader per term (Raft §5.2: whoever sends Append, Heartbeat or Snapshot in a
 * term leads it); a granted vote and an acknowledged append leave only once what they
 * promise is durable (the storage acknowledged it), the Ready contract the runtime must keep.
 */
import type { NodeId } from '../../raft/types.ts';
import type { Frame } from '../../transport/types.ts';
import type { ViolationContext } from '../violation.ts';
import type { AckedLog } from './acked-log.ts';

export class FrameChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();

  constructor(
    private readonly context: ViolationContext,
    private readonly ackedOf: (node: NodeId) => AckedLog | null,
  ) {}

  get leaderTermCount(): number {
    return this.leaderOfTerm.size;
  }

  onSent(frame: Frame): void {
    switch (frame.type) {
      case 'Append':
      case 'Heartbeat':
      case 'Snapshot':
        this.checkLeader(frame.from, frame.term);
        break;
      case 'VoteResponse':
        if (frame.granted) this.checkVoteDurable(frame.from, frame.to, frame.term);
        break;
      case 'AppendResponse':
        if (frame.success) this.checkAppendDurable(frame.from, frame.index);
        break;
      default:
        break;
    }
  }

  private checkLeader(node: NodeId, term: number): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) this.leaderOfTerm.set(term, node);
    else if (known !== node) {
      this.context.fail('election safety', `${known} and ${node} both lead term ${term}`, [
        known,
        node,
      ]);
    }
  }

  private checkVoteDurable(node: NodeId, candidate: NodeId, term: number): void {
    const hardState = this.ackedOf(node)?.hardState ?? null;
    // A later durable term also suffices: the node can never vote in `term` again. A paused
    // node that wakes to two elections' requests grants both in one Ready, whose hard state
    // holds the later term only.
    const durable =
      hardState !== null &&
      (hardState.term > term || (hardState.term === term && hardState.vote === candidate));
    if (!durable) {
      this.context.fail(
        'vote durability',
        `${node} grants ${candidate} its vote in term ${term} while its disk holds term ${hardState?.term ?? 0} vote ${hardState?.vote ?? '-'}`,
        [node],
      );
    }
  }

  private checkAppendDurable(node: NodeId, index: number): void {
    const acked = this.ackedOf(node);
    if (acked !== null && acked.lastIndex < index) {
      this.context.fail(
        'durability',
        `${node} acknowledges index ${index} with only ${acked.lastIndex} durable`,
        [node],
      );
    }
  }
}
