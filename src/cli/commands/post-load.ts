/**
 * One POST /v1/broadcast per message on kept-alive connections: the load `abcast bench
 * --protocol http` and `bench:compare`'s POST row put on a node, as any HTTP client would.
 *
 * undici's pool, one request at a time on each connection (no pipelining, so each
 * connection behaves as a browser's or curl's), rather than node:http's agent: the load
 * generator shares the machine with the three nodes it measures, and every microsecond it
 * spends is one the nodes do not get. Against a bare node:http server on this machine the
 * agent cost 55–84 µs of client CPU a request, the pool 39–42 µs.
 */
import { Pool } from 'undici';

export interface PostLoad {
  /** Sends `body` once; fulfilled on a 200, rejected on anything else. */
  readonly send: () => Promise<void>;
  /** Closes every connection, in-flight requests included. */
  readonly close: () => Promise<void>;
}

/** The client, as the race's results name it. */
export const postLoadClient = 'undici';

const jsonHeaders = { 'content-type': 'application/json' };

/** A request gets no answer within this: a node that stopped answering fails the message. */
const answerTimeoutMs = 30_000;

export interface PostLoadOptions {
  /** `http://host:port` of the node. */
  readonly origin: string;
  /** Kept-alive connections, opened as the load needs them. */
  readonly connectionCount: number;
  /** The request body, sent as it is for every message. */
  readonly body: string;
}

export function openPostLoad({ origin, connectionCount, body }: PostLoadOptions): PostLoad {
  const pool = new Pool(origin, {
    connections: connectionCount,
    pipelining: 1,
    headersTimeout: answerTimeoutMs,
    bodyTimeout: answerTimeoutMs,
  });
  const send = async (): Promise<void> => {
    const answer = await pool.request({
      path: '/v1/broadcast',
      method: 'POST',
      headers: jsonHeaders,
      body,
    });
    // Read to the end either way: an unread body holds its connection.
    await answer.body.dump();
    if (answer.statusCode !== 200) {
      throw new Error(`POST /v1/broadcast answered ${answer.statusCode}`);
    }
  };
  return { send, close: () => pool.destroy() };
}
