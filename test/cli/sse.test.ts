// `abcast tail`'s Server-Sent Events parser, in process: events split across chunks at any
// byte come out whole and once, comments and keep-alives are skipped, CRLF line ends work.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSse } from '../../src/client/sse.ts';

const stream =
  'retry: 1000\n\nid: 1\ndata: {"index":1}\n\n: keep-alive\n\r\nid: 2\r\ndata: {"index":2}\r\n\r\n' +
  'event: error\ndata: {"error":"node_stopped"}\n\n';

test('events come out whole whatever the chunking', () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    const seen: string[] = [];
    const onEvent = (event: { id?: string; event?: string; data: string[] }) =>
      seen.push(`${event.event ?? 'message'}:${event.id ?? ''}:${event.data.join('\n')}`);
    const rest = parseSse(stream.slice(0, cut), onEvent);
    assert.equal(parseSse(rest + stream.slice(cut), onEvent), '');
    assert.deepEqual(seen, [
      'message:1:{"index":1}',
      'message:2:{"index":2}',
      'error::{"error":"node_stopped"}',
    ]);
  }
});
