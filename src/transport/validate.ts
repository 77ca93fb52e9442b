/**
 * The rules every frame obeys, checked on both sides of the wire: the encoder refuses a frame
 * that breaks one (so a bug of ours shows up at the sender), and the decoder runs the same
 * checks on what it built (so a peer cannot hand the core a frame it could not have sent).
 *
 * Besides types and ranges this checks the cheap structural facts the core relies on: an
 * Append's entries are dense from `prevLogIndex + 1` with terms that never decrease and never
 * pass the sender's term (Raft §5.3), and a configuration's lists are sorted and disjoint.
 * Checks are defensive about runtime types, because `send` may be handed anything.
 */
import { ConfigurationError, decodeConfiguration } from '../raft/config.ts';
import { type Configuration, type Entry, type Message, termMax } from '../raft/types.ts';
import { isWellFormedString } from './bytes.ts';
import { CodecError } from './errors.ts';
import type { ForwardOutcome, Frame } from './types.ts';

export const nodeIdBytesMax = 255;
export const readRequestIdBytesMax = 1024;
export const forwardCodeBytesMax = 64;

const entryKinds = new Set(['normal', 'noop', 'config']);

function fail(message: string, field: string): never {
  throw new CodecError('INVALID_VALUE', message, { field });
}

export function checkNatural(value: unknown, field: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(`${field} is a safe non-negative integer (got ${String(value)})`, field);
  }
}

/** A term, and one the receiver can still count past exactly (see `termMax`). */
export function checkTerm(value: unknown, field: string): void {
  checkNatural(value, field);
  if ((value as number) > termMax) fail(`${field} is at most ${termMax}`, field);
}

function checkBoolean(value: unknown, field: string): void {
  if (typeof value !== 'boolean') fail(`${field} is a boolean`, field);
}

function checkBytes(value: unknown, field: string): void {
  if (!(value instanceof Uint8Array)) fail(`${field} is a Uint8Array`, field);
}

export function checkString(value: unknown, field: string, bytesMax: number): void {
  if (typeof value !== 'string') fail(`${field} is a string`, field);
  if (!isWellFormedString(value)) fail(`${field} holds a lone surrogate`, field);
  if (Buffer.byteLength(value, 'utf8') > bytesMax) {
    fail(`${field} is at most ${bytesMax} UTF-8 bytes`, field);
  }
}

export function checkNodeId(value: unknown, field: string): void {
  checkString(value, field, nodeIdBytesMax);
  if (value === '') fail(`${field} is a non-empty node id`, field);
}

function checkSortedUnique(list: unknown, field: string): readonly string[] {
  if (!Array.isArray(list)) fail(`${field} is an array`, field);
  for (let position = 0; position < list.length; position++) {
    checkNodeId(list[position], `${field}[${position}]`);
    if (position > 0 && !(list[position - 1] < list[position])) {
      fail(`${field} is sorted without duplicates`, field);
    }
  }
  return list as readonly string[];
}

export function checkConfiguration(config: unknown, field: string): void {
  if (typeof config !== 'object' || config === null) fail(`${field} is an object`, field);
  const { voters, learners } = config as Configuration;
  const voterList = checkSortedUnique(voters, `${field}.voters`);
  const learnerList = checkSortedUnique(learners, `${field}.learners`);
  const voterSet = new Set(voterList);
  for (const learner of learnerList) {
    if (voterSet.has(learner)) fail(`${field}: ${learner} is both voter and learner`, field);
  }
}

/**
 * A configuration entry becomes the receiver's configuration as soon as it is appended
 * (Raft thesis §4.1), so one that does not decode, or that leaves nobody to vote, would stop
 * the node or the cluster: it is refused at the door like any malformed frame.
 */
function checkConfigurationEntry(data: Uint8Array, field: string): void {
  let config: Configuration;
  try {
    config = decodeConfiguration(data);
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    fail(`${field} is not a configuration: ${error.message}`, field);
  }
  if (config.voters.length === 0) fail(`${field} is a configuration without voters`, field);
}

function checkEntries(message: Message & { type: 'Append' }): void {
  const { entries, prevLogIndex, prevLogTerm, term } = message;
  if (!Array.isArray(entries)) fail('entries is an array', 'entries');
  if (prevLogTerm > term) fail('prevLogTerm is at most the sender term', 'prevLogTerm');
  if (!Number.isSafeInteger(prevLogIndex + entries.length)) {
    fail('the last entry index is a safe integer', 'entries');
  }
  let previousTerm = prevLogTerm;
  for (let position = 0; position < entries.length; position++) {
    const entry: unknown = entries[position];
    const field = `entries[${position}]`;
    if (typeof entry !== 'object' || entry === null) fail(`${field} is an object`, field);
    const { index, term: entryTerm, kind, data } = entry as Entry;
    if (index !== prevLogIndex + 1 + position) fail(`${field}.index is dense`, field);
    checkTerm(entryTerm, `${field}.term`);
    if (entryTerm < previousTerm) fail(`${field}.term never decreases along the log`, field);
    if (entryTerm > term) fail(`${field}.term is at most the sender term`, field);
    if (!entryKinds.has(kind)) fail(`${field}.kind is normal, noop or config`, field);
    checkBytes(data, `${field}.data`);
    if (kind === 'config') checkConfigurationEntry(data, `${field}.data`);
    previousTerm = entryTerm;
  }
}

function checkMessageBody(message: Message): void {
  switch (message.type) {
    case 'PreVote':
    case 'Vote':
      checkNatural(message.lastLogIndex, 'lastLogIndex');
      checkTerm(message.lastLogTerm, 'lastLogTerm');
      if (message.type === 'Vote') checkBoolean(message.transfer, 'transfer');
      return;
    case 'PreVoteResponse':
    case 'VoteResponse':
      checkBoolean(message.granted, 'granted');
      return;
    case 'Append':
      checkNatural(message.prevLogIndex, 'prevLogIndex');
      checkTerm(message.prevLogTerm, 'prevLogTerm');
      checkNatural(message.commit, 'commit');
      checkEntries(message);
      return;
    case 'AppendResponse':
      checkBoolean(message.success, 'success');
      checkNatural(message.index, 'index');
      checkNatural(message.hintIndex, 'hintIndex');
      checkTerm(message.hintTerm, 'hintTerm');
      return;
    case 'Heartbeat':
      checkNatural(message.commit, 'commit');
      checkNatural(message.readRound, 'readRound');
      return;
    case 'HeartbeatResponse':
      checkNatural(message.readRound, 'readRound');
      return;
    case 'Snapshot':
      checkSnapshot(message.snapshot);
      return;
    case 'TimeoutNow':
      return;
    case 'ReadIndex':
      checkString(message.requestId, 'requestId', readRequestIdBytesMax);
      return;
    case 'ReadIndexResponse':
      checkString(message.requestId, 'requestId', readRequestIdBytesMax);
      if (message.index !== null) checkNatural(message.index, 'index');
      return;
    default:
      fail(`unknown frame type ${String((message as { type: unknown }).type)}`, 'type');
  }
}

function checkSnapshot(snapshot: unknown): void {
  if (typeof snapshot !== 'object' || snapshot === null) fail('snapshot is an object', 'snapshot');
  const { meta, data } = snapshot as { meta: unknown; data: unknown };
  if (typeof meta !== 'object' || meta === null) fail('snapshot.meta is an object', 'meta');
  const { index, term, config } = meta as { index: unknown; term: unknown; config: unknown };
  checkNatural(index, 'snapshot.meta.index');
  checkTerm(term, 'snapshot.meta.term');
  checkConfiguration(config, 'snapshot.meta.config');
  checkBytes(data, 'snapshot.data');
}

function checkForwardOutcome(result: unknown): void {
  if (typeof result !== 'object' || result === null) fail('result is an object', 'result');
  const outcome = result as ForwardOutcome;
  if ('code' in outcome) {
    checkString(outcome.code, 'result.code', forwardCodeBytesMax);
    if (outcome.code === '') fail('result.code is not empty', 'result.code');
    if (outcome.leaderId !== null) checkNodeId(outcome.leaderId, 'result.leaderId');
    return;
  }
  checkNatural(outcome.index, 'result.index');
  checkTerm(outcome.term, 'result.term');
}

/** Throws `CodecError` ('INVALID_VALUE') unless `frame` is a frame the codec can carry. */
export function validateFrame(frame: unknown): asserts frame is Frame {
  if (typeof frame !== 'object' || frame === null) fail('a frame is an object', 'frame');
  const candidate = frame as Frame;
  checkNodeId(candidate.from, 'from');
  checkNodeId(candidate.to, 'to');
  if (candidate.type === 'Forward') {
    checkNatural(candidate.requestId, 'requestId');
    return checkBytes(candidate.data, 'data');
  }
  if (candidate.type === 'ForwardResult') {
    checkNatural(candidate.requestId, 'requestId');
    return checkForwardOutcome(candidate.result);
  }
  checkTerm(candidate.term, 'term');
  checkMessageBody(candidate);
}
