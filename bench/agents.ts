// Agents benchmark: the cost of the agents layer over the plain SDK, on three node
// processes with HTTP on 127.0.0.1 (fsync on). Closed loops at 1 and 32 in flight compare
// `client.broadcast` with `ReplicatedStateMachine.submit` (which also waits for the local
// replica to apply the command through its subscription), measure linearizable `read`,
// and run task board cycles (claim + complete) with 4 agents. Medians over runs, written to
// bench/results/agents.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { openCluster } from '../examples/support/cluster.ts';
import { ReplicatedStateMachine, TaskBoard } from '../src/agents/index.ts';
import { type Client, connect } from '../src/client/index.ts';
import { flagsOrExit, positiveInteger, positiveNumber } from './args.ts';

const { runs, seconds } = flagsOrExit({
  usage: `node --import tsx bench/agents.ts [flags]
The agents layer against the plain SDK on a 3-node cluster (fsync on); medians of the runs.
  --runs N      fresh clusters measured, each running every measure once (default 3)
  --seconds S   length of each measure, a positive number (default 3)`,
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
  },
  read: (values) => ({
    runs: positiveInteger('runs', values.runs),
    seconds: positiveNumber('seconds', values.seconds),
  }),
});

interface Measure {
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const median = (numbers: number[]): number => {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

function percentile(sortedMs: number[], fraction: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(sortedMs.length * fraction))] ?? 0;
}

/** `inFlight` loops calling `operation` for `seconds`. */
async function closedLoop(inFlight: number, operation: () => Promise<unknown>): Promise<Measure> {
  const latenciesMs: number[] = [];
  const endMs = Date.now() + seconds * 1000;
  const startedMs = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < endMs) {
        const began = performance.now();
        await operation();
        latenciesMs.push(performance.now() - began);
      }
    }),
  );
  const elapsedS = (performance.now() - startedMs) / 1000;
  latenciesMs.sort((a, b) => a - b);
  return {
    opsPerSecond: Math.round(latenciesMs.length / elapsedS),
    p50Ms: Number(percentile(latenciesMs, 0.5).toFixed(2)),
    p99Ms: Number(percentile(latenciesMs, 0.99).toFixed(2)),
  };
}

/** `inFlight` loops calling `operation` until it ran `count` times in all. */
async function closedLoopCount(
  inFlight: number,
  count: number,
  operation: () => Promise<unknown>,
): Promise<void> {
  let left = count;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (left-- > 0) await operation();
    }),
  );
}

const counter = {
  initialState: () => ({ value: 0 }),
  apply: (state: { value: number }, by: number) => {
    state.value += by;
    return state.value;
  },
};

async function runOnce(): Promise<Record<string, Measure>> {
  const cluster = await openCluster();
  const clients: Client[] = [];
  const client = () => {
    const made = connect({ endpoints: cluster.endpoints });
    clients.push(made);
    return made;
  };
  try {
    const results: Record<string, Measure> = {};
    const plain = client();
    const replica = await ReplicatedStateMachine.start({
      log: client(),
      topic: 'bench/counter',
      machine: counter,
    });
    // Warm up first (the leader found, streams open, code compiled, WAL segments made), so
    // that whichever is measured first does not pay for it.
    await closedLoopCount(32, 2_000, () => plain.broadcast(1, { topic: 'bench/plain' }));
    await closedLoopCount(32, 2_000, () => replica.submit(1));
    for (const inFlight of [1, 32]) {
      results[`broadcast x${inFlight}`] = await closedLoop(inFlight, () =>
        plain.broadcast(1, { topic: 'bench/plain' }),
      );
      results[`submit x${inFlight}`] = await closedLoop(inFlight, () => replica.submit(1));
    }
    results['read x1'] = await closedLoop(1, () => replica.read((state) => state.value));
    const board = await TaskBoard.open({ log: client(), name: 'bench' });
    for (let n = 0; n < 2_000; n += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => board.post({ n: n + k })));
    }
    const agents = await Promise.all(
      Array.from({ length: 4 }, () => TaskBoard.open({ log: client(), name: 'bench' })),
    );
    let next = 0;
    results['task claim+complete, 4 agents'] = await closedLoop(4, async () => {
      const agent = agents[next++ % agents.length] as TaskBoard;
      const claim = await agent.claim(`agent-${next % 4}`, { leaseMs: 30_000 });
      if (claim !== null) await agent.complete(claim, null);
    });
    await Promise.all([replica.close(), board.close(), ...agents.map((agent) => agent.close())]);
    return results;
  } finally {
    for (const made of clients) made.close();
    await cluster.stop();
  }
}

const samples: Record<string, Measure>[] = [];
for (let run = 0; run < runs; run++) samples.push(await runOnce());
const summary = Object.fromEntries(
  Object.keys(samples[0] as Record<string, Measure>).map((name) => {
    const of = (field: keyof Measure) => median(samples.map((sample) => sample[name]![field]));
    return [name, { opsPerSecond: of('opsPerSecond'), p50Ms: of('p50Ms'), p99Ms: of('p99Ms') }];
  }),
);
console.table(summary);
await mkdir('bench/results', { recursive: true });
await writeFile(
  'bench/results/agents.json',
  `${JSON.stringify(
    {
      when: new Date().toISOString(),
      machine: { cpus: cpus().length, node: process.version },
      runs,
      seconds,
      summary,
    },
    null,
    2,
  )}\n`,
);
