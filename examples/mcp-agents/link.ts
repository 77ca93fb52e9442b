/**
 * One agent's line to abcast: the MCP SDK's own `Client` over stdio to an `abcast mcp`
 * process it starts, as an agent host (Claude Desktop, an IDE) runs the server. `call`
 * retries what a scripted agent should retry — the server process gone (reconnects to a new
 * one), a cluster without a leader for a moment (`unavailable`) — and returns the tool's
 * structured answer or its typed error. `crash` SIGKILLs the server: the next call starts
 * another.
 */
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

const cliEntry = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const tsxLoader = import.meta.resolve('tsx');

/** A tool's answer: its structured content, or its error code, sentence and details. */
export type ToolAnswer =
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | {
      readonly ok: false;
      readonly error: string;
      readonly message: string;
      readonly details: Record<string, unknown>;
    };

/** Tool errors a scripted agent waits out and calls again: the cluster is between leaders. */
const retriedCodes = new Set(['unavailable', 'unknown_outcome', 'internal', 'no_leader']);
const retryPauseMs = 250;
/** A call that cannot get an answer for this long fails the example. */
const callDeadlineMs = 120_000;

export class McpLink {
  private client: Client | null = null;
  private transport: StdioClientTransport | null = null;
  private connecting: Promise<Client> | null = null;
  /** Servers started for this link: 1, and one more after each crash. */
  serversStarted = 0;
  /** Calls that were cut (server gone) or answered `unavailable` and were sent again. */
  retries = 0;

  constructor(
    readonly name: string,
    private readonly endpoints: readonly string[],
  ) {}

  /** Calls `tool` until it has an answer that is not a reason to retry. */
  async call(tool: string, args: Record<string, unknown> = {}): Promise<ToolAnswer> {
    const deadlineMs = Date.now() + callDeadlineMs;
    for (;;) {
      let result: CallToolResult | null = null;
      try {
        const client = await this.connected();
        result = (await client.callTool({ name: tool, arguments: args }, undefined, {
          timeout: 60_000,
        })) as CallToolResult;
      } catch (error) {
        // The server process is gone (or the call timed out): a new one takes the retry.
        if (Date.now() > deadlineMs) throw error;
        this.retries += 1;
        await this.drop();
        continue;
      }
      const answer = answerOf(result);
      if (answer.ok || !retriedCodes.has(answer.error) || Date.now() > deadlineMs) return answer;
      this.retries += 1;
      await new Promise((resume) => setTimeout(resume, retryPauseMs));
    }
  }

  /** Like `call`, but a tool error is thrown: for calls that must not fail. */
  async must(tool: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const answer = await this.call(tool, args);
    if (answer.ok) return answer.value;
    throw new Error(`${this.name}: ${tool} failed: ${answer.error}: ${answer.message}`);
  }

  /** SIGKILLs the server process, as a crash would; the next call starts a new one. */
  async crash(): Promise<void> {
    const pid = this.transport?.pid ?? null;
    if (pid !== null) process.kill(pid, 'SIGKILL');
    await this.drop();
  }

  async close(): Promise<void> {
    await this.drop();
  }

  private connected(): Promise<Client> {
    if (this.client !== null) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async connect(): Promise<Client> {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', tsxLoader, cliEntry, 'mcp', '--node', this.endpoints.join(',')],
      stderr: 'ignore',
    });
    const client = new Client({ name: this.name, version: '1.0.0' });
    await client.connect(transport);
    this.serversStarted += 1;
    // A server that dies under a call is noticed by that call; one that dies idle, here.
    // The client's own handler (it fails the calls in flight) runs first.
    const clientOnClose = transport.onclose;
    transport.onclose = () => {
      clientOnClose?.();
      if (this.transport === transport) {
        this.client = null;
        this.transport = null;
      }
    };
    this.transport = transport;
    this.client = client;
    return client;
  }

  private async drop(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.transport = null;
    await client?.close().catch(() => undefined);
  }
}

function answerOf(result: CallToolResult): ToolAnswer {
  const structured = (result.structuredContent ?? {}) as Record<string, unknown>;
  if (!result.isError) return { ok: true, value: structured };
  const first = result.content[0];
  return {
    ok: false,
    error: typeof structured.error === 'string' ? structured.error : 'untyped',
    message:
      typeof structured.message === 'string'
        ? structured.message
        : first?.type === 'text'
          ? first.text
          : '',
    details: structured,
  };
}
