/**
 * `abcast send JSON`: POST /v1/broadcast on one node and print the message's position in the
 * total order once it is committed. With `--client ID --seq N` a retry is exactly-once: the
 * node answers the original position (and this prints "duplicate" on stderr).
 */
import type { Command } from 'commander';
import { clientIdProblem } from '../../broadcast/message-rules.ts';
import { CliError, positiveIntegerFlag } from './errors.ts';
import { defaultNodeUrl, nodeUrl, postJson, Unavailable } from './http-client.ts';

interface SendFlags {
  node: string;
  wait: string;
  client?: string;
  seq?: string;
  topic?: string;
  key?: string;
}

/** The answer as docs/api.md gives it: the wire calls the position `index`. */
interface BroadcastAnswer {
  readonly index: number;
  readonly term: number;
  readonly duplicate: boolean;
}

/** The request body, or a CliError saying which part is wrong. */
export function broadcastBody(json: string, flags: SendFlags): Record<string, unknown> {
  let payload: unknown;
  try {
    payload = JSON.parse(json);
  } catch (error) {
    throw new CliError(`the message is not valid JSON: ${(error as Error).message}`);
  }
  if ((flags.client === undefined) !== (flags.seq === undefined)) {
    throw new CliError('--client and --seq go together');
  }
  const body: Record<string, unknown> = { payload };
  if (flags.client !== undefined) {
    // Checked here, not only by the node: its refusal names the body's `client`, and an
    // unreachable node would hide the mistake behind "cannot reach".
    const problem = clientIdProblem(flags.client, '--client');
    if (problem !== null) throw new CliError(problem.message);
    body.client = flags.client;
    body.seq = positiveIntegerFlag('seq', flags.seq as string);
  }
  if (flags.topic !== undefined) body.topic = flags.topic;
  if (flags.key !== undefined) body.key = flags.key;
  return body;
}

/**
 * Whether a 503 may be retried: `no_leader`, `overloaded` and `node_stopped` accepted
 * nothing; after `timeout` the message may still be delivered, so only a (client, seq)
 * message, which the node deduplicates, is sent again.
 */
function retryable(error: Unavailable, body: Record<string, unknown>): boolean {
  if (error.code === 'timeout') return body.client !== undefined;
  return error.code === 'no_leader' || error.code === 'overloaded' || error.code === 'node_stopped';
}

/** POSTs the message, retrying what is safe to retry (see above) until `waitMs` is spent. */
async function broadcast(
  base: string,
  body: Record<string, unknown>,
  waitMs: number,
): Promise<BroadcastAnswer> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await postJson<BroadcastAnswer>(base, '/v1/broadcast', body);
    } catch (error) {
      if (!(error instanceof Unavailable) || !retryable(error, body)) throw error;
      if (Date.now() + error.retryAfterMs > deadline) throw error;
      await new Promise((resume) => setTimeout(resume, error.retryAfterMs));
    }
  }
}

async function send(json: string, flags: SendFlags): Promise<void> {
  const base = nodeUrl(flags.node);
  const body = broadcastBody(json, flags);
  const waitMs = 1000 * positiveIntegerFlag('wait', flags.wait, 0);
  const answer = await broadcast(base, body, waitMs);
  if (answer.duplicate) console.error(`abcast: duplicate of position ${answer.index}`);
  console.log(String(answer.index));
}

export function sendCommand(program: Command): void {
  program
    .command('send')
    .description('broadcast one JSON message; prints its position once committed')
    .argument('<json>', 'the payload, any JSON value (quote it for the shell)')
    .option('--node <url>', "a node's HTTP API", defaultNodeUrl)
    .option('--client <id>', 'client id for exactly-once retries (with --seq)')
    .option('--seq <n>', "this message's sequence number for --client, from 1")
    .option('--topic <topic>', 'topic of the message')
    .option('--key <key>', 'key of the message (consumer groups, compacted topics)')
    .option('--wait <seconds>', 'retry while the cluster has no leader, up to this long', '10')
    .action((json: string, flags: SendFlags) => send(json, flags));
}
