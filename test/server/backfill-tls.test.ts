// Backfill from an https:// peer trusts the cluster CA, as `abcast start` with TLS sets it
// up (src/cli/commands/start.ts): the real Backfill, PeerReads and node:https exchange fetch
// the missing positions from a peer whose certificate the cluster CA signed, and keep them;
// a peer whose certificate another CA signed is refused at the handshake, and nothing of its
// answer is kept.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { nodeExchange } from '../../src/client/node-exchange.ts';
import { Backfill, type BackfillNode } from '../../src/server/backfill.ts';
import { encodeRecordsPage, PeerReads } from '../../src/server/peers.ts';
import type { StoredMessage } from '../../src/store/index.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { testCa } from '../support/certificates.ts';
import { waitFor } from '../support/ports.ts';
import { storedMessage } from '../support/stored-message.ts';

const silent = { info() {}, warn() {}, error() {} };

/** An HTTPS peer serving GET /v1/records from positions 1…`count`. */
async function peer(material: { certificatePem: string; keyPem: string }, count: number) {
  let requests = 0;
  const server: Server = createServer(
    { cert: material.certificatePem, key: material.keyPem },
    (request, response) => {
      requests++;
      const url = new URL(request.url ?? '/', 'https://peer');
      if (url.pathname !== '/v1/records') {
        response.writeHead(404).end('{}');
        return;
      }
      const from = Number(url.searchParams.get('from'));
      const limit = Number(url.searchParams.get('limit'));
      const messages: StoredMessage[] = [];
      for (let position = from; position < from + limit && position <= count; position++) {
        messages.push(storedMessage(position));
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(encodeRecordsPage(from, messages)));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `https://127.0.0.1:${port}/`, server, requests: () => requests };
}

/** A node missing positions 1…`count`, keeping what backfill gives it. */
function holeyNode(count: number): BackfillNode & { kept: StoredMessage[] } {
  const kept: StoredMessage[] = [];
  return {
    id: 'n2',
    kept,
    missingRanges: () => (kept.length < count ? [{ first: kept.length + 1, last: count }] : []),
    fill(messages) {
      for (const stored of messages) if (stored.position === kept.length + 1) kept.push(stored);
      return messages.length;
    },
  };
}

test('backfill from an https peer verifies it against the cluster CA', async (t) => {
  const clusterCa = await testCa();
  const otherCa = await testCa();
  t.after(() => Promise.all([clusterCa.remove(), otherCa.remove()]));
  const trusted = await peer(await clusterCa.node('n1'), 40);
  const foreign = await peer(await otherCa.node('n1'), 40);
  t.after(() => {
    trusted.server.close();
    foreign.server.close();
  });
  const backfillFrom = (url: string, node: BackfillNode) =>
    new Backfill({
      node,
      peers: new PeerReads([url], nodeExchange(systemEnvironment, { ca: clusterCa.caPem }), 5_000),
      environment: systemEnvironment,
      logger: silent,
      pageCount: 16,
      idleIntervalMs: 20,
    });

  const node = holeyNode(40);
  const backfill = backfillFrom(trusted.url, node);
  backfill.start();
  t.after(() => backfill.stop());
  await waitFor(() => node.missingRanges().length === 0, 'the hole filled over https');
  assert.deepEqual(
    node.kept.map((kept) => new TextDecoder().decode(kept.payload)),
    Array.from({ length: 40 }, (_, at) => `orders-${at + 1}`),
  );
  assert.equal(backfill.filledCount, 40);

  const refused = holeyNode(40);
  const refusing = backfillFrom(foreign.url, refused);
  refusing.start();
  t.after(() => refusing.stop());
  await waitFor(() => refusing.lastError !== null, 'the foreign peer refused');
  assert.equal(refused.kept.length, 0, 'nothing is kept from a peer the cluster CA did not sign');
  assert.equal(foreign.requests(), 0, 'no request reaches a peer that fails the handshake');
});
