/**
 * Driving `abcast mcp` as an agent's MCP client does: the SDK's own `Client` over stdio (the
 * server a child process on the source entry through tsx) or over Streamable HTTP, against a
 * local cluster of real `abcast start` processes on 127.0.0.1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { freePorts } from '../../src/cli/process-cluster.ts';
import { waitFor } from '../support/ports.ts';

const cliEntry = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const tsxLoader = import.meta.resolve('tsx');

/** An MCP client connected to an `abcast mcp` over stdio; `close` ends the server too. */
export async function stdioClient(
  endpoints: readonly string[],
  extraArgs: readonly string[] = [],
): Promise<{ client: Client; transport: StdioClientTransport }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', tsxLoader, cliEntry, 'mcp', '--node', endpoints.join(','), ...extraArgs],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'abcast-test', version: '0.0.0' });
  await client.connect(transport);
  return { client, transport };
}

/** An `abcast mcp --http` process on a free port, and its URL once it serves. */
export async function httpServer(
  endpoints: readonly string[],
): Promise<{ child: ChildProcess; url: string; stop: () => Promise<void> }> {
  const [port] = await freePorts(1);
  const child = spawn(
    process.execPath,
    [
      '--import',
      tsxLoader,
      cliEntry,
      'mcp',
      '--node',
      endpoints.join(','),
      '--http',
      `127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`abcast mcp exited: ${stderr}`);
      return stderr.includes('serving http://');
    },
    'abcast mcp --http to serve',
    30_000,
  );
  const url = `http://127.0.0.1:${port}/mcp`;
  return {
    child,
    url,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** An MCP client connected to a Streamable HTTP MCP server at `url`. */
export async function httpClient(url: string): Promise<Client> {
  const client = new Client({ name: 'abcast-test', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

/** Calls a tool; its structured content, or a thrown Error naming the tool's error. */
export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  if (result.isError) {
    const error = new Error(
      `${name} failed: ${JSON.stringify(result.structuredContent ?? result.content)}`,
    );
    Object.assign(error, { structured: result.structuredContent, text: result.content });
    throw error;
  }
  return result.structuredContent as Record<string, unknown>;
}

/** Calls a tool that must fail; its structured error and text. */
export async function callFailing(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<{ error: string; message: string; details: Record<string, unknown>; text: string }> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  if (!result.isError)
    throw new Error(`${name} succeeded: ${JSON.stringify(result.structuredContent)}`);
  const structured = (result.structuredContent ?? {}) as Record<string, unknown>;
  const first = result.content[0];
  return {
    error: String(structured.error),
    message: String(structured.message),
    details: structured,
    text: first?.type === 'text' ? first.text : '',
  };
}
