/**
 * The ordering tools: `broadcast`, `read_messages`, `wait_for_messages`, `cluster_status`
 * and `barrier`. Positions are dense from 1 and the same on every node: an agent that
 * reads from `next` again never misses or repeats a message.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { ClientError } from '../client/index.ts';
import type { Backend } from './backend.ts';
import { broadcastWithKey, keyBytesMax } from './keyed-broadcast.ts';
import { clusterStatus, readLimitMax, readPage, waitForMessages } from './messages.ts';
import { ToolFailure } from './tool-errors.ts';
import { answer, brief, position, required } from './tool-result.ts';

const topic = z
  .string()
  .min(1)
  .max(255)
  .describe('a label readers filter on (1–255 characters, not starting with $)');
const waitTimeoutMsMax = 60_000;

export function registerMessageTools(server: McpServer, backend: Backend): void {
  server.registerTool(
    'broadcast',
    {
      description:
        'Put a message into the total order that every reader sees in the same sequence. Returns its position. Give `key` (an idempotency key unique to this message) to make retries safe: a call repeated with the same key — after a timeout, a reconnect or a restart of this server — is delivered once and answers the original position with duplicate=true.',
      inputSchema: {
        payload: z.unknown().describe('the message: any JSON value'),
        topic: topic.optional(),
        key: z
          .string()
          .min(1)
          .max(keyBytesMax)
          .optional()
          .describe('idempotency key: the same key is delivered at most once'),
      },
    },
    (args, extra) =>
      answer(async () => {
        const payload = required(args.payload, 'payload');
        const result =
          args.key === undefined
            ? await backend.client
                .broadcast(payload, args.topic === undefined ? {} : { topic: args.topic })
                .catch(unkeyedFailure)
            : await broadcastWithKey(backend.client, {
                key: args.key,
                payload,
                topic: args.topic,
                boundMs: backend.callBoundMs,
                signal: extra.signal,
              });
        const value = { position: result.position, duplicate: result.duplicate };
        const text = result.duplicate
          ? `Already delivered at position ${result.position} (this key was sent before); not delivered again.`
          : `Delivered at position ${result.position}.`;
        return { value, text };
      }),
  );

  server.registerTool(
    'read_messages',
    {
      description:
        'Read delivered messages in total order from position `from` (default 1), optionally of one topic. Returns them with their positions and `next`, the `from` of the following read.',
      inputSchema: {
        from: position('first position to read (default 1)').optional(),
        topic: topic.optional(),
        limit: z
          .number()
          .int()
          .min(1)
          .max(readLimitMax)
          .optional()
          .describe(`most messages to return (default 20, at most ${readLimitMax})`),
      },
    },
    (args, extra) =>
      answer(async () => {
        const page = await readPage(backend.client, {
          from: args.from ?? 1,
          topic: args.topic,
          limit: args.limit ?? 20,
          boundMs: backend.callBoundMs,
          signal: extra.signal,
        });
        return { value: { ...page }, text: pageText(page.messages, page.next) };
      }),
  );

  server.registerTool(
    'wait_for_messages',
    {
      description:
        'Wait until a message at or after position `from` is delivered (optionally of one topic), and return what is there; returns at once if something is already there, or with timedOut=true after `timeoutMs` (default 25000, at most 60000).',
      inputSchema: {
        from: position('the first position of interest: usually `next` of your last read'),
        topic: topic.optional(),
        timeoutMs: z
          .number()
          .int()
          .min(0)
          .max(waitTimeoutMsMax)
          .optional()
          .describe('longest wait in milliseconds (default 25000)'),
        limit: z.number().int().min(1).max(readLimitMax).optional(),
      },
    },
    (args, extra) =>
      answer(async () => {
        const page = await waitForMessages(backend.client, {
          from: args.from,
          topic: args.topic,
          limit: args.limit ?? 20,
          boundMs: backend.callBoundMs,
          signal: extra.signal,
          timeoutMs: args.timeoutMs ?? 25_000,
        });
        const text = page.timedOut
          ? `Nothing new at or after position ${args.from} yet; call again with from=${page.next}.`
          : pageText(page.messages, page.next);
        return { value: { ...page }, text };
      }),
  );

  server.registerTool(
    'cluster_status',
    {
      description:
        "The cluster as its nodes see it: members, the leader, the term, and positions (the furthest delivered, the oldest still kept); each node's own view in `nodes`.",
      inputSchema: {},
    },
    () =>
      answer(async () => {
        const status = await clusterStatus(backend.client);
        const reachable = status.nodes.filter((node) => node.reachable).length;
        const text = `Leader ${status.leader ?? 'unknown'} in term ${status.term ?? '?'}; ${reachable} of ${status.nodes.length} nodes answered; delivered up to position ${status.positions.delivered}.`;
        return { value: { ...status }, text };
      }),
  );

  server.registerTool(
    'barrier',
    {
      description:
        'A linearizable read position: every message acknowledged anywhere before this call is at or below it. Read until you have passed it to be sure you have seen all of them.',
      inputSchema: {},
    },
    () =>
      answer(async () => {
        const at = await backend.client.barrier();
        return {
          value: { position: at },
          text: `Every message acknowledged before this call is at or below position ${at}.`,
        };
      }),
  );
}

/** Without a key a retry is a new message: the model must be told so before it retries. */
function unkeyedFailure(error: unknown): never {
  if (error instanceof ClientError && error.code === 'unavailable') {
    throw new ToolFailure(
      'unavailable',
      'No node confirmed the message in time; it may or may not be delivered. Check with read_messages before sending it again (a retry without a key can deliver it twice), or send it with a key.',
      { ...error.details },
    );
  }
  throw error;
}

function pageText(messages: readonly { position: number; payload: unknown }[], next: number) {
  if (messages.length === 0) return `No messages there yet; next read from ${next}.`;
  const first = messages[0] as { position: number; payload: unknown };
  const last = messages[messages.length - 1] as { position: number };
  const range = messages.length === 1 ? `${first.position}` : `${first.position}–${last.position}`;
  return `${messages.length} message(s) at position ${range}, first ${brief(first.payload, 120)}; next read from ${next}.`;
}
