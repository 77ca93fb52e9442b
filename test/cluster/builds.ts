/**
 * An earlier build of abcast, made from this repository's own git history, for tests that run
 * two releases side by side: the commit's tree (`git archive`) in a temporary directory,
 * sharing this checkout's node_modules (no network), run from source through tsx as the
 * current build is. A clone without that commit (a shallow one) cannot make it: the tests
 * then skip, saying how to fetch the history.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The release the upgrade test starts from: main as it stood when the dashboard, probes,
 * backups and deployment files arrived (#15), before the binary client port, peer repair
 * and the handover rules that came after it. ABCAST_UPGRADE_FROM names another commit.
 */
export const previousRelease =
  process.env.ABCAST_UPGRADE_FROM ?? 'e648e34150ecfdb3786f68472ef5c41ef4e82e7d';

export interface Build {
  readonly commit: string;
  /** The build's CLI entry, for `spawnCli(args, detached, entry)`. */
  readonly entry: string;
  remove(): Promise<void>;
}

/** Why `commit` cannot be built here, or null when it can. */
export async function buildUnavailable(commit: string): Promise<string | null> {
  try {
    await run('git', ['-C', repositoryRoot, 'cat-file', '-e', `${commit}^{commit}`]);
    return null;
  } catch (error) {
    const shallow = await run('git', ['-C', repositoryRoot, 'rev-parse', '--is-shallow-repository'])
      .then((answer) => answer.stdout.trim() === 'true')
      .catch(() => false);
    const why = shallow
      ? 'this clone is shallow (git fetch --unshallow brings the history)'
      : `git cannot read it here (${(error as Error).message.split('\n')[0]})`;
    return `the previous release ${commit.slice(0, 12)} is not in this checkout's history: ${why}; the upgrade test is skipped`;
  }
}

/** Writes `commit`'s tree into a temporary directory, with this checkout's node_modules. */
export async function checkoutBuild(commit: string): Promise<Build> {
  const directory = await mkdtemp(join(tmpdir(), 'abcast-build-'));
  try {
    const tarball = join(directory, 'tree.tar');
    await run('git', ['-C', repositoryRoot, 'archive', '--format=tar', '-o', tarball, commit]);
    await run('tar', ['-xf', tarball, '-C', directory]);
    await rm(tarball);
    // Linked, not installed, so that no registry is needed: an earlier release that needed a
    // package this one dropped would fail to start, loudly, not pass unnoticed.
    const modules = await realpath(join(repositoryRoot, 'node_modules'));
    await symlink(modules, join(directory, 'node_modules'), 'dir');
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  return {
    commit,
    entry: join(directory, 'src', 'cli', 'main.ts'),
    remove: () => rm(directory, { recursive: true, force: true }),
  };
}
