/** Versions of what the race runs, for its results. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repositoryRoot = new URL('../../', import.meta.url);

/** The installed version of an npm package of this repository. */
export function packageVersion(name: string): string {
  const path = new URL(`node_modules/${name}/package.json`, repositoryRoot);
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
}

/** This repository's version and the commit it runs at, as `0.1.0 (3fecd08)`. */
export function abcastVersion(): string {
  const { version } = JSON.parse(readFileSync(new URL('package.json', repositoryRoot), 'utf8')) as {
    version: string;
  };
  let commit = 'unknown commit';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: fileURLToPath(repositoryRoot),
      encoding: 'utf8',
    }).trim();
  } catch {
    // Not a git checkout: the version alone.
  }
  return `${version} (${commit})`;
}
