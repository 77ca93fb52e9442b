// The real binary port (BinaryServer) and the real SDK exchange (binaryExchange) run over the
// simulator's TCP (binary-network.ts, sim-connection.ts) on its virtual clock: runs and
// requests pipelined past a small window, their frames cut into chunks anywhere, each
// answered with its own results although the node finishes them out of order; a node that
// goes down fails the calls in flight, a connect to it is refused, and once it is back the
// next call opens a new connection and is answered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BroadcastResult } from '../../src/broadcast/pending.ts';
import { BinaryConnectionError, binaryExchange } from '../../src/client/binary-exchange.ts';
import type { RunExchangeAnswer } from '../../src/client/exchange.ts';
import { BinaryServer } from '../../src/server/binary-server.ts';
import type { ServedNode } from '../../src/server/context.ts';
import { InProcessServer } from '../../src/server/in-process.ts';
import { createServerContext } from '../../src/server/settings.ts';
import { BinaryNetwork, simBinaryPort } from '../../src/sim/runtime/binary-network.ts';
import { simEnvironment } from '../../src/sim/runtime/environment.ts';
import { ClientNetwork } from '../../src/sim/runtime/exchange.ts';
import { Life, SimScheduler, settle } from '../../src/sim/runtime/scheduler.ts';
import type { RunResults } from '../../src/transport/client-frames.ts';
import { runResultList } from '../../src/transport/client-frames.ts';
import { Prng } from '../../src/util/prng.ts';
import { logger } from '../server/cluster.ts';

/** Where the fake node puts a message: a function of its seq, so a mismatch shows. */
const positionOf = (seq: number) => seq * 10;

/** A node that answers each broadcast and run after a seeded delay, so out of order. */
function slowNode(scheduler: SimScheduler, life: Life, prng: Prng): ServedNode {
  const later = <T>(value: T) =>
    new Promise<T>((resolve) =>
      scheduler.schedule(prng.between(0, 30), life, () => resolve(value)),
    );
  const resultOf = (seq: number): BroadcastResult => ({
    position: positionOf(seq),
    index: positionOf(seq),
    term: 1,
    duplicate: false,
  });
  return {
    id: 'n1',
    lastPosition: 0,
    broadcast: (_payload: Uint8Array, options: { seq?: number }) =>
      later(resultOf(options.seq ?? 0)),
    broadcastRun: (run: { firstSeq: number; messages: readonly unknown[] }) =>
      later(
        run.messages.map((_, offset) => ({
          status: 'fulfilled' as const,
          value: resultOf(run.firstSeq + offset),
        })),
      ),
    read: () => [],
  } as unknown as ServedNode;
}

interface Rig {
  readonly scheduler: SimScheduler;
  readonly network: BinaryNetwork;
  readonly exchange: ReturnType<typeof binaryExchange>;
  /** Starts an incarnation of the node's binary port (the first at once). */
  start(): void;
}

function rig(seed: number, windowRequests: number): Rig {
  const prng = new Prng(seed);
  const scheduler = new SimScheduler(prng.fork(), 1_000_000);
  const clientNetwork = new ClientNetwork(scheduler, prng.fork(), () => undefined);
  clientNetwork.faults = {
    requestLossProbability: 0,
    answerLossProbability: 0,
    latencyMsMin: 1,
    latencyMsMax: 20,
  };
  const network = new BinaryNetwork(scheduler, prng.fork(), clientNetwork, () => undefined);
  const start = () => {
    const life = new Life('n1');
    const environment = simEnvironment({ scheduler, life, prng: prng.fork() });
    const node = slowNode(scheduler, life, prng.fork());
    const context = createServerContext({ node, logger, environment, requestTimeoutMs: 1_000 });
    const server = new InProcessServer(context);
    const binary = new BinaryServer({
      context,
      dispatcher: server.dispatcher,
      tls: null,
      windowRequests,
    });
    network.attach('n1', life, (end) => binary.acceptConnection(end));
  };
  start();
  const clientLife = new Life('c0');
  const environment = simEnvironment({ scheduler, life: clientLife, prng: prng.fork() });
  const exchange = binaryExchange(environment, {
    ca: null,
    connector: network.connectorFor('c0', clientLife),
  });
  return { scheduler, network, exchange, start };
}

async function runFor(scheduler: SimScheduler, forMs: number): Promise<void> {
  const untilMs = scheduler.nowMs + forMs;
  while (scheduler.runNext(untilMs)) await settle();
  await settle();
}

const endpoint = `abcast://n1:${simBinaryPort}`;

function run(
  exchange: Rig['exchange'],
  firstSeq: number,
  count: number,
  taken: Map<number, number>,
): Promise<RunExchangeAnswer | null> {
  const encoder = new TextEncoder();
  return exchange.broadcastRun({
    url: `${endpoint}/v1/broadcast/batch`,
    headers: {},
    timeoutMs: 5_000,
    signal: new AbortController().signal,
    clientId: 'c0',
    firstSeq,
    nonce: '',
    messages: Array.from({ length: count }, (_, offset) => ({
      payload: encoder.encode(String(firstSeq + offset)),
      topic: undefined,
    })),
    onResults: (results: RunResults) => {
      for (const [offset, result] of runResultList(results).entries()) {
        assert.ok(result.kind !== 'error', 'the fake node takes every message');
        taken.set(firstSeq + offset, result.position as number);
      }
    },
  });
}

function post(exchange: Rig['exchange'], seq: number) {
  return exchange({
    method: 'POST',
    url: `${endpoint}/v1/broadcast`,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ payload: seq, client: 'c0', seq }),
    timeoutMs: 5_000,
    signal: new AbortController().signal,
  });
}

test('pipelined runs and requests past a small window are each answered with their own results', async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const { scheduler, exchange, network } = rig(seed, seed % 2 === 0 ? 2 : 4);
    const taken = new Map<number, number>();
    const runs: Promise<RunExchangeAnswer | null>[] = [];
    const posts: Promise<{ status: number; body: string }>[] = [];
    const postSeqs: number[] = [];
    let seq = 1;
    for (let index = 0; index < 20; index++) {
      const count = 1 + (index % 3);
      runs.push(run(exchange, seq, count, taken));
      seq += count;
      if (index % 5 === 0) {
        postSeqs.push(seq);
        posts.push(post(exchange, seq++));
      }
    }
    await runFor(scheduler, 10_000);
    for (const answer of await Promise.all(runs)) assert.deepEqual(answer, { kind: 'taken' });
    for (const [messageSeq, position] of taken) {
      assert.equal(position, positionOf(messageSeq), `seed ${seed}: seq ${messageSeq}`);
    }
    assert.equal(taken.size + posts.length, seq - 1, 'every message of every run was answered');
    for (const [index, answer] of (await Promise.all(posts)).entries()) {
      assert.equal(answer.status, 200, answer.body);
      const { index: position } = JSON.parse(answer.body) as { index: number };
      assert.equal(position, positionOf(postSeqs[index] as number), `seed ${seed}: post ${index}`);
    }
    // The first runs go on a probe connection of their own, the rest on the shared one.
    assert.equal(network.counts.connections, 2);
    assert.equal(network.counts.resets, 0);
  }
});

test('a node going down fails the calls in flight; while down connects are refused; back up, a new connection serves', async () => {
  const { scheduler, exchange, network, start } = rig(21, 4);
  const taken = new Map<number, number>();
  assert.equal((await settled(scheduler, post(exchange, 1))).status, 200);
  assert.deepEqual(await settled(scheduler, run(exchange, 2, 1, taken)), { kind: 'taken' });
  // The probe, idle once the run was answered, closes: ends and FINs both ways.
  await runFor(scheduler, 1_000);
  const inFlight = run(exchange, 3, 2, taken);
  assert.equal(network.counts.connections, 2, 'the probe, closed since, and the shared one');
  network.detach('n1');
  assert.equal(network.counts.resets, 1, 'only the live connection is reset by the crash');
  const failure = await settled(scheduler, inFlight).catch((error: unknown) => error);
  assert.ok(failure instanceof BinaryConnectionError, String(failure));
  assert.equal(failure.code, 'ECONNRESET');
  const refused = await settled(scheduler, post(exchange, 5)).catch((error: unknown) => error);
  assert.ok(refused instanceof BinaryConnectionError, String(refused));
  assert.equal(refused.code, 'ECONNREFUSED');
  assert.equal(network.counts.refused, 1);
  start();
  const again = await settled(scheduler, post(exchange, 6));
  assert.equal(again.status, 200);
  assert.equal((JSON.parse(again.body) as { index: number }).index, positionOf(6));
  assert.equal(network.counts.connections, 3, 'the shared one, the probe, and a new one');
});

/** Runs the agenda until `promise` settles (within a virtual minute). */
async function settled<T>(scheduler: SimScheduler, promise: Promise<T>): Promise<T> {
  let done = false;
  const watched = promise.finally(() => {
    done = true;
  });
  watched.catch(() => undefined);
  const untilMs = scheduler.nowMs + 60_000;
  while (!done && scheduler.runNext(untilMs)) await settle();
  await settle();
  assert.ok(done, 'the call settled within a virtual minute');
  return watched;
}
