/**
 * A scripted fake node for SDK subscription tests (node:http on 127.0.0.1): it answers each
 * GET /v1/stream with the next script, then with `afterwards`, and anything else (the SDK's
 * probe of the node's protocols) with a 503, as a node that is down.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamRecordWriter, streamRecordsType } from '../../src/transport/stream-records.ts';

/** What a fake node does with one stream request. */
export type StreamScript =
  | {
      readonly events: readonly string[];
      /**
       * After the events: end the stream (true), hold it open (false), end it a little later
       * with a no_leader error event, as a node that lost its leader does, or send that error
       * in the same write as the events (`no_leader_with_events`), so that one read holds both.
       */
      readonly end: boolean | 'no_leader' | 'no_leader_with_events';
    }
  /**
   * These positions as stream records (transport/stream-records.ts, the format a node sends
   * to a client that accepts it) rather than events, then the no_leader error item in the
   * same write, so that one read holds them all; or the stream held open after them (false).
   */
  | {
      readonly recordPositions: readonly number[];
      readonly end: false | 'no_leader_with_records';
      /** The payload of each position, in order (default: the position as JSON text). */
      readonly recordPayloads?: readonly Uint8Array[];
    }
  /** A 503 with this error code, to come back at once (Retry-After 0). */
  | { readonly refuse: string };

export interface FakeStreamNode {
  readonly url: string;
  /** The Last-Event-ID header of each stream request, in order (null when absent). */
  readonly lastEventIds: (string | null)[];
  close(): Promise<void>;
}

const noLeaderJson = JSON.stringify({ error: 'no_leader', message: 'no leader heard' });

export const noLeaderEvent = `event: error\ndata: ${noLeaderJson}\n\n`;

/** How long after its events a script ending with no_leader sends the error. */
const noLeaderAfterMs = 50;

export async function fakeStreamNode(
  scripts: StreamScript[],
  afterwards: StreamScript = { refuse: 'node_stopped' },
): Promise<FakeStreamNode> {
  const lastEventIds: (string | null)[] = [];
  const open = new Set<ServerResponse>();
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const stream = request.url?.startsWith('/v1/stream') === true;
    if (stream) lastEventIds.push((request.headers['last-event-id'] as string | undefined) ?? null);
    const script = stream ? (scripts.shift() ?? afterwards) : { refuse: 'node_stopped' };
    if ('refuse' in script) {
      response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
      response.end(JSON.stringify({ error: script.refuse, message: 'scripted' }));
      return;
    }
    if ('recordPositions' in script) {
      response.writeHead(200, { 'content-type': streamRecordsType });
      const writer = new StreamRecordWriter();
      for (const [at, position] of script.recordPositions.entries()) {
        const payload = script.recordPayloads?.[at] ?? Buffer.from(JSON.stringify(position));
        writer.message({
          position,
          term: 1,
          clientId: 'c',
          seq: position,
          topic: '',
          logTimeMs: 1000 + position,
          payload,
        });
      }
      if (script.end === false) {
        for (const chunk of writer.take()) response.write(chunk);
        open.add(response);
        return;
      }
      writer.error(noLeaderJson);
      response.end(Buffer.concat(writer.take()));
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    if (script.end === 'no_leader_with_events') {
      response.end(script.events.join('') + noLeaderEvent);
      return;
    }
    for (const event of script.events) response.write(event);
    if (script.end === true) {
      response.end();
      return;
    }
    open.add(response);
    if (script.end === 'no_leader') {
      setTimeout(() => {
        open.delete(response);
        response.end(noLeaderEvent);
      }, noLeaderAfterMs);
    }
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    lastEventIds,
    close: async () => {
      for (const response of open) response.destroy();
      server.closeAllConnections();
      await new Promise((closed) => server.close(closed));
    },
  };
}
