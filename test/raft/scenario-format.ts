/**
 * How scenario transcripts spell entries, messages and configurations. One line per fact, with
 * fields in a fixed order, so a golden file diff points at the behaviour that changed.
 */
import type { Configuration, Entry, Message, NodeId } from '../../src/raft/types.ts';
import { unreachable } from '../../src/util/assert.ts';

/** Lists longer than this print their head, an ellipsis and their tail, plus a count. */
const listItemsShownMax = 6;

const textDecoder = new TextDecoder('utf-8', { fatal: false });
const textEncoder = new TextEncoder();

export function encodeText(text: string): Uint8Array {
  return textEncoder.encode(text);
}

/** Printable ASCII without spaces prints as text; anything else as hex, so a line stays one line. */
export function formatData(data: Uint8Array): string {
  const printable = data.every((byte) => byte > 0x20 && byte < 0x7f);
  if (printable) return textDecoder.decode(data);
  return `0x${Buffer.from(data).toString('hex')}`;
}

/** `4/2 noop`, `5/2 x`, `6/2 config`; a normal entry without data is just `7/2`. */
export function formatEntry(entry: Entry): string {
  const position = `${entry.index}/${entry.term}`;
  switch (entry.kind) {
    case 'noop':
      return `${position} noop`;
    case 'config':
      return `${position} config`;
    case 'normal':
      return entry.data.length === 0 ? position : `${position} ${formatData(entry.data)}`;
    default:
      return unreachable(entry.kind, 'entry kind');
  }
}

/** Long lists keep their first and last items, so both ends of a batch stay visible. */
export function formatList(items: readonly string[], shownMax = listItemsShownMax): string {
  if (items.length <= shownMax) return items.join(', ');
  const head = items.slice(0, shownMax - 2);
  const tail = items.slice(-1);
  return `${[...head, '...', ...tail].join(', ')} (${items.length})`;
}

export function formatEntries(entries: readonly Entry[]): string {
  return formatList(entries.map(formatEntry));
}

export function formatNodes(nodes: readonly NodeId[]): string {
  return nodes.length === 0 ? 'none' : nodes.join(',');
}

export function formatConfig(config: Configuration): string {
  return `voters=${formatNodes(config.voters)} learners=${formatNodes(config.learners)}`;
}

function formatMessageBody(message: Message): string {
  switch (message.type) {
    case 'PreVote':
    case 'Vote': {
      const transfer = message.type === 'Vote' && message.transfer ? ' transfer' : '';
      return `last=${message.lastLogIndex}/${message.lastLogTerm}${transfer}`;
    }
    case 'PreVoteResponse':
    case 'VoteResponse':
      return message.granted ? 'granted' : 'rejected';
    case 'Append':
      return (
        `prev=${message.prevLogIndex}/${message.prevLogTerm} ` +
        `entries=[${formatEntries(message.entries)}] commit=${message.commit}`
      );
    case 'AppendResponse':
      return message.success
        ? `ok index=${message.index}`
        : `reject index=${message.index} hint=${message.hintIndex}/${message.hintTerm}`;
    case 'Heartbeat':
      return `commit=${message.commit}${message.readRound === 0 ? '' : ` read=${message.readRound}`}`;
    case 'HeartbeatResponse':
      return message.readRound === 0 ? '' : `read=${message.readRound}`;
    case 'Snapshot': {
      const meta = message.snapshot.meta;
      return `snapshot=${meta.index}/${meta.term} ${formatConfig(meta.config)}`;
    }
    case 'TimeoutNow':
      return '';
    case 'ReadIndex':
      return `id=${message.requestId}`;
    case 'ReadIndexResponse':
      return `id=${message.requestId} index=${message.index ?? 'refused'}`;
    default:
      return unreachable(message, 'message type');
  }
}

/** `1->2 Append term=2 prev=3/1 entries=[4/2 noop] commit=3`. */
export function formatMessage(message: Message): string {
  const body = formatMessageBody(message);
  const head = `${message.from}->${message.to} ${message.type} term=${message.term}`;
  return body === '' ? head : `${head} ${body}`;
}
