// The binary port's connection rules on three in-process nodes whose leader grants a window
// of two requests: the welcome announces it; a third unanswered request, or an id already
// unanswered, ends that connection with window_exceeded or request_id_in_use (requests a
// node holds for a session's gap stay unanswered, so the window is really full); an open
// stream holds its slot of the window until its streamEnd, and calls go on beside it; the
// SDK queues calls past the window instead of breaking it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { waitFor } from '../support/ports.ts';
import { RawConnection } from './binary-connection.ts';
import { type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;
let port = 0;

before(async () => {
  cluster = await startHttpCluster({ clientWindowRequests: 2 });
  const leader = await cluster.leader();
  port = Number(new URL(await leader.http.listenBinary('127.0.0.1:0')).port);
});

after(async () => {
  await cluster.close();
});

/** A connection whose session `client` has seq 1 delivered, so later seqs past a gap wait. */
async function withSession(client: string): Promise<RawConnection> {
  const connection = new RawConnection(port);
  connection.send({ type: 'hello', requestId: 0, token: '' });
  const welcome = await connection.frame((frame) => frame.type === 'welcome');
  assert.equal(welcome.type === 'welcome' && welcome.windowRequests, 2);
  connection.post(1, '/v1/broadcast', { payload: 1, client, seq: 1 });
  assert.equal((await connection.answer(1)).status, 200);
  return connection;
}

test('a request past the granted window ends the connection with window_exceeded', async () => {
  const connection = await withSession('window');
  connection.post(2, '/v1/broadcast', { payload: 3, client: 'window', seq: 3 });
  connection.post(3, '/v1/broadcast', { payload: 4, client: 'window', seq: 4 });
  connection.post(4, '/v1/broadcast', { payload: 5, client: 'window', seq: 5 });
  const goAway = await connection.frame((frame) => frame.type === 'goAway');
  assert.equal(goAway.type === 'goAway' && goAway.code, 'window_exceeded');
  assert.equal(goAway.requestId, 4);
  await waitFor(() => connection.closed, 'the connection closed');
});

test('an id still unanswered ends the connection with request_id_in_use', async () => {
  const connection = await withSession('reused');
  connection.post(2, '/v1/broadcast', { payload: 3, client: 'reused', seq: 3 });
  connection.post(2, '/v1/broadcast', { payload: 4, client: 'reused', seq: 4 });
  const goAway = await connection.frame((frame) => frame.type === 'goAway');
  assert.equal(goAway.type === 'goAway' && goAway.code, 'request_id_in_use');
  await waitFor(() => connection.closed, 'the connection closed');
});

test('an open stream holds a slot of the window until its streamEnd; calls go on beside it', async () => {
  const connection = await withSession('streams');
  connection.get(5, '/v1/stream?from=1');
  const head = await connection.frame((frame) => frame.type === 'streamHead');
  assert.equal(head.type === 'streamHead' && head.status, 200);
  connection.post(6, '/v1/broadcast', { payload: 2, client: 'streams', seq: 2 });
  assert.equal((await connection.answer(6)).status, 200);
  // Once the stream ended its slot is free: a call held for a gap and the one it waits for fit.
  connection.send({ type: 'cancel', requestId: 5 });
  await connection.frame((frame) => frame.type === 'streamEnd' && frame.requestId === 5);
  connection.post(7, '/v1/broadcast', { payload: 4, client: 'streams', seq: 4 });
  connection.post(8, '/v1/broadcast', { payload: 3, client: 'streams', seq: 3 });
  assert.equal((await connection.answer(8)).status, 200);
  assert.equal((await connection.answer(7)).status, 200);
  assert.equal(connection.closed, false);
  connection.close();
});

test('a stream past the granted window ends the connection with window_exceeded', async () => {
  const connection = await withSession('streamwindow');
  for (const requestId of [5, 6, 7]) {
    connection.get(requestId, '/v1/stream?from=1');
  }
  const goAway = await connection.frame((frame) => frame.type === 'goAway');
  assert.equal(goAway.type === 'goAway' && goAway.code, 'window_exceeded');
  assert.equal(goAway.requestId, 7);
});

test('the SDK keeps to the window: calls past it wait their turn, none is refused', async () => {
  const client = connect({ endpoints: [`abcast://127.0.0.1:${port}`], batching: false });
  try {
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, at) => client.broadcast({ at })),
    );
    const positions = answers.map((answer) => answer.position);
    assert.deepEqual(
      positions,
      positions.map((_, at) => (positions[0] as number) + at),
      'dense, in issue order',
    );
  } finally {
    client.close();
  }
});
