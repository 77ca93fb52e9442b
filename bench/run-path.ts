// The node's own cost per message of a run: one node on the in-memory storage and network,
// a closed loop of broadcastRun calls (the batch route's path without HTTP, peers or disk),
// and the CPU time the process spent per message. CPU time, not throughput: on a machine
// shared with other work it still says what the intake, outbox, apply and settling cost.
//
//   node --import tsx bench/run-path.ts [--rounds 1500] [--size 128] [--payload-bytes 256]
import { parseArgs } from 'node:util';
import { encode, TwinCluster } from '../test/broadcast/twin-cluster.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '1500' },
    size: { type: 'string', default: '128' },
    'payload-bytes': { type: 'string', default: '256' },
  },
});
const rounds = Number(values.rounds);
const size = Number(values.size);
const payload = encode('x'.repeat(Number(values['payload-bytes'])));
const warmUpRounds = 200;

const cluster = await TwinCluster.start({ ids: ['n1'] });
try {
  await cluster.waitForLeader();
  const node = cluster.node('n1');
  let seq = 1;
  const round = async (): Promise<void> => {
    const messages = Array.from({ length: size }, () => ({ payload, topic: 'bench' }));
    const outcomes = await node.broadcastRun({ clientId: 'bench', firstSeq: seq, messages });
    seq += size;
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  };
  for (let count = 0; count < warmUpRounds; count++) await round();
  const cpuBefore = process.cpuUsage();
  for (let count = 0; count < rounds; count++) await round();
  const cpu = process.cpuUsage(cpuBefore);
  const microsPerMessage = (cpu.user + cpu.system) / (rounds * size);
  console.log(
    JSON.stringify({ rounds, size, cpuMicrosPerMessage: Number(microsPerMessage.toFixed(2)) }),
  );
} finally {
  await cluster.close();
}
