// Subscriptions over the binary client port, against a real `abcast start --binary`
// process: GET /v1/stream answers a streamHead, its events in streamData frames and, once
// cancelled, a streamEnd that frees the request id; a stream the node refuses is a whole
// answer with HTTP's status; the SDK subscribes through an abcast:// endpoint alone, reads
// history and live messages in order, and broadcasts while it reads (a stream has its own
// connection, so a reader that falls behind never holds back its broadcasts' answers).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import type { StreamDataFrame } from '../../src/transport/client-frames.ts';
import { StreamRecordReader, streamRecordsType } from '../../src/transport/stream-records.ts';
import { type BinaryNode, startBinaryNode } from '../support/binary-node.ts';
import { waitFor } from '../support/ports.ts';
import { RawConnection } from './binary-connection.ts';

let node: BinaryNode;
let binaryPort = 0;
let binaryUrl = '';
let httpUrl = '';

before(async () => {
  node = await startBinaryNode({
    name: 'binary-stream',
    flags: ['--segment-bytes', String(1 << 20)],
  });
  ({ binaryPort, binaryUrl, httpUrl } = node);
});

async function binaryRequestCount(): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  return Number(/^abcast_binary_requests_total (\d+)$/m.exec(text)?.[1]);
}

after(() => node.stop());

function streamText(connection: RawConnection, requestId: number): string {
  return connection.frames
    .filter(
      (frame): frame is StreamDataFrame =>
        frame.type === 'streamData' && frame.requestId === requestId,
    )
    .map((frame) => Buffer.from(frame.data).toString('utf8'))
    .join('');
}

describe('streams over the binary client port', () => {
  test('the SDK subscribes through an abcast:// endpoint: history, then live, in order', async () => {
    const client = connect({ endpoints: [binaryUrl] });
    try {
      for (let n = 1; n <= 50; n++) await client.broadcast({ n }, { topic: 'before' });
      const seen: { position: number; payload: unknown; topic: string | null }[] = [];
      const reading = (async () => {
        for await (const message of client.subscribe({ from: 1 })) {
          seen.push(message);
          // Broadcasting while reading: the answer comes on another connection.
          if (message.position === 25) await client.broadcast({ n: 'from-the-reader' });
          if (seen.length === 101) return;
        }
      })();
      await waitFor(() => seen.length >= 50, 'the history read', 20_000);
      for (let n = 51; n <= 100; n++) await client.broadcast({ n }, { topic: 'after' });
      await reading;
      assert.deepEqual(
        seen.map((message) => message.position),
        Array.from({ length: 101 }, (_, at) => at + 1),
      );
      const numbers = seen.map((message) => (message.payload as { n: unknown }).n);
      assert.deepEqual(
        numbers.slice(0, 50),
        Array.from({ length: 50 }, (_, at) => at + 1),
      );
      assert.ok(numbers.includes('from-the-reader'));
      assert.deepEqual(
        numbers.filter((n) => typeof n === 'number' && n > 50),
        Array.from({ length: 50 }, (_, at) => at + 51),
      );
      assert.equal(seen[0]?.topic, 'before');
    } finally {
      client.close();
    }
  });

  test('a stream is a streamHead, streamData frames and, once cancelled, a streamEnd', async () => {
    const connection = new RawConnection(binaryPort);
    await connection.hello('');
    connection.get(5, '/v1/stream?from=1');
    const head = await connection.frame(
      (frame) => frame.type === 'streamHead' && frame.requestId === 5,
    );
    assert.equal(head.type === 'streamHead' && head.status, 200);
    assert.match(
      head.type === 'streamHead' ? (head.headers['content-type'] ?? '') : '',
      /text\/event-stream/,
    );
    await waitFor(() => /\nid: 1\n/.test(streamText(connection, 5)), 'the first event');
    assert.match(streamText(connection, 5), /data: \{"index":1,/);
    connection.send({ type: 'cancel', requestId: 5 });
    await connection.frame((frame) => frame.type === 'streamEnd' && frame.requestId === 5);
    // The id is free again: a new call may use it, and is answered under it.
    connection.get(5, '/v1/status');
    const status = await connection.answer(5);
    assert.equal(status.status, 200);
    assert.equal(status.body.id, 'n1');
    assert.equal(connection.closed, false);
    connection.close();
  });

  test('asked for records, a stream spans many streamData frames of whole items, read in order once', {
    timeout: 120_000,
  }, async () => {
    // About 3 MB of items: a dozen frames of 256 KiB or so.
    const client = connect({ endpoints: [binaryUrl], inFlightMax: 512 });
    const payload = 'r'.repeat(200);
    const total = 12_000;
    const start = (await (await fetch(`${httpUrl}/v1/status`)).json()).deliveredIndex + 1;
    try {
      await Promise.all(Array.from({ length: total }, () => client.broadcast(payload)));
      const connection = new RawConnection(binaryPort);
      await connection.hello('');
      connection.send({
        type: 'request',
        requestId: 7,
        method: 'GET',
        path: `/v1/stream?from=${start}`,
        headers: { accept: streamRecordsType },
        body: new Uint8Array(0),
      });
      const head = await connection.frame(
        (frame) => frame.type === 'streamHead' && frame.requestId === 7,
      );
      assert.equal(head.type === 'streamHead' && head.headers['content-type'], streamRecordsType);
      const positions: number[] = [];
      const reader = new StreamRecordReader();
      let frameCount = 0;
      await waitFor(
        () => {
          for (const frame of connection.frames.splice(0)) {
            if (frame.type !== 'streamData' || frame.requestId !== 7) continue;
            frameCount++;
            reader.push(frame.data, (record) => {
              if (record.kind === 'message') positions.push(record.position);
            });
            // The node cuts frames between items.
            assert.equal(reader.hasPartialItem, false);
          }
          return positions.length >= total;
        },
        'every item',
        60_000,
      );
      connection.close();
      assert.ok(frameCount >= 4, `${frameCount} frames`);
      assert.deepEqual(
        positions.slice(0, total),
        Array.from({ length: total }, (_, at) => start + at),
      );
      // The SDK reads the same positions, through its own stream, exactly once each.
      let expected = start;
      for await (const message of client.subscribe({ from: start })) {
        assert.equal(message.position, expected);
        assert.equal(message.payload, payload);
        if (expected++ === start + total - 1) break;
      }
    } finally {
      client.close();
    }
  });

  test('a stream the node refuses is a whole answer with the HTTP status and error', async () => {
    const connection = new RawConnection(binaryPort);
    await connection.hello('');
    connection.get(9, '/v1/stream?from=0');
    const answer = await connection.answer(9);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error, 'invalid_argument');
    assert.ok(!connection.frames.some((frame) => frame.type === 'streamHead'));
    connection.close();
  });

  test('an SDK given the HTTP endpoint moves to the binary port the node offers; protocol http stays', async () => {
    const plain = connect({ endpoints: [httpUrl], protocol: 'http' });
    const before = await binaryRequestCount();
    for (let n = 0; n < 20; n++) await plain.broadcast({ plain: n });
    plain.close();
    assert.equal(await binaryRequestCount(), before, 'protocol http never reaches the port');
    const client = connect({ endpoints: [httpUrl] });
    try {
      // The first calls may go over HTTP while the client learns where the port is.
      await waitFor(
        async () => {
          await client.broadcast({ upgraded: true });
          return (await binaryRequestCount()) > before + 1;
        },
        'broadcasts over the binary port',
        20_000,
      );
      const seen: number[] = [];
      for await (const message of client.subscribe({ from: 1 })) {
        seen.push(message.position);
        if (seen.length === 3) break;
      }
      assert.deepEqual(seen, [1, 2, 3]);
    } finally {
      client.close();
    }
  });

  test('a key travels over the binary port like over HTTP, and comes back on the stream', async () => {
    const client = connect({ endpoints: [binaryUrl] });
    try {
      const answer = await client.broadcast({ order: 7 }, { key: 'order-7' });
      for await (const message of client.subscribe({ from: answer.position as number })) {
        assert.equal((message as { key?: string }).key, 'order-7');
        break;
      }
    } finally {
      client.close();
    }
  });
});
