/**
 * The TypeScript SDK over the HTTP API (docs/api.md):
 * `import { connect } from 'abcast/client'`.
 */
import { Client } from './client.ts';
import type { ConnectOptions } from './settings.ts';

export type { Client } from './client.ts';
export { ClientError, type ClientErrorCode } from './errors.ts';
export type {
  HttpExchange,
  HttpExchangeRequest,
  HttpExchangeResponse,
} from './exchange.ts';
export type { ClientProtocol } from './protocol-upgrade.ts';
export type { BroadcastAnswer, BroadcastOptions, ConnectOptions } from './settings.ts';
export type { Message, SubscribeOptions, Subscription } from './subscribe.ts';

/** A client of the cluster at `endpoints`; nothing is sent until the first call. */
export function connect(options: ConnectOptions): Client {
  return new Client(options);
}
