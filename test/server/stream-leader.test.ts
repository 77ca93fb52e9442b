// GET /v1/stream follows the leader's log, so a node that says it lost its leader (leaderLost,
// test/broadcast/leader-watch.test.ts proves when a real node says it) gives its streams up:
// on an in-process server over a manual clock and a node double, an open stream, as events
// and as the records the binary port carries, ends with a retryable no_leader error; a new
// stream is refused with 503 no_leader while the leader is lost, and taken again once the
// node hears one; a node that keeps its leader keeps its stream open through keep-alives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServedNode } from '../../src/server/context.ts';
import { InProcessServer, type InProcessStreamAnswer } from '../../src/server/in-process.ts';
import { createServerContext } from '../../src/server/settings.ts';
import { StreamRecordReader, streamRecordsType } from '../../src/transport/stream-records.ts';
import { logger } from './cluster.ts';
import { ManualEnvironment, settle } from './manual-environment.ts';

/** A node with nothing delivered whose leader the test takes away and gives back. */
function leaderNode() {
  const listeners = new Set<() => void>();
  let lost = false;
  const node = {
    id: 'n2',
    lastPosition: 0,
    read: () => [],
    get leaderLost() {
      return lost;
    },
    onLeaderLost(listener: () => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    // Waits for a delivery that never comes, until the stream's signal aborts.
    async *deliveryRecords(options: { readonly signal: AbortSignal }) {
      const { signal } = options;
      if (!signal.aborted) {
        await new Promise((aborted) => signal.addEventListener('abort', aborted, { once: true }));
      }
    },
  } as unknown as ServedNode;
  return {
    node,
    listenerCount: () => listeners.size,
    lose() {
      lost = true;
      for (const listener of [...listeners]) listener();
    },
    regain() {
      lost = false;
    },
  };
}

const keepAliveIntervalMs = 1_000;

function serverOn(environment: ManualEnvironment, node: ServedNode): InProcessServer {
  return new InProcessServer(
    createServerContext({ node, logger, environment, keepAliveIntervalMs }),
  );
}

interface OpenedStream {
  readonly answer: InProcessStreamAnswer;
  readonly chunks: Uint8Array[];
  readonly ends: boolean[];
  readonly text: () => string;
}

async function openStream(server: InProcessServer, accept: string): Promise<OpenedStream> {
  const chunks: Uint8Array[] = [];
  const ends: boolean[] = [];
  const answer = await server.handleStream(
    { method: 'GET', url: '/v1/stream?from=1', headers: { accept }, body: null },
    new AbortController().signal,
    { data: (bytes) => chunks.push(Uint8Array.from(bytes)), end: (clean) => ends.push(clean) },
  );
  const text = () => Buffer.concat(chunks).toString('utf8');
  return { answer, chunks, ends, text };
}

/** The error items of a stream of records. */
function recordErrors(chunks: readonly Uint8Array[]): Record<string, unknown>[] {
  const reader = new StreamRecordReader();
  const errors: Record<string, unknown>[] = [];
  for (const chunk of chunks) {
    reader.push(chunk, (record) => {
      if (record.kind === 'error') errors.push(JSON.parse(record.json));
    });
  }
  return errors;
}

test('an open event stream ends with a no_leader error event when the node loses its leader', async () => {
  const environment = new ManualEnvironment();
  const double = leaderNode();
  const server = serverOn(environment, double.node);
  const stream = await openStream(server, 'text/event-stream');
  assert.equal(stream.answer.kind, 'stream');
  await environment.advance(keepAliveIntervalMs * 5);
  assert.deepEqual(stream.ends, [], 'a node with its leader keeps the stream');
  assert.match(stream.text(), /^:/m, 'keep-alives flow meanwhile');
  assert.equal(double.listenerCount(), 1, 'the stream watches the leader');
  double.lose();
  await settle();
  assert.deepEqual(stream.ends, [true], 'ended cleanly, after saying why');
  const event = /event: error\ndata: (.*)\n\n$/.exec(stream.text());
  assert.ok(event !== null, `an error event ends the stream: ${stream.text()}`);
  const fields = JSON.parse(event[1] as string);
  assert.equal(fields.error, 'no_leader');
  assert.equal(double.listenerCount(), 0, 'the ended stream stopped watching');
  await server.close();
});

test('a stream of records (the binary port) ends with a no_leader error record', async () => {
  const environment = new ManualEnvironment();
  const double = leaderNode();
  const server = serverOn(environment, double.node);
  const stream = await openStream(server, streamRecordsType);
  assert.equal(
    stream.answer.kind === 'stream' && stream.answer.headers['content-type'],
    streamRecordsType,
  );
  double.lose();
  await settle();
  assert.deepEqual(stream.ends, [true]);
  assert.deepEqual(
    recordErrors(stream.chunks).map((fields) => fields.error),
    ['no_leader'],
  );
  await server.close();
});

test('while the leader is lost a new stream is refused with 503 no_leader; then taken again', async () => {
  const environment = new ManualEnvironment();
  const double = leaderNode();
  const server = serverOn(environment, double.node);
  double.lose();
  const refused = await openStream(server, 'text/event-stream');
  assert.equal(refused.answer.kind, 'whole');
  const response = refused.answer.kind === 'whole' ? refused.answer.response : null;
  assert.equal(response?.status, 503);
  assert.equal(response?.headers['retry-after'], '1', 'retryable, as every 503');
  assert.equal(JSON.parse(response?.body ?? '{}').error, 'no_leader');
  double.regain();
  const taken = await openStream(server, 'text/event-stream');
  assert.equal(taken.answer.kind, 'stream', 'a node with a leader again serves streams');
  await environment.advance(keepAliveIntervalMs * 3);
  assert.deepEqual(taken.ends, []);
  await server.close();
});
