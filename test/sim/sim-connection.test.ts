// The simulator's TCP connection (src/sim/runtime/sim-connection.ts) keeps TCP's promise and
// breaks only as TCP breaks: what one end writes arrives whole and in order at the other,
// cut into chunks anywhere (a write across chunks, several writes in one) on the virtual
// clock; a reset drops what is in flight and fails both ends; a paused reader backs the
// writer up until 'drain'; an end's FIN closes both; and one seed gives one history.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Life, SimScheduler, settle } from '../../src/sim/runtime/scheduler.ts';
import {
  SimConnection,
  type SimConnectionEnd,
  type SimConnectionOptions,
} from '../../src/sim/runtime/sim-connection.ts';
import { Prng } from '../../src/util/prng.ts';

interface Rig {
  readonly scheduler: SimScheduler;
  readonly connection: SimConnection;
  readonly server: SimConnectionEnd;
  /** Chunks each end read, with the virtual ms each arrived at. */
  readonly serverChunks: { atMs: number; bytes: Buffer }[];
  readonly clientChunks: Buffer[];
  readonly events: string[];
  linkUp: boolean;
  resetProbability: number;
}

function rig(seed: number, overrides: Partial<SimConnectionOptions> = {}): Rig {
  const prng = new Prng(seed);
  const scheduler = new SimScheduler(prng.fork(), 100_000);
  const connectionPrng = prng.fork();
  const state = { linkUp: true, resetProbability: 0 };
  const connection = new SimConnection(
    {
      scheduler,
      prng: connectionPrng,
      latencyMs: () => connectionPrng.between(1, 20),
      linkUp: () => state.linkUp,
      resetProbability: () => state.resetProbability,
      stallResetProbability: 0,
      onReset: () => undefined,
      ...overrides,
    },
    'c0',
    new Life('c0'),
  );
  const events: string[] = [];
  const serverChunks: { atMs: number; bytes: Buffer }[] = [];
  const clientChunks: Buffer[] = [];
  let server: SimConnectionEnd | null = null;
  connection.accept(new Life('n1'), (end) => {
    server = end as SimConnectionEnd;
    end.on('data', (bytes) => serverChunks.push({ atMs: scheduler.nowMs, bytes }));
    end.on('error', (error) => events.push(`server error ${error.code}`));
    end.on('close', () => events.push('server close'));
  });
  const { clientEnd } = connection;
  clientEnd.on('data', (bytes) => clientChunks.push(bytes));
  clientEnd.on('error', (error) => events.push(`client error ${error.code}`));
  clientEnd.on('close', () => events.push('client close'));
  return Object.assign(state, {
    scheduler,
    connection,
    server: server as unknown as SimConnectionEnd,
    serverChunks,
    clientChunks,
    events,
  });
}

/** Runs the agenda for `forMs` of virtual time (the clock then stands at its end). */
async function runAll(scheduler: SimScheduler, forMs = 100_000): Promise<void> {
  const untilMs = scheduler.nowMs + forMs;
  while (scheduler.runNext(untilMs)) await settle();
  await settle();
}

/** Writes of 1 to 300 bytes, each byte numbered, so that any loss or reordering shows. */
function writes(prng: Prng, count: number): Uint8Array[] {
  let next = 0;
  return Array.from({ length: count }, () =>
    Uint8Array.from({ length: prng.between(1, 300) }, () => next++ % 251),
  );
}

test('bytes arrive whole and in order, in chunks cut anywhere', async () => {
  let cutInsideAWrite = 0;
  let severalWritesInAChunk = 0;
  for (let seed = 1; seed <= 30; seed++) {
    const { scheduler, connection, serverChunks } = rig(seed);
    const sent: Uint8Array[] = [];
    const write = (bytes: Uint8Array) => {
      sent.push(bytes);
      connection.clientEnd.write(bytes);
    };
    // Some writes in one turn, some later, as a pipelining client sends them.
    for (const [index, bytes] of writes(new Prng(seed + 1000), 40).entries()) {
      if (index % 3 === 0) write(bytes);
      else scheduler.schedule(index, connection.clientEnd.life, () => write(bytes));
    }
    await runAll(scheduler);
    const received = Buffer.concat(serverChunks.map((chunk) => chunk.bytes));
    assert.deepEqual(received, Buffer.concat(sent), `seed ${seed}: every byte, once, in order`);
    const writeEnds = new Set<number>();
    let offset = 0;
    for (const bytes of sent) {
      offset += bytes.length;
      writeEnds.add(offset);
    }
    offset = 0;
    for (const chunk of serverChunks) {
      const start = offset;
      offset += chunk.bytes.length;
      if (!writeEnds.has(offset)) cutInsideAWrite++;
      const endsInside = [...writeEnds].filter((end) => end > start && end < offset).length;
      if (endsInside > 0) severalWritesInAChunk++;
    }
    assert.equal(connection.clientEnd.writableLength, 0, 'everything written was taken');
  }
  assert.ok(cutInsideAWrite > 0, 'some chunk ends inside a write');
  assert.ok(severalWritesInAChunk > 0, 'some chunk carries the end of one write and more');
});

test('one seed, one history: chunks and their times repeat; another seed differs', async () => {
  const historyOf = async (seed: number) => {
    const { scheduler, connection, serverChunks } = rig(seed);
    for (const bytes of writes(new Prng(7), 30)) connection.clientEnd.write(bytes);
    await runAll(scheduler);
    return serverChunks.map((chunk) => `${chunk.atMs}:${chunk.bytes.length}`).join(' ');
  };
  assert.equal(await historyOf(42), await historyOf(42));
  assert.notEqual(await historyOf(42), await historyOf(43));
});

test('a reset drops what is in flight both ways and fails both ends', async () => {
  const { scheduler, connection, server, serverChunks, clientChunks, events } = rig(5);
  connection.clientEnd.write(Uint8Array.of(1, 2, 3));
  await runAll(scheduler);
  assert.equal(serverChunks.length > 0, true, 'the first write arrived');
  connection.clientEnd.write(Uint8Array.of(4, 5, 6));
  server.write(Uint8Array.of(7, 8, 9));
  connection.reset('test');
  await runAll(scheduler);
  assert.deepEqual(Buffer.concat(serverChunks.map((chunk) => chunk.bytes)), Buffer.of(1, 2, 3));
  assert.equal(clientChunks.length, 0, 'nothing in flight arrived after the reset');
  assert.deepEqual(events.slice().sort(), [
    'client close',
    'client error ECONNRESET',
    'server close',
    'server error ECONNRESET',
  ]);
  assert.ok(events.indexOf('client error ECONNRESET') < events.indexOf('client close'));
  assert.equal(connection.clientEnd.write(Uint8Array.of(1)), false, 'a reset end takes no writes');
});

test('random resets come from the network faults; a stalled link holds the bytes', async () => {
  const stalled = rig(9);
  stalled.linkUp = false;
  stalled.connection.clientEnd.write(Uint8Array.of(1, 2));
  await runAll(stalled.scheduler, 1_000);
  assert.equal(stalled.serverChunks.length, 0, 'no byte crosses a cut link');
  stalled.linkUp = true;
  await runAll(stalled.scheduler, 1_000);
  assert.deepEqual(
    Buffer.concat(stalled.serverChunks.map((chunk) => chunk.bytes)),
    Buffer.of(1, 2),
  );

  const lossy = rig(11);
  lossy.resetProbability = 1;
  lossy.connection.clientEnd.write(Uint8Array.of(1));
  await runAll(lossy.scheduler);
  assert.equal(lossy.serverChunks.length, 0);
  assert.ok(lossy.events.includes('client error ECONNRESET'));
});

test('a reader that pauses backs the writer up until drain', async () => {
  const { scheduler, connection, server, serverChunks } = rig(13);
  server.pause();
  let drained = 0;
  connection.clientEnd.on('drain', () => drained++);
  const accepted = connection.clientEnd.write(new Uint8Array(20 << 10));
  assert.equal(accepted, false, 'past the high-water mark a write asks to wait');
  assert.equal(connection.clientEnd.writableNeedDrain, true);
  await runAll(scheduler);
  assert.equal(serverChunks.length, 0, 'a paused reader reads nothing');
  assert.equal(drained, 0);
  server.resume();
  await runAll(scheduler);
  assert.equal(Buffer.concat(serverChunks.map((chunk) => chunk.bytes)).length, 20 << 10);
  assert.equal(drained, 1);
  assert.equal(connection.clientEnd.writableNeedDrain, false);
});

test('an end sends what was written, then both ends close; corked writes leave as one', async () => {
  const { scheduler, connection, server, clientChunks, events } = rig(17);
  const outgoing = server.outgoing;
  assert.ok(outgoing !== null);
  const sent: (Uint8Array | null)[] = [];
  const send = outgoing.send.bind(outgoing);
  outgoing.send = (bytes) => {
    sent.push(bytes);
    send(bytes);
  };
  server.cork();
  server.write(Uint8Array.of(1));
  server.write(Uint8Array.of(2));
  server.end();
  await runAll(scheduler);
  assert.deepEqual(Buffer.concat(clientChunks), Buffer.of(1, 2));
  assert.deepEqual(
    sent,
    [Buffer.of(1, 2), null],
    'one segment for the corked writes, then the FIN',
  );
  assert.deepEqual(events.slice().sort(), ['client close', 'server close']);
  assert.equal(connection.clientEnd.destroyed, true);
  assert.equal(connection.state, 'closed');
});

test('an empty write sends nothing and breaks nothing', async () => {
  const { scheduler, server, clientChunks, events } = rig(18);
  assert.equal(server.write(new Uint8Array(0)), true);
  await runAll(scheduler);
  server.write(Uint8Array.of(7));
  await runAll(scheduler);
  assert.deepEqual(Buffer.concat(clientChunks), Buffer.of(7));
  assert.deepEqual(events, []);
});

test('bytes that reach a closed end reset the connection: a writer waiting for drain hears of it', async () => {
  let resets = 0;
  const { scheduler, connection, server, events } = rig(19, { onReset: () => resets++ });
  connection.clientEnd.pause();
  let drained = 0;
  server.on('drain', () => drained++);
  assert.equal(server.write(Buffer.alloc(20 << 10)), false, 'past the high-water mark');
  await runAll(scheduler);
  connection.clientEnd.destroy();
  await runAll(scheduler);
  assert.equal(drained, 0);
  assert.equal(server.destroyed, true, 'the writer is not left waiting for a drain');
  assert.ok(events.includes('server error ECONNRESET'), events.join(', '));
  assert.equal(resets, 1);
  assert.equal(connection.state, 'reset');
});
