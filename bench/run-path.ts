// The node's own cost per message of a run: one node on the in-memory storage and network,
// a closed loop of broadcastRun calls (the batch route's path without HTTP, peers or disk),
// and the CPU time the process spent per message. CPU time, not throughput: on a machine
// shared with other work it still says what the intake, outbox, apply and settling cost.
import { encode, TwinCluster } from '../test/broadcast/twin-cluster.ts';
import { flagsOrExit, positiveInteger } from './args.ts';

const { rounds, size, payloadBytes } = flagsOrExit({
  usage: `node --import tsx bench/run-path.ts [flags]
The node's CPU per message of broadcastRun calls: one node, in-memory storage and network.
  --rounds N          broadcastRun calls measured, one at a time, after 200 to warm up
                      (default 1500)
  --size N            messages in each call (default 128)
  --payload-bytes N   bytes per message (default 256)`,
  options: {
    rounds: { type: 'string', default: '1500' },
    size: { type: 'string', default: '128' },
    'payload-bytes': { type: 'string', default: '256' },
  },
  read: (values) => ({
    rounds: positiveInteger('rounds', values.rounds),
    size: positiveInteger('size', values.size),
    payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
  }),
});
const payload = encode('x'.repeat(payloadBytes));
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
