/**
 * Durable consumers: named cursors kept in the log (src/broadcast/stream-state.ts), so any
 * node resumes a consumer where it acknowledged last.
 *
 * - GET /v1/consumers: every consumer with its cursor and lag (positions delivered after it).
 * - GET /v1/consumers/:name: one of them (404 when unknown).
 * - POST /v1/consumers/:name/ack {"index": N}: everything up to N is processed. Committed
 *   through the log; answers once applied with the cursor (which never moves back).
 * - POST /v1/consumers/:name/ack {"member": M, "slots": {"<slot>": N}}: a group member's
 *   acks, cumulative per slot (each delivered message names its slot). Answers with the
 *   member's slots; 409 `not_owner` when a slot named is no longer the member's (its lease
 *   ran out, or it left): that ack changed nothing, and the messages come to the new owner.
 * - POST /v1/consumers/:name/settings {"ackDeadlineMs": D|null}: a stream of the consumer hands a
 *   message out again when it is not acknowledged D ms after it was handed out.
 * - DELETE /v1/consumers/:name/members/:member: the member leaves its group now (its slots
 *   move at once) rather than when its lease runs out.
 * - DELETE /v1/consumers/:name: forgets it.
 *
 * `GET /v1/stream?consumer=NAME[&member=M]` starts after the cursor (stream.ts).
 */
import {
  type ConsumerGroup,
  decodeSlotPositions,
  memberNameProblem,
} from '../../broadcast/consumer-groups.ts';
import {
  ackDeadlineMsMax,
  ackDeadlineMsMin,
  type ConsumerCursor,
  type ConsumerSettings,
  consumerNameProblem,
} from '../../broadcast/stream-state.ts';
import type { RouteContext } from '../context.ts';
import { HttpError, invalidArgument } from '../errors.ts';
import { sendJson } from '../respond.ts';
import { queryParameters, rejectUnknownFields } from '../validate.ts';

function wireConsumer(cursor: ConsumerCursor, lastPosition: number, settings: ConsumerSettings) {
  return {
    name: cursor.name,
    index: cursor.position,
    lag: Math.max(0, lastPosition - cursor.position),
    ackTime: cursor.ackLogTimeMs,
    ...(settings.ackDeadlineMs === null ? {} : { ackDeadlineMs: settings.ackDeadlineMs }),
  };
}

/**
 * A group as listed: its cursor (every slot acknowledged up to it), members with their
 * lease, and per slot its owner and cursor.
 */
function wireGroup(group: ConsumerGroup, lastPosition: number, settings: ConsumerSettings) {
  const cursor = group.cursor;
  return {
    name: group.name,
    group: true,
    index: cursor,
    lag: Math.max(0, lastPosition - cursor),
    members: group.members.map((member) => ({
      member: member.member,
      leaseMs: member.leaseMs,
      seenTime: member.seenLogTimeMs,
      slots: group.slots.flatMap((slot, at) => (slot.owner === member.member ? [at] : [])),
    })),
    slots: group.slots.map((slot, at) => ({
      slot: at,
      owner: slot.owner,
      index: slot.doneThrough,
      moving: slot.owner !== null && group.target(at) !== slot.owner,
    })),
    ...(settings.ackDeadlineMs === null ? {} : { ackDeadlineMs: settings.ackDeadlineMs }),
  };
}

/**
 * The route's consumer name, refused when no consumer could bear it: the node's own check
 * comes later and, for records other than acks, says only "a malformed record".
 */
function consumerName(context: RouteContext): string {
  const name = context.params.name as string;
  const problem = consumerNameProblem(name);
  if (problem !== null) throw invalidArgument('name', problem);
  return name;
}

export async function listConsumersRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const { node } = context.server;
  const lastPosition = node.lastPosition;
  const state = node.streamState;
  const consumers = [
    ...node
      .consumers()
      .map((cursor) => wireConsumer(cursor, lastPosition, state.settings(cursor.name))),
    ...state.groups().map((group) => wireGroup(group, lastPosition, state.settings(group.name))),
  ].sort((a, b) => (a.name < b.name ? -1 : 1));
  // Compaction by key decides what consumers still see of the compacted topics.
  const { topics, before } = state.compaction;
  const compaction = { topics, before };
  sendJson(context.response, 200, { consumers, deliveredIndex: lastPosition, compaction });
}

export async function getConsumerRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const { node } = context.server;
  const name = consumerName(context);
  const settings = node.streamState.settings(name);
  const group = node.streamState.group(name);
  if (group !== undefined) {
    sendJson(context.response, 200, wireGroup(group, node.lastPosition, settings));
    return;
  }
  const cursor = node.consumer(name);
  if (cursor === undefined) {
    throw new HttpError(404, 'not_found', `no consumer ${name}`, { name });
  }
  sendJson(context.response, 200, wireConsumer(cursor, node.lastPosition, settings));
}

/** A group member's acks: cumulative per slot; 409 for slots it no longer owns. */
async function ackGroup(context: RouteContext, body: Record<string, unknown>): Promise<void> {
  rejectUnknownFields(body, ['member', 'slots']);
  const member = body.member;
  const problem = memberNameProblem(member);
  if (problem !== null) throw invalidArgument('member', problem);
  const slots = decodeSlotPositions(body.slots);
  if (slots === null || Object.keys(slots).length === 0) {
    throw invalidArgument('slots', 'slots must map slot numbers (0–31) to positions >= 0');
  }
  const name = consumerName(context);
  const { node } = context.server;
  const command = { op: 'gack', name, member: member as string, slots } as const;
  await context.within(node.recordConsumer(command));
  const group = node.streamState.group(name);
  const answer: Record<string, number> = {};
  const lost: number[] = [];
  for (const slot of Object.keys(slots).map(Number)) {
    const state = group?.slots[slot];
    if (state === undefined || state.owner !== member) lost.push(slot);
    else answer[String(slot)] = state.doneThrough;
  }
  if (lost.length > 0) {
    throw new HttpError(
      409,
      'not_owner',
      `${String(member)} no longer owns slot ${lost.join(', ')} of ${name}: those acks changed nothing`,
      { member: member as string, slots: lost.join(',') },
    );
  }
  sendJson(context.response, 200, { name, member, slots: answer });
}

export async function ackConsumerRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const body = await context.readJson({ emptyAllowed: false });
  if (Object.hasOwn(body, 'member')) {
    await ackGroup(context, body);
    return;
  }
  rejectUnknownFields(body, ['index']);
  const position = body.index;
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) {
    throw invalidArgument('index', 'index must be a position >= 0');
  }
  const { node } = context.server;
  const name = consumerName(context);
  if (node.streamState.group(name) !== undefined) {
    throw invalidArgument('member', `${name} is a consumer group: ack with member and slots`);
  }
  const cursor = await context.within(node.ackConsumer(name, position));
  sendJson(
    context.response,
    200,
    wireConsumer(cursor, node.lastPosition, node.streamState.settings(name)),
  );
}

export async function configureConsumerRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const body = await context.readJson({ emptyAllowed: false });
  rejectUnknownFields(body, ['ackDeadlineMs']);
  const deadline = body.ackDeadlineMs;
  if (
    deadline !== null &&
    (typeof deadline !== 'number' ||
      !Number.isSafeInteger(deadline) ||
      deadline < ackDeadlineMsMin ||
      deadline > ackDeadlineMsMax)
  ) {
    throw invalidArgument(
      'ackDeadlineMs',
      `ackDeadlineMs is null or an integer from ${ackDeadlineMsMin} to ${ackDeadlineMsMax}`,
    );
  }
  const name = consumerName(context);
  const { node } = context.server;
  const command = { op: 'configure', name, ackDeadlineMs: deadline as number | null } as const;
  await context.within(node.recordConsumer(command));
  sendJson(context.response, 200, { name, ...node.streamState.settings(name) });
}

export async function leaveGroupRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const name = consumerName(context);
  const member = context.params.member as string;
  const problem = memberNameProblem(member);
  if (problem !== null) throw invalidArgument('member', problem);
  await context.within(context.server.node.recordConsumer({ op: 'leave', name, member }));
  sendJson(context.response, 200, {});
}

export async function deleteConsumerRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  await context.within(context.server.node.deleteConsumer(consumerName(context)));
  sendJson(context.response, 200, {});
}
