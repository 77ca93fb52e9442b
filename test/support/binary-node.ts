/**
 * One node with the binary client port, started as a user starts it: `abcast start --binary`
 * in a child process (test/cli/helpers.ts), alone in its cluster, on free 127.0.0.1 ports, in
 * a fresh temporary directory. It reaches the node through the CLI and its output only, and
 * into src/ no further than the process and port helpers it uses: so the clean-room test of
 * test/protocol, whose client knows the node from docs/protocol.md alone, starts it here too.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliRun, kill, spawnCli } from '../cli/helpers.ts';
import { freePorts, waitFor } from './ports.ts';

export interface BinaryNodeOptions {
  /** Names the temporary directory, `abcast-<name>-…`. */
  readonly name: string;
  /** Writes the auth file at `authPath` before the node starts (then `--auth`); none: open. */
  readonly writeAuth?: (authPath: string) => Promise<void>;
  /** More flags for `abcast start`. */
  readonly flags?: readonly string[];
  /** Another build's CLI (test/cluster/builds.ts); this checkout's when absent. */
  readonly entryPath?: string;
  /** How long the start may take before it counts as hung: an old build checks out first. */
  readonly startMsMax?: number;
}

export interface BinaryNode {
  readonly cli: CliRun;
  readonly httpUrl: string;
  /** `abcast://127.0.0.1:<port>`, as the node printed it. */
  readonly binaryUrl: string;
  readonly binaryPort: number;
  /** Kills the node (unless it exited) and removes its directory. */
  stop(): Promise<void>;
}

export async function startBinaryNode(options: BinaryNodeOptions): Promise<BinaryNode> {
  const root = await mkdtemp(join(tmpdir(), `abcast-${options.name}-`));
  const authPath = join(root, 'auth.json');
  if (options.writeAuth !== undefined) await options.writeAuth(authPath);
  const [peerPort, httpPort, freeBinaryPort] = await freePorts(3);
  const cli = spawnCli(
    [
      'start',
      ...['--id', 'n1', '--data', join(root, 'n1'), '--listen', `127.0.0.1:${peerPort}`],
      ...['--http', `127.0.0.1:${httpPort}`, '--binary', `127.0.0.1:${freeBinaryPort}`],
      ...['--peers', `n1=127.0.0.1:${peerPort}`],
      ...(options.writeAuth === undefined ? [] : ['--auth', authPath]),
      ...(options.flags ?? []),
    ],
    false,
    options.entryPath,
  );
  const stop = async () => {
    await kill(cli);
    await rm(root, { recursive: true, force: true });
  };
  try {
    const up = () => /binary abcast:\/\//.test(cli.stdout());
    await waitFor(up, 'the node up', options.startMsMax ?? 20_000);
  } catch (error) {
    await stop();
    throw error;
  }
  const binaryUrl = /binary (abcast:\/\/[0-9.:]+)/.exec(cli.stdout())?.[1] as string;
  const binaryPort = Number(new URL(binaryUrl).port);
  assert.equal(binaryPort, freeBinaryPort, 'the node listens where it was told');
  return { cli, httpUrl: `http://127.0.0.1:${httpPort}`, binaryUrl, binaryPort, stop };
}
