/**
 * POST /v1/members {"id","address","voter"} and DELETE /v1/members/:id: membership changes,
 * committed through the log (any node takes them; the record is forwarded like a message).
 * Both answer 200 with the members once the configuration is as asked: a new voter first
 * joins as a learner and is promoted once it has caught up.
 */
import type { RouteContext } from '../context.ts';
import { invalidArgument } from '../errors.ts';
import { sendJson } from '../respond.ts';
import { queryParameters, rejectUnknownFields } from '../validate.ts';

const idBytesMax = 255;

/**
 * Logs a request that changes the cluster with who asked: the identity when the server
 * authenticates, `anonymous` otherwise. At warn, the level a node logs by default.
 */
export function logRequest(
  context: RouteContext,
  message: string,
  fields: Readonly<Record<string, unknown>>,
): void {
  context.server.logger.warn(
    { ...fields, identity: context.identity?.name ?? 'anonymous', node: context.server.node.id },
    message,
  );
}

export async function addMemberRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const body = await context.readJson({ emptyAllowed: false });
  rejectUnknownFields(body, ['id', 'address', 'voter']);
  const { id, address, voter } = body;
  if (typeof id !== 'string' || id === '' || Buffer.byteLength(id) > idBytesMax) {
    throw invalidArgument('id', `id must be a non-empty string of at most ${idBytesMax} bytes`);
  }
  if (typeof address !== 'string') throw invalidArgument('address', 'address must be "host:port"');
  if (voter !== undefined && typeof voter !== 'boolean') {
    throw invalidArgument('voter', 'voter must be true or false');
  }
  logRequest(context, 'membership change requested', { op: 'add', member: id, address });
  const status = await context.server.node.addMember({ id, address, voter: voter ?? true });
  sendJson(context.response, 200, { members: status.members });
}

export async function removeMemberRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const id = context.params.id as string;
  if (Buffer.byteLength(id) > idBytesMax) throw invalidArgument('id', 'id is too long');
  logRequest(context, 'membership change requested', { op: 'remove', member: id });
  const status = await context.server.node.removeMember(id);
  sendJson(context.response, 200, { members: status.members });
}
