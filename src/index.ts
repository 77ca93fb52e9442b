/** The library: `import { startNode } from 'abcast'`. */

export type { DeliveredMessage } from './broadcast/deliveries.ts';
export { BroadcastError, type BroadcastErrorCode } from './broadcast/errors.ts';
export type {
  BroadcastNode,
  BroadcastOptions,
  BroadcastResult,
  NodeStatus,
} from './broadcast/node.ts';
export { type StartNodeOptions, startNode } from './broadcast/start.ts';
