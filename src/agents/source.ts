/**
 * What the agents can run on: the SDK client, an in-process node, or any SharedLog.
 */
import type { BroadcastNode } from '../broadcast/node.ts';
import type { Client } from '../client/index.ts';
import { ClientLog } from './client-log.ts';
import { invalidArgument } from './errors.ts';
import type { SharedLog } from './log.ts';
import { NodeLog } from './node-log.ts';

export type LogSource = SharedLog | Client | BroadcastNode;

/** One adapter per client or node, so that every primitive on it shares the sessions. */
const adapters = new WeakMap<object, SharedLog>();

export function toSharedLog(source: LogSource): SharedLog {
  if (typeof source !== 'object' || source === null) {
    throw invalidArgument('log', 'log takes an SDK client, a node or a SharedLog');
  }
  if ('follow' in source && 'readIndex' in source && 'isOwnSession' in source) return source;
  let adapter = adapters.get(source);
  if (adapter === undefined) {
    if ('subscribe' in source && 'broadcast' in source) adapter = new ClientLog(source);
    else if ('deliveries' in source && 'barrier' in source) adapter = new NodeLog(source);
    else throw invalidArgument('log', 'log takes an SDK client, a node or a SharedLog');
    adapters.set(source, adapter);
  }
  return adapter;
}
