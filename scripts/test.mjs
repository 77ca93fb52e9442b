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

// The longest files start first (from a clean clone's CI log): the runner starts files in
// the order given as its two slots free up, so a long file started late runs alone at the
// end while the other slot idles. The simulator's sweep alone is about a sixth of the sum.
const longestFirst = [
  'test/sim/runtime-sweep.test.ts',
  'test/cli/repair.test.ts',
  'test/chaos/chaos-run.test.ts',
  'test/mcp/idempotent.test.ts',
  'test/cli/snapshot.test.ts',
];

function startOrder(file) {
  const rank = longestFirst.indexOf(file);
  return rank === -1 ? longestFirst.length : rank;
}

const filters = process.argv.slice(2).filter((argument) => !argument.startsWith('--'));
const passThrough = process.argv.slice(2).filter((argument) => argument.startsWith('--'));
const files = listTestFiles('test').filter(
  (file) => filters.length === 0 || filters.some((filter) => file.includes(filter)),
);
// Stable: the rest keep their path order.
files.sort((a, b) => startOrder(a) - startOrder(b));
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
