// docs/protocol.md is enough to write a client: test/protocol/frames.ts, connection.ts and
// stream-body.ts were written from the document alone (no import from src/), and here they
// speak to a real `abcast start --auth --binary` process. Every broadcast a test makes is kept
// in a ledger with the position the node answered; a late test subscribes from position 1
// and must read back exactly that ledger, in order, over stream records and over events, and
// the last one stops the node under an open stream.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../cli/helpers.ts';
import { type BinaryNode, startBinaryNode } from '../support/binary-node.ts';
import { hangBoundMs } from '../support/ports.ts';
import { type Answer, CleanConnection, type RunAnswer } from './connection.ts';
import {
  broadcastRunFrame,
  cancelFrame,
  FieldWriter,
  frameType,
  helloFrame,
  type RunMessage,
  requestFrame,
} from './frames.ts';
import { EventReader, RecordReader, type StreamItem } from './stream-body.ts';

interface Delivered {
  readonly client: string;
  readonly seq: number;
  /** The payload as the node stores it: a run's text as sent, a JSON route's re-serialised. */
  readonly payloadText: string;
  readonly topic: string;
  readonly key: string | null;
}

const ledger = new Map<number, Delivered>();
const tokens = { writer: '', reader: '' };
let node: BinaryNode;
let binaryPort = 0;

async function createToken(authPath: string, name: string, role: string): Promise<string> {
  const created = await runCli([
    ...['token', 'create', '--auth', authPath],
    ...['--name', name, '--role', role],
  ]);
  assert.equal(created.code, 0, created.stderr);
  const token = created.stdout.trim();
  assert.match(token, /^\S+$/);
  return token;
}

before(async () => {
  node = await startBinaryNode({
    name: 'clean-room',
    writeAuth: async (authPath) => {
      tokens.writer = await createToken(authPath, 'writer', 'write');
      tokens.reader = await createToken(authPath, 'reader', 'read');
    },
  });
  binaryPort = node.binaryPort;
});

after(() => node.stop());

async function writer(): Promise<CleanConnection> {
  const connection = await CleanConnection.open(binaryPort);
  await connection.hello(tokens.writer);
  return connection;
}

function asRunAnswer(answer: RunAnswer | Answer): RunAnswer {
  if (answer.type === 'answer') assert.fail(`refused: ${answer.status} ${answer.body}`);
  return answer;
}

/** Records what the node said it delivered, so that the subscription can be checked. */
function record(
  answer: RunAnswer,
  run: { client: string; firstSeq: number; messages: readonly RunMessage[] },
): number[] {
  assert.equal(answer.results.length, run.messages.length);
  return answer.results.map((result, at) => {
    assert.ok(result.kind !== 'error', `message ${at} refused: ${JSON.stringify(result)}`);
    const message = run.messages[at] as RunMessage;
    if (result.kind === 'delivered') {
      assert.ok(!ledger.has(result.position), `position ${result.position} given twice`);
      ledger.set(result.position, {
        client: run.client,
        seq: run.firstSeq + at,
        payloadText: storedForm(message.payloadJson),
        topic: message.topic ?? '',
        key: message.key ?? null,
      });
    }
    return result.position;
  });
}

/** The document's rule: stored as it came, unless a CR or LF sits between its tokens. */
function storedForm(payloadJson: string): string {
  return /[\r\n]/.test(payloadJson) ? JSON.stringify(JSON.parse(payloadJson)) : payloadJson;
}

function oneMessage(payloadJson: string): RunMessage[] {
  return [{ payloadJson }];
}

/** A test that waits for an answer that never comes fails at the bound instead of hanging. */
const bounded = { timeout: hangBoundMs };

describe('a client written from docs/protocol.md alone', () => {
  test(
    'hello is answered by a welcome with the window, the frame bound and the node id',
    bounded,
    async () => {
      const connection = await CleanConnection.open(binaryPort);
      const welcome = await connection.hello(tokens.writer);
      assert.ok(welcome.windowRequests >= 1);
      assert.ok(welcome.frameBytesMax >= 4 * 1024 * 1024 + 64 * 1024, 'a batch body fits');
      assert.equal(welcome.nodeId, 'n1');
      const status = await connection.request({ method: 'GET', path: '/v1/status' });
      assert.equal(status.status, 200);
      assert.equal(status.headers['content-type']?.startsWith('application/json'), true);
      assert.equal(status.json.binary, `abcast://127.0.0.1:${binaryPort}`);
      connection.close();
    },
  );

  test(
    'a run of broadcasts gets dense positions, and a retry of it or of one seq is a duplicate there',
    bounded,
    async () => {
      const connection = await writer();
      const run = {
        client: 'run-a',
        firstSeq: 1,
        nonce: 'nonce-a',
        messages: [
          { payloadJson: '{"a": 1}', topic: 'orders' },
          { payloadJson: '"\\u0041"', key: 'account-7' },
          { payloadJson: '[1,2,3]', topic: 'orders', key: 'account-8' },
          { payloadJson: 'null' },
          { payloadJson: '{"b":\r\n [1, 2]}' },
        ],
      };
      const answer = asRunAnswer(await connection.broadcastRun(run));
      const positions = record(answer, run);
      const first = positions[0] as number;
      assert.deepEqual(positions, [first, first + 1, first + 2, first + 3, first + 4]);
      const retried = asRunAnswer(await connection.broadcastRun(run));
      assert.deepEqual(
        retried.results,
        answer.results.map((result) => ({ ...result, kind: 'duplicate' })),
        'each a duplicate at its position and term',
      );
      const single = await connection.request({
        method: 'POST',
        path: '/v1/broadcast',
        body: Buffer.from(
          JSON.stringify({
            payload: 'A',
            client: 'run-a',
            seq: 2,
            nonce: 'nonce-a',
            key: 'account-7',
          }),
        ),
      });
      assert.equal(single.status, 200);
      const secondResult = answer.results[1] as { term: number };
      assert.deepEqual(single.json, { index: first + 1, term: secondResult.term, duplicate: true });
      connection.close();
    },
  );

  test(
    'pipelined requests are answered as they finish, matched by request id',
    bounded,
    async () => {
      const connection = await writer();
      const session = { client: 'pipe', nonce: 'nonce-p' };
      const opening = { ...session, firstSeq: 1, messages: oneMessage('"p1"') };
      record(asRunAnswer(await connection.broadcastRun(opening)), opening);
      // Seq 3 is held until seq 2 arrives, so the status asked after it is answered first.
      const ahead = { ...session, firstSeq: 3, messages: oneMessage('"p3"') };
      let aheadSettled = false;
      const aheadAnswer = connection.broadcastRun(ahead).finally(() => {
        aheadSettled = true;
      });
      const status = await connection.request({ method: 'GET', path: '/v1/status' });
      assert.equal(status.status, 200);
      assert.equal(aheadSettled, false, 'the held broadcast is still unanswered');
      const gap = { ...session, firstSeq: 2, messages: oneMessage('"p2"') };
      const [gapPosition] = record(asRunAnswer(await connection.broadcastRun(gap)), gap);
      const [aheadPosition] = record(asRunAnswer(await aheadAnswer), ahead);
      assert.equal(
        aheadPosition,
        (gapPosition as number) + 1,
        'one session is delivered in seq order',
      );

      // A new session's seq 2 sent before its seq 1 is refused, not held, and takes no seq.
      const fresh = { client: 'pipe-fresh', nonce: 'nonce-f' };
      const second = { ...fresh, firstSeq: 2, messages: oneMessage('"f2"') };
      const [refusal] = asRunAnswer(await connection.broadcastRun(second)).results;
      assert.deepEqual(pick({ ...refusal }, 'kind', 'status', 'code', 'details'), {
        kind: 'error',
        status: 409,
        code: 'session_unknown',
        details: { expectedSeq: 1 },
      });
      const firstRun = { ...fresh, firstSeq: 1, messages: oneMessage('"f1"') };
      const [firstPosition] = record(
        asRunAnswer(await connection.broadcastRun(firstRun)),
        firstRun,
      );
      const [secondPosition] = record(asRunAnswer(await connection.broadcastRun(second)), second);
      assert.equal(secondPosition, (firstPosition as number) + 1);
      const answered = connection.received.filter((frame) => frame.type !== 'welcome');
      const ids = answered.map((frame) => ('requestId' in frame ? frame.requestId : 0));
      assert.deepEqual(ids.slice(1, 2), [3], 'the status (id 3) overtook the held run (id 2)');
      assert.ok(ids.indexOf(2) > ids.indexOf(3));
      connection.close();
    },
  );

  test(
    "the client keeps to the welcome's window, and the node ends a connection that does not",
    bounded,
    async () => {
      const connection = await writer();
      const windowRequests = connection.welcome?.windowRequests as number;
      const session = { client: 'window', nonce: 'nonce-w' };
      const opening = { ...session, firstSeq: 1, messages: oneMessage('0') };
      record(asRunAnswer(await connection.broadcastRun(opening)), opening);
      // A whole window of runs held behind the missing seq 2, then one request more: it waits
      // on this side until the window opens.
      const held = Array.from({ length: windowRequests }, (_, at) => ({
        ...session,
        firstSeq: at + 3,
        messages: oneMessage(String(at + 3)),
      }));
      const heldAnswers = held.map((run) => connection.broadcastRun(run));
      const status = connection.request({ method: 'GET', path: '/v1/status' });
      assert.equal(connection.unansweredCountMax, windowRequests);
      const filler = await writer();
      const gap = { ...session, firstSeq: 2, messages: oneMessage('2') };
      record(asRunAnswer(await filler.broadcastRun(gap)), gap);
      const answers = await Promise.all(heldAnswers);
      for (const [at, answer] of answers.entries()) {
        record(asRunAnswer(answer), held[at] as (typeof held)[number]);
      }
      assert.equal((await status).status, 200);
      assert.equal(connection.goAway, null);
      assert.equal(connection.unansweredCountMax, windowRequests);

      // The same load written without waiting: one request over the window ends the connection.
      const raw = await writer();
      const rawSession = { client: 'window-raw', nonce: 'nonce-r' };
      const rawOpening = { ...rawSession, firstSeq: 1, messages: oneMessage('0') };
      record(asRunAnswer(await raw.broadcastRun(rawOpening)), rawOpening);
      const overWindow: Buffer[] = [];
      for (let at = 0; at <= windowRequests; at++) {
        const run = { ...rawSession, firstSeq: at + 3, messages: oneMessage('0') };
        overWindow.push(broadcastRunFrame(100 + at, run));
      }
      raw.writeRaw(Buffer.concat(overWindow));
      const goAway = await raw.waitForFrame((frame) => frame.type === 'goAway');
      assert.deepEqual(pick({ ...goAway }, 'code', 'requestId'), {
        code: 'window_exceeded',
        requestId: 100 + windowRequests,
      });
      await raw.closed;
      filler.close();
      connection.close();
    },
  );

  test(
    'a refused run is an answer with the field at fault, and the connection stays open',
    bounded,
    async () => {
      const connection = await writer();
      const empty = await connection.broadcastRun({ client: 'bad', firstSeq: 1, messages: [] });
      assert.equal(empty.type, 'answer');
      assert.equal((empty as Answer).status, 400);
      assert.deepEqual(pick((empty as Answer).json, 'error', 'field'), {
        error: 'invalid_argument',
        field: 'messages',
      });
      const notJson = await connection.broadcastRun({
        client: 'bad',
        firstSeq: 1,
        messages: [{ payloadJson: '1' }, { payloadJson: '{"a":' }],
      });
      assert.equal((notJson as Answer).status, 400);
      assert.equal((notJson as Answer).json.field, 'messages[1].payload');
      const reserved = await connection.broadcastRun({
        client: '$node',
        firstSeq: 1,
        messages: oneMessage('1'),
      });
      assert.equal((reserved as Answer).status, 400);
      assert.equal((reserved as Answer).json.field, 'client');
      const badBody = await connection.request({
        method: 'POST',
        path: '/v1/broadcast',
        body: Buffer.from('{"payload":1,"client":"bad"}'),
      });
      assert.equal(badBody.status, 400);
      assert.equal(badBody.json.field, 'seq');
      const stillOpen = await connection.request({ method: 'GET', path: '/v1/status' });
      assert.equal(stillOpen.status, 200);
      connection.close();
    },
  );

  test(
    'a broken frame or rule ends that connection with the documented goAway code',
    bounded,
    async () => {
      const answerFrame = () => new FieldWriter().u16(200).u16(0).u32(0).frame(4, 9);
      const stream = requestFrame(5, { method: 'GET', path: '/v1/stream?from=1' });
      const capitalHeader = requestFrame(1, {
        method: 'GET',
        path: '/v1/status',
        headers: { Accept: 'application/json' },
      });
      const cases: Array<{
        code: string;
        requestId: number;
        bytes: (connection: CleanConnection) => Promise<Buffer>;
      }> = [
        { code: 'hello_expected', requestId: 4, bytes: async () => statusRequest(4) },
        { code: 'hello_expected', requestId: 6, bytes: async () => cancelFrame(6) },
        { code: 'version_unsupported', requestId: 0, bytes: greeted(() => statusRequest(1, 2)) },
        {
          code: 'frame_type_unknown',
          requestId: 0,
          bytes: greeted(() => new FieldWriter().frame(12, 1)),
        },
        { code: 'frame_unexpected', requestId: 9, bytes: greeted(answerFrame) },
        { code: 'frame_empty', requestId: 0, bytes: greeted(() => Buffer.alloc(4)) },
        {
          code: 'frame_malformed',
          requestId: 0,
          bytes: greeted(() => Buffer.from([0, 0, 0, 3, 1, 3, 0])),
        },
        {
          code: 'frame_malformed',
          requestId: 0,
          bytes: greeted(() => withTrailingByte(statusRequest(1))),
        },
        { code: 'frame_malformed', requestId: 0, bytes: greeted(() => capitalHeader) },
        {
          code: 'frame_malformed',
          requestId: 0,
          bytes: greeted(() => new FieldWriter().u16(200).frame(4, 9)),
        },
        {
          code: 'request_id_in_use',
          requestId: 5,
          bytes: greeted(() => Buffer.concat([stream, stream])),
        },
        { code: 'hello_repeated', requestId: 0, bytes: greeted(() => helloFrame('')) },
      ];
      const bystander = await writer();
      for (const { code, requestId, bytes } of cases) {
        const connection = await CleanConnection.open(binaryPort);
        connection.writeRaw(await bytes(connection));
        const goAway = await connection.waitForFrame((frame) => frame.type === 'goAway');
        assert.deepEqual(pick({ ...goAway }, 'code', 'requestId'), { code, requestId });
        await connection.closed;
      }
      // A cancel of an id that is not unanswered is ignored.
      bystander.writeRaw(cancelFrame(999));
      assert.equal((await bystander.request({ method: 'GET', path: '/v1/status' })).status, 200);
      bystander.close();
    },
  );

  test(
    "the token of the hello is the request's, and an authorization header overrides it",
    bounded,
    async () => {
      const anonymous = await CleanConnection.open(binaryPort);
      await anonymous.hello('');
      const refused = await anonymous.request({ method: 'GET', path: '/v1/status' });
      assert.equal(refused.status, 401);
      assert.equal(refused.json.error, 'unauthorized');
      assert.ok(refused.headers['www-authenticate'] !== undefined);
      const overridden = await anonymous.request({
        method: 'GET',
        path: '/v1/status',
        headers: { authorization: `Bearer ${tokens.reader}` },
      });
      assert.equal(overridden.status, 200);
      anonymous.close();

      const reader = await CleanConnection.open(binaryPort);
      await reader.hello(tokens.reader);
      const readerRun = { client: 'by-reader', firstSeq: 1, messages: oneMessage('1') };
      const refusedRun = await reader.broadcastRun(readerRun);
      assert.equal(refusedRun.type, 'answer');
      assert.equal((refusedRun as Answer).status, 403);
      assert.equal((refusedRun as Answer).json.error, 'forbidden');
      const writerRun = { ...readerRun, headers: { authorization: `Bearer ${tokens.writer}` } };
      record(asRunAnswer(await reader.broadcastRun(writerRun)), writerRun);
      reader.close();
    },
  );

  test(
    'a subscription from position 1 reads back every broadcast, in order, with its position',
    bounded,
    async () => {
      assert.ok(ledger.size > 0);
      const lastPosition = Math.max(...ledger.keys());
      assert.equal(ledger.size, lastPosition, 'positions are dense from 1');
      const connection = await CleanConnection.open(binaryPort);
      await connection.hello(tokens.reader);

      const refused = connection.stream({ method: 'GET', path: '/v1/stream?from=0' }, () => {});
      const refusal = await refused.started;
      assert.equal('type' in refusal && refusal.status, 400);
      await refused.ended;

      const items = await readStream(connection, lastPosition, 'application/x-abcast-records');
      const messages = items.filter((item) => item.kind === 'message');
      for (const [at, item] of messages.entries()) {
        assert.ok(item.term >= 1, 'a message carries the term of its entry');
        assert.ok(item.timeMs >= (messages[at - 1]?.timeMs ?? Date.UTC(2020, 0, 1)), 'time rises');
      }
      assert.deepEqual(
        messages.map((item) => ({
          position: item.position,
          client: item.client,
          seq: item.seq,
          payloadText: item.payload.toString('utf8'),
          topic: item.topic,
          key: item.key,
        })),
        [...ledger.entries()]
          .sort(([left], [right]) => left - right)
          .map(([position, delivered]) => ({ position, ...delivered })),
      );
      const events = await readStream(connection, lastPosition, null);
      assert.deepEqual(
        events.map((event) => [event.position, event.client, event.seq, event.payload]),
        [...ledger.entries()]
          .sort(([left], [right]) => left - right)
          .map(([position, delivered]) => [
            position,
            delivered.client,
            delivered.seq,
            JSON.parse(delivered.payloadText),
          ]),
      );
      const resumed = await readStream(
        connection,
        lastPosition,
        'application/x-abcast-records',
        lastPosition - 2,
      );
      assert.deepEqual(
        resumed.map((item) => item.position),
        [lastPosition - 1, lastPosition],
        'last-event-id resumes right after it, over from=1',
      );
      connection.close();
    },
  );

  test(
    'a node that stops ends its streams with an error event, then the connection with a goAway',
    bounded,
    async () => {
      const connection = await CleanConnection.open(binaryPort);
      await connection.hello(tokens.reader);
      const events = new EventReader();
      const errors: Array<Record<string, unknown>> = [];
      const stream = connection.stream({ method: 'GET', path: '/v1/stream?from=1' }, (data) => {
        for (const event of events.push(data)) {
          if (event.event === 'error') errors.push(JSON.parse(event.data));
        }
      });
      const head = await stream.started;
      assert.equal(head.status, 200);
      node.cli.child.kill('SIGTERM');
      await stream.ended;
      assert.deepEqual(
        errors.map((error) => error.error),
        ['node_stopped'],
      );
      const goAway = await connection.waitForFrame((frame) => frame.type === 'goAway');
      assert.deepEqual(pick({ ...goAway }, 'code', 'requestId'), {
        code: 'node_stopped',
        requestId: 0,
      });
      await connection.closed;
    },
  );
});

function pick(object: Record<string, unknown>, ...names: string[]): Record<string, unknown> {
  return Object.fromEntries(names.map((name) => [name, object[name]]));
}

function statusRequest(requestId: number, version = 1): Buffer {
  return new FieldWriter()
    .u8(1)
    .string('/v1/status')
    .u16(0)
    .u32(0)
    .frame(frameType.request, requestId, version);
}

function withTrailingByte(frame: Buffer): Buffer {
  const longer = Buffer.concat([frame, Buffer.from([0])]);
  longer.writeUInt32BE(frame.length - 4 + 1, 0);
  return longer;
}

/** The bytes come after a hello and its welcome. */
function greeted(bytes: () => Buffer): (connection: CleanConnection) => Promise<Buffer> {
  return async (connection) => {
    await connection.hello(tokens.writer);
    return bytes();
  };
}

type MessageItem = Extract<StreamItem, { kind: 'message' }>;

interface EventMessage {
  readonly position: number;
  readonly client: string;
  readonly seq: number;
  readonly payload: unknown;
}

/**
 * Reads a stream from position 1 (or after `lastEventId`) up to `lastPosition`, then cancels
 * it and waits for its end.
 */
function readStream(
  connection: CleanConnection,
  lastPosition: number,
  accept: 'application/x-abcast-records',
  lastEventId?: number,
): Promise<MessageItem[]>;
function readStream(
  connection: CleanConnection,
  lastPosition: number,
  accept: null,
  lastEventId?: number,
): Promise<EventMessage[]>;
async function readStream(
  connection: CleanConnection,
  lastPosition: number,
  accept: string | null,
  lastEventId?: number,
): Promise<Array<MessageItem | EventMessage>> {
  const read: Array<MessageItem | EventMessage> = [];
  const records = new RecordReader();
  const events = new EventReader();
  let reached = false;
  const stream = connection.stream(
    {
      method: 'GET',
      path: '/v1/stream?from=1',
      headers: {
        ...(accept === null ? {} : { accept }),
        ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }),
      },
    },
    (data) => {
      if (accept === null) {
        for (const event of events.push(data)) {
          assert.equal(event.event, 'message');
          const message = JSON.parse(event.data) as Record<string, unknown>;
          assert.equal(event.id, String(message.index));
          read.push({
            position: message.index as number,
            client: message.client as string,
            seq: message.seq as number,
            payload: message.payload,
          });
        }
      } else {
        for (const item of records.push(data)) if (item.kind === 'message') read.push(item);
        assert.equal(records.pendingBytes, 0, 'a frame holds whole items');
      }
      const last = read[read.length - 1];
      if (!reached && last !== undefined && last.position >= lastPosition) {
        reached = true;
        stream.cancel();
      }
    },
  );
  const head = await stream.started;
  assert.ok(!('type' in head), 'the stream began');
  assert.equal(head.status, 200);
  const contentType = accept ?? 'text/event-stream';
  assert.equal(head.headers['content-type']?.startsWith(contentType), true);
  await stream.ended;
  assert.equal(reached, true);
  return read;
}
