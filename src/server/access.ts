/**
 * The door: who a request comes from, and whether they may use its route. Runs in the
 * dispatcher before any handler, so a refused request reads no body and touches no node.
 *
 * Credentials, first that is given wins: `Authorization: Bearer <token>` (a token that is
 * malformed or unknown is refused, even when a certificate would have been good: a client
 * that sends a token means it), then a client certificate the HTTPS server verified against
 * its CA, whose name maps to the auth file's entry of that name. Nothing → 401
 * `unauthorized`; a role below the route's → 403 `forbidden`. Topic rules are the routes'
 * (they know the topics): `checkPublish`, `checkSubscribe`.
 */
import type { AccessRole, AuthTable, Identity } from './auth.ts';
import { roleAllows, topicAllowed } from './auth.ts';
import { HttpError } from './errors.ts';
import type { ExchangeRequest } from './exchange.ts';

/** The auth table in force; replaced whole when the file is read again (SIGHUP). */
export interface AuthSource {
  readonly table: AuthTable;
}

function unauthorized(message: string): HttpError {
  return new HttpError(401, 'unauthorized', message);
}

/** Who sent `request`, or a 401. */
function identify(table: AuthTable, request: ExchangeRequest): Identity {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer +([A-Za-z0-9._~+/=-]{1,512})$/.exec(header.trim());
    if (match === null) {
      throw unauthorized('the Authorization header must be "Bearer <token>"');
    }
    const identity = table.byToken(match[1] as string);
    if (identity === null) throw unauthorized('the token is not known to this node');
    return identity;
  }
  const name = request.certificateName ?? null;
  if (name !== null) {
    const identity = table.named(name);
    if (identity === null) {
      throw unauthorized(`the client certificate names "${name}", which has no auth entry`);
    }
    return identity;
  }
  throw unauthorized(
    'this node requires a token (Authorization: Bearer <token>) or a client certificate',
  );
}

/**
 * The identity `request` is served as, checked against the route's role; null when the
 * server runs without authentication (everyone may do everything, as before it existed).
 */
export function authorize(
  auth: AuthSource | null,
  request: ExchangeRequest,
  required: AccessRole,
): Identity | null {
  if (auth === null) return null;
  const identity = identify(auth.table, request);
  if (!roleAllows(identity.role, required)) {
    throw new HttpError(
      403,
      'forbidden',
      `${identity.name} has role ${identity.role}; this needs ${required}`,
      { identity: identity.name, role: identity.role, required },
    );
  }
  return identity;
}

/** Refuses a message on `topic` (empty: none) that `identity` may not publish. */
export function checkPublish(identity: Identity | null, topic: string, field: string): void {
  if (identity === null || topicAllowed(identity.publish, topic)) return;
  const what = topic === '' ? 'messages without a topic' : `topic "${topic}"`;
  throw new HttpError(403, 'forbidden', `${identity.name} may not publish ${what}`, {
    identity: identity.name,
    field,
    topic,
  });
}

/**
 * Refuses a read that `identity` may not make. An identity limited to some topics must
 * name one in its filter: a read of every topic is refused, not quietly filtered, so that a
 * reader never mistakes a filtered page for the whole order (positions would skip with no
 * `progress` to say why on /v1/messages).
 */
export function checkSubscribe(identity: Identity | null, topic: string | undefined): void {
  if (identity === null || identity.subscribe === null) return;
  if (topic === undefined) {
    throw new HttpError(
      403,
      'forbidden',
      `${identity.name} may read only some topics; name one with ?topic= (${identity.subscribe.join(', ')})`,
      { identity: identity.name, field: 'topic' },
    );
  }
  if (topicAllowed(identity.subscribe, topic)) return;
  throw new HttpError(403, 'forbidden', `${identity.name} may not read topic "${topic}"`, {
    identity: identity.name,
    field: 'topic',
    topic,
  });
}
