// The glibc malloc settings a node process starts with (src/cli/node-malloc.ts): merged into
// an operator's GLIBC_TUNABLES without overriding it, the same in the Dockerfile and the
// systemd unit, and given to the node processes a ProcessCluster launches.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  missingMallocTunables,
  nodeMallocAssignment,
  nodeMallocTunables,
  runsOnGlibc,
  withNodeMallocTunables,
} from '../../src/cli/node-malloc.ts';
import { ProcessCluster } from '../../src/cli/process-cluster.ts';

const deploy = fileURLToPath(new URL('../../deploy/', import.meta.url));
const ours = Object.keys(nodeMallocTunables);

/** GLIBC_TUNABLES as name → value. */
function parsed(value: string | undefined): Map<string, string> {
  return new Map(
    (value ?? '')
      .split(':')
      .filter((pair) => pair !== '')
      .map((pair) => pair.split('=') as [string, string]),
  );
}

test('an environment without GLIBC_TUNABLES gets every node tunable, and nothing else changes', () => {
  const given: NodeJS.ProcessEnv = { PATH: '/usr/bin', HOME: '/home/abcast' };
  const env = withNodeMallocTunables(given);
  assert.deepEqual(
    parsed(env.GLIBC_TUNABLES),
    new Map(Object.entries(nodeMallocTunables).map(([name, bytes]) => [name, String(bytes)])),
  );
  assert.equal(env.PATH, '/usr/bin');
  assert.equal(env.HOME, '/home/abcast');
  assert.equal(given.GLIBC_TUNABLES, undefined, 'the given environment is not changed');
  assert.deepEqual(missingMallocTunables(env), []);
  assert.deepEqual(missingMallocTunables(given), ours);
});

test("an operator's own value of a tunable wins; their other tunables stay", () => {
  const operator = 'glibc.cpu.hwcaps=-AVX512F:glibc.malloc.trim_threshold=1048576';
  const env = withNodeMallocTunables({ GLIBC_TUNABLES: operator });
  const tunables = parsed(env.GLIBC_TUNABLES);
  assert.equal(tunables.get('glibc.malloc.trim_threshold'), '1048576');
  assert.equal(tunables.get('glibc.cpu.hwcaps'), '-AVX512F');
  assert.equal(
    tunables.get('glibc.malloc.top_pad'),
    String(nodeMallocTunables['glibc.malloc.top_pad']),
  );
  assert.ok(env.GLIBC_TUNABLES?.startsWith(operator), 'theirs first, as given');
  assert.deepEqual(missingMallocTunables({ GLIBC_TUNABLES: operator }), ['glibc.malloc.top_pad']);
  // Applying it twice adds nothing more.
  assert.equal(withNodeMallocTunables(env).GLIBC_TUNABLES, env.GLIBC_TUNABLES);
});

test('the Dockerfile and the systemd unit start a node with the same tunables', async () => {
  const assignment = nodeMallocAssignment();
  assert.match(assignment, /^GLIBC_TUNABLES=glibc\.malloc\./);
  const dockerfile = await readFile(join(deploy, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, new RegExp(`^ENV ${assignment.replaceAll('.', '\\.')}$`, 'm'));
  const unit = await readFile(join(deploy, 'systemd', 'abcast.service'), 'utf8');
  assert.match(unit, new RegExp(`^Environment=${assignment.replaceAll('.', '\\.')}$`, 'm'));
});

test('node processes of a ProcessCluster start with the tunables', {
  skip: process.platform === 'linux' ? false : '/proc/<pid>/environ is Linux only',
  timeout: 60_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-malloc-'));
  const cluster = await ProcessCluster.start({
    ids: ['n1'],
    root,
    nodeOptions: { segmentBytesMax: 1 << 20 },
  });
  try {
    const pid = cluster.node('n1').pid;
    assert.ok(pid !== undefined);
    // What the process was started with. glibc rewrites that copy in place as it parses it
    // (2.36 leaves the first tunable there; the process's own environment keeps them all),
    // so this reads only that the variable came, with one of ours first.
    const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    const value = environ.find((entry) => entry.startsWith('GLIBC_TUNABLES='));
    assert.ok(value?.startsWith(`GLIBC_TUNABLES=${ours[0]}=`), value ?? 'no GLIBC_TUNABLES');
  } finally {
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
});

test('glibc is recognised by what this process has loaded', {
  skip: process.platform === 'linux' ? false : 'Linux only',
}, () => {
  const maps = readFileSync('/proc/self/maps', 'latin1');
  assert.equal(runsOnGlibc(), /\/libc\.so\.6$/m.test(maps));
});
