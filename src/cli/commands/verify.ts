/**
 * `abcast verify --nodes URL,URL,...`: checks that live nodes delivered the same sequence.
 * Each node hashes ranges of its delivered positions (GET /v1/digest); the ranges every node
 * still holds are compared chunk by chunk, and a chunk that differs is halved until the
 * first differing position is found, so a mismatch costs a few dozen small requests more.
 * Silent on agreement (one summary line), non-zero exit with a report on a difference.
 */
import type { Command } from 'commander';
import { CliError } from './errors.ts';
import { callJson, nodeUrl } from './http-client.ts';

interface VerifyFlags {
  nodes: string;
  chunk?: string;
}

/** What verify needs of one node; the HTTP one below, or a test's. */
export interface DigestSource {
  readonly name: string;
  /** The positions this node still holds: first retained and last delivered. */
  range(): Promise<{ readonly first: number; readonly last: number }>;
  /** The digest of positions from … from + count - 1. */
  digest(from: number, count: number): Promise<string>;
}

export type VerifyOutcome =
  | { readonly kind: 'agree'; readonly first: number; readonly last: number }
  | { readonly kind: 'nothing'; readonly reason: string }
  | { readonly kind: 'differ'; readonly position: number; readonly first: number };

async function allSame(
  sources: readonly DigestSource[],
  from: number,
  count: number,
): Promise<boolean> {
  const digests = await Promise.all(sources.map((source) => source.digest(from, count)));
  return digests.every((digest) => digest === digests[0]);
}

/** Compares the range every source holds; finds the first position where they differ. */
export async function compareSources(
  sources: readonly DigestSource[],
  chunkCount: number,
): Promise<VerifyOutcome> {
  const ranges = await Promise.all(sources.map((source) => source.range()));
  const first = Math.max(...ranges.map((range) => range.first));
  const last = Math.min(...ranges.map((range) => range.last));
  if (last < first) {
    return { kind: 'nothing', reason: `no position is held by every node (${first}..${last})` };
  }
  for (let from = first; from <= last; from += chunkCount) {
    const count = Math.min(chunkCount, last - from + 1);
    if (await allSame(sources, from, count)) continue;
    // The chunk differs: halve it until one position is left, keeping the half whose
    // prefix differs (positions before `low` are known to agree).
    let low = from;
    let high = from + count - 1;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      if (await allSame(sources, low, middle - low + 1)) low = middle + 1;
      else high = middle;
    }
    return { kind: 'differ', position: low, first };
  }
  return { kind: 'agree', first, last };
}

interface StatusAnswer {
  readonly id: string;
  readonly firstIndex: number;
  readonly deliveredIndex: number;
}

function httpSource(base: string): DigestSource {
  return {
    name: base,
    async range() {
      const status = await callJson<StatusAnswer>(base, '/v1/status');
      return { first: status.firstIndex, last: status.deliveredIndex };
    },
    async digest(from, count) {
      const answer = await callJson<{ digest: string; count: number }>(
        base,
        `/v1/digest?from=${from}&count=${count}`,
      );
      if (answer.count !== count) {
        throw new CliError(`${base} no longer holds positions ${from}..${from + count - 1}`);
      }
      return answer.digest;
    },
  };
}

async function verify(flags: VerifyFlags): Promise<void> {
  const urls = flags.nodes
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => nodeUrl(part, 'nodes'));
  if (urls.length < 2) throw new CliError('--nodes takes two node URLs or more, comma-separated');
  const chunkCount = flags.chunk === undefined ? 65_536 : Number(flags.chunk);
  if (!Number.isSafeInteger(chunkCount) || chunkCount < 1 || chunkCount > 65_536) {
    throw new CliError('--chunk takes a count of positions from 1 to 65536');
  }
  const sources = urls.map(httpSource);
  const outcome = await compareSources(sources, chunkCount);
  if (outcome.kind === 'nothing') throw new CliError(outcome.reason);
  if (outcome.kind === 'agree') {
    console.log(`${urls.length} nodes agree on positions ${outcome.first}..${outcome.last}`);
    return;
  }
  console.log(`nodes differ at position ${outcome.position} (they agree before it):`);
  for (const url of urls) {
    const page = await callJson<{ messages: unknown[] }>(
      url,
      `/v1/messages?from=${outcome.position}&limit=1`,
    );
    console.log(`  ${url}: ${JSON.stringify(page.messages[0] ?? null)}`);
  }
  throw new CliError(`the nodes delivered different messages at position ${outcome.position}`);
}

export function verifyCommand(program: Command): void {
  program
    .command('verify')
    .description('check that live nodes delivered the same sequence; find the first difference')
    .requiredOption('--nodes <urls>', 'the HTTP API of each node to compare, comma-separated')
    .option('--chunk <n>', 'positions compared per request (default 65536)')
    .action((flags: VerifyFlags) => verify(flags));
}
