/**
 * `abcast consumers`: the durable consumers the log holds, with each one's cursor (the last
 * position it acknowledged) and lag (positions delivered after it); a consumer group with
 * its members, each with its slots, and the topics compacted by key.
 */
import type { Command } from 'commander';
import { callJson, defaultNodeUrl, nodeUrl } from './http-client.ts';
import { formatTable } from './status.ts';

interface ConsumersFlags {
  node: string;
  json?: boolean;
}

interface ConsumerRow {
  readonly name: string;
  readonly index: number;
  readonly lag: number;
  readonly ackTime?: number;
  readonly group?: boolean;
  readonly members?: readonly { member: string; slots: readonly number[] }[];
  readonly ackDeadlineMs?: number;
}

interface ConsumersAnswer {
  readonly consumers: readonly ConsumerRow[];
  readonly deliveredIndex: number;
  readonly compaction?: { readonly topics: readonly string[]; readonly before: number };
}

/** What the last column says: when the cursor moved, or a group's members and slots. */
function detail(consumer: ConsumerRow): string {
  const deadline =
    consumer.ackDeadlineMs === undefined ? '' : ` (ack deadline ${consumer.ackDeadlineMs} ms)`;
  if (consumer.group === true) {
    const members = (consumer.members ?? []).map(
      (member) => `${member.member}:${member.slots.length}`,
    );
    return `group, members (slots): ${members.join(' ') || 'none'}${deadline}`;
  }
  const ackTime = consumer.ackTime ?? 0;
  return `${ackTime === 0 ? '-' : new Date(ackTime).toISOString()}${deadline}`;
}

async function consumers(flags: ConsumersFlags): Promise<void> {
  const answer = await callJson<ConsumersAnswer>(nodeUrl(flags.node), '/v1/consumers');
  if (flags.json === true) {
    console.log(JSON.stringify(answer));
    return;
  }
  const rows = [['NAME', 'INDEX', 'LAG', 'ACKED AT (log time) / GROUP']];
  for (const consumer of answer.consumers) {
    rows.push([consumer.name, String(consumer.index), String(consumer.lag), detail(consumer)]);
  }
  console.log(`delivered: ${answer.deliveredIndex}`);
  const topics = answer.compaction?.topics ?? [];
  if (topics.length > 0) {
    console.log(`compacted by key: ${topics.join(', ')} (before ${answer.compaction?.before})`);
  }
  console.log(formatTable(rows));
}

export function consumersCommand(program: Command): void {
  program
    .command('consumers')
    .description('durable consumers: their cursors and lag')
    .option('--node <url>', "a node's HTTP API", defaultNodeUrl)
    .option('--json', 'print the answer as JSON')
    .action((flags: ConsumersFlags) => consumers(flags));
}
