/**
 * The resources: `abcast://status` (the cluster's status) and `abcast://messages/{topic}`
 * (the latest messages of a topic), with subscriptions: a subscribed session is sent
 * `notifications/resources/updated` when a message of the topic is delivered, or when the
 * status changes (leader, term, delivered position). The SDK's McpServer serves reads; the
 * subscribe requests are handled here, per session.
 */
import { type McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { Backend } from './backend.ts';
import { clusterStatus, recentMessages } from './messages.ts';
import { topicOfUri } from './watchers.ts';

export const statusUri = 'abcast://status';
const messagesPrefix = 'abcast://messages/';
/** Subscriptions one session holds at most. */
const subscriptionsPerSessionMax = 256;

/** Registers the resources on `server`; returns what stops this session's subscriptions. */
export function registerResources(server: McpServer, backend: Backend): () => void {
  server.registerResource(
    'status',
    statusUri,
    {
      title: 'Cluster status',
      description: 'Members, leader, term and positions of the abcast cluster',
      mimeType: 'application/json',
    },
    async (uri) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: 'application/json',
          text: JSON.stringify(await clusterStatus(backend.client)),
        },
      ],
    }),
  );
  server.registerResource(
    'messages',
    new ResourceTemplate(`${messagesPrefix}{+topic}`, { list: undefined }),
    {
      title: 'Recent messages of a topic',
      description: 'The latest (at most 50) messages of a topic, oldest first, with positions',
      mimeType: 'application/json',
    },
    async (uri) => {
      const topic = topicOfUri(uri.href) ?? '';
      const messages = await recentMessages(backend.client, topic, backend.callBoundMs);
      return {
        contents: [
          {
            uri: uri.href,
            mimeType: 'application/json',
            text: JSON.stringify({ topic, messages }),
          },
        ],
      };
    },
  );
  return handleSubscriptions(server, backend);
}

function handleSubscriptions(server: McpServer, backend: Backend): () => void {
  const stops = new Map<string, () => void>();
  server.server.registerCapabilities({ resources: { subscribe: true, listChanged: true } });
  server.server.setRequestHandler(SubscribeRequestSchema, async (request) => {
    const uri = request.params.uri;
    if (
      uri !== statusUri &&
      !(uri.startsWith(messagesPrefix) && uri.length > messagesPrefix.length)
    ) {
      throw new Error(`no resource ${uri}: subscribe to ${statusUri} or ${messagesPrefix}<topic>`);
    }
    if (!stops.has(uri)) {
      if (stops.size >= subscriptionsPerSessionMax) {
        throw new Error(`a session holds at most ${subscriptionsPerSessionMax} subscriptions`);
      }
      stops.set(
        uri,
        backend.watchers.watch(uri, () => {
          server.server.sendResourceUpdated({ uri }).catch(() => undefined);
        }),
      );
    }
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
    stops.get(request.params.uri)?.();
    stops.delete(request.params.uri);
    return {};
  });
  return () => {
    for (const stop of stops.values()) stop();
    stops.clear();
  };
}
