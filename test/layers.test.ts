// scripts/check-layers.mjs keeps src/ layered: each rule is fed a small fixture import graph
// that breaks it, and must report exactly that break (file, line, the edge or the cycle's
// files), while the neighbouring allowed imports pass; the real tree passes as it stands.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

interface AllowedImport {
  readonly rule: 'layer' | 'cycle';
  readonly from: string;
  readonly to: string;
}

interface LayerChecker {
  checkSources(sources: ReadonlyMap<string, string>, allowed?: readonly AllowedImport[]): string[];
  readSources(root: string): Map<string, string>;
  importsOf(text: string): { specifier: string; line: number }[];
  readonly allowedImports: readonly AllowedImport[];
  readonly deterministicFolders: readonly string[];
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const scriptPath = join(root, 'scripts', 'check-layers.mjs');
// A computed specifier: the script is plain JavaScript with no declarations of its own.
const layers = (await import(scriptPath)) as LayerChecker;

/** Checks a fixture tree with no allow-list. */
function check(files: Record<string, string>): string[] {
  return layers.checkSources(new Map(Object.entries(files)), []);
}

test('the tree as it stands keeps every rule', () => {
  assert.deepEqual(layers.checkSources(layers.readSources(root)), []);
});

test('imports are found in every form, and not in comments', () => {
  const text = [
    "import { a } from './a.ts';",
    "import type { B } from '../b.ts';",
    'import {',
    '  c,',
    '  type D,',
    "} from './c.ts';",
    "import * as e from './e.ts';",
    "import f, { g as h } from './f.ts';",
    "import './side-effect.ts';",
    "export { i } from './i.ts';",
    "export * from './j.ts';",
    "export type { K } from './k.ts';",
    "const l = await import('./l.ts');",
    "// import { m } from './m.ts';",
    "/* import { n } from './n.ts'; */",
    "const o = 'import nothing from here';",
  ].join('\n');
  assert.deepEqual(layers.importsOf(text), [
    { specifier: './a.ts', line: 1 },
    { specifier: '../b.ts', line: 2 },
    { specifier: './c.ts', line: 3 },
    { specifier: './e.ts', line: 7 },
    { specifier: './f.ts', line: 8 },
    { specifier: './side-effect.ts', line: 9 },
    { specifier: './i.ts', line: 10 },
    { specifier: './j.ts', line: 11 },
    { specifier: './k.ts', line: 12 },
    { specifier: './l.ts', line: 13 },
  ]);
});

test('src/raft imports only src/util', () => {
  const problems = check({
    'src/raft/core.ts': "import { assert } from '../util/assert.ts';\nimport './log.ts';",
    'src/raft/log.ts': "import type { Entry } from '../broadcast/node.ts';",
    'src/util/assert.ts': '',
    'src/broadcast/node.ts': '',
  });
  assert.deepEqual(problems, [
    'src/raft/log.ts:1: imports src/broadcast/node.ts: src/raft may import only src/util, not src/broadcast',
  ]);
});

test('src/storage and src/transport import only src/raft and src/util', () => {
  const problems = check({
    'src/storage/wal.ts':
      "import type { Entry } from '../raft/types.ts';\nimport { assert } from '../util/assert.ts';",
    'src/storage/snapshot.ts': "\n\nimport { frame } from '../transport/codec.ts';",
    'src/transport/codec.ts': "import { Entry } from '../raft/types';",
    'src/transport/tcp.ts': "import { sessions } from '../broadcast/sessions.js';",
    'src/raft/types.ts': '',
    'src/util/assert.ts': '',
    'src/broadcast/sessions.ts': '',
  });
  assert.deepEqual(problems, [
    'src/storage/snapshot.ts:3: imports src/transport/codec.ts: src/storage may import only src/raft and src/util, not src/transport',
    'src/transport/tcp.ts:1: imports src/broadcast/sessions.ts: src/transport may import only src/raft and src/util, not src/broadcast',
  ]);
});

test('only src/cli and src/sim import src/cli or src/sim; src/sim imports anything', () => {
  const problems = check({
    'src/cli/main.ts': "import { run } from '../sim/run.ts';\nimport '../server/http.ts';",
    'src/sim/run.ts':
      "import '../cli/flags.ts';\nimport '../broadcast/batch.ts';\nimport '../storage/wal.ts';",
    'src/cli/flags.ts': '',
    'src/server/http.ts': "import { flags } from '../cli/flags.ts';",
    'src/broadcast/node.ts': "const sim = await import('../sim/run.ts');",
    'src/broadcast/batch.ts': '',
    'src/storage/wal.ts': '',
    'src/index.ts': "export { run } from './sim/run.ts';",
  });
  assert.deepEqual(problems, [
    'src/broadcast/node.ts:1: imports src/sim/run.ts: src/broadcast must not import src/sim (only src/cli, src/mcp and src/sim do)',
    'src/index.ts:1: imports src/sim/run.ts: src must not import src/sim (only src/cli, src/mcp and src/sim do)',
    'src/server/http.ts:1: imports src/cli/flags.ts: src/server must not import src/cli (only src/cli, src/mcp and src/sim do)',
  ]);
});

test('src/mcp sits at the top: it imports src/client and src/agents, only src/cli imports it', () => {
  const problems = check({
    'src/cli/commands/mcp.ts': "const mcp = await import('../../mcp/index.ts');",
    'src/mcp/index.ts': "import '../client/index.ts';\nimport '../agents/index.ts';",
    'src/client/index.ts': '',
    'src/agents/index.ts': '',
    'src/agents/tools.ts': "import '../mcp/index.ts';",
  });
  assert.deepEqual(problems, [
    'src/agents/tools.ts:1: imports src/mcp/index.ts: src/agents must not import src/mcp (only src/cli, src/mcp and src/sim do)',
  ]);
});

test('src/chaos may import anything, and nothing imports it, not even src/cli or src/sim', () => {
  const problems = check({
    'src/chaos/run.ts':
      "import '../cli/process-cluster.ts';\nimport '../client/index.ts';\nimport '../transport/wire.ts';",
    'src/cli/process-cluster.ts': '',
    'src/client/index.ts': '',
    'src/transport/wire.ts': '',
    'src/cli/main.ts': "import '../chaos/run.ts';",
    'src/sim/run.ts': "const chaos = await import('../chaos/run.ts');",
    'src/server/http.ts': "import type { Run } from '../chaos/run.ts';",
  });
  assert.deepEqual(problems, [
    'src/cli/main.ts:1: imports src/chaos/run.ts: src/cli must not import src/chaos (a test harness; nothing imports it)',
    'src/server/http.ts:1: imports src/chaos/run.ts: src/server must not import src/chaos (a test harness; nothing imports it)',
    'src/sim/run.ts:1: imports src/chaos/run.ts: src/sim must not import src/chaos (a test harness; nothing imports it)',
  ]);
});

test('an import cycle is reported with its files, however long', () => {
  const problems = check({
    'src/agents/a.ts': "import { b } from './b.ts';",
    'src/agents/b.ts': "import type { C } from '../client/c.ts';",
    'src/client/c.ts': "export { a } from '../agents/a.ts';",
    'src/client/d.ts': "import { c } from './c.ts';",
    'src/util/self.ts': "import { self } from './self.ts';",
  });
  assert.deepEqual(problems, [
    'import cycle: src/agents/a.ts -> src/agents/b.ts -> src/client/c.ts -> src/agents/a.ts',
    'import cycle: src/util/self.ts -> src/util/self.ts',
  ]);
});

test('no clock, timer or randomness in src/raft and src/server, but where allowed', () => {
  const forbidden = [
    'Date.now()',
    'performance.now()',
    'setTimeout(f, 1)',
    'setInterval(f, 1)',
    'setImmediate(f)',
    'Math.random()',
    'randomBytes(8)',
    'randomInt(9)',
    'randomUUID()',
  ];
  for (const call of forbidden) {
    const problems = check({ 'src/server/routes/x.ts': `const f = () => 0;\nconst v = ${call};` });
    assert.equal(problems.length, 1, call);
    assert.match(problems[0] ?? '', /^src\/server\/routes\/x\.ts:2: .* in a deterministic folder/);
  }
  for (const module of ['node:crypto', 'node:perf_hooks', 'node:timers', 'node:timers/promises']) {
    const problems = check({ 'src/raft/core.ts': `import { x } from '${module}';` });
    assert.deepEqual(problems, [
      `src/raft/core.ts:1: imports ${module} in a deterministic folder; use the Environment`,
    ]);
  }
  const allowed = check({
    'src/util/system-environment.ts': "import { randomInt } from 'node:crypto';\nDate.now();",
    'src/cli/main.ts': 'setTimeout(() => undefined, 1);',
    'src/raft/core.ts':
      '// Date.now() would make runs unrepeatable\nconst tickMs = this.setTimeoutTicks;',
    'src/server/http.ts': 'const options = { headersTimeout: 1, requestTimeout: 2 };',
  });
  assert.deepEqual(allowed, []);
});

test('the runtime, the SDK and the storage are deterministic folders too', () => {
  for (const folder of ['src/raft', 'src/server', 'src/broadcast', 'src/client', 'src/storage']) {
    assert.ok(layers.deterministicFolders.includes(folder), folder);
    for (const call of ['Date.now()', 'Math.random()', 'setTimeout(f, 1)']) {
      const problems = check({ [`${folder}/x.ts`]: `const f = () => 0;\nconst v = ${call};` });
      assert.equal(problems.length, 1, `${folder}: ${call}`);
    }
  }
});

test('an allowed import is let through; a stale allowance fails the check', () => {
  const files = new Map(
    Object.entries({
      'src/client/client.ts': "import { subscribe } from './subscribe.ts';",
      'src/client/subscribe.ts': "import type { Client } from './client.ts';",
      'src/raft/core.ts': "import type { X } from '../broadcast/x.ts';",
      'src/broadcast/x.ts': '',
    }),
  );
  const allowed: AllowedImport[] = [
    { rule: 'cycle', from: 'src/client/subscribe.ts', to: 'src/client/client.ts' },
    { rule: 'layer', from: 'src/raft/core.ts', to: 'src/broadcast/x.ts' },
  ];
  assert.deepEqual(layers.checkSources(files, allowed), []);
  assert.equal(layers.checkSources(files, []).length, 2);
  const stale: AllowedImport = { rule: 'cycle', from: 'src/raft/core.ts', to: 'src/raft/log.ts' };
  assert.deepEqual(layers.checkSources(files, [...allowed, stale]), [
    'allow-list entry cycle src/raft/core.ts -> src/raft/log.ts matches no import: remove it',
  ]);
});

test('run as a command, it fails with the problems on stderr', async () => {
  const fixture = await mkdtemp(join(tmpdir(), 'abcast-layers-'));
  try {
    await mkdir(join(fixture, 'src', 'raft'), { recursive: true });
    await writeFile(join(fixture, 'src', 'raft', 'core.ts'), 'const at = Date.now();\n');
    const run = spawnSync(process.execPath, [scriptPath, fixture], { encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /src\/raft\/core\.ts:1: Date\.now in a deterministic folder/);
  } finally {
    await rm(fixture, { recursive: true, force: true });
  }
});
