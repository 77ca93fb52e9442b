/**
 * Seeded fault runs of the SDK's broadcast path against a model of the cluster's session
 * rules (./faulty-node.ts): lost requests, lost answers, 503s, delays, refused payloads and
 * a partition long enough for broadcasts to fail `unavailable` and be sent on in the
 * background, with batching on or off and small in-flight bounds; on most seeds also some
 * of endpoints down for a while, slow commits, requests processed twice, 503s with
 * Retry-After (one kind delivering the message anyway) and gaps answered at once, with
 * topics, large payloads, one message in flight, or a short or long unavailableAfterMs.
 * After every run: each message is delivered at most once; a resolved broadcast was
 * delivered exactly once at the index it was told, with its topic; a refused or never-sent
 * one was not delivered; the resolved ones are in the log in their order of issue; every
 * call settled within its bounds; and once the faults stop, a new broadcast goes through.
 * `SDK_FUZZ_SEEDS=N` runs more seeds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BroadcastAnswer, ClientError, connect } from '../../src/client/index.ts';
import { type FaultRates, FaultyCluster, payloadName, seededRandom } from './faulty-node.ts';

const seedCount = Number(process.env.SDK_FUZZ_SEEDS ?? 16);
/**
 * `SDK_FUZZ_FROM=S` starts at seed S; `SDK_FUZZ_TRACE=1` prints a failing run's log,
 * `SDK_FUZZ_TRACE=all` every run's.
 */
const firstSeed = Number(process.env.SDK_FUZZ_FROM ?? 1);
const messageCount = 60;
const requestTimeoutMs = 60;

/** What varies per seed beyond the first generator's draws. */
interface Shape {
  readonly unavailableAfterMs: number;
  readonly inFlightMax: number | null;
  readonly topicShare: number;
  readonly largeShare: number;
  readonly endpointCount: number;
  /** abandonAfterMs in unavailableAfterMs: 1 stops sending at the first bound. */
  readonly abandonFactor: number;
  readonly extraRates: Partial<FaultRates>;
}

/**
 * Drawn from a generator of its own, so the first one's draws (bursts, partition, refused
 * payloads) stay what they were for each seed.
 */
function shapeOf(seed: number): Shape {
  const random = seededRandom(seed * 104_729 + 17);
  const pick = <T>(options: readonly T[]): T => options[Math.floor(random() * options.length)] as T;
  // Now and then every further fault at twice its rate.
  const intensity = random() < 0.25 ? 2 : 1;
  const on = (share: number, rate: number) => (random() < share ? rate * intensity : 0);
  return {
    unavailableAfterMs: pick([150, 300, 300, 600]),
    inFlightMax: random() < 0.15 ? 1 : null,
    topicShare: pick([0, 0, 0.3, 1]),
    largeShare: pick([0, 0, 0.1]),
    endpointCount: pick([2, 2, 3]),
    extraRates: {
      down: on(0.4, 0.02),
      downForMsMax: 400,
      slowCommit: on(0.5, 0.06),
      slowMsMin: requestTimeoutMs + 5,
      // Up to past a short unavailableAfterMs: a commit may land after the client gave up.
      slowMsMax: requestTimeoutMs * 6,
      duplicate: on(0.5, 0.08),
      duplicateDelayMsMax: requestTimeoutMs * 5,
      noLeaderRetryAfter: on(0.3, 0.04),
      timeoutRetryAfter: on(0.3, 0.04),
      gapAtOnce: on(0.4, 0.3),
      retryAfterSeconds: 1,
    },
    abandonFactor: pick([1, 3, 3]),
  };
}

/** A payload named `name`, padded to a few KiB up to 300 KiB now and then. */
function payloadFor(name: string, large: boolean, random: () => number): string {
  if (!large) return name;
  const padBytes = random() < 0.2 ? 100_000 + Math.floor(random() * 200_000) : 2_000;
  return `${name}|${'x'.repeat(padBytes)}`;
}

interface Issued {
  readonly payload: string;
  readonly topic: string | undefined;
  readonly issuedMs: number;
  settledMs: number;
  answer: BroadcastAnswer | null;
  error: ClientError | null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runSeed(seed: number): Promise<string[]> {
  const random = seededRandom(seed * 7919 + 1);
  const shape = shapeOf(seed);
  const workload = seededRandom(seed * 31_337 + 5);
  const { unavailableAfterMs } = shape;
  /**
   * A call settles within both bounds (the slot wait, then its own) plus one attempt, with
   * room for a loaded machine: a hang exceeds any of it.
   */
  const settleBoundMs = 2 * unavailableAfterMs + requestTimeoutMs + 1_500;
  const { cluster, urls } = await FaultyCluster.start(
    seed,
    {
      loseRequest: 0.04,
      loseAnswer: 0.06,
      unavailable: 0.05,
      delayed: 0.2,
      delayMsMax: 40,
      ...shape.extraRates,
    },
    shape.endpointCount,
  );
  const client = connect({
    endpoints: urls,
    clientId: `fuzz-${seed}`,
    requestTimeoutMs,
    unavailableAfterMs,
    abandonAfterMs: unavailableAfterMs * shape.abandonFactor,
    backoffBaseMs: 5,
    backoffMaxMs: 30,
    inFlightMax: drawnInFlightMax(random, shape),
    batching: random() < 0.6,
  });
  const issued: Issued[] = [];
  let afterFaults: string | null = null;
  const settling: Promise<void>[] = [];
  // A partition at a random moment, sometimes longer than unavailableAfterMs.
  const partitionAtMs = random() * 400;
  const partitionForMs = random() < 0.5 ? random() * 200 : 300 + random() * 700;
  const partition = (async () => {
    await sleep(partitionAtMs);
    cluster.partitioned = true;
    await sleep(partitionForMs);
    cluster.partitioned = false;
  })();
  try {
    for (let n = 0; n < messageCount; ) {
      const burst = 1 + Math.floor(random() * 8);
      for (let k = 0; k < burst && n < messageCount; k++, n++) {
        const payload = random() < 0.05 ? `bad-${n}` : `m-${n}`;
        const topic = workload() < shape.topicShare ? `t${n % 3}` : undefined;
        const sent = payloadFor(payload, workload() < shape.largeShare, workload);
        const entry: Issued = {
          payload,
          topic,
          issuedMs: Date.now(),
          settledMs: 0,
          answer: null,
          error: null,
        };
        issued.push(entry);
        settling.push(
          client.broadcast(sent, topic === undefined ? {} : { topic }).then(
            (answer) => {
              entry.answer = answer;
              entry.settledMs = Date.now();
            },
            (error: unknown) => {
              assert.ok(error instanceof ClientError, `not a ClientError: ${String(error)}`);
              entry.error = error;
              entry.settledMs = Date.now();
            },
          ),
        );
      }
      await sleep(random() * 15);
    }
    await Promise.all(settling);
    await partition;
    // The faults stop: a new broadcast must go through. Messages sent on in the background
    // keep their slots and resend only after the Retry-After the nodes asked for (longer
    // than unavailableAfterMs here), so that wait passes first.
    cluster.calm();
    const {
      noLeaderRetryAfter = 0,
      timeoutRetryAfter = 0,
      retryAfterSeconds = 0,
    } = shape.extraRates;
    if (noLeaderRetryAfter + timeoutRetryAfter > 0) await sleep(retryAfterSeconds * 1000);
    // On a loaded machine one attempt may miss its short bound; a client stuck for good
    // misses every one of them.
    const deadlineMs = Date.now() + 10_000;
    for (let tries = 1; ; tries++) {
      const failure = await client.broadcast(`after-faults-${tries}`).then(
        () => null,
        (error: unknown) => error,
      );
      if (failure === null) break;
      if (Date.now() > deadlineMs) {
        afterFaults = `no broadcast after the faults went through in ${tries} tries: ${failure}`;
        break;
      }
    }
  } finally {
    client.close();
    await sleep(50); // what was in flight at close lands or not; nothing is sent after
    await cluster.close();
  }
  const problems = check(issued, cluster, settleBoundMs);
  if (afterFaults !== null) problems.push(afterFaults);
  const trace = process.env.SDK_FUZZ_TRACE;
  if ((problems.length > 0 && trace === '1') || trace === 'all') {
    const log = cluster.log.map(
      (d, at) => `${at + 1} ${d.client}#${d.seq} ${payloadName(d.payload)}`,
    );
    const outcomes = issued.map(
      (e) =>
        `${e.payload}: ${e.answer ? `index ${e.answer.position}` : `${e.error?.code} ${e.error?.message}`}`,
    );
    console.log(
      `seed ${seed} ${JSON.stringify(shape)}\n${log.join('\n')}\n--\n${outcomes.join('\n')}\n--\n${cluster.requests.join('\n')}`,
    );
  }
  return problems;
}

/** The first generator's draw is always taken, so the later draws stay as they were. */
function drawnInFlightMax(random: () => number, shape: Shape): number {
  const drawn = 2 + Math.floor(random() * 30);
  return shape.inFlightMax ?? drawn;
}

function check(issued: readonly Issued[], cluster: FaultyCluster, settleBoundMs: number): string[] {
  const problems: string[] = [];
  const positions = new Map<unknown, number[]>();
  cluster.log.forEach((delivered, at) => {
    const name = payloadName(delivered.payload);
    positions.set(name, [...(positions.get(name) ?? []), at + 1]);
    const entry = issued.find((one) => one.payload === name);
    if (entry !== undefined && entry.topic !== delivered.topic) {
      problems.push(`${name} delivered with topic ${delivered.topic}, sent with ${entry.topic}`);
    }
  });
  for (const [payload, at] of positions) {
    if (at.length > 1) problems.push(`${String(payload)} delivered ${at.length} times (${at})`);
  }
  let lastResolvedAt = 0;
  for (const entry of issued) {
    const at = positions.get(entry.payload);
    const tookMs = entry.settledMs - entry.issuedMs;
    if (tookMs > settleBoundMs) problems.push(`${entry.payload} settled after ${tookMs} ms`);
    if (entry.answer !== null && entry.payload.startsWith('bad')) {
      problems.push(`${entry.payload} resolved although every node refuses it`);
    } else if (entry.answer !== null) {
      if (at === undefined) problems.push(`${entry.payload} resolved but never delivered`);
      else if (entry.answer.position !== at[0]) {
        problems.push(
          `${entry.payload} told index ${entry.answer.position}, delivered at ${at[0]}`,
        );
      } else if (at[0]! < lastResolvedAt) {
        problems.push(`${entry.payload} at ${at[0]} overtook one resolved at ${lastResolvedAt}`);
      } else lastResolvedAt = at[0]!;
      continue;
    }
    const error = entry.error as ClientError;
    const definite =
      error.code === 'payload_too_large' ||
      error.code === 'session_unknown' ||
      (error.code === 'unavailable' && error.details.sent === false);
    if (definite && at !== undefined) {
      problems.push(`${entry.payload} failed ${error.code} yet was delivered at ${at[0]}`);
    }
    // A refused payload may also fail otherwise (no node reached in time); no other is refused.
    if (error.code === 'payload_too_large' && !entry.payload.startsWith('bad')) {
      problems.push(`${entry.payload} failed ${error.code}`);
    }
  }
  return problems;
}

test(`${seedCount} seeded fault runs keep every broadcast at most once, resolved ones exactly once and in order`, {
  timeout: 600_000,
}, async () => {
  const failures: string[] = [];
  // Four at a time: each run mostly waits on timers (about a tenth of a core each).
  const lastSeed = firstSeed + seedCount - 1;
  for (let seed = firstSeed; seed <= lastSeed; seed += 4) {
    const runs = [seed, seed + 1, seed + 2, seed + 3].filter((s) => s <= lastSeed);
    const results = await Promise.all(runs.map((s) => runSeed(s)));
    results.forEach((problems, at) => {
      for (const problem of problems) failures.push(`seed ${runs[at]}: ${problem}`);
    });
  }
  assert.deepEqual(failures, []);
});
