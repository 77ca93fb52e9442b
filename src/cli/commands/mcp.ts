/**
 * `abcast mcp --node URL[,URL...] [--token T] [--ca F] [--http HOST:PORT] [--space NAME]`:
 * the MCP server (docs/mcp.md) for AI agents. Over stdio by default — stdout belongs to the
 * protocol, so everything this command says goes to stderr — or Streamable HTTP at
 * `http://HOST:PORT/mcp` with `--http`. Runs until stdin closes (stdio) or SIGINT/SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseAddress } from '../../transport/address.ts';
import { CliError, positiveIntegerFlag } from './errors.ts';
import { defaultNodeUrl, nodeUrl } from './http-client.ts';

interface McpFlags {
  node: string;
  token?: string;
  ca?: string;
  http?: string;
  space: string;
  callTimeoutMs: string;
}

export function mcpCommand(root: Command): void {
  root
    .command('mcp')
    .description('serve the cluster to AI agents over the Model Context Protocol (stdio or HTTP)')
    .option('--node <urls>', 'HTTP URLs of the nodes, comma-separated', defaultNodeUrl)
    .option('--token <token>', 'token of a cluster started with --auth; or ABCAST_TOKEN')
    .option('--ca <file>', 'CA certificate (PEM) of https:// nodes; or ABCAST_CA')
    .option('--http <host:port>', 'serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio')
    .option('--space <name>', 'names the locks, presence group and barriers the tools use', 'mcp')
    .option('--call-timeout-ms <ms>', 'how long a tool call retries before `unavailable`', '30000')
    .action(async (flags: McpFlags) => {
      // Loaded here, not at the top: every other command (a node's `start` above all) would
      // otherwise load the MCP SDK and its HTTP stack at each start.
      const { Backend, serveHttp, serveStdio } = await import('../../mcp/index.ts');
      const backend = new Backend({
        endpoints: flags.node.split(',').map((part) => nodeUrl(part.trim())),
        token: nonEmpty(flags.token ?? process.env.ABCAST_TOKEN),
        ca: await caText(nonEmpty(flags.ca ?? process.env.ABCAST_CA)),
        space: flags.space,
        callBoundMs: positiveIntegerFlag('call-timeout-ms', flags.callTimeoutMs),
      });
      try {
        if (flags.http === undefined) {
          await serveStdio(backend);
          return;
        }
        const { host, port } = parseHttpAddress(flags.http);
        const served = await serveHttp(backend, host, port);
        process.stderr.write(`abcast mcp: serving ${served.url}\n`);
        await untilSignal();
        await served.close();
      } finally {
        await backend.close();
      }
    });
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === undefined || text === '' ? undefined : text;
}

async function caText(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read the CA file ${path}: ${(error as Error).message}`);
  }
}

function parseHttpAddress(text: string): { host: string; port: number } {
  try {
    return parseAddress(text, true);
  } catch {
    throw new CliError(`--http takes HOST:PORT like 127.0.0.1:8700, got "${text}"`);
  }
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
