/**
 * Running the `abcast` CLI as a user would: a child process on the source entry through
 * tsx, its output collected; `runCli` waits for it to exit (with a deadline), `spawnCli`
 * leaves it running for the test to stop.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ephemeralRangeStart } from '../../src/cli/process-cluster.ts';
import { hangBoundMs } from '../support/ports.ts';

const entry = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliRun {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

/**
 * Starts `abcast …args`; `detached` puts it in its own process group (see killGroup).
 * `entryPath` runs another build's CLI (test/cluster/builds.ts), this checkout's by default.
 */
export function spawnCli(args: readonly string[], detached = false, entryPath = entry): CliRun {
  const child = spawn(process.execPath, ['--import', 'tsx', entryPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/**
 * Runs `abcast …args` to its end; fails the test if it outlives `timeoutMs`, a bound for a
 * hang: a loaded machine can take many seconds just to start node and tsx, more when a test
 * runs several commands at once.
 */
export async function runCli(
  args: readonly string[],
  timeoutMs = hangBoundMs,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnCli(args);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const code = await run.exited;
  clearTimeout(timer);
  if (code === null) throw new Error(`abcast ${args.join(' ')} did not exit in ${timeoutMs} ms`);
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** Stops a child (SIGKILL unless it already exited) and waits for it. */
export async function kill(run: CliRun): Promise<void> {
  if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
  await run.exited;
}

/** SIGKILLs a detached child's whole process group (it and every process it started). */
export function killGroup(run: CliRun): void {
  try {
    if (run.child.pid !== undefined) process.kill(-run.child.pid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}

/** Holds a TCP port on 127.0.0.1 so that a node cannot take it. */
export async function holdPort(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

/** `count` consecutive free ports (for `abcast dev`, which lays its ports out in a row). */
export async function freeRange(count: number): Promise<number> {
  // Below the ephemeral range: a port free now but inside it can be taken by any outgoing
  // connection (another test's clients and peer links) before the node binds it, which
  // showed as a node that never answered (EADDRINUSE) in two loaded runs of the suite.
  const ephemeralLow = await ephemeralRangeStart();
  const low = 10_000;
  const span = ephemeralLow - low - count >= 1_000 ? ephemeralLow - low - count : 30_000;
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = low + Math.floor(Math.random() * span);
    const held: Server[] = [];
    try {
      for (let at = 0; at < count; at++) held.push(await holdPort(base + at));
      return base;
    } catch {
      // Taken: try another range.
    } finally {
      await Promise.all(held.map((server) => new Promise((done) => server.close(done))));
    }
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** The one line a mistake prints: stderr must be exactly one non-empty line. */
export function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((line) => line.trim() !== '');
  if (lines.length !== 1) throw new Error(`expected one line on stderr, got:\n${stderr}`);
  return lines[0] as string;
}
