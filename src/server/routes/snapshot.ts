/**
 * GET /v1/snapshot (admin): a backup of the cluster's state as this node holds it, taken at a
 * committed index after a barrier (every message acknowledged anywhere before the request is
 * in it): the application state (session table and membership, as the node's own snapshots
 * encode it), its log index, term and configuration, the last position it covers, and the
 * delivered messages the node still keeps up to that position. `abcast snapshot save` writes
 * it to a file with a checksum; `abcast snapshot restore` makes a new cluster's data
 * directories from it (docs/ops.md).
 */
import { HttpError } from '../errors.ts';
import { sendJson } from '../respond.ts';
import type { RouteHandler } from '../router.ts';
import { integerParameter, queryParameters } from '../validate.ts';

/** The version of this answer's shape, checked by `abcast snapshot restore`. */
export const backupFormatVersion = 1;
const readPageMax = 1000;

export const snapshotRoute: RouteHandler = async (context) => {
  const query = queryParameters(context.url, ['messages']);
  // messages=0 leaves the kept messages out: a smaller file with the state alone.
  const withMessages = integerParameter(query.get('messages'), 'messages', {
    min: 0,
    max: 1,
    fallback: 1,
  });
  const { node } = context.server;
  if (node.backup === undefined) {
    throw new HttpError(404, 'not_found', 'this node does not offer backups');
  }
  const backup = await context.within(node.backup());
  const status = node.status();
  const firstPosition = Math.min(status.firstRetainedPosition, backup.position + 1);
  const messages = [];
  if (withMessages === 1) {
    for (let from = firstPosition; from <= backup.position; ) {
      const page = node.read(from, Math.min(readPageMax, backup.position - from + 1));
      if (page.length === 0) break;
      for (const message of page) {
        messages.push({
          position: message.position,
          index: message.index,
          term: message.term,
          client: message.clientId,
          seq: message.seq,
          topic: message.topic,
          time: message.logTimeMs,
          payloadBase64: Buffer.from(message.payload).toString('base64'),
        });
      }
      from = (page[page.length - 1]?.position ?? from) + 1;
    }
  }
  const { meta, data } = backup.snapshot;
  sendJson(context.response, 200, {
    format: 'abcast-snapshot',
    version: backupFormatVersion,
    node: status.id,
    takenAtMs: context.server.environment.nowMs(),
    index: meta.index,
    term: meta.term,
    config: meta.config,
    position: backup.position,
    state: Buffer.from(data).toString('base64'),
    firstPosition: withMessages === 1 ? firstPosition : backup.position + 1,
    messages,
  });
};
