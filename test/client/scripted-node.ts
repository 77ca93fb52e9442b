/**
 * A scripted fake node for SDK tests (node:http on 127.0.0.1): it delivers each session's
 * seqs in order only, holding a seq until the one before it is delivered, as a real node
 * does, unless the test's script answers the request itself.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Body {
  readonly client: string;
  readonly seq: number;
  readonly payload: string;
}

/**
 * A fake node answering each (client, seq) through `script` (true: it answered), else
 * delivering it once its session's previous seq is; it records what it delivered.
 */
export async function scriptedNode(script: (body: Body, response: ServerResponse) => boolean) {
  const delivered: Body[] = [];
  const held: ServerResponse[] = [];
  const reply = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  };
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/broadcast') {
        reply(response, 404, { error: 'not_found', message: 'no such route' });
        return;
      }
      const body = JSON.parse(text) as Body;
      held.push(response);
      if (script(body, response)) return;
      const has = (seq: number) => delivered.some((d) => d.client === body.client && d.seq === seq);
      // A seq waits until the one before it in its session is delivered (the client times out).
      if (body.seq > 1 && !has(body.seq - 1)) return;
      const before = delivered.find((d) => d.client === body.client && d.seq === body.seq);
      if (before === undefined) delivered.push(body);
      const index = delivered.findIndex((d) => d.client === body.client && d.seq === body.seq);
      reply(response, 200, { index: index + 1, term: 1, duplicate: before !== undefined });
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    delivered,
    reply,
    close: async () => {
      for (const response of held) response.destroy();
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    },
  };
}

/** Delivered payloads in the order a node holding each session's seqs in order gives them. */
export function logOrder(delivered: readonly Body[], base: string): string[] {
  const rank = (client: string) => (client === base ? 1 : Number(client.slice(base.length + 1)));
  return [...delivered]
    .sort((a, b) => rank(a.client) - rank(b.client) || a.seq - b.seq)
    .map((body) => body.payload);
}
