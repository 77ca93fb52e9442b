// A run's payloads are stored as the bytes that came in the broadcastRun frame, not parsed
// and serialised again: spaces, escapes and number spellings stay as sent; only JSON with a
// line break between tokens is re-encoded (compactly), so that no stored payload holds a
// raw CR or LF. Three nodes in this process, the leader's binary port, its log read back.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunResult } from '../../src/transport/client-frames.ts';
import { RawConnection } from './binary-connection.ts';
import { type ClusterMember, type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;
let leader: ClusterMember;
let connection: RawConnection;

before(async () => {
  cluster = await startHttpCluster();
  leader = await cluster.leader();
  const url = await leader.http.listenBinary('127.0.0.1:0');
  connection = new RawConnection(Number(new URL(url).port));
  await connection.hello('');
});

after(async () => {
  connection.close();
  await cluster.close();
});

test('payload bytes are stored as they came, line breaks between tokens re-encoded', async () => {
  const sent = [' {"a" : [1, 2.50, 1e3]} ', '"\\u0041\\n"', '\t-0', '{\r\n"b":\n[true,\nnull]}'];
  connection.run(1, {
    clientId: 'stored',
    firstSeq: 1,
    messages: sent.map((payload) => ({ payload })),
  });
  const answer = await connection.runAnswer(1);
  assert.ok('results' in answer, JSON.stringify(answer));
  const positions = answer.results.map((result: RunResult) => {
    assert.equal(result.kind, 'ok');
    return result.kind === 'ok' ? (result.position as number) : 0;
  });
  const stored = positions.map((position) =>
    Buffer.from(leader.node.read(position, 1)[0]!.payload).toString('utf8'),
  );
  assert.deepEqual(stored, [sent[0], sent[1], sent[2], '{"b":[true,null]}']);
});
