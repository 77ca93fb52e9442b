/** The library: `import { startNode } from 'abcast'`. */

export type { DeliveredMessage } from './broadcast/deliveries.ts';
export { BroadcastError, type BroadcastErrorCode } from './broadcast/errors.ts';
export type { BroadcastNode, BroadcastOptions, NodeStatus } from './broadcast/node.ts';
export type { BroadcastResult } from './broadcast/pending.ts';
export { type StartNodeOptions, startNode } from './broadcast/start.ts';
