/** docs/performance.md, written from the race's results by `npm run bench:compare`. */
import {
  cpuTable,
  durabilityTable,
  formatCount,
  formatMs,
  repeatNote,
  throughputTable,
} from './render.ts';
import type { CompareResults } from './results.ts';
import { targetTable } from './targets.ts';

function loadAverages(results: CompareResults): string {
  const levels = results.rows.flatMap((row) => row.runs.map((run) => run.loadAverage1m));
  const range =
    levels.length === 0
      ? ''
      : `, ${Math.min(...levels).toFixed(1)}–${Math.max(...levels).toFixed(1)} at the start of the measured levels`;
  const triple = (values: readonly number[]) => values.map((value) => value.toFixed(2)).join(' ');
  return `1/5/15-minute load average ${triple(results.loadAverage.before)} before the race and ${triple(results.loadAverage.after)} after it${range}`;
}

function when(results: CompareResults): string {
  if (results.repeats === undefined) return 'in one run.';
  const count = results.repeats.count;
  return `in ${count} races run one after the other: every figure on this page is the median of ${count} races, each field on its own (bench/results/compare.json keeps every race's own figures, \`--repeat ${count}\`).`;
}

function conditions(results: CompareResults): string {
  const { machine, settings } = results;
  const servers = [...new Set(results.rows.map((row) => row.server))].join(', ');
  const clients = results.rows.map((row) => row.client).join('; ');
  return [
    `- **When**: ${results.startedAt} to ${results.finishedAt}, ${when(results)}`,
    `- **Machine**: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, data on ${machine.dataFileSystem}, Node ${machine.node}. The machine is **shared** with other work while the race runs (the race itself runs at nice ${machine.nice}): ${loadAverages(results)}.${machine.nice > 0 ? ' At that niceness the race yields the cores to that work, so a server that needs more CPU per message loses more than one that needs less (the CPU table shows what each got).' : ''} Figures move by tens of percent between runs; compare systems within one run.`,
    `- **Servers**: ${servers}; each a cluster of 3 processes on 127.0.0.1 with its default durability, started fresh on empty data directories and removed afterwards.`,
    `- **Clients**: ${clients}; one client process, connected to the leader, run with \`--max-semi-space-size=64\` (V8's young generation 64 MiB per semi-space instead of 16: at 10,000 in flight every client keeps tens of thousands of promises alive for tens of milliseconds, which the default moves to the old generation and collects there; the SDK's README recommends the setting, and every system's client gets it alike).`,
    `- **Load**: ${settings.payloadBytes}-byte messages, closed loop: ${settings.inFlight.map(formatCount).join(', ')} messages in flight, each level after a \`sync\` (so that no level pays for writing back the previous one's page cache), ${settings.warmupSeconds} s of warm-up then ${settings.seconds} s counted, after ${settings.clusterWarmupSeconds} s of uncounted load at 128 in flight on each fresh cluster; latency is send to acknowledgement, p50 and p99 from an HDR histogram.`,
  ].join('\n');
}

function floorSection(results: CompareResults): string {
  if (results.floor === undefined) return '';
  return `The floor line is not a product: \`npm run bench:floor\` (bench/floor.ts) runs a leader and
two followers as processes on loopback that do nothing but replicate: each batch one O_DSYNC
write into a preallocated file, acknowledged once the leader and one follower hold it, with no
terms, elections, checks, sessions or store, driven by a client of its own just before abcast
in the same run. It says what this machine allows that day: the targets are absolute, and the
machine's speed moves by a factor of two between days.

`;
}

export function renderDoc(results: CompareResults, chartPath: string): string {
  const post = results.abcastPost;
  const catchUp = results.abcastCatchUp;
  return `# Performance: abcast beside etcd, ZooKeeper and NATS JetStream

<!-- Written by \`npm run bench:compare\` (bench/compare/) from bench/results/compare.json; rerun it rather than editing. -->

One load generator drives each system in turn, in one run on one machine: the same
client process, the same message size, the same numbers of messages in flight. Each
system runs as a 3-node cluster on loopback with the durability it has by default, and
the table says which of them fsync a message before acknowledging it: **NATS JetStream
does not**, so its figures buy less than the others'.

\`\`\`sh
npm run bench:compare                      # the whole race: installs the servers if missing, rewrites this page
npm run bench:compare -- --only abcast     # abcast alone, into bench/results/compare-abcast.json
npm run bench:compare -- --seconds 30 --in-flight 1,128 --help
\`\`\`

## Conditions

${conditions(results)}

## Results

![messages per second and p50 latency per system and load](${chartPath})

Messages acknowledged per second, then latency p50 / p99${repeatNote(results)}:

${throughputTable(results)}

What one message is: for etcd a put of a new key, for ZooKeeper the create of a persistent
sequential znode, for NATS a JetStream publish to a stream of 3 replicas on file storage,
for abcast a broadcast through the SDK (\`connect\` from src/client, which packs the messages
of one event-loop turn into one request) over HTTP/JSON or over the binary protocol
(docs/protocol.md).

${floorSection(results)}## Durability by default

${durabilityTable(results)}

## abcast alone

- One \`POST /v1/broadcast\` per message on ${results.settings.postConnections} kept-alive connections (${postClientNote(results.settings.postClient ?? 'node:http')}): ${post === null ? 'not run' : `${formatCount(post.messagesPerSecond)} msgs/s, p50 ${formatMs(post.p50Ms)} ms, p99 ${formatMs(post.p99Ms)} ms, ${formatCount(post.errors)} errors`}.
${results.abcastFailure === null ? '' : `- Did not finish: ${results.abcastFailure}\n`}- A subscriber catching up from position 1 through the SDK (\`subscribe({ from: 1 })\`, stream records (docs/protocol.md) over HTTP, then the same records over the binary protocol): ${catchUp === null ? 'not run' : `${formatCount(catchUp.messagesPerSecond)} msgs/s over HTTP (${formatCount(catchUp.messages)} messages in ${catchUp.seconds.toFixed(2)} s)${catchUp.binary === undefined ? '' : `, ${formatCount(catchUp.binary.messagesPerSecond)} msgs/s over binary (${catchUp.binary.seconds.toFixed(2)} s)`}`}.

## Targets

${targetTable(results)}

## Where the time goes

CPU profiles of the nodes and of the client under this load, what they showed and what was
changed because of them: [performance-profile.md](performance-profile.md).

## CPU

CPU used over the counted seconds, in % of one core (the machine has ${results.machine.cores}): the three
server processes together / the client process, and the machine's 1-minute load average as
the level began.

${cpuTable(results)}
`;
}

/** The POST row's client, and why it matters: it shares the two cores with the nodes. */
function postClientNote(client: string): string {
  return client === 'wrk'
    ? 'wrk, a load generator in C, one request at a time on each connection'
    : `${client}, in Node on the same cores as the nodes`;
}
