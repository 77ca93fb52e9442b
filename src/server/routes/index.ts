/** The routing table of the HTTP API; docs/api.md describes each route. */
import type { Route } from '../router.ts';
import { barrierRoute } from './barrier.ts';
import { broadcastRoute } from './broadcast.ts';
import { broadcastBatchRoute } from './broadcast-batch.ts';
import { addMemberRoute, removeMemberRoute } from './members.ts';
import { messagesRoute } from './messages.ts';
import { metricsRoute } from './metrics.ts';
import { statusRoute } from './status.ts';
import { streamRoute } from './stream.ts';
import { transferRoute } from './transfer.ts';

export const apiRoutes: readonly Route[] = [
  { method: 'POST', pattern: '/v1/broadcast', handler: broadcastRoute },
  { method: 'POST', pattern: '/v1/broadcast/batch', handler: broadcastBatchRoute },
  { method: 'GET', pattern: '/v1/messages', handler: messagesRoute },
  { method: 'GET', pattern: '/v1/stream', handler: streamRoute },
  { method: 'GET', pattern: '/v1/barrier', handler: barrierRoute },
  { method: 'GET', pattern: '/v1/status', handler: statusRoute },
  { method: 'POST', pattern: '/v1/leader/transfer', handler: transferRoute },
  { method: 'POST', pattern: '/v1/members', handler: addMemberRoute },
  { method: 'DELETE', pattern: '/v1/members/:id', handler: removeMemberRoute },
  { method: 'GET', pattern: '/metrics', handler: metricsRoute },
];
