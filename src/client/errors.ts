import { AbcastError } from '../util/errors.ts';

/**
 * The SDK's one error type. `code` is the node's `error` code from docs/api.md when a node
 * refused the request, or one of the SDK's own: `unavailable` (no endpoint answered for
 * longer than the bound), `closed` (the client was closed), `invalid_argument` (refused
 * before sending), `protocol` (a node answered something this SDK cannot read). Match on
 * `code`, never on `message`.
 */
export type ClientErrorCode =
  | 'invalid_argument'
  | 'payload_too_large'
  | 'session_unknown'
  | 'sequence_gap'
  | 'compacted'
  | 'unavailable'
  | 'closed'
  | 'protocol'
  | (string & {});

export class ClientError extends AbcastError<ClientErrorCode> {
  override readonly name = 'ClientError';
}

/** Answer fields named for the wire, where "index" means a position (docs/api.md). */
const wireDetailNames: Readonly<Record<string, string>> = { firstIndex: 'firstPosition' };

/**
 * A node's refusal as a ClientError: `fields` are the answer's fields (`error`, `message`,
 * `field`, `firstIndex`, …) plus what the SDK adds (`status`, `endpoint`), kept as details,
 * a position named `position` as everywhere in the SDK (`firstIndex` is `firstPosition`).
 */
export function refusal(
  code: ClientErrorCode,
  fields: Readonly<Record<string, unknown>>,
): ClientError {
  const text = typeof fields.message === 'string' ? `${code}: ${fields.message}` : code;
  const details: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields))
    details[wireDetailNames[name] ?? name] = value;
  return new ClientError(code, text, details);
}
