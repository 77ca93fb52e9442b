// CPU per message of a run of broadcasts between the SDK's frame and the node's call into
// the runtime, both ways, in process (no sockets, no consensus: a node that answers at
// once): the batch request (JSON body, JSON answer) against the broadcastRun frame (payload
// text as bytes, compact results). Node side: decode the frame, run the route, encode the
// answer frame. Client side: lay out the request frame, decode the answer into outcomes.
// Medians over runs of process CPU time, in µs per message.
import { parseJsonObject } from '../src/server/body.ts';
import type { RouteContext, ServedNode, ServerContext } from '../src/server/context.ts';
import type { Answer } from '../src/server/exchange.ts';
import { HttpMetrics } from '../src/server/http-metrics.ts';
import { broadcastBatchRoute } from '../src/server/routes/broadcast-batch.ts';
import { broadcastRunRoute } from '../src/server/routes/broadcast-run.ts';
import {
  type ClientFrame,
  ClientFrameDecoder,
  clientFrameLimits,
  decodeClientFrame,
  encodeClientFrame,
  encodeRunAnswerOf,
  type ReceivedRun,
} from '../src/transport/client-frames.ts';
import { systemEnvironment } from '../src/util/system-environment.ts';
import { flagsOrExit, integerAtLeast, oneOf, positiveInteger } from './args.ts';

const { runCount, messageCount, payloadBytes, payloadKind } = flagsOrExit({
  usage: `node --import tsx bench/run-frames.ts [flags]
CPU per message of a run: the JSON batch request against the broadcastRun frame, in process.
  --runs N            measurements of both ways, after one to warm up; medians (default 5)
  --messages N        messages in each batch request and broadcastRun frame (default 128)
  --payload-bytes N   about this many bytes of JSON per message, at least 2 (default 256)
  --payload KIND      string: a JSON string, as \`abcast bench\` sends; object: an order's
                      record with fields (default string)`,
  options: {
    runs: { type: 'string', default: '5' },
    messages: { type: 'string', default: '128' },
    'payload-bytes': { type: 'string', default: '256' },
    payload: { type: 'string', default: 'string' },
  },
  read: (values) => ({
    runCount: positiveInteger('runs', values.runs),
    messageCount: positiveInteger('messages', values.messages),
    // A JSON string's two quotes are part of its bytes.
    payloadBytes: integerAtLeast('payload-bytes', values['payload-bytes'], 2),
    payloadKind: oneOf('payload', values.payload, ['string', 'object']),
  }),
});
const iterations = Math.ceil(200_000 / messageCount);
/** About `payloadBytes` of JSON: a string as `abcast bench` sends, or an order's record. */
function payloadText(): string {
  if (payloadKind === 'string') return JSON.stringify('x'.repeat(payloadBytes - 2));
  const order = { type: 'Order_Placed', id: 12345, price: 101.25, items: [] as unknown[] };
  while (JSON.stringify(order).length < payloadBytes) {
    order.items.push({ sku: `A-${order.items.length}`, qty: 2, gift: false });
  }
  return JSON.stringify(order);
}
const text = payloadText();
const texts = Array.from({ length: messageCount }, () => text);
const encoder = new TextEncoder();
const utf8 = new TextDecoder();

const settled = Array.from({ length: messageCount }, (_, at) => ({
  status: 'fulfilled' as const,
  value: { position: at + 1, term: 1, duplicate: false },
}));
const node = { id: 'n1', broadcastRun: async () => settled } as unknown as ServedNode;
const server = {
  node,
  settings: { payloadBytesMax: 1 << 20, bodyBytesMax: (1 << 20) + (64 << 10) },
  metrics: new HttpMetrics(),
  environment: systemEnvironment,
  logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
} as unknown as ServerContext;

/** A route context over one request body whose answer lands in `answered`. */
function contextOver(body: Uint8Array, answered: (answer: Answer) => void): RouteContext {
  return {
    server,
    request: {
      method: 'POST',
      url: '/v1/broadcast/batch',
      headers: {},
      readBody: async () => body,
    },
    response: { answerable: true, status: 200, send: answered, startStream: () => undefined },
    url: new URL('http://localhost/v1/broadcast/batch'),
    params: {},
    identity: null,
    signal: new AbortController().signal,
    readJson: async () => parseJsonObject(body),
    within: (promise: Promise<unknown>) => promise,
    startStream: () => undefined,
  } as unknown as RouteContext;
}

function batchRequest(): Buffer {
  const messages = texts.map((payload) => `{"payload":${payload}}`).join(',');
  const body = `{"client":"bench","seq":1,"nonce":"0123456789abcdef","messages":[${messages}]}`;
  return encodeClientFrame({
    type: 'request',
    requestId: 1,
    method: 'POST',
    path: '/v1/broadcast/batch',
    headers: {},
    body: encoder.encode(body),
  });
}

function runRequest(): Buffer {
  return encodeClientFrame({
    type: 'broadcastRun',
    requestId: 1,
    headers: {},
    clientId: 'bench',
    firstSeq: 1,
    nonce: '0123456789abcdef',
    messages: texts.map((payload) => ({ payload, topic: '', key: '' })),
  });
}

async function nodeSideOfBatch(frame: Buffer): Promise<Buffer> {
  const request = decodeClientFrame(frame.subarray(4)) as Extract<ClientFrame, { type: 'request' }>;
  let answer: Answer | null = null;
  await broadcastBatchRoute(contextOver(request.body.slice(), (sent) => (answer = sent)));
  const { status, body } = answer as unknown as Answer;
  return encodeClientFrame({
    type: 'answer',
    requestId: 1,
    status,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: encoder.encode(body),
  });
}

/** As the binary port reads a run off its socket and answers it. */
async function nodeSideOfRun(frame: Buffer): Promise<Buffer> {
  let run: ReceivedRun | null = null;
  const error = new ClientFrameDecoder(clientFrameLimits.frameBytesMax).pushAtNode(frame, {
    frame: () => undefined,
    run: (read) => {
      run = read;
    },
  });
  if (error !== null || run === null) throw new Error('a run frame decodes as a run');
  let answer: Buffer | null = null;
  const route = broadcastRunRoute(run, (results) => {
    answer = encodeRunAnswerOf(1, results);
  });
  await route.handler(contextOver(new Uint8Array(0), () => undefined));
  if (answer === null) throw new Error('a run is answered');
  return answer;
}

/** The client's side of a batch answer: each result as an outcome. */
function outcomesOfBatch(frame: Buffer): unknown[] {
  const answer = decodeClientFrame(frame.subarray(4)) as Extract<ClientFrame, { type: 'answer' }>;
  const { results } = JSON.parse(utf8.decode(answer.body)) as { results: { error?: string }[] };
  return results.map((value) =>
    typeof value.error === 'string' ? { kind: 'fatal' } : { kind: 'ok', value },
  );
}

function outcomesOfRun(frame: Buffer): unknown[] {
  const answer = decodeClientFrame(frame.subarray(4)) as Extract<
    ClientFrame,
    { type: 'runAnswer' }
  >;
  return answer.results.map((result) =>
    result.kind === 'ok'
      ? {
          kind: 'ok',
          value: { index: result.position, term: result.term, duplicate: result.duplicate },
        }
      : { kind: 'fatal' },
  );
}

interface Way {
  readonly name: string;
  readonly request: () => Buffer;
  readonly node: (frame: Buffer) => Promise<Buffer>;
  readonly outcomes: (frame: Buffer) => unknown[];
}

const ways: Way[] = [
  {
    name: 'batch request (JSON)',
    request: batchRequest,
    node: nodeSideOfBatch,
    outcomes: outcomesOfBatch,
  },
  { name: 'broadcastRun frame', request: runRequest, node: nodeSideOfRun, outcomes: outcomesOfRun },
];

const cpuMicros = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

async function measure(way: Way): Promise<{ client: number; node: number }> {
  let clientMicros = 0;
  let nodeMicros = 0;
  for (let at = 0; at < iterations; at++) {
    const started = cpuMicros();
    const request = way.request();
    const sent = cpuMicros();
    const answer = await way.node(request);
    const answered = cpuMicros();
    if (way.outcomes(answer).length !== messageCount) throw new Error('an outcome per message');
    clientMicros += sent - started + (cpuMicros() - answered);
    nodeMicros += answered - sent;
  }
  const messages = iterations * messageCount;
  return { client: clientMicros / messages, node: nodeMicros / messages };
}

const median = (numbers: number[]) =>
  numbers.sort((a, b) => a - b)[Math.floor(numbers.length / 2)] as number;

const samples = new Map(
  ways.map((way) => [way.name, { client: [] as number[], node: [] as number[] }]),
);
for (const way of ways) await measure(way); // warm-up
for (let run = 0; run < runCount; run++) {
  for (const way of ways) {
    const { client, node: nodeMicros } = await measure(way);
    samples.get(way.name)?.client.push(client);
    samples.get(way.name)?.node.push(nodeMicros);
  }
}
console.log(
  `${messageCount} messages a run, ${text.length}-byte payloads, medians of ${runCount} runs`,
);
for (const [name, { client, node: nodeMicros }] of samples) {
  console.log(
    `${name.padEnd(22)} node ${median(nodeMicros).toFixed(2)} µs/msg   client ${median(client).toFixed(2)} µs/msg`,
  );
}
