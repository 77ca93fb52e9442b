/**
 * `abcast status`: a table of the cluster as seen from one node — each member's role, term,
 * positions and lag. /v1/status lists members by peer address only; a member's HTTP URL is
 * guessed from the queried node's own port offset (http port − peer port, as `abcast dev`
 * lays them out) and used only if the node there answers with that member's id. Members
 * whose URL stays unknown show their peer address and '?'.
 */
import type { Command } from 'commander';
import { parseAddress } from '../../transport/address.ts';
import { callJson, defaultNodeUrl, nodeUrl } from './http-client.ts';

interface StatusFlags {
  node: string;
}

interface NodeStatus {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly deliveredIndex: number;
  readonly retained?: {
    readonly firstIndex: number;
    readonly lastIndex: number;
    readonly topics?: readonly {
      readonly topic: string;
      readonly ageMs: number | null;
      readonly firstIndex: number | null;
    }[];
  };
  readonly store?: { readonly bytes: number; readonly segments: number; readonly missing: number };
  readonly members: readonly { id: string; address: string | null; voter: boolean }[];
}

/** Each member's answer within this long, or it shows '?'. */
const memberTimeoutMs = 2_000;

/** The HTTP URL a member probably serves on, by the queried node's port offset; or null. */
function guessUrl(base: string, own: NodeStatus, address: string | null): string | null {
  const ownAddress = own.members.find((member) => member.id === own.id)?.address;
  if (address === null || ownAddress === null || ownAddress === undefined) return null;
  try {
    const offset = Number(new URL(base).port || 80) - parseAddress(ownAddress, false).port;
    const { host, port } = parseAddress(address, false);
    const httpPort = port + offset;
    if (httpPort < 1 || httpPort > 65535) return null;
    return `${new URL(base).protocol}//${host.includes(':') ? `[${host}]` : host}:${httpPort}`;
  } catch {
    return null;
  }
}

async function memberStatus(url: string | null, id: string): Promise<NodeStatus | null> {
  if (url === null) return null;
  const status = await callJson<NodeStatus>(url, '/v1/status', undefined, memberTimeoutMs).catch(
    () => null,
  );
  return status?.id === id ? status : null;
}

/** Rows of text, columns padded to their widest cell. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = (rows[0] ?? []).map((_, column) =>
    Math.max(...rows.map((row) => (row[column] ?? '').length)),
  );
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The retained range (the same on every node) and what the queried node holds of it. */
function retainedLine(own: NodeStatus): string {
  const { firstIndex, lastIndex } = own.retained as { firstIndex: number; lastIndex: number };
  const range = lastIndex < firstIndex ? 'nothing yet' : `${firstIndex}…${lastIndex}`;
  if (own.store === undefined) return `retained: ${range}`;
  const mebibytes = (own.store.bytes / 2 ** 20).toFixed(1);
  const backfill = own.store.missing === 0 ? '' : `, backfilling ${own.store.missing} positions`;
  return `retained: ${range} (${own.id} stores ${mebibytes} MiB in ${own.store.segments} segments${backfill})${topicsText(own)}`;
}

/** Topics with a retention of their own: "; orders 30d from 1200, audit forever". */
function topicsText(own: NodeStatus): string {
  const topics = own.retained?.topics ?? [];
  if (topics.length === 0) return '';
  const described = topics.map(({ topic, ageMs, firstIndex }) => {
    const age = ageMs === null ? 'forever' : `${ageMs / 1000}s`;
    return firstIndex === null ? `${topic} ${age}` : `${topic} ${age} from ${firstIndex}`;
  });
  return `; per topic: ${described.join(', ')}`;
}

async function status(flags: StatusFlags): Promise<void> {
  const base = nodeUrl(flags.node);
  const own = await callJson<NodeStatus>(base, '/v1/status');
  const members = await Promise.all(
    own.members.map(async (member) => {
      const url = member.id === own.id ? base : guessUrl(base, own, member.address);
      const seen = member.id === own.id ? own : await memberStatus(url, member.id);
      return { member, url: seen === null ? null : url, seen };
    }),
  );
  const deliveredMax = Math.max(...members.map(({ seen }) => seen?.deliveredIndex ?? 0));
  const rows = [['ID', 'ROLE', 'TERM', 'COMMIT', 'DELIVERED', 'LAG', 'VOTER', 'ADDRESS', 'HTTP']];
  for (const { member, url, seen } of members) {
    const role = seen?.role ?? (own.leader === member.id ? 'leader' : '?');
    rows.push([
      member.id,
      role,
      seen === null ? '?' : String(seen.term),
      seen === null ? '?' : String(seen.commitIndex),
      seen === null ? '?' : String(seen.deliveredIndex),
      seen === null ? '?' : String(deliveredMax - seen.deliveredIndex),
      member.voter ? 'yes' : 'learner',
      member.address ?? '?',
      url ?? '?',
    ]);
  }
  console.log(`leader: ${own.leader ?? 'none known'} (as seen by ${own.id} at ${base})`);
  if (own.retained !== undefined) console.log(retainedLine(own));
  console.log(formatTable(rows));
}

export function statusCommand(program: Command): void {
  program
    .command('status')
    .description("a table of the cluster's members, roles, terms, positions and lag")
    .option('--node <url>', "a node's HTTP API", defaultNodeUrl)
    .action((flags: StatusFlags) => status(flags));
}
