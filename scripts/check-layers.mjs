#!/usr/bin/env node
// Checks the layering of src/ that STYLE.md describes, over the import graph read straight
// from the sources (run by `npm run lint`; `node scripts/check-layers.mjs [root]`):
//
//   1. imports flow one way: src/raft imports only src/util; src/storage and src/transport
//      only src/raft and src/util; nothing imports src/cli, src/mcp or src/sim but those three
//      (and the harness); nothing at all imports the chaos harness, src/chaos, which may
//      import anything;
//   2. no import cycles between files of src/ (a cycle makes load order, and so which
//      module sees the other half-initialised, depend on who is imported first);
//   3. no wall clock, timer or randomness in the deterministic folders: the simulator
//      replays a run from its seed only if every source of time and chance enters through
//      the injected Environment (src/util/environment.ts).
//
// Imports are found with regular expressions over the text with its comments removed:
// `import … from '…'`, `export … from '…'`, `import '…'` and `import('…')`. Type-only
// imports count: a layer that names another's types depends on it all the same.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Folders where time and randomness come only from an Environment. The runtime, storage and
 * SDK join once they are converted (issue #10).
 */
export const deterministicFolders = [
  'src/raft',
  'src/server',
  'src/client',
  'src/storage',
  'src/store',
  'src/broadcast',
];

/** The one production Environment: the only place that may reach the real clock. */
export const clockExemptFiles = ['src/util/system-environment.ts'];

/** Folders and the other folders of src/ they may import (their own is always allowed). */
export const layerRules = [
  { folder: 'src/raft', mayImport: ['src/util'] },
  { folder: 'src/storage', mayImport: ['src/raft', 'src/util'] },
  { folder: 'src/store', mayImport: ['src/util'] },
  { folder: 'src/transport', mayImport: ['src/raft', 'src/util'] },
];

/**
 * Folders at the top: only they import each other; src/sim may import anything. src/mcp,
 * the MCP server, sits there beside src/cli (which runs it) on src/client and src/agents.
 */
export const topFolders = ['src/cli', 'src/mcp', 'src/sim'];

/**
 * Test harnesses that drive the product from outside (the chaos suite starts `abcast` as
 * processes and talks HTTP): they may import anything, and nothing imports them, so no
 * product code can come to depend on a harness.
 */
export const harnessFolders = ['src/chaos'];

/**
 * TEMPORARY exceptions, each one import that breaks a rule today and is being removed. An
 * entry that no longer matches an import fails the check, so the list only shrinks.
 * `rule` is "layer" (rule 1) or "cycle" (rule 2: the edge is left out of cycle detection).
 */
export const allowedImports = [];

/** Identifiers that read the clock, arm a timer or draw randomness. */
const forbiddenCalls = [
  'Date.now',
  'performance.now',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'Math.random',
  'randomBytes',
  'randomInt',
  'randomUUID',
];

const forbiddenModules = new Set([
  'node:crypto',
  'crypto',
  'node:perf_hooks',
  'perf_hooks',
  'node:timers',
  'timers',
  'node:timers/promises',
  'timers/promises',
]);

/** The text with block comments and whole-line `//` comments blanked, lines kept. */
function withoutComments(text) {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, ' '))
    .replace(/^[ \t]*\/\/.*$/gm, '');
}

const staticImport =
  /(?<=^|[;\s])(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s+from\s*)?['"]([^'"\n]+)['"]/g;
const dynamicImport = /\bimport\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g;

function lineAt(text, offset) {
  let line = 1;
  for (let at = 0; at < offset; at++) if (text.charCodeAt(at) === 10) line++;
  return line;
}

/** Every module specifier `text` imports, with the line it is on. */
export function importsOf(text) {
  const code = withoutComments(text);
  const found = [];
  for (const pattern of [staticImport, dynamicImport]) {
    for (const match of code.matchAll(pattern)) {
      found.push({ specifier: match[1], line: lineAt(code, match.index) });
    }
  }
  return found.sort((a, b) => a.line - b.line);
}

/** A relative specifier as a path of `files` (posix, from the root), or null if external. */
function resolveSpecifier(from, specifier, files) {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return null;
  const base = join(dirname(from), specifier).split(sep).join('/');
  const candidates = base.endsWith('.ts')
    ? [base]
    : base.endsWith('.js')
      ? [base.replace(/\.js$/, '.ts'), base]
      : [`${base}.ts`, `${base}/index.ts`, base];
  return candidates.find((candidate) => files.has(candidate)) ?? base;
}

/** "src/raft" for "src/raft/core.ts"; "src" for a file directly in src/. */
function folderOf(path) {
  const parts = path.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0];
}

function inFolder(path, folder) {
  return path === folder || path.startsWith(`${folder}/`);
}

function isAllowed(allowed, rule, from, to) {
  return allowed.some((entry) => entry.rule === rule && entry.from === from && entry.to === to);
}

/** "a", "a and b", "a, b and c". */
function listed(names) {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

/** Why importing `to` from `from` breaks rule 1, or null when it does not. */
function layerViolation(from, to) {
  const fromFolder = folderOf(from);
  const toFolder = folderOf(to);
  if (fromFolder === toFolder || !to.startsWith('src/')) return null;
  if (harnessFolders.includes(toFolder)) {
    return `${fromFolder} must not import ${toFolder} (a test harness; nothing imports it)`;
  }
  if (harnessFolders.includes(fromFolder)) return null;
  if (topFolders.includes(toFolder) && !topFolders.includes(fromFolder)) {
    return `${fromFolder} must not import ${toFolder} (only ${listed(topFolders)} do)`;
  }
  const rule = layerRules.find((candidate) => candidate.folder === fromFolder);
  if (rule !== undefined && !rule.mayImport.includes(toFolder)) {
    return `${fromFolder} may import only ${rule.mayImport.join(' and ')}, not ${toFolder}`;
  }
  return null;
}

function clockViolations(path, text) {
  if (!deterministicFolders.some((folder) => inFolder(path, folder))) return [];
  if (clockExemptFiles.includes(path)) return [];
  const code = withoutComments(text);
  const problems = [];
  for (const name of forbiddenCalls) {
    const pattern = new RegExp(`(?<![\\w$])${name.replace('.', '\\s*\\.\\s*')}(?![\\w$])`, 'g');
    for (const match of code.matchAll(pattern)) {
      problems.push(
        `${path}:${lineAt(code, match.index)}: ${name} in a deterministic folder; use the Environment`,
      );
    }
  }
  for (const { specifier, line } of importsOf(text)) {
    if (forbiddenModules.has(specifier)) {
      problems.push(
        `${path}:${line}: imports ${specifier} in a deterministic folder; use the Environment`,
      );
    }
  }
  return problems;
}

/** One cycle through `start` inside its strongly connected component, as a path. */
function cycleThrough(start, component, edges) {
  const previous = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const next of edges.get(node) ?? []) {
      if (next === start) {
        const path = [start];
        for (let at = node; at !== start; at = previous.get(at)) path.splice(1, 0, at);
        return [...path, start];
      }
      if (component.has(next) && !previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

/** Tarjan's strongly connected components; iterative so deep graphs cannot overflow. */
function components(nodes, edges) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  let counter = 0;
  for (const root of nodes) {
    if (index.has(root)) continue;
    const work = [{ node: root, children: [...(edges.get(root) ?? [])], at: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      if (frame.at < frame.children.length) {
        const child = frame.children[frame.at++];
        if (!index.has(child)) {
          index.set(child, counter);
          low.set(child, counter++);
          stack.push(child);
          onStack.add(child);
          work.push({ node: child, children: [...(edges.get(child) ?? [])], at: 0 });
        } else if (onStack.has(child)) {
          low.set(frame.node, Math.min(low.get(frame.node), index.get(child)));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined)
        low.set(parent.node, Math.min(low.get(parent.node), low.get(frame.node)));
      if (low.get(frame.node) !== index.get(frame.node)) continue;
      const component = new Set();
      let member;
      do {
        member = stack.pop();
        onStack.delete(member);
        component.add(member);
      } while (member !== frame.node);
      found.push(component);
    }
  }
  return found;
}

function cycleViolations(edges) {
  const nodes = [...edges.keys()].sort();
  const problems = [];
  for (const component of components(nodes, edges)) {
    const first = [...component].sort()[0];
    const selfLoop = edges.get(first)?.has(first) === true;
    if (component.size < 2 && !selfLoop) continue;
    const cycle = cycleThrough(first, component, edges);
    const others = component.size > cycle.length - 1 ? ` (${component.size} files in all)` : '';
    problems.push(`import cycle: ${cycle.join(' -> ')}${others}`);
  }
  return problems;
}

/**
 * Every problem in `sources` (path from the root, posix → text); none when the tree keeps
 * every rule. Only paths under src/ are checked. `allowed` defaults to `allowedImports`.
 */
export function checkSources(sources, allowed = allowedImports) {
  const files = new Set([...sources.keys()].filter((path) => path.startsWith('src/')));
  const problems = [];
  const cycleEdges = new Map();
  const usedAllowances = new Set();
  for (const path of [...files].sort()) {
    const text = sources.get(path);
    cycleEdges.set(path, new Set());
    problems.push(...clockViolations(path, text));
    for (const { specifier, line } of importsOf(text)) {
      const target = resolveSpecifier(path, specifier, files);
      if (target === null) continue;
      const broken = layerViolation(path, target);
      if (broken !== null) {
        if (isAllowed(allowed, 'layer', path, target))
          usedAllowances.add(`layer ${path} ${target}`);
        else problems.push(`${path}:${line}: imports ${target}: ${broken}`);
      }
      if (!files.has(target)) continue;
      if (isAllowed(allowed, 'cycle', path, target)) usedAllowances.add(`cycle ${path} ${target}`);
      else cycleEdges.get(path).add(target);
    }
  }
  problems.push(...cycleViolations(cycleEdges));
  for (const entry of allowed) {
    if (!usedAllowances.has(`${entry.rule} ${entry.from} ${entry.to}`)) {
      problems.push(
        `allow-list entry ${entry.rule} ${entry.from} -> ${entry.to} matches no import: remove it`,
      );
    }
  }
  return problems;
}

/** Path (posix, from `root`) → text of every .ts file under `root`/src. */
export function readSources(root) {
  const sources = new Map();
  const walk = (directory) => {
    for (const name of readdirSync(directory).sort()) {
      const path = join(directory, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        sources.set(relative(root, path).split(sep).join('/'), readFileSync(path, 'utf8'));
      }
    }
  };
  walk(join(root, 'src'));
  return sources;
}

function main() {
  const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..');
  const sources = readSources(root);
  const problems = checkSources(sources);
  if (problems.length === 0) return;
  console.error(`check-layers: ${problems.length} problem(s) in ${root}/src`);
  for (const problem of problems) console.error(`  ${problem}`);
  process.exitCode = 1;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
