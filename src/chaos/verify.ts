/**
 * `abcast verify` at the end of a chaos run: the live members' running digests
 * (GET /v1/digest) compared range by range with the command's own function, which narrows a
 * difference down to its first position. The checker compares sequences read whole through
 * /v1/messages by key, client and seq; verify hashes every field, payload and topic
 * included, and is the check an operator runs in production — so the run exercises it too.
 */
import { compareSources, type DigestSource } from '../cli/commands/verify.ts';
import type { VerifyReport } from './checker.ts';
import { request } from './http.ts';

/** A node's digests over raw HTTP, with deadlines (verify's own client waits without one). */
export function digestSource(name: string, url: string, timeoutMs: number): DigestSource {
  const get = async (path: string): Promise<Record<string, unknown>> => {
    const { status, body } = await request(`${url}${path}`, { method: 'GET' }, timeoutMs);
    if (status !== 200) throw new Error(`${name}: GET ${path} answered ${status} ${body.error}`);
    return body;
  };
  return {
    name,
    async range() {
      const status = await get('/v1/status');
      if (typeof status.firstIndex !== 'number' || typeof status.deliveredIndex !== 'number') {
        throw new Error(`${name}: /v1/status has no firstIndex or deliveredIndex`);
      }
      return { first: status.firstIndex, last: status.deliveredIndex };
    },
    async digest(from, count) {
      const answer = await get(`/v1/digest?from=${from}&count=${count}`);
      if (answer.count !== count || typeof answer.digest !== 'string') {
        throw new Error(`${name} no longer holds positions ${from}..${from + count - 1}`);
      }
      return answer.digest;
    },
  };
}

/**
 * Runs verify over `nodes` (at least two; with fewer there is nothing to compare). Never
 * rejects: a node that cannot answer makes the report `unreadable`.
 */
export async function verifyNodes(
  nodes: readonly { readonly id: string; readonly url: string }[],
  options: { readonly chunkCount: number; readonly timeoutMs: number },
): Promise<VerifyReport> {
  const ids = nodes.map((node) => node.id);
  if (nodes.length < 2) return { nodes: ids, outcome: { kind: 'skipped', reason: 'one node' } };
  const sources = nodes.map((node) => digestSource(node.id, node.url, options.timeoutMs));
  try {
    return { nodes: ids, outcome: await compareSources(sources, options.chunkCount) };
  } catch (error) {
    return { nodes: ids, outcome: { kind: 'unreadable', reason: String(error) } };
  }
}
