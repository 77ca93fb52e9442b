/**
 * `npm run bench:compare`: the race of issue #14. etcd, ZooKeeper, NATS JetStream and abcast
 * each run as a 3-node cluster on 127.0.0.1 with their default durability, one after the
 * other, and the one load generator (load.ts) drives each at every load level from this
 * process. Results go to bench/results/compare.json; the full race also rewrites
 * docs/performance.md and its chart. Every server is stopped and every data directory
 * removed before this process exits, whatever happens.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, getPriority, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { postLoadClient } from '../../src/cli/commands/post-load.ts';
import { flagsOrExit } from '../args.ts';
import { type AbcastCluster, abcastDurability, startAbcast } from './abcast.ts';
import { type CompareSettings, compareFlags, type SystemId } from './args.ts';
import { renderChart } from './chart.ts';
import { renderDoc } from './doc.ts';
import { etcdDurability, startEtcd } from './etcd.ts';
import { ensureServers } from './install.ts';
import { type LoadResult, runLoad } from './load.ts';
import { medianOfRaces } from './median.ts';
import { natsDurability, startNats } from './nats.ts';
import { makeRoot, removeRoot } from './processes.ts';
import { formatCount, formatMs, throughputTable } from './render.ts';
import type { CatchUp, CompareResults, FloorResult, Machine, ResultRow } from './results.ts';
import type { ClusterOptions, Durability, RunningCluster, Sender, Way } from './system.ts';
import { targetTable } from './targets.ts';
import { runWrkLoad, wrkAvailable } from './wrk.ts';
import { startZooKeeper, zookeeperDurability } from './zookeeper.ts';

const contenders: Record<
  SystemId,
  {
    readonly durability: Durability;
    readonly start: (options: ClusterOptions) => Promise<RunningCluster>;
    /** Row ids when the cluster does not start (its ways are unknown then). */
    readonly rowIds: readonly string[];
  }
> = {
  etcd: { durability: etcdDurability, start: startEtcd, rowIds: ['etcd'] },
  zookeeper: { durability: zookeeperDurability, start: startZooKeeper, rowIds: ['zookeeper'] },
  nats: { durability: natsDurability, start: startNats, rowIds: ['nats'] },
  abcast: {
    durability: abcastDurability,
    start: startAbcast,
    rowIds: ['abcast-sdk-http', 'abcast-sdk-binary'],
  },
};

const docPath = 'docs/performance.md';
const clusterWarmupInFlight = 128;
const chartPath = 'docs/images/performance-compare.svg';

function log(line: string): void {
  console.error(`bench:compare: ${line}`);
}

function describe(run: LoadResult): string {
  const errors = run.errors === 0 ? '' : `, ${run.errors} errors (${run.firstError})`;
  return `${formatCount(run.messagesPerSecond)}/s, p50 ${formatMs(run.p50Ms)} ms, p99 ${formatMs(run.p99Ms)} ms, servers ${run.serverCpuPercent}% client ${run.clientCpuPercent}% CPU${errors}`;
}

async function measure(
  settings: CompareSettings,
  name: string,
  serverPids: readonly number[],
  inFlight: number,
  open: () => Promise<Sender>,
): Promise<LoadResult> {
  settleDisk();
  const sender = await open();
  try {
    const run = await runLoad({ ...settings, send: sender.send, inFlight, serverPids });
    log(`${name}, ${formatCount(inFlight)} in flight: ${describe(run)}`);
    return run;
  } finally {
    await sender.close();
  }
}

/**
 * Writes the page cache's dirty pages before a level: a level that leaves hundreds of
 * megabytes unsynced (a store that fsyncs only its log, or a previous system's data) would
 * otherwise have the kernel write them back during the next level, on the same cores.
 */
function settleDisk(): void {
  try {
    execFileSync('sync');
  } catch (error) {
    log(`sync failed, the level starts with the page cache as it is: ${error}`);
  }
}

/**
 * A fresh cluster is slower for its first seconds (JIT, caches, the first segments and
 * snapshots): every system gets the same uncounted load before its first level.
 */
async function warmUp(settings: CompareSettings, cluster: RunningCluster): Promise<void> {
  const way = cluster.ways[0];
  if (way === undefined || settings.clusterWarmupSeconds === 0) return;
  const sender = await way.open(clusterWarmupInFlight);
  try {
    await runLoad({
      send: sender.send,
      inFlight: clusterWarmupInFlight,
      seconds: settings.clusterWarmupSeconds,
      warmupSeconds: 0,
      serverPids: [],
    });
  } finally {
    await sender.close();
  }
}

async function driveWay(settings: CompareSettings, cluster: RunningCluster, way: Way) {
  const runs: LoadResult[] = [];
  for (const inFlight of settings.inFlight) {
    const name = `${cluster.version} (${way.client})`;
    runs.push(
      await measure(settings, name, cluster.serverPids, inFlight, () => way.open(inFlight)),
    );
  }
  return runs;
}

interface SystemOutcome {
  readonly rows: ResultRow[];
  post: LoadResult | null;
  /** The HTTP client that made the POST row's load. */
  postClient: string | null;
  catchUp: CatchUp | null;
  extrasFailure: string | null;
}

async function raceSystem(settings: CompareSettings, system: SystemId): Promise<SystemOutcome> {
  const contender = contenders[system];
  const root = await makeRoot(`abcast-compare-${system}-`);
  const outcome: SystemOutcome = {
    rows: [],
    post: null,
    postClient: null,
    catchUp: null,
    extrasFailure: null,
  };
  const row = (id: string, server: string, client: string) => ({
    id,
    system,
    server,
    client,
    fsyncBeforeAck: contender.durability.fsyncBeforeAck,
    durability: contender.durability.note,
  });
  let cluster: RunningCluster;
  try {
    log(`starting ${system}`);
    cluster = await contender.start({ root, payloadBytes: settings.payloadBytes });
  } catch (error) {
    const failure = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    log(`${system} did not start: ${error instanceof Error ? error.message : error}`);
    await removeRoot(root);
    outcome.rows.push(
      ...contender.rowIds.map((id) => ({ ...row(id, system, '—'), runs: [], failure })),
    );
    return outcome;
  }
  try {
    log(`${cluster.version}: ${settings.clusterWarmupSeconds} s of warm-up`);
    await warmUp(settings, cluster);
    for (const way of cluster.ways) {
      const runs = await driveWay(settings, cluster, way);
      outcome.rows.push({ ...row(way.id, cluster.version, way.client), runs, failure: null });
    }
    if (system === 'abcast') {
      await abcastExtras(settings, cluster as AbcastCluster, outcome).catch((error: unknown) => {
        outcome.extrasFailure = error instanceof Error ? error.message : String(error);
        log(`abcast: ${outcome.extrasFailure}`);
      });
    }
  } finally {
    await cluster.stop();
    await removeRoot(root);
  }
  return outcome;
}

async function abcastExtras(
  settings: CompareSettings,
  cluster: AbcastCluster,
  outcome: SystemOutcome,
): Promise<void> {
  const connections = settings.postConnections;
  const name = `abcast, a POST per message on ${connections} connections`;
  if (await wrkAvailable()) {
    settleDisk();
    outcome.post = await runWrkLoad({
      origin: cluster.postOrigin,
      connections,
      body: cluster.postBody,
      seconds: settings.seconds,
      warmupSeconds: settings.warmupSeconds,
      serverPids: cluster.serverPids,
    });
    outcome.postClient = 'wrk';
    log(`${name} (wrk): ${describe(outcome.post)}`);
  } else {
    // Without wrk (--no-install on a machine that lacks it) the Node load stands in; the
    // results say which client it was, since the client's CPU comes out of the nodes' share.
    outcome.post = await measure(settings, name, cluster.serverPids, connections, async () =>
      cluster.openPost(connections),
    );
    outcome.postClient = postLoadClient;
  }
  log(`abcast: a subscriber catching up over ${formatCount(settings.catchUpMessages)} messages`);
  outcome.catchUp = await cluster.catchUp(settings.catchUpMessages);
  log(`abcast: caught up at ${formatCount(outcome.catchUp.messagesPerSecond)} msgs/s`);
}

/** The floor's own bound: its levels take about `seconds + 1` each, plus start-up. */
const floorSlackMs = 120_000;

/** bench/floor.ts at the race's levels, in a process of its own, as every system runs. */
async function runFloor(settings: CompareSettings): Promise<FloorResult> {
  const root = await makeRoot('abcast-compare-floor-');
  const out = join(root, 'floor.json');
  try {
    log('the floor: a bare replicated log (bench/floor.ts)');
    settleDisk();
    await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(new URL('../floor.ts', import.meta.url)),
        '--in-flight',
        settings.inFlight.join(','),
        '--seconds',
        String(settings.seconds),
        '--payload-bytes',
        String(settings.payloadBytes),
        '--out',
        out,
      ],
      { timeout: settings.inFlight.length * (settings.seconds + 1) * 1000 + floorSlackMs },
    );
    const { results } = JSON.parse(await readFile(out, 'utf8')) as { results: FloorResult['runs'] };
    for (const run of results) {
      log(
        `floor, ${formatCount(run.inFlight)} in flight: ${formatCount(run.messagesPerSecond)}/s, p50 ${formatMs(run.p50Ms)} ms, p99 ${formatMs(run.p99Ms)} ms`,
      );
    }
    return { runs: results, failure: null };
  } catch (error) {
    const failure = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    log(`the floor did not run: ${failure}`);
    return { runs: [], failure };
  } finally {
    await removeRoot(root);
  }
}

function machine(): Machine {
  let dataFileSystem = 'unknown';
  try {
    dataFileSystem = execFileSync('stat', ['-f', '-c', '%T', tmpdir()], { encoding: 'utf8' })
      .trim()
      .replace('ext2/ext3', 'ext2/3/4');
  } catch {
    // stat without -f: the file system stays unknown.
  }
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.versions.node,
    dataFileSystem: `${dataFileSystem} (${tmpdir()})`,
    nice: getPriority(),
  };
}

const loadAverageNow = () => loadavg().map((value) => Number(value.toFixed(2)));

async function writeOutputs(settings: CompareSettings, results: CompareResults): Promise<void> {
  await mkdir(dirname(settings.out), { recursive: true });
  await writeFile(settings.out, `${JSON.stringify(results, null, 2)}\n`);
  log(`results in ${settings.out}`);
  if (settings.writeDoc) await writeDoc(results);
}

async function writeDoc(results: CompareResults): Promise<void> {
  await mkdir(dirname(chartPath), { recursive: true });
  await writeFile(chartPath, renderChart(results));
  await writeFile(docPath, renderDoc(results, chartPath.replace(/^docs\//, '')));
  log(`wrote ${docPath} and ${chartPath}`);
}

/** Every system in turn, each on a fresh cluster, the floor just before abcast. */
async function race(settings: CompareSettings): Promise<CompareResults> {
  const startedAt = new Date().toISOString();
  const before = loadAverageNow();
  const outcomes: SystemOutcome[] = [];
  let floor: FloorResult | undefined;
  for (const system of settings.only) {
    // Next to abcast in time, so that both meet the machine in the same state.
    if (system === 'abcast') floor = await runFloor(settings);
    outcomes.push(await raceSystem(settings, system));
  }
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: machine(),
    settings: {
      seconds: settings.seconds,
      warmupSeconds: settings.warmupSeconds,
      clusterWarmupSeconds: settings.clusterWarmupSeconds,
      inFlight: settings.inFlight,
      payloadBytes: settings.payloadBytes,
      postConnections: settings.postConnections,
      postClient:
        outcomes.find((outcome) => outcome.postClient !== null)?.postClient ?? postLoadClient,
      catchUpMessages: settings.catchUpMessages,
    },
    loadAverage: { before, after: loadAverageNow() },
    rows: outcomes.flatMap((outcome) => outcome.rows),
    abcastPost: outcomes.find((outcome) => outcome.post !== null)?.post ?? null,
    abcastCatchUp: outcomes.find((outcome) => outcome.catchUp !== null)?.catchUp ?? null,
    abcastFailure:
      outcomes.find((outcome) => outcome.extrasFailure !== null)?.extrasFailure ?? null,
    ...(floor === undefined ? {} : { floor }),
  };
}

async function main(): Promise<void> {
  const settings = flagsOrExit(compareFlags);
  if (settings.renderFrom !== null) {
    const results = JSON.parse(await readFile(settings.renderFrom, 'utf8')) as CompareResults;
    await writeDoc(results);
    console.log(`${throughputTable(results)}\n\n${targetTable(results)}`);
    return;
  }
  ensureServers(settings.only, settings.install);
  const races: CompareResults[] = [];
  for (let raceNumber = 1; raceNumber <= settings.repeatCount; raceNumber++) {
    if (settings.repeatCount > 1) log(`race ${raceNumber} of ${settings.repeatCount}`);
    races.push(await race(settings));
  }
  const results = medianOfRaces(races);
  await writeOutputs(settings, results);
  console.log(`${throughputTable(results)}\n\n${targetTable(results)}`);
}

main().then(
  // Client libraries keep sockets and timers of their own: leave now that all is stopped.
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);
