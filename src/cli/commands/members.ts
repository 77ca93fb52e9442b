/**
 * `abcast members add ID ADDRESS [--learner]` and `abcast members remove ID`: membership
 * changes through POST /v1/members and DELETE /v1/members/:id on any node. Both wait until
 * the configuration is as asked, then print the members.
 */
import type { Command } from 'commander';
import { callJson, defaultNodeUrl, nodeUrl } from './http-client.ts';

interface MembersAnswer {
  members: { id: string; address: string | null; voter: boolean }[];
}

/** Membership changes wait for a learner to catch up: longer than a plain request. */
const membershipTimeoutMs = 30_000;

function printMembers(answer: MembersAnswer): void {
  for (const member of answer.members) {
    console.log(`${member.id}\t${member.address ?? '?'}\t${member.voter ? 'voter' : 'learner'}`);
  }
}

export function membersCommand(program: Command): void {
  const members = program.command('members').description('add or remove cluster members');
  members
    .command('add <id> <address>')
    .description('add a node (started with --join) as a voter, or as a learner with --learner')
    .option('--node <url>', "any member's HTTP API", defaultNodeUrl)
    .option('--learner', 'keep it a non-voting learner')
    .action(async (id: string, address: string, flags: { node: string; learner?: boolean }) => {
      const body = { id, address, voter: flags.learner !== true };
      printMembers(
        await callJson<MembersAnswer>(
          nodeUrl(flags.node),
          '/v1/members',
          body,
          membershipTimeoutMs,
        ),
      );
    });
  members
    .command('remove <id>')
    .description('take a node out of the cluster (then stop it)')
    .option('--node <url>', "any member's HTTP API", defaultNodeUrl)
    .action(async (id: string, flags: { node: string }) => {
      const path = `/v1/members/${encodeURIComponent(id)}`;
      printMembers(
        await callJson<MembersAnswer>(
          nodeUrl(flags.node),
          path,
          undefined,
          membershipTimeoutMs,
          'DELETE',
        ),
      );
    });
}
