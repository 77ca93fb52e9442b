#!/usr/bin/env node
// Runs every test file under test/ on Node's own runner, TypeScript through tsx.
// Node 20's runner takes no globs, so the files are listed here. Arguments narrow the run:
// `npm test -- raft` runs only files whose path contains "raft".
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

function listTestFiles(directory) {
  const files = [];
  for (const name of readdirSync(directory).sort()) {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) files.push(...listTestFiles(path));
    else if (name.endsWith('.test.ts')) files.push(relative(process.cwd(), path));
  }
  return files;
}

const filters = process.argv.slice(2).filter((argument) => !argument.startsWith('--'));
const passThrough = process.argv.slice(2).filter((argument) => argument.startsWith('--'));
const files = listTestFiles('test').filter(
  (file) => filters.length === 0 || filters.some((filter) => file.includes(filter)),
);
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...passThrough, ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
