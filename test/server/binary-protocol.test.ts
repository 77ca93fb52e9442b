// The binary client protocol against a real `abcast start --auth --binary` process: a
// broadcast with a session answers 200, its retry is a duplicate at the same position; the
// session rules are HTTP's (another identity gets session_forbidden, another nonce
// session_conflict, no token 401); pipelined requests are answered as they finish, each
// matched by its request id (a seq held for its gap answers after a later status call); a
// forged or oversized frame closes its own connection with a goAway code while another
// connection goes on; the SDK broadcasts through an abcast:// endpoint; /v1/status says
// where the port is.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import { connect } from '../../src/client/index.ts';
import { tokenSha256Hex } from '../../src/server/auth.ts';
import { encodeClientFrame } from '../../src/transport/client-frames.ts';
import { type BinaryNode, startBinaryNode } from '../support/binary-node.ts';
import { waitFor } from '../support/ports.ts';
import { RawConnection } from './binary-connection.ts';

const tokens = { writer: newToken(), bob: newToken() };
let node: BinaryNode;
let binaryPort = 0;
let binaryUrl = '';

before(async () => {
  const identities = Object.entries(tokens).map(([name, token]) => ({
    name,
    role: 'write',
    tokenSha256: tokenSha256Hex(token),
  }));
  node = await startBinaryNode({
    name: 'binary',
    writeAuth: (authPath) => writeFile(authPath, JSON.stringify({ identities })),
    flags: ['--segment-bytes', String(1 << 20)],
  });
  ({ binaryPort, binaryUrl } = node);
  const status = await fetch(`${node.httpUrl}/v1/status`, {
    headers: { authorization: `Bearer ${tokens.writer}` },
  });
  assert.equal(((await status.json()) as { binary: string }).binary, binaryUrl);
});

after(() => node.stop());

describe('the binary client port', () => {
  test('a session broadcast answers its position, and its retry is a duplicate there', async () => {
    const connection = new RawConnection(binaryPort);
    await connection.hello(tokens.writer);
    const message = { payload: { n: 1 }, client: 'binary-a', seq: 1 };
    // The single node needs a moment to lead: a 503 before that is retried as a client would.
    let first = { status: 0, body: {} as Record<string, unknown> };
    for (let requestId = 1; first.status !== 200; requestId++) {
      connection.post(requestId, '/v1/broadcast', message);
      first = await connection.answer(requestId);
      assert.ok(first.status === 200 || first.status === 503, JSON.stringify(first.body));
    }
    assert.equal(first.body.duplicate, false);
    connection.post(1000, '/v1/broadcast', message);
    const again = await connection.answer(1000);
    assert.equal(again.status, 200);
    assert.equal(again.body.duplicate, true);
    assert.equal(again.body.index, first.body.index);
    connection.close();
  });

  test('session rules are those of HTTP: forbidden to another identity, conflict to another nonce, 401 without a token', async () => {
    const writer = new RawConnection(binaryPort);
    await writer.hello(tokens.writer);
    writer.post(1, '/v1/broadcast', { payload: 'mine', client: 'owned', seq: 1, nonce: 'aaaa' });
    assert.equal((await writer.answer(1)).status, 200);
    writer.post(2, '/v1/broadcast', { payload: 'other', client: 'owned', seq: 2, nonce: 'bbbb' });
    const conflict = await writer.answer(2);
    assert.equal(conflict.status, 409, JSON.stringify(conflict.body));
    assert.equal(conflict.body.error, 'session_conflict');
    const bob = new RawConnection(binaryPort);
    await bob.hello(tokens.bob);
    bob.post(1, '/v1/broadcast', { payload: 'theirs', client: 'owned', seq: 2 });
    const forbidden = await bob.answer(1);
    assert.equal(forbidden.status, 403, JSON.stringify(forbidden.body));
    assert.equal(forbidden.body.error, 'session_forbidden');
    const anonymous = new RawConnection(binaryPort);
    await anonymous.hello('');
    anonymous.post(1, '/v1/broadcast', { payload: 'x' });
    const refused = await anonymous.answer(1);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error, 'unauthorized');
    for (const connection of [writer, bob, anonymous]) connection.close();
  });

  test('pipelined requests are answered as they finish, matched by request id', async () => {
    const connection = new RawConnection(binaryPort);
    await connection.hello(tokens.writer);
    // A session's seq 3 before its 2: the node holds it for the gap, so the status call sent
    // after it answers first, and seq 3 answers once seq 2 is in, one position after it.
    connection.post(6, '/v1/broadcast', { payload: 'zeroth', client: 'piped', seq: 1 });
    assert.equal((await connection.answer(6)).status, 200);
    connection.post(7, '/v1/broadcast', { payload: 'second', client: 'piped', seq: 3 });
    connection.get(8, '/v1/status');
    const status = await connection.answer(8);
    assert.equal(status.status, 200);
    assert.equal(status.body.id, 'n1');
    const early = connection.frames.find(
      (frame) => frame.type === 'answer' && frame.requestId === 7,
    );
    assert.equal(
      early,
      undefined,
      `the held seq is not answered before its gap is filled: ${early?.type === 'answer' ? Buffer.from(early.body).toString() : ''}`,
    );
    connection.post(9, '/v1/broadcast', { payload: 'first', client: 'piped', seq: 2 });
    const first = await connection.answer(9);
    const second = await connection.answer(7);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(second.body.index, (first.body.index as number) + 1);
    const answerIds = connection.frames
      .filter((frame) => frame.type === 'answer')
      .map((frame) => frame.requestId);
    assert.equal(answerIds.indexOf(8) < answerIds.indexOf(7), true, 'out of order, by id');
    connection.close();
  });

  test('a forged or oversized frame closes only its own connection, with a code', async () => {
    const bystander = new RawConnection(binaryPort);
    await bystander.hello(tokens.writer);
    const oversized = new RawConnection(binaryPort);
    await oversized.hello(tokens.writer);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(0xffff_fff0);
    oversized.send(prefix);
    const tooLarge = await oversized.frame((frame) => frame.type === 'goAway');
    assert.equal(tooLarge.type === 'goAway' && tooLarge.code, 'frame_too_large');
    await waitFor(() => oversized.closed, 'the oversized connection closed');
    const forged = new RawConnection(binaryPort);
    const hello = encodeClientFrame({ type: 'hello', requestId: 0, token: '' });
    hello[4] = 9; // a version nobody speaks
    forged.send(hello);
    const version = await forged.frame((frame) => frame.type === 'goAway');
    assert.equal(version.type === 'goAway' && version.code, 'version_unsupported');
    await waitFor(() => forged.closed, 'the forged connection closed');
    const early = new RawConnection(binaryPort);
    early.post(1, '/v1/broadcast', { payload: 'x' });
    const noHello = await early.frame((frame) => frame.type === 'goAway');
    assert.equal(noHello.type === 'goAway' && noHello.code, 'hello_expected');
    // The bystander's connection goes on.
    bystander.post(1, '/v1/broadcast', { payload: 'still here', client: 'bystander', seq: 1 });
    assert.equal((await bystander.answer(1)).status, 200);
    assert.equal(bystander.closed, false);
    for (const connection of [bystander, oversized, forged, early]) connection.close();
  });

  test('the SDK broadcasts through an abcast:// endpoint, in order, exactly once', async () => {
    const client = connect({ endpoints: [binaryUrl], token: tokens.writer });
    try {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, at) => client.broadcast({ at })),
      );
      const positions = answers.map((answer) => answer.position);
      for (let at = 1; at < positions.length; at++) {
        assert.ok((positions[at] as number) > (positions[at - 1] as number), 'issue order');
      }
      assert.ok(answers.every((answer) => !answer.duplicate));
    } finally {
      client.close();
    }
  });
});
