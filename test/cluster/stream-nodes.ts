/**
 * Three `abcast start` processes on 127.0.0.1 with their HTTP APIs, for the tests of the log
 * as a stream (consumer groups, compaction): started, restarted one at a time, and stopped
 * with the test.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliRun, freeRange, kill, spawnCli } from '../cli/helpers.ts';
import { waitFor } from '../support/ports.ts';

export interface StreamNodes {
  readonly urls: readonly string[];
  /** Kills node `at` (0-based) and starts it again on the same data directory. */
  restart(at: number): Promise<void>;
  close(): Promise<void>;
}

export async function startStreamNodes(extra: readonly string[]): Promise<StreamNodes> {
  const root = await mkdtemp(join(tmpdir(), 'abcast-streams-'));
  const base = await freeRange(6);
  const ids = ['n1', 'n2', 'n3'];
  const listens = ids.map((_, at) => `127.0.0.1:${base + at}`);
  const urls = ids.map((_, at) => `http://127.0.0.1:${base + 3 + at}`);
  const peers = ids.map((id, at) => `${id}=${listens[at]}`).join(',');
  const runs: (CliRun | null)[] = ids.map(() => null);
  const start = (at: number) => {
    const others = ids.flatMap((other, index) => (index === at ? [] : [`${other}=${urls[index]}`]));
    runs[at] = spawnCli([
      'start',
      ...['--id', ids[at] as string, '--data', `${root}/${ids[at]}`],
      ...['--listen', listens[at] as string, '--http', (urls[at] as string).slice(7)],
      ...['--peers', peers, '--http-peers', others.join(','), ...extra],
    ]);
  };
  for (let at = 0; at < ids.length; at++) start(at);
  const leaderKnown = async () => {
    for (const url of urls) {
      const status = await fetch(`${url}/v1/status`).then(
        (answer) => answer.json(),
        () => null,
      );
      if (status?.role === 'leader') return true;
    }
    return false;
  };
  const stopAll = async () => {
    for (const run of runs) if (run !== null) await kill(run);
    await rm(root, { recursive: true, force: true });
  };
  try {
    // A loaded machine may take long to elect; a start that fails still stops its nodes, or
    // they would outlive the test and hold its file open.
    await waitFor(leaderKnown, 'a leader', 60_000);
  } catch (error) {
    await stopAll();
    throw error;
  }
  return {
    urls,
    restart: async (at) => {
      await kill(runs[at] as CliRun);
      start(at);
      await waitFor(
        () =>
          fetch(`${urls[at]}/v1/status`).then(
            (answer) => answer.ok,
            () => false,
          ),
        `node ${ids[at]} back`,
      );
    },
    close: stopAll,
  };
}
