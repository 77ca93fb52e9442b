/**
 * The `abcast` command line: `start` one node, `dev` a local cluster, `send`, `tail` and
 * `status` and `transfer` against a node's HTTP API. Every mistake ends as one line on stderr and a non-zero
 * exit (commander's own usage errors included). `bin/abcast.js` runs the built copy of this
 * file; `node --import tsx src/cli/main.ts …` runs it from source.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { tokenCommand } from './commands/auth-file.ts';
import { benchCommand } from './commands/bench.ts';
import { certsCommand } from './commands/certs.ts';
import { consumersCommand } from './commands/consumers.ts';
import { devCommand } from './commands/dev.ts';
import { describeError, exitCodeOf } from './commands/errors.ts';
import { useCaFile, useToken } from './commands/http-client.ts';
import { mcpCommand } from './commands/mcp.ts';
import { membersCommand } from './commands/members.ts';
import { sendCommand } from './commands/send.ts';
import { snapshotCommand } from './commands/snapshot.ts';
import { startCommand } from './commands/start.ts';
import { statusCommand } from './commands/status.ts';
import { tailCommand } from './commands/tail.ts';
import { transferCommand } from './commands/transfer.ts';
import { verifyCommand } from './commands/verify.ts';

/** Commands that talk to a node's HTTP API, and so take the CA of an https:// node. */
const clientCommands = [
  'send',
  'tail',
  'status',
  'transfer',
  'members',
  'verify',
  'snapshot',
  'consumers',
];

/**
 * `--ca FILE` (or ABCAST_CA) and `--token TOKEN` (or ABCAST_TOKEN) on a command and its
 * subcommands, read before it runs.
 */
function clientOptions(command: Command): void {
  const targets = command.commands.length === 0 ? [command] : command.commands;
  for (const target of targets) {
    target.option('--ca <file>', 'CA certificate (PEM) of https:// nodes; or ABCAST_CA');
    target.option('--token <token>', 'token of a node started with --auth; or ABCAST_TOKEN');
    target.hook('preAction', async (_hooked, action) => {
      const options = action.opts() as { ca?: string; token?: string };
      const path = options.ca ?? process.env.ABCAST_CA;
      if (path !== undefined && path !== '') await useCaFile(path);
      const token = options.token ?? process.env.ABCAST_TOKEN;
      if (token !== undefined && token !== '') useToken(token);
    });
  }
}

function program(): Command {
  const root = new Command('abcast')
    .description('fault-tolerant atomic broadcast: run nodes and talk to them')
    .exitOverride()
    .showSuggestionAfterError(true)
    // Usage errors are printed once, by run() below, as a single line.
    .configureOutput({ outputError: () => undefined });
  startCommand(root);
  devCommand(root);
  sendCommand(root);
  tailCommand(root);
  statusCommand(root);
  consumersCommand(root);
  transferCommand(root);
  membersCommand(root);
  verifyCommand(root);
  mcpCommand(root);
  benchCommand(root);
  certsCommand(root);
  snapshotCommand(root);
  tokenCommand(root);
  for (const command of root.commands) {
    command.exitOverride().configureOutput({ outputError: () => undefined });
  }
  for (const command of root.commands.filter((one) => clientCommands.includes(one.name()))) {
    clientOptions(command);
  }
  return root;
}

/** Runs the CLI on `args` (the words after the script name); exits non-zero on a mistake. */
export async function run(args: readonly string[]): Promise<void> {
  // `abcast tail | head`: the reader left, which ends the command, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  try {
    await program().parseAsync([...args], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help was printed already (`abcast` alone prints it and fails); everything else is a
      // usage mistake.
      if (error.exitCode === 0 || error.code.startsWith('commander.help')) {
        process.exit(error.exitCode);
      }
      console.error(`abcast: ${error.message.replace(/^error: /, '').split('\n')[0]}`);
      process.exit(2);
    }
    console.error(`abcast: ${describeError(error)}`);
    process.exit(exitCodeOf(error));
  }
}

/** True when this file is the process's entry (not imported by bin/abcast.js or a test). */
function isEntry(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) await run(process.argv.slice(2));
