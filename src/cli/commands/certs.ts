/**
 * `abcast certs ca|node|client --dir DIR`: a cluster's certificates without openssl
 * (../certificates.ts). `ca` once per cluster; `node` per node, with every host name and
 * address the node is reached at; `client` per client that authenticates by certificate.
 * Re-issuing a node's certificate replaces its files in place, ready for SIGHUP.
 */
import type { Command } from 'commander';
import { CliError, positiveIntegerFlag } from './errors.ts';

interface CertsFlags {
  dir: string;
  days?: string;
}

/** Loaded on use: the X.509 library is only needed by these commands and `dev --secure`. */
const certificates = () => import('../certificates.ts');

function days(flags: CertsFlags, fallback: number): number {
  return flags.days === undefined ? fallback : positiveIntegerFlag('days', flags.days);
}

function hostList(text: string | undefined): string[] {
  const hosts = (text ?? '')
    .split(',')
    .map((host) => host.trim())
    .filter((host) => host !== '');
  if (hosts.length === 0) {
    throw new CliError('--hosts takes the names and addresses peers and clients reach it at');
  }
  return hosts;
}

export function certsCommand(program: Command): void {
  const certs = program
    .command('certs')
    .description('make a cluster CA and certificates for its nodes and clients');
  certs
    .command('ca')
    .description('create the cluster CA (ca.crt, ca.key) in --dir; refuses to replace one')
    .requiredOption('--dir <dir>', 'where the certificates live')
    .option('--days <n>', 'validity in days (default 3650)')
    .action(async (flags: CertsFlags) => {
      const { createCa, caValidityDaysDefault } = await certificates();
      const files = await createCa(flags.dir, days(flags, caValidityDaysDefault));
      console.log(`CA certificate ${files.certificatePath}\nCA key         ${files.keyPath}`);
    });
  certs
    .command('node')
    .description("issue a node's certificate (node-<id>.crt, node-<id>.key) from the CA in --dir")
    .requiredOption('--dir <dir>', 'where the CA and the certificates live')
    .requiredOption('--id <id>', 'the node id, as in --peers')
    .requiredOption('--hosts <list>', 'host names and IP addresses of the node, comma-separated')
    .option('--days <n>', 'validity in days (default 825)')
    .action(async (flags: CertsFlags & { id: string; hosts: string }) => {
      const { issueNode, leafValidityDaysDefault } = await certificates();
      const files = await issueNode(flags.dir, {
        nodeId: flags.id,
        hosts: hostList(flags.hosts),
        days: days(flags, leafValidityDaysDefault),
      });
      console.log(`certificate ${files.certificatePath}\nkey         ${files.keyPath}`);
    });
  certs
    .command('client')
    .description(
      "issue a client's certificate (client-<name>.crt, client-<name>.key) from the CA in --dir",
    )
    .requiredOption('--dir <dir>', 'where the CA and the certificates live')
    .requiredOption('--name <name>', 'who the client is')
    .option('--days <n>', 'validity in days (default 825)')
    .action(async (flags: CertsFlags & { name: string }) => {
      const { issueClient, leafValidityDaysDefault } = await certificates();
      const files = await issueClient(flags.dir, {
        name: flags.name,
        days: days(flags, leafValidityDaysDefault),
      });
      console.log(`certificate ${files.certificatePath}\nkey         ${files.keyPath}`);
    });
  for (const command of certs.commands) {
    command.exitOverride().configureOutput({ outputError: () => undefined });
  }
}
