// PeerReads over a scripted HttpExchange: a peer that has not applied the position yet (an
// empty page) or fails (5xx, no answer) passes the request on to the next peer, and the one
// that held the page is asked first next time; a page whose positions do not start where
// asked is refused, never kept.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HttpExchange } from '../../src/client/exchange.ts';
import { encodeRecordsPage, PeerReads } from '../../src/server/peers.ts';
import { storedMessage } from '../support/stored-message.ts';

/** Each peer's answer to GET /v1/records, by host; the hosts asked for records, in order. */
function scripted(pages: Record<string, (from: number) => { status: number; body: string }>) {
  const asked: string[] = [];
  const exchange: HttpExchange = async (request) => {
    const url = new URL(request.url);
    // Only the records: the other peers are asked for their digest of the page too.
    if (url.pathname === '/v1/records') asked.push(url.hostname);
    const answer = url.pathname === '/v1/records' ? pages[url.hostname] : undefined;
    if (answer === undefined) throw new Error(`connect ECONNREFUSED ${url.hostname}`);
    const { status, body } = answer(Number(url.searchParams.get('from')));
    return { status, headers: {}, body };
  };
  return { exchange, asked };
}

const page = (from: number, count: number) =>
  JSON.stringify(
    encodeRecordsPage(
      from,
      Array.from({ length: count }, (_, at) => storedMessage(from + at)),
    ),
  );

test('an empty page or a failure sends the request on; the peer that held it comes first', async () => {
  const { exchange, asked } = scripted({
    fresh: (from) => ({ status: 200, body: page(from, 0) }),
    failing: () => ({ status: 503, body: '{}' }),
    holder: (from) => ({ status: 200, body: page(from, 3) }),
  });
  const urls = ['http://fresh/', 'http://gone/', 'http://failing/', 'http://holder/'];
  const peers = new PeerReads(urls, exchange, 1_000);
  const first = await peers.records(5, 3);
  assert.deepEqual(
    first?.messages.map((message) => message.position),
    [5, 6, 7],
  );
  assert.deepEqual(asked, ['fresh', 'gone', 'failing', 'holder']);
  asked.length = 0;
  await peers.records(8, 3);
  assert.equal(asked[0], 'holder', 'the peer that answered last is asked first');
});

test('no peer holds it: null; a page from the wrong position: refused', async () => {
  const empty = scripted({ fresh: (from) => ({ status: 200, body: page(from, 0) }) });
  assert.equal(await new PeerReads(['http://fresh/'], empty.exchange, 1_000).records(1, 4), null);
  const shifted = scripted({ liar: (from) => ({ status: 200, body: page(from + 1, 2) }) });
  await assert.rejects(
    new PeerReads(['http://liar/'], shifted.exchange, 1_000).records(1, 2),
    /records page/,
  );
});
