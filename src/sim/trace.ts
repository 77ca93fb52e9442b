/**
 * The run's trace: a fingerprint folded from every event (always on, a few integer ops per
 * event, so the determinism test compares whole runs cheaply) and, when asked for, one
 * readable line per event. Formatting happens only when lines are wanted.
 */
import { type Message, type MessageType, messageTypeCodes, type Role } from '../raft/types.ts';
import { finish32, mix32 } from './hash.ts';

export function messageTypeCode(type: MessageType): number {
  return messageTypeCodes[type];
}

const roleLetters: Record<Role, string> = {
  follower: 'F',
  preCandidate: 'P',
  candidate: 'C',
  leader: 'L',
};

export function roleLetter(role: Role | null): string {
  return role === null ? '-' : roleLetters[role];
}

export class Trace {
  private hash = 0x7e4ace;
  private lineCount = 0;

  /** `sink` receives each line; null keeps only the fingerprint. */
  constructor(private readonly sink: ((line: string) => void) | null) {}

  get wantsLines(): boolean {
    return this.sink !== null;
  }

  get fingerprint(): number {
    return finish32(this.hash);
  }

  get linesWritten(): number {
    return this.lineCount;
  }

  fold(a: number, b: number, c: number): void {
    this.hash = mix32(mix32(mix32(this.hash, a), b), c);
  }

  line(text: string): void {
    if (this.sink === null) return;
    this.lineCount++;
    this.sink(text);
  }
}

/** A message in a few words: type, peers and the fields that matter for it. */
export function describeMessage(message: Message): string {
  const head = `${message.type} ${message.from}→${message.to} t${message.term}`;
  switch (message.type) {
    case 'PreVote':
    case 'Vote':
      return `${head} last=${message.lastLogIndex}/${message.lastLogTerm}`;
    case 'PreVoteResponse':
    case 'VoteResponse':
      return `${head} ${message.granted ? 'granted' : 'rejected'}`;
    case 'Append': {
      const first = message.entries[0];
      const last = message.entries[message.entries.length - 1];
      const range =
        first === undefined || last === undefined ? 'none' : `${first.index}..${last.index}`;
      return `${head} prev=${message.prevLogIndex}/${message.prevLogTerm} entries=${range} commit=${message.commit}`;
    }
    case 'AppendResponse':
      return message.success
        ? `${head} ok index=${message.index}`
        : `${head} reject index=${message.index} hint=${message.hintIndex}/${message.hintTerm}`;
    case 'Heartbeat':
      return `${head} commit=${message.commit} round=${message.readRound}`;
    case 'HeartbeatResponse':
      return `${head} round=${message.readRound}`;
    case 'Snapshot':
      return `${head} index=${message.snapshot.meta.index}/${message.snapshot.meta.term}`;
    case 'TimeoutNow':
      return head;
    case 'ReadIndex':
      return `${head} request=${message.requestId}`;
    case 'ReadIndexResponse':
      return `${head} request=${message.requestId} index=${message.index ?? 'refused'}`;
  }
}
