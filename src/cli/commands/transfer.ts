/**
 * `abcast transfer [--to ID]`: POST /v1/leader/transfer on the leader, which hands its
 * leadership to `--to` (or to the most caught-up follower). Only the leader transfers: asked
 * at a follower, the node's `not_leader` answer (naming the leader) is the one-line error.
 */
import type { Command } from 'commander';
import { callJson, defaultNodeUrl, nodeUrl } from './http-client.ts';

interface TransferFlags {
  node: string;
  to?: string;
}

async function transfer(flags: TransferFlags): Promise<void> {
  const base = nodeUrl(flags.node);
  const answer = await callJson<{ from: string; to: string; term: number }>(
    base,
    '/v1/leader/transfer',
    flags.to === undefined ? {} : { to: flags.to },
  );
  console.log(`leadership moving from ${answer.from} to ${answer.to} (term ${answer.term})`);
}

export function transferCommand(program: Command): void {
  program
    .command('transfer')
    .description('hand leadership to another voter (ask the leader)')
    .option('--node <url>', "the leader's HTTP API", defaultNodeUrl)
    .option('--to <id>', 'the new leader (default: the most caught-up follower)')
    .action((flags: TransferFlags) => transfer(flags));
}
