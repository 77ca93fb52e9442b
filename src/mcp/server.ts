/**
 * The abcast MCP server: one McpServer per MCP session (stdio has one; Streamable HTTP one
 * per connected client), all sharing one Backend. `serveStdio` and `serveHttp` are what
 * `abcast mcp` runs.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { Backend } from './backend.ts';
import { registerResources } from './resources.ts';
import { ToolFailure, toolError } from './tool-errors.ts';
import {
  registerLockTools,
  registerPresenceTools,
  registerTaskTools,
} from './tools-coordination.ts';
import { registerMessageTools } from './tools-messages.ts';

const serverInfo = { name: 'abcast', version: '0.1.0' };
const instructions =
  'abcast is a fault-tolerant total order broadcast: every message gets a position, the same for every reader. Use broadcast (with a key when a retry must not duplicate) and read_messages/wait_for_messages to talk through the order; post_task/claim_task/complete_task to split work exactly once; acquire_lock for fencing tokens; join/heartbeat/members for presence; arrive_barrier to meet. Errors carry an `error` code and say what to do next.';
/** The largest MCP request body over HTTP; a tool's payload is far below it. */
const httpBodyBytesMax = 4 * 1024 * 1024;
/**
 * HTTP sessions open at once; a new one past it is refused until some close. A session no
 * request used for `httpSessionIdleMs` (a client gone without DELETE) is closed when a new
 * one needs its place.
 */
const httpSessionsMax = 1_024;
const httpSessionIdleMs = 3_600_000;

interface HttpSession {
  readonly transport: StreamableHTTPServerTransport;
  readonly end: () => void;
  lastUsedMs: number;
}

/** A new MCP session's server with every tool and resource; `release` ends its watches. */
export function buildMcpServer(backend: Backend): { server: McpServer; release: () => void } {
  const server = new McpServer(serverInfo, { instructions });
  typeSdkToolErrors(server);
  registerMessageTools(server, backend);
  registerTaskTools(server, backend);
  registerLockTools(server, backend);
  registerPresenceTools(server, backend);
  const release = registerResources(server, backend);
  return { server, release };
}

/**
 * Arguments that fail a tool's input schema, and unknown tools, are answered by the SDK
 * itself with a text-only tool error; this gives them the structured `error` code every
 * other failure has. `createToolError` is the SDK's (private in its types, stable across
 * 1.x); test/mcp/stdio.test.ts fails if a new version stops calling it.
 */
function typeSdkToolErrors(server: McpServer): void {
  const typed = (message: string) => {
    const invalid = /Input validation error|Invalid arguments/.test(message);
    const unknown = /Tool .* not found/.test(message);
    const code = invalid ? 'invalid_argument' : unknown ? 'unknown_tool' : 'internal';
    const hint = invalid
      ? 'Fix the arguments to match the tool’s input schema and call again.'
      : unknown
        ? 'List the tools and call one of them.'
        : 'The call may be retried.';
    return toolError(
      new ToolFailure(code, `${message.replace(/^MCP error -?\d+: /, '')}. ${hint}`),
    );
  };
  Object.assign(server, { createToolError: typed });
}

/** Serves one MCP session over this process's stdin and stdout; resolves when it ends. */
export async function serveStdio(backend: Backend): Promise<void> {
  const { server, release } = buildMcpServer(backend);
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.connect(transport);
  await closed;
  release();
  await server.close().catch(() => undefined);
}

export interface HttpMcp {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves the Streamable HTTP transport at `http://host:port/mcp`. */
export async function serveHttp(backend: Backend, host: string, port: number): Promise<HttpMcp> {
  const sessions = new Map<string, HttpSession>();
  // A page in a browser could reach a loopback server through a name it controls (DNS
  // rebinding): such requests carry that name in Host or Origin, and are refused.
  const loopback = loopbackHost(host);
  const http = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) reply(response, 500, `the MCP server failed: ${String(error)}`);
      else response.destroy();
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/mcp') return reply(response, 404, 'the MCP endpoint is /mcp');
    if (loopback && !fromLoopback(request)) {
      return reply(response, 403, 'a loopback MCP server answers only loopback Host and Origin');
    }
    const sessionId = request.headers['mcp-session-id'];
    const known = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    if (known !== undefined) known.lastUsedMs = Date.now();
    if (request.method !== 'POST') {
      if (known === undefined) return reply(response, 400, 'unknown or missing Mcp-Session-Id');
      return known.transport.handleRequest(request, response);
    }
    const body = await readJson(request);
    if (body === undefined) return reply(response, 400, 'the body is not JSON, or too large');
    if (known !== undefined) return known.transport.handleRequest(request, response, body);
    if (!isInitializeRequest(body)) {
      return reply(response, 400, 'unknown or missing Mcp-Session-Id; initialize first');
    }
    if (sessions.size >= httpSessionsMax) await closeIdle(sessions);
    if (sessions.size >= httpSessionsMax) {
      return reply(response, 503, `${httpSessionsMax} MCP sessions are open, the limit`);
    }
    const { server, release } = buildMcpServer(backend);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, end: release, lastUsedMs: Date.now() });
      },
    });
    transport.onclose = () => {
      const id = transport.sessionId;
      if (id !== undefined) sessions.delete(id);
      release();
    };
    await server.connect(transport);
    await transport.handleRequest(request, response, body);
  }

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => resolve());
  });
  const address = http.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${boundPort}/mcp`,
    close: () => closeHttp(http, sessions),
  };
}

/** Closes the sessions no request used for `httpSessionIdleMs`. */
async function closeIdle(sessions: Map<string, HttpSession>): Promise<void> {
  const idleSinceMs = Date.now() - httpSessionIdleMs;
  for (const [id, session] of [...sessions]) {
    if (session.lastUsedMs > idleSinceMs) continue;
    sessions.delete(id);
    session.end();
    await session.transport.close().catch(() => undefined);
  }
}

async function closeHttp(http: Server, sessions: Map<string, HttpSession>): Promise<void> {
  for (const { transport, end } of [...sessions.values()]) {
    end();
    await transport.close().catch(() => undefined);
  }
  sessions.clear();
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
}

const loopbackNames = ['127.0.0.1', 'localhost', '[::1]', '::1'];

function loopbackHost(host: string): boolean {
  return loopbackNames.includes(host) || host.startsWith('127.');
}

/** True when the request's Host (and Origin, if any) name the loopback interface. */
function fromLoopback(request: IncomingMessage): boolean {
  const hostName = (value: string) => {
    try {
      return new URL(`http://${value}`).hostname;
    } catch {
      return '';
    }
  };
  const host = hostName(request.headers.host ?? '');
  if (!loopbackHost(host)) return false;
  const origin = request.headers.origin;
  if (origin === undefined || origin === 'null') return origin === undefined;
  try {
    return loopbackHost(new URL(origin).hostname);
  } catch {
    return false;
  }
}

function reply(response: ServerResponse, status: number, message: string): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/** The request's JSON body, or undefined when it is not JSON or exceeds the bound. */
async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of request) {
    bytes += (chunk as Buffer).length;
    if (bytes > httpBodyBytesMax) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}
