// GET /v1/stream as stream records (accept: application/x-abcast-records), against three real
// nodes over HTTP: the SDK, which asks for records, yields the same messages as the events
// and GET /v1/messages give (sessions and anonymous messages, keys, topics, payloads that
// are JSON with odd spacing or a byte order mark, and bytes that are not JSON or not UTF-8);
// and a reader of records that stops reading holds a bounded number of bytes on the node,
// then gets every position, in order, once it reads again.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { after, before, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { StreamRecordReader, streamRecordsType } from '../../src/transport/stream-records.ts';
import { waitFor } from '../support/ports.ts';
import {
  call,
  fillPausedStream,
  type HttpCluster,
  openEvents,
  startHttpCluster,
} from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster({ keepAliveIntervalMs: 200 });
});

after(async () => {
  await cluster.close();
});

const text = (value: string) => new TextEncoder().encode(value);

test('the SDK reads records as the same messages the events and GET /v1/messages give', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const start = leader.node.status().lastPosition + 1;
  const sent: [Uint8Array, Parameters<typeof leader.node.broadcast>[1]][] = [
    [text('{"a":1}'), { clientId: 'c1', seq: 1 }],
    [text('"anonymous"'), {}],
    [text('{"k":true}'), { clientId: 'c1', seq: 2, topic: 'orders', key: 'order-7' }],
    [Uint8Array.from([0xff, 0x00, 0x41]), { topic: 'orders' }], // not UTF-8
    [text('not json'), { clientId: 'c2', seq: 1 }],
    [Uint8Array.from([0xef, 0xbb, 0xbf, ...text('{"b":2}')]), {}], // a byte order mark
    [text('{\n "c" : [1, 2] }\n'), { clientId: 'c2', seq: 2 }],
    [text('"ü \\u2028 \\n"'), { clientId: 'ç-client', seq: 1, topic: 'tópico' }],
    [text('null'), {}],
  ];
  for (const [payload, options] of sent) await leader.node.broadcast(payload, options);
  const last = start + sent.length - 1;
  const follower = await cluster.follower();
  await waitFor(() => follower.node.status().lastPosition >= last, 'the follower caught up');

  const page = await call(`${follower.url}/v1/messages?from=${start}&limit=${sent.length}`);
  assert.equal(page.status, 200);
  const expected = (page.body.messages as { index: number }[]).map(({ index, ...rest }) => ({
    position: index,
    ...rest,
  }));
  assert.equal(expected.length, sent.length);

  const client = connect({ endpoints: [follower.url], protocol: 'http' });
  const read: unknown[] = [];
  try {
    for await (const message of client.subscribe({ from: start })) {
      read.push(message);
      if (message.position === last) break;
    }
  } finally {
    client.close();
  }
  assert.deepEqual(read, expected);

  const events = await openEvents(`${follower.url}/v1/stream?from=${start}`);
  try {
    assert.match(events.headers.get('content-type') ?? '', /^text\/event-stream/);
    const fromEvents: unknown[] = [];
    while (fromEvents.length < sent.length) {
      const { index, ...rest } = JSON.parse((await events.nextMessage()).data as string);
      fromEvents.push({ position: index, ...rest });
    }
    assert.deepEqual(fromEvents, expected);
  } finally {
    events.close();
  }
});

test('a reader of records that stops reading holds a bounded number of bytes on the node', {
  timeout: 60_000,
}, async (t) => {
  const follower = await cluster.follower();
  const leader = await cluster.leader();
  const start = leader.node.status().lastPosition + 1;
  const request = get(`${follower.url}/v1/stream?from=${start}`, {
    headers: { accept: streamRecordsType },
  });
  const [res] = (await once(request, 'response')) as [IncomingMessage];
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], streamRecordsType);
  res.pause();
  const payload = text(JSON.stringify('x'.repeat(16 << 10)));
  const itemBytesMax = payload.length + 512;
  // The socket's high-water mark, one write of events, and the item that went past it.
  const boundBytes = (16 << 10) + 2 * itemBytesMax;
  const { sentCount, eventsWritten, bufferedBytesMax } = await fillPausedStream(
    leader,
    follower,
    start,
    payload,
  );
  assert.ok(bufferedBytesMax <= boundBytes, `buffered ${bufferedBytesMax} > ${boundBytes} bytes`);
  assert.ok(eventsWritten <= sentCount - 190, `${eventsWritten} items written of ${sentCount}`);
  t.diagnostic(
    `paused reader: ${sentCount} messages delivered, ${eventsWritten} written, ` +
      `at most ${bufferedBytesMax} bytes buffered`,
  );
  // Reading again gets every position, in order, none lost while paused.
  const reader = new StreamRecordReader();
  const positions: number[] = [];
  const lastPosition = start + sentCount - 1;
  const allRead = new Promise<void>((resolve, reject) => {
    res.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (record) => {
          if (record.kind !== 'message') return;
          positions.push(record.position);
          assert.equal(record.payloadEnd - record.payloadStart, payload.length);
          if (record.position === lastPosition) resolve();
        });
      } catch (error) {
        reject(error);
      }
    });
  });
  res.resume();
  await allRead;
  request.destroy();
  assert.deepEqual(
    positions,
    Array.from({ length: sentCount }, (_, at) => start + at),
  );
});
