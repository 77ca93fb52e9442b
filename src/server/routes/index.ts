/**
 * The routing table of the HTTP API; docs/api.md describes each route. With authentication
 * on, `access` is the least role that may call a route: reading the order and the cluster's
 * state is `read`, adding to the order `write`, changing the cluster or watching its
 * internals `admin`.
 */
import type { Route } from '../router.ts';
import { barrierRoute } from './barrier.ts';
import { broadcastRoute } from './broadcast.ts';
import { broadcastBatchRoute } from './broadcast-batch.ts';
import {
  ackConsumerRoute,
  configureConsumerRoute,
  deleteConsumerRoute,
  getConsumerRoute,
  leaveGroupRoute,
  listConsumersRoute,
} from './consumers.ts';
import { digestRoute } from './digest.ts';
import { addMemberRoute, removeMemberRoute } from './members.ts';
import { messagesRoute } from './messages.ts';
import { metricsRoute } from './metrics.ts';
import { opsRoutes } from './ops.ts';
import { recordsRoute } from './records.ts';
import { statusRoute } from './status.ts';
import { streamRoute } from './stream.ts';
import { transferRoute } from './transfer.ts';

export const apiRoutes: readonly Route[] = [
  { method: 'POST', pattern: '/v1/broadcast', access: 'write', handler: broadcastRoute },
  { method: 'POST', pattern: '/v1/broadcast/batch', access: 'write', handler: broadcastBatchRoute },
  { method: 'GET', pattern: '/v1/messages', access: 'read', handler: messagesRoute },
  { method: 'GET', pattern: '/v1/stream', access: 'read', handler: streamRoute },
  { method: 'GET', pattern: '/v1/records', access: 'read', handler: recordsRoute },
  { method: 'GET', pattern: '/v1/digest', access: 'read', handler: digestRoute },
  { method: 'GET', pattern: '/v1/barrier', access: 'read', handler: barrierRoute },
  { method: 'GET', pattern: '/v1/status', access: 'read', handler: statusRoute },
  { method: 'GET', pattern: '/v1/consumers', access: 'read', handler: listConsumersRoute },
  { method: 'GET', pattern: '/v1/consumers/:name', access: 'read', handler: getConsumerRoute },
  {
    method: 'POST',
    pattern: '/v1/consumers/:name/ack',
    access: 'read',
    handler: ackConsumerRoute,
  },
  {
    method: 'DELETE',
    pattern: '/v1/consumers/:name',
    access: 'read',
    handler: deleteConsumerRoute,
  },
  {
    method: 'POST',
    pattern: '/v1/consumers/:name/settings',
    access: 'read',
    handler: configureConsumerRoute,
  },
  {
    method: 'DELETE',
    pattern: '/v1/consumers/:name/members/:member',
    access: 'read',
    handler: leaveGroupRoute,
  },
  { method: 'POST', pattern: '/v1/leader/transfer', access: 'admin', handler: transferRoute },
  { method: 'POST', pattern: '/v1/members', access: 'admin', handler: addMemberRoute },
  { method: 'DELETE', pattern: '/v1/members/:id', access: 'admin', handler: removeMemberRoute },
  { method: 'GET', pattern: '/metrics', access: 'admin', handler: metricsRoute },
  ...opsRoutes,
];
