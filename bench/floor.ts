/**
 * `npm run bench:floor -- [--in-flight 1,16,128,10000] [--seconds 5] [--payload-bytes 256]`:
 * what this machine allows today, for comparing abcast's figures measured the same day.
 *
 * The race's targets are absolute (p50 ≤ 0.6 ms at 1 in flight, ...) while this shared
 * machine's speed moves from day to day: the same etcd measured 0.73 ms one day and 1.69 ms
 * another. This is the least a replicated log with fsync before acknowledgement can do here:
 * a leader and two followers as separate processes on loopback, each batch one O_DSYNC write
 * into a preallocated file (the leader's own in parallel with the followers'), a batch
 * acknowledged once the leader and one follower hold it; no terms, no elections, no checks,
 * no store, no sessions. One client process keeps N messages in flight, as `abcast bench` does.
 * Results go to bench/results/floor.json.
 */
import { type ChildProcess, fork } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagsOrExit, positiveInteger, positiveIntegers } from './args.ts';

const here = fileURLToPath(import.meta.url);
const root = resolve(dirname(here), '..');

const usage = `npm run bench:floor -- [flags]
The least a replicated log with fsync can do on this machine: no Raft, no store, no checks.
  --in-flight LIST     messages the client keeps in flight, comma-separated, one load level
                       each (default 1,16,128,10000)
  --seconds N          counted seconds of each level, after 1 s of warm-up (default 5)
  --payload-bytes N    bytes per message (default 256)
  --out FILE           results as JSON (default bench/results/floor.json)`;

/** The WAL is a ring over this many preallocated bytes: the floor measures writes, not growth. */
const walBytes = 64 * 1024 * 1024;

/**
 * Splits a stream into frames of `u32 length, bytes`. The chunks of a frame are joined once,
 * when it is whole: joining at every chunk copied a window's megabytes-long frame over and
 * over, and the floor measured its own copying at 10,000 in flight.
 */
function onFrames(socket: Socket, onFrame: (frame: Buffer) => void): void {
  let chunks: Buffer[] = [];
  let heldBytes = 0;
  let neededBytes = 4;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    heldBytes += chunk.length;
    if (heldBytes < neededBytes) return;
    let pending = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, heldBytes);
    let at = 0;
    neededBytes = 4;
    while (pending.length - at >= 4) {
      const length = pending.readUInt32LE(at);
      if (pending.length - at - 4 < length) {
        neededBytes = 4 + length;
        break;
      }
      onFrame(pending.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    pending = pending.subarray(at);
    chunks = pending.length === 0 ? [] : [pending];
    heldBytes = pending.length;
  });
}

function frame(body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE(body.length);
  return Buffer.concat([head, body]);
}

/** A ring-buffer WAL: batches written one at a time with O_DSYNC; what comes meanwhile waits. */
class RingWal {
  private offset = 0;
  private writing = false;
  private readonly queue: { bytes: Buffer; done: () => void }[] = [];

  private constructor(private readonly handle: Awaited<ReturnType<typeof open>>) {}

  static async open(path: string): Promise<RingWal> {
    const fd = openSync(path, 'w');
    const zeros = Buffer.alloc(1024 * 1024);
    for (let at = 0; at < walBytes; at += zeros.length) writeSync(fd, zeros, 0, zeros.length, at);
    closeSync(fd);
    const handle = await open(path, constants.O_RDWR | constants.O_DSYNC);
    await handle.datasync();
    return new RingWal(handle);
  }

  append(bytes: Buffer, done: () => void): void {
    this.queue.push({ bytes, done });
    if (!this.writing) void this.drain();
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const group = this.queue.splice(0);
      const bytes = Buffer.concat(group.map((item) => item.bytes));
      if (this.offset + bytes.length > walBytes) this.offset = 0;
      await this.handle.writev([bytes.subarray(0, Math.min(bytes.length, walBytes))], this.offset);
      this.offset += bytes.length;
      for (const item of group) item.done();
    }
    this.writing = false;
  }
}

async function follower(dir: string): Promise<void> {
  const wal = await RingWal.open(join(dir, 'wal'));
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    onFrames(socket, (body) => {
      const last = body.readUInt32LE(0);
      wal.append(Buffer.from(body), () => {
        const ack = Buffer.allocUnsafe(4);
        ack.writeUInt32LE(last);
        socket.write(frame(ack));
      });
    });
  });
  server.listen(0, '127.0.0.1', () =>
    process.send?.({ port: (server.address() as { port: number }).port }),
  );
}

async function leader(dir: string, followerPorts: number[]): Promise<void> {
  const wal = await RingWal.open(join(dir, 'wal'));
  let lastIndex = 0;
  let leaderDurable = 0;
  const followerDurable = followerPorts.map(() => 0);
  let committed = 0;
  /** Per client batch: its last index and its message count, in order. */
  const waiting: { last: number; count: number }[] = [];
  let client: Socket | null = null;
  const advance = () => {
    const quorum = Math.min(leaderDurable, Math.max(...followerDurable));
    if (quorum <= committed) return;
    committed = quorum;
    let acked = 0;
    while (waiting.length > 0 && (waiting[0] as { last: number }).last <= committed) {
      acked += (waiting.shift() as { count: number }).count;
    }
    if (acked > 0 && client !== null) {
      const body = Buffer.allocUnsafe(4);
      body.writeUInt32LE(acked);
      client.write(frame(body));
    }
  };
  const links = await Promise.all(
    followerPorts.map(
      (port, at) =>
        new Promise<Socket>((done) => {
          const socket = createConnection(port, '127.0.0.1', () => done(socket));
          socket.setNoDelay(true);
          onFrames(socket, (body) => {
            followerDurable[at] = body.readUInt32LE(0);
            advance();
          });
        }),
    ),
  );
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    client = socket;
    onFrames(socket, (body) => {
      const count = body.readUInt32LE(0);
      lastIndex += count;
      waiting.push({ last: lastIndex, count });
      const append = Buffer.allocUnsafe(4 + body.length - 4);
      append.writeUInt32LE(lastIndex);
      body.copy(append, 4, 4);
      // Replication first, then the leader's own write: both run at once.
      const wire = frame(append);
      for (const link of links) link.write(wire);
      const last = lastIndex;
      wal.append(append, () => {
        leaderDurable = last;
        advance();
      });
    });
  });
  server.listen(0, '127.0.0.1', () =>
    process.send?.({ port: (server.address() as { port: number }).port }),
  );
}

/** One load level of the floor; bench/compare reads these from the output file. */
export interface FloorRun {
  readonly inFlight: number;
  readonly messagesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

async function drive(
  port: number,
  inFlight: number,
  seconds: number,
  payloadBytes: number,
): Promise<FloorRun> {
  const socket = await new Promise<Socket>((done) => {
    const connected = createConnection(port, '127.0.0.1', () => done(connected));
  });
  socket.setNoDelay(true);
  const payload = Buffer.alloc(payloadBytes, 7);
  // Send times in a ring, oldest first: acknowledgements come in sending order.
  const sentAtNs = new BigInt64Array(inFlight);
  let oldest = 0;
  const latenciesMs: number[] = [];
  let outstanding = 0;
  const warmupEndNs = process.hrtime.bigint() + 1_000_000_000n;
  const endNs = warmupEndNs + BigInt(seconds) * 1_000_000_000n;
  let counted = 0;
  let scheduled = false;
  let stopped = false;
  // Everything that may go out goes in one frame, sent on the next turn of the loop: as the
  // SDK packs what is ready without waiting for a timer.
  const fill = () => {
    scheduled = false;
    if (stopped) return;
    const count = inFlight - outstanding;
    if (count <= 0) return;
    const body = Buffer.allocUnsafe(4 + count * payloadBytes);
    body.writeUInt32LE(count);
    for (let at = 0; at < count; at++) payload.copy(body, 4 + at * payloadBytes);
    const now = process.hrtime.bigint();
    for (let at = 0; at < count; at++) sentAtNs[(oldest + outstanding + at) % inFlight] = now;
    outstanding += count;
    socket.write(frame(body));
  };
  const done = new Promise<void>((finish) => {
    onFrames(socket, (body) => {
      const acked = body.readUInt32LE(0);
      const now = process.hrtime.bigint();
      for (let at = 0; at < acked; at++) {
        const sent = sentAtNs[oldest] as bigint;
        oldest = (oldest + 1) % inFlight;
        if (sent >= warmupEndNs && now <= endNs) {
          counted += 1;
          latenciesMs.push(Number(now - sent) / 1e6);
        }
      }
      outstanding -= acked;
      if (now > endNs) {
        stopped = true;
        if (outstanding === 0) finish();
        return;
      }
      if (!scheduled) {
        scheduled = true;
        setImmediate(fill);
      }
    });
  });
  fill();
  await done;
  socket.destroy();
  latenciesMs.sort((a, b) => a - b);
  const at = (share: number) =>
    latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(latenciesMs.length * share))] ?? 0;
  return {
    inFlight,
    messagesPerSecond: Math.round(counted / seconds),
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  };
}

function start(
  role: string,
  dir: string,
  extra: string[],
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(here, [role, dir, ...extra], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  return new Promise((done, fail) => {
    child.once('message', (message: { port: number }) => done({ child, port: message.port }));
    child.once('exit', (code) => fail(new Error(`${role} exited with ${code}`)));
  });
}

interface FloorSettings {
  readonly levels: readonly number[];
  readonly seconds: number;
  readonly payloadBytes: number;
  readonly out: string;
}

async function main({ levels, seconds, payloadBytes, out }: FloorSettings): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'abcast-floor-'));
  const children: ChildProcess[] = [];
  try {
    const followers = await Promise.all(
      ['f1', 'f2'].map((name) => start('follower', join(dir, name), [])),
    );
    children.push(...followers.map((started) => started.child));
    const head = await start(
      'leader',
      join(dir, 'leader'),
      followers.map((started) => String(started.port)),
    );
    children.push(head.child);
    const results: FloorRun[] = [];
    for (const inFlight of levels) {
      const result = await drive(head.port, inFlight, seconds, payloadBytes);
      console.log(
        `floor: ${inFlight} in flight: ${result.messagesPerSecond.toLocaleString('en-US')}/s, p50 ${result.p50Ms.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms`,
      );
      results.push(result);
    }
    writeFileSync(
      out,
      `${JSON.stringify({ measuredAt: new Date().toISOString(), payloadBytes, seconds, results }, null, 2)}\n`,
    );
  } finally {
    for (const child of children) child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const [role, dir, ...rest] = process.argv.slice(2);
if (role === 'follower' || role === 'leader') {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir as string, { recursive: true });
  if (role === 'follower') await follower(dir as string);
  else await leader(dir as string, rest.map(Number));
} else {
  await main(
    flagsOrExit({
      usage,
      options: {
        'in-flight': { type: 'string', default: '1,16,128,10000' },
        seconds: { type: 'string', default: '5' },
        'payload-bytes': { type: 'string', default: '256' },
        out: { type: 'string', default: join(root, 'bench/results/floor.json') },
      },
      read: (values) => ({
        levels: positiveIntegers('in-flight', values['in-flight']),
        // Whole seconds: the client's deadline is a count of nanoseconds (a BigInt).
        seconds: positiveInteger('seconds', values.seconds),
        payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
        out: values.out,
      }),
    }),
  );
}
