/**
 * The TypeScript SDK over the HTTP API (docs/api.md):
 * `import { connect } from 'abcast/client'`.
 */
import { Client, type ConnectOptions } from './client.ts';

export type { BroadcastAnswer, BroadcastOptions, Client, ConnectOptions } from './client.ts';
export { ClientError, type ClientErrorCode } from './errors.ts';
export type { Message, SubscribeOptions, Subscription } from './subscribe.ts';

/** A client of the cluster at `endpoints`; nothing is sent until the first call. */
export function connect(options: ConnectOptions): Client {
  return new Client(options);
}
