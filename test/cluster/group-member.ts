// One consumer group member as its own process, for test/cluster/consumer-group.test.ts:
// subscribes as `member` of group `group` through the SDK, and for each message prints a
// JSON line when it takes it (`got`, with the process-independent wall time in fractional
// ms) and when its ack is committed (`acked`) or refused (`lost`). Killed with SIGKILL, it
// stands for a member that crashes mid-stream.
import { connect } from '../../src/client/index.ts';

const [endpointsText, group, member, leaseText] = process.argv.slice(2);
const client = connect({ endpoints: (endpointsText as string).split(',') });
const nowMs = () => performance.timeOrigin + performance.now();
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);

for await (const message of client.subscribe({
  consumer: group as string,
  member: member as string,
  leaseMs: Number(leaseText),
})) {
  const { position, key, deliveryCount, redelivered } = message;
  print({ event: 'got', member, position, key, deliveryCount, redelivered, atMs: nowMs() });
  // A little work per message, so that a crash finds some of it handed out and not acked.
  await new Promise((resolve) => setTimeout(resolve, 5));
  message.ack?.().then(
    () => print({ event: 'acked', member, position }),
    (error: { code?: string }) => print({ event: 'lost', member, position, code: error.code }),
  );
}
