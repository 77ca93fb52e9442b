/**
 * One chaos run, start to end:
 *
 * 1. start N nodes (`abcast start`, each behind its fault proxy) and wait for a leader;
 * 2. fault phase: the workload and the nemesis run together for `seconds`;
 * 3. heal: every fault ends (network, clocks, pauses; stopped members restart), and the
 *    workload goes on for `recoverySeconds` so the history shows whether commits resume;
 * 4. quiesce: the clients stop and their operations complete; wait until the live members
 *    have delivered the same number of messages;
 * 5. read every node's delivered sequence through /v1/messages, run `abcast verify` over the
 *    live members (verify.ts), and check both with the history (checker.ts); write
 *    history.jsonl, the nodes' logs and report.html to `out`.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prng } from '../util/prng.ts';
import {
  type CheckResult,
  checkHistory,
  type DeliveredMessage,
  describeVerify,
  type NodeReading,
} from './checker.ts';
import { ChaosCluster } from './cluster.ts';
import { HistoryRecorder } from './history.ts';
import { request } from './http.ts';
import { type FaultKind, Nemesis } from './nemesis.ts';
import { renderReport } from './report.ts';
import type { ChaosSummary } from './summary.ts';
import { TmpfsMounts, tmpfsRefusal } from './tmpfs.ts';
import { verifyNodes } from './verify.ts';
import { Workload } from './workload.ts';

/** The timings `npm run chaos` uses, so that a test's seed replays from the command line. */
export const chaosTimings = {
  recoverySeconds: 10,
  recoveryBoundMs: 30_000,
  faultMsMin: 1_000,
  faultMsMax: 8_000,
  quietMsMax: 3_000,
} as const;

export interface ChaosRunOptions {
  readonly nodeCount: number;
  readonly seconds: number;
  readonly seed: number;
  readonly kinds: readonly FaultKind[];
  /** Where history.jsonl, logs/ and report.html go; null: a temporary folder, removed after. */
  readonly out: string | null;
  readonly recoverySeconds: number;
  /** After the last heal, a commit must come within this long. */
  readonly recoveryBoundMs: number;
  readonly faultMsMin: number;
  readonly faultMsMax: number;
  readonly quietMsMax: number;
  /** Whether membership changes may remove the leader (see NemesisOptions). */
  readonly leaderRemoval: boolean;
  /** Progress lines on stderr. */
  readonly verbose: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForLeader(
  cluster: ChaosCluster,
  ids: readonly string[],
  deadlineMs: number,
): Promise<void> {
  while (performance.now() < deadlineMs) {
    for (const id of ids) {
      try {
        const { body } = await request(
          `${cluster.node(id).httpUrl}/v1/status`,
          { method: 'GET' },
          1_000,
        );
        if (typeof body.leader === 'string') return;
      } catch {
        // Not up yet.
      }
    }
    await sleep(200);
  }
  throw new Error('no leader was elected within the deadline');
}

/** Waits until every running member reports the same delivered position (bounded). */
async function waitForConvergence(
  cluster: ChaosCluster,
  members: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const deadlineMs = performance.now() + timeoutMs;
  while (performance.now() < deadlineMs) {
    const delivered = await Promise.all(
      members.map(async (id) => {
        try {
          const { body } = await request(
            `${cluster.node(id).httpUrl}/v1/status`,
            { method: 'GET' },
            2_000,
          );
          return typeof body.deliveredIndex === 'number' ? body.deliveredIndex : -1;
        } catch {
          return -1;
        }
      }),
    );
    if (delivered.every((value) => value >= 0 && value === delivered[0])) return;
    await sleep(300);
  }
}

/**
 * The configuration as the leader reports it: an unanswered membership request may still
 * have taken effect, so the nemesis's own list is only the fallback (no leader).
 */
async function configuredMembers(
  cluster: ChaosCluster,
  fallback: readonly string[],
): Promise<string[]> {
  for (const node of cluster.nodes.values()) {
    if (!cluster.isRunning(node.id)) continue;
    try {
      const { body } = await request(`${node.httpUrl}/v1/status`, { method: 'GET' }, 2_000);
      if (body.role !== 'leader' || !Array.isArray(body.members)) continue;
      return (body.members as { id: string }[]).map((member) => member.id);
    } catch {
      // Try the next node.
    }
  }
  return [...fallback];
}

/** Every message a node delivered, page by page; from its first kept position if compacted. */
async function readDelivered(url: string): Promise<DeliveredMessage[]> {
  const messages: DeliveredMessage[] = [];
  let from = 1;
  for (let pages = 0; pages < 100_000; pages++) {
    const { status, body } = await request(
      `${url}/v1/messages?from=${from}&limit=1000`,
      { method: 'GET' },
      10_000,
    );
    if (status === 410 && typeof body.firstIndex === 'number') {
      from = body.firstIndex;
      continue;
    }
    if (status !== 200)
      throw new Error(`GET /v1/messages answered ${status} ${String(body.error)}`);
    const page = body.messages as {
      index: number;
      payload: unknown;
      client: string;
      seq: number;
      topic: string | null;
    }[];
    if (page.length === 0) return messages;
    for (const message of page) {
      const payload = message.payload as { k?: unknown } | null;
      messages.push({
        position: message.index,
        key: typeof payload?.k === 'string' ? payload.k : null,
        client: message.client,
        seq: message.seq,
        topic: message.topic,
      });
    }
    from = body.next as number;
  }
  throw new Error('too many pages');
}

/**
 * Every node's reading. A node stopped after its removal is judged on what it had
 * delivered then (`departedMessages`); a damaged one, which never came back, on nothing.
 */
async function readAll(
  cluster: ChaosCluster,
  members: readonly string[],
  departedMessages: ReadonlyMap<string, DeliveredMessage[]>,
): Promise<NodeReading[]> {
  return Promise.all(
    [...cluster.nodes.values()].map(async (node): Promise<NodeReading> => {
      const standing =
        node.damaged !== null
          ? 'damaged'
          : node.departed || !members.includes(node.id)
            ? 'departed'
            : 'member';
      if (!cluster.isRunning(node.id)) {
        return {
          node: node.id,
          standing,
          messages: departedMessages.get(node.id) ?? [],
          error: standing === 'member' ? 'not running' : null,
        };
      }
      try {
        return {
          node: node.id,
          standing,
          messages: await readDelivered(node.httpUrl),
          error: null,
        };
      } catch (error) {
        return { node: node.id, standing, messages: [], error: String(error) };
      }
    }),
  );
}

/** The clients of every run: enough to keep the nodes busy, and CPU left on 2 cores. */
const workloadShape = {
  sdkClientCount: 2,
  sdkInFlightPerClient: 3,
  httpSessionClientCount: 3,
  httpClientCount: 2,
  barrierReaderCount: 1,
  subscriberCount: 2,
  thinkMsMax: 40,
  /** Above the nodes' request timeout (3 s), so their own answer comes first. */
  attemptTimeoutMs: 4_000,
  sessionAttemptsMax: 6,
} as const;

const nodeRequestTimeoutMs = 3_000;

interface RunParts {
  readonly ids: readonly string[];
  readonly history: HistoryRecorder;
  readonly cluster: ChaosCluster;
  readonly nemesis: Nemesis;
  readonly workload: Workload;
  readonly notes: string[];
  readonly departedMessages: Map<string, DeliveredMessage[]>;
  readonly elapsedMs: () => number;
}

/** Each node's tmpfs (full-disk fault): roomy, yet bounded; only what is used takes memory. */
const smallDiskBytes = 128 * 1024 * 1024;
/** Small enough that a node zero-fills a new segment every few seconds under load. */
const smallDiskSegmentBytes = 128 * 1024;

/** `smallDisksRefusal`: why the full-disk fault cannot run here (null: it can, or is not asked). */
function createParts(
  options: ChaosRunOptions,
  root: string,
  logDir: string,
  smallDisksRefusal: string | null,
): RunParts {
  const random = new Prng(options.seed);
  const notes: string[] = [];
  let smallDisks: ConstructorParameters<typeof ChaosCluster>[0]['smallDisks'] = null;
  if (options.kinds.includes('full-disk')) {
    if (smallDisksRefusal === null) {
      smallDisks = { mounts: new TmpfsMounts(smallDiskBytes), segmentBytes: smallDiskSegmentBytes };
    } else {
      notes.push(`full-disk faults skipped: ${smallDisksRefusal}`);
    }
  }
  const startedMs = performance.now();
  const elapsedMs = () => performance.now() - startedMs;
  const out = options.out;
  const history = new HistoryRecorder(elapsedMs, out === null ? null : join(out, 'history.jsonl'));
  const cluster = new ChaosCluster({
    root,
    logDir,
    requestTimeoutMs: nodeRequestTimeoutMs,
    random: random.fork(),
    logLevel: 'info',
    smallDisks,
  });
  if (cluster.fakeTime === null && options.kinds.includes('clock')) {
    notes.push('clock faults skipped: libfaketime is not installed (apt-get install faketime)');
  }
  const departedMessages = new Map<string, DeliveredMessage[]>();
  const ids = Array.from({ length: options.nodeCount }, (_, at) => `n${at + 1}`);
  const nemesis = new Nemesis({
    cluster,
    history,
    random: random.fork(),
    kinds: options.kinds,
    initialMembers: ids,
    faultMsMin: options.faultMsMin,
    faultMsMax: options.faultMsMax,
    quietMsMax: options.quietMsMax,
    leaderRemoval: options.leaderRemoval,
    beforeStop: async (id) => {
      departedMessages.set(id, await readDelivered(cluster.node(id).httpUrl));
    },
  });
  const workload = new Workload({
    ...workloadShape,
    history,
    // Raw clients pick among the members of the moment; the SDK keeps the first list.
    endpoints: () =>
      nemesis.members
        .filter((id) => cluster.node(id).damaged === null)
        .map((id) => cluster.node(id).httpUrl),
    random: random.fork(),
  });
  return { ids, history, cluster, nemesis, workload, notes, departedMessages, elapsedMs };
}

function summarize(
  options: ChaosRunOptions,
  parts: RunParts,
  result: CheckResult,
  verify: string,
): ChaosSummary {
  const violationTotal = Object.values(result.violationCounts).reduce(
    (sum, count) => sum + (count ?? 0),
    0,
  );
  return {
    seed: options.seed,
    nodes: options.nodeCount,
    seconds: options.seconds,
    acknowledged: result.stats.acknowledged,
    failed: result.stats.failed,
    unknown: result.stats.unknown,
    unknownDelivered: result.stats.unknownDelivered,
    barriers: result.stats.barriers,
    delivered: result.stats.delivered,
    faults: Object.fromEntries(parts.nemesis.injected),
    longestUnavailabilityMs: result.stats.longestUnavailabilityMs,
    recoveryMs: result.stats.recoveryMs,
    damagedNodes: [...parts.cluster.nodes.values()]
      .filter((node) => node.damaged !== null)
      .map((node) => node.id),
    violations: violationTotal,
    violationCounts: result.violationCounts,
    verify,
    notes: parts.notes,
    out: options.out,
  };
}

/** Phases 1 to 5 of the run (see the top of this file); the caller cleans up. */
async function runPhases(
  options: ChaosRunOptions,
  parts: RunParts,
  log: (line: string) => void,
): Promise<{ summary: ChaosSummary; result: CheckResult; readings: NodeReading[] }> {
  const { ids, cluster, nemesis, workload, history } = parts;
  await cluster.prepare(ids);
  await Promise.all(ids.map((id) => cluster.start(id, ids, false)));
  await waitForLeader(cluster, ids, performance.now() + 30_000);
  log(`${ids.length} nodes up; fault phase of ${options.seconds} s, seed ${options.seed}`);
  workload.start();
  nemesis.start();
  await sleep(options.seconds * 1_000);
  await nemesis.stop();
  await nemesis.healAll();
  const healedAtMs = parts.elapsedMs();
  log(`healed; recovery phase of ${options.recoverySeconds} s`);
  await sleep(options.recoverySeconds * 1_000);
  await workload.stop();
  const endMs = parts.elapsedMs();
  const members = await configuredMembers(cluster, nemesis.members);
  const live = members.filter((id) => cluster.node(id).damaged === null);
  await waitForConvergence(cluster, live, 60_000);
  const readings = await readAll(cluster, members, parts.departedMessages);
  const verify = await verifyNodes(
    live.filter((id) => cluster.isRunning(id)).map((id) => ({ id, url: cluster.node(id).httpUrl })),
    { chunkCount: 4_096, timeoutMs: 10_000 },
  );
  log(`abcast verify: ${describeVerify(verify)}`);
  await workload.stopSubscribers();
  await history.close();
  const result = checkHistory(history.events, readings, {
    healedAtMs,
    recoveryBoundMs: options.recoveryBoundMs,
    endMs,
    violationsPerPropertyMax: 20,
    verify,
  });
  return {
    summary: summarize(options, parts, result, describeVerify(verify)),
    result,
    readings,
  };
}

export async function runChaos(
  options: ChaosRunOptions,
): Promise<{ summary: ChaosSummary; result: CheckResult }> {
  const log = (line: string) => {
    if (options.verbose) console.error(`chaos: ${line}`);
  };
  const out = options.out;
  const root = await mkdtemp(join(tmpdir(), 'abcast-chaos-'));
  const logDir = out === null ? join(root, 'logs') : join(out, 'logs');
  if (out !== null) {
    await rm(logDir, { recursive: true, force: true });
    await mkdir(logDir, { recursive: true });
  }
  const smallDisksRefusal = options.kinds.includes('full-disk')
    ? await tmpfsRefusal(join(root, 'mount-probe'))
    : null;
  const parts = createParts(options, root, logDir, smallDisksRefusal);
  for (const note of parts.notes) log(note);
  try {
    const { summary, result, readings } = await runPhases(options, parts, log);
    if (out !== null) {
      // The verdict stands without the page: a report that fails to render is a note.
      const history = parts.history.events;
      try {
        const page = renderReport({ summary, result, history, readings });
        await writeFile(join(out, 'report.html'), page);
      } catch (error) {
        parts.notes.push(`report.html not written: ${String(error)}`);
      }
      await writeFile(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    }
    return { summary, result };
  } finally {
    await parts.nemesis.stop().catch(() => undefined);
    await parts.workload.stop().catch(() => undefined);
    await parts.workload.stopSubscribers().catch(() => undefined);
    const stillMounted = await parts.cluster.close();
    if (stillMounted.length > 0) console.error(`chaos: left mounted: ${stillMounted.join('; ')}`);
    await parts.history.close().catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}
