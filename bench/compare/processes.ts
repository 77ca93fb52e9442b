/**
 * The server processes of the race: each is spawned with its output in a log file under the
 * race's temporary root, tracked here, and stopped (SIGTERM, then SIGKILL past a deadline)
 * by whoever started it. Should the race end another way (an error, Ctrl-C, SIGTERM), an
 * exit hook kills whatever is still tracked and removes the temporary root, so a run never
 * leaves a server or a data directory behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logPath: string;
  readonly exited: Promise<number | null>;
}

const running = new Set<Server>();
const roots = new Set<string>();
const stopDeadlineMs = 15_000;

function killEverythingNow(): void {
  for (const server of running) if (server.child.exitCode === null) server.child.kill('SIGKILL');
  for (const root of roots) rmSync(root, { recursive: true, force: true });
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', killEverythingNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`bench:compare: ${signal}, stopping every server`);
      killEverythingNow();
      process.exit(130);
    });
  }
}

/** A fresh temporary directory, removed by `removeRoot` or at exit. */
export async function makeRoot(prefix: string): Promise<string> {
  hookExit();
  const root = await mkdtemp(join(tmpdir(), prefix));
  roots.add(root);
  return root;
}

export async function removeRoot(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
  roots.delete(root);
}

export function startServer(options: {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logPath: string;
  readonly cwd?: string;
}): Server {
  hookExit();
  const log = openSync(options.logPath, 'a');
  const child = spawn(options.command, options.args, {
    stdio: ['ignore', log, log],
    cwd: options.cwd,
  });
  closeSync(log);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  const server = { name: options.name, child, logPath: options.logPath, exited };
  running.add(server);
  void exited.then(() => running.delete(server));
  return server;
}

/** SIGTERM each, wait; SIGKILL any still there past the deadline. */
export async function stopServers(servers: readonly Server[]): Promise<void> {
  for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
  }, stopDeadlineMs);
  await Promise.all(servers.map((server) => server.exited));
  clearTimeout(timer);
}

/** The last lines a server wrote, for the error when it does not come up. */
export function logTail(server: Server, lineCount = 15): string {
  try {
    return readFileSync(server.logPath, 'utf8').trimEnd().split('\n').slice(-lineCount).join('\n');
  } catch {
    return '(no log)';
  }
}

export const sleep = (delayMs: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, delayMs));

/**
 * Polls `check` until it returns a value other than null; fails past the deadline or as soon
 * as one of `servers` exits, with the tail of its log.
 */
export async function waitFor<T>(
  what: string,
  servers: readonly Server[],
  check: () => Promise<T | null>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = servers.find((server) => server.child.exitCode !== null);
    if (dead !== undefined) {
      throw new Error(`${dead.name} exited before ${what}:\n${logTail(dead)}`);
    }
    const value = await check().catch(() => null);
    if (value !== null) return value;
    await sleep(200);
  }
  const tails = servers.map((server) => `--- ${server.name}\n${logTail(server)}`).join('\n');
  throw new Error(`timed out waiting for ${what}\n${tails}`);
}

const ticksPerSecond = 100; // USER_HZ, 100 on every Linux build Node runs on

/**
 * CPU seconds from /proc/<pid>/stat: the process's own (utime, stime: fields 14 and 15), or
 * that of its children it has reaped (cutime, cstime: 16 and 17); 0 for a process gone.
 */
function statCpuSeconds(pid: number | 'self', whose: 'own' | 'reapedChildren'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces, counted from field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const at = whose === 'own' ? 11 : 13;
    return (Number(fields[at]) + Number(fields[at + 1])) / ticksPerSecond;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) the processes have used so far, from /proc. */
export function cpuSeconds(pids: readonly number[]): number {
  let seconds = 0;
  for (const pid of pids) seconds += statCpuSeconds(pid, 'own');
  return seconds;
}

/** CPU seconds of this process's children that have exited and been reaped (wrk's runs). */
export function reapedChildCpuSeconds(): number {
  return statCpuSeconds('self', 'reapedChildren');
}

/** One member's command line; its name is `<system> n<at + 1>`. */
export type MemberCommand = { readonly command: string; readonly args: readonly string[] };

/**
 * Starts the three members of a cluster, each logging to `<root>/n<i>.log`, and waits for
 * `ready` (a leader, a stream, whatever the system needs before it takes load). If anything
 * fails the members are stopped before the error is thrown: a failed start leaves nothing.
 */
export async function startCluster<T>(options: {
  readonly root: string;
  readonly system: string;
  readonly member: (at: number) => Promise<MemberCommand>;
  readonly ready: (servers: readonly Server[]) => Promise<T>;
}): Promise<{ readonly servers: readonly Server[]; readonly ready: T }> {
  const servers: Server[] = [];
  try {
    for (const at of [0, 1, 2]) {
      const { command, args } = await options.member(at);
      const logPath = join(options.root, `n${at + 1}.log`);
      servers.push(startServer({ name: `${options.system} n${at + 1}`, command, args, logPath }));
    }
    return { servers, ready: await options.ready(servers) };
  } catch (error) {
    await stopServers(servers);
    throw error;
  }
}
