// Apply-path micro-benchmark: what a follower spends per message once entries commit. The
// applier takes committed batches (--batch messages of --payload-bytes, one client's run
// each, --per-apply entries a call) and delivers them into a message store on disk, as on
// any node; no network, no WAL, no cluster. Prints the process's user and system CPU
// microseconds per message, measured after a warm-up, and checks that every message was
// delivered. Run it against two checkouts, alternating, to compare their apply paths.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Applier } from '../src/broadcast/applier.ts';
import { encodeBatch } from '../src/broadcast/batch.ts';
import { PendingTable } from '../src/broadcast/pending.ts';
import type { Snapshots } from '../src/broadcast/snapshots.ts';
import type { Entry } from '../src/raft/types.ts';
import { DiskStoreFiles, MessageStore } from '../src/store/index.ts';
import { flagsOrExit, positiveInteger } from './args.ts';

const { batchCount, batchMessages, perApply, payloadBytes } = flagsOrExit({
  usage: `node --import tsx bench/apply.ts [flags]
A follower's CPU per message applying committed batches into a message store on disk.
  --batches N         committed entries measured, after a quarter as many to warm up
                      (default 4000)
  --batch N           messages in each entry, one client's run (default 128)
  --per-apply N       entries handed to the applier at a time (default 4)
  --payload-bytes N   bytes per message (default 256)`,
  options: {
    batches: { type: 'string', default: '4000' },
    batch: { type: 'string', default: '128' },
    'per-apply': { type: 'string', default: '4' },
    'payload-bytes': { type: 'string', default: '256' },
  },
  read: (values) => ({
    batchCount: positiveInteger('batches', values.batches),
    batchMessages: positiveInteger('batch', values.batch),
    perApply: positiveInteger('per-apply', values['per-apply']),
    payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
  }),
});
const payload = new Uint8Array(payloadBytes).fill(0x61);

const directory = mkdtempSync(join(tmpdir(), 'abcast-apply-'));
const ignore = () => {};
const applier = new Applier(
  {
    id: 'n2',
    logger: { info: ignore, warn: ignore, error: ignore },
    pending: new PendingTable(),
    // No snapshot is ever due: the benchmark measures applying, not snapshotting.
    snapshots: { noteApplied: () => false } as unknown as Snapshots,
    observer: undefined,
    sessionOptions: { sessionTtlMs: 3_600_000, recentPositionsMax: 1024 },
    deliveries: {
      store: new MessageStore({ files: new DiskStoreFiles(directory), segmentBytesMax: 64 << 20 }),
      backfill: true,
      retainBytesMax: null,
    },
    hooks: {
      lostAt: ignore,
      retryAll: ignore,
      ownSessionLost: ignore,
      membershipChanged: ignore,
      applied: ignore,
    },
  },
  null,
);

let nextSeq = 1;
let nextIndex = 1;
function entries(count: number): Entry[] {
  const made: Entry[] = [];
  for (let at = 0; at < count; at++) {
    const messages = [];
    for (let m = 0; m < batchMessages; m++) {
      messages.push({ clientId: 'bench-client', seq: nextSeq++, topic: 'bench', payload });
    }
    const index = nextIndex++;
    made.push({ index, term: 1, kind: 'normal', data: encodeBatch(messages, 1e12 + index) });
  }
  return made;
}

function applyAll(all: readonly Entry[]): void {
  for (let at = 0; at < all.length; at += perApply) applier.apply(all.slice(at, at + perApply));
}

try {
  applyAll(entries(Math.ceil(batchCount / 4))); // warm-up: the JIT settles
  const measured = entries(batchCount); // encoded before the clock starts
  const before = process.cpuUsage();
  applyAll(measured);
  const used = process.cpuUsage(before);
  const messageCount = batchCount * batchMessages;
  if (applier.deliveryLog.lastPosition !== nextSeq - 1) {
    throw new Error(`delivered ${applier.deliveryLog.lastPosition} of ${nextSeq - 1} messages`);
  }
  const perMessage = (microseconds: number) => (microseconds / messageCount).toFixed(3);
  process.stdout.write(
    `${JSON.stringify({ messages: messageCount, userUsPerMessage: Number(perMessage(used.user)), systemUsPerMessage: Number(perMessage(used.system)) })}\n`,
  );
} finally {
  rmSync(directory, { recursive: true, force: true });
}
