/**
 * `abcast consumers`: the durable consumers the log holds, with each one's cursor (the last
 * position it acknowledged) and lag (positions delivered after it).
 */
import type { Command } from 'commander';
import { callJson, defaultNodeUrl, nodeUrl } from './http-client.ts';
import { formatTable } from './status.ts';

interface ConsumersFlags {
  node: string;
  json?: boolean;
}

interface ConsumersAnswer {
  readonly consumers: readonly { name: string; index: number; lag: number; ackTime: number }[];
  readonly deliveredIndex: number;
}

async function consumers(flags: ConsumersFlags): Promise<void> {
  const answer = await callJson<ConsumersAnswer>(nodeUrl(flags.node), '/v1/consumers');
  if (flags.json === true) {
    console.log(JSON.stringify(answer));
    return;
  }
  const rows = [['NAME', 'INDEX', 'LAG', 'ACKED AT (log time)']];
  for (const consumer of answer.consumers) {
    const ackedAt = consumer.ackTime === 0 ? '-' : new Date(consumer.ackTime).toISOString();
    rows.push([consumer.name, String(consumer.index), String(consumer.lag), ackedAt]);
  }
  console.log(`delivered: ${answer.deliveredIndex}`);
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
