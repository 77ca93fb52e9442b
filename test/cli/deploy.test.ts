// The deployment files in deploy/ are checked as far as this machine allows without Docker
// or Kubernetes: compose.yaml and the Kubernetes manifests parse as YAML and hold what they
// promise (three nodes, probes on /healthz and /readyz, a headless Service that publishes
// addresses before readiness, a PodDisruptionBudget, non-root pods); the Dockerfile is
// multi-stage on Node 20 slim, non-root, with a volume and a HEALTHCHECK; its ENTRYPOINT with
// compose's flags for n1 runs here as a plain process (ports and peers made local) and the
// image's health check script passes once the node is ready, then SIGTERM stops it cleanly;
// the Kubernetes start script is valid sh; the systemd unit passes `systemd-analyze verify`
// where that tool exists.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { startSettings } from '../../src/cli/commands/start.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { spawnCli } from './helpers.ts';

const deploy = fileURLToPath(new URL('../../deploy/', import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: manifests are read field by field and asserted
type Manifest = any;

async function compose(): Promise<Manifest> {
  return parse(await readFile(join(deploy, 'compose.yaml'), 'utf8'), { merge: true });
}

test('compose.yaml: three nodes, each with its volume, health check and peers', async () => {
  const file = await compose();
  assert.deepEqual(Object.keys(file.services), ['n1', 'n2', 'n3']);
  for (const [id, service] of Object.entries<Manifest>(file.services)) {
    assert.equal(service.build.dockerfile, 'deploy/Dockerfile');
    assert.deepEqual(service.healthcheck.test, ['CMD', 'node', 'deploy/healthcheck.mjs']);
    assert.equal(service.restart, 'on-failure');
    assert.deepEqual(service.volumes, [`${id}-data:/var/lib/abcast`]);
    const flags: string[] = service.command;
    assert.equal(flags[flags.indexOf('--id') + 1], id);
    assert.equal(flags[flags.indexOf('--peers') + 1], 'n1=n1:7001,n2=n2:7001,n3=n3:7001');
  }
  assert.deepEqual(Object.keys(file.volumes), ['n1-data', 'n2-data', 'n3-data']);
});

test('kubernetes: headless Service, client Service, PDB, StatefulSet with probes', async () => {
  const documents = parseAllDocuments(
    await readFile(join(deploy, 'kubernetes', 'abcast.yaml'), 'utf8'),
  ).map((document) => {
    assert.deepEqual(document.errors, []);
    return document.toJSON() as Manifest;
  });
  const byKind = (kind: string) => documents.filter((document) => document.kind === kind);
  const [headless, client] = byKind('Service');
  assert.equal(headless.spec.clusterIP, 'None');
  assert.equal(headless.spec.publishNotReadyAddresses, true);
  assert.equal(client.metadata.name, 'abcast-client');
  assert.equal(byKind('PodDisruptionBudget')[0].spec.maxUnavailable, 1);
  const set = byKind('StatefulSet')[0];
  assert.equal(set.spec.serviceName, headless.metadata.name);
  assert.equal(set.spec.replicas, 3);
  assert.equal(set.spec.podManagementPolicy, 'Parallel');
  const pod = set.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const container = pod.containers[0];
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.equal(container.startupProbe.httpGet.path, '/healthz');
  assert.ok(
    container.volumeMounts.some((mount: Manifest) => mount.mountPath === '/var/lib/abcast'),
  );
  assert.equal(set.spec.volumeClaimTemplates[0].metadata.name, 'data');
  const script: string = byKind('ConfigMap')[0].data['start.sh'];
  assert.match(script, /abcast-\$i\.\$domain:7001/, 'peers by stable DNS names');
  assert.match(script, /--join/);
  const checked = spawnSync('sh', ['-n'], { input: script });
  assert.equal(checked.status, 0, checked.stderr.toString());
});

test('Dockerfile: multi-stage on Node 20 slim, non-root, volume, health check on /readyz', async () => {
  const text = await readFile(join(deploy, 'Dockerfile'), 'utf8');
  assert.deepEqual(
    [...text.matchAll(/^FROM (\S+)/gm)].map((match) => match[1]),
    ['node:20-slim', 'node:20-slim'],
  );
  assert.match(text, /^USER abcast$/m);
  assert.match(text, /^VOLUME \/var\/lib\/abcast$/m);
  assert.match(text, /^HEALTHCHECK .*\n\s+CMD \["node", "deploy\/healthcheck.mjs"\]/m);
  assert.match(await readFile(join(deploy, 'healthcheck.mjs'), 'utf8'), /\/readyz/);
});

/** The Dockerfile's ENTRYPOINT after `node bin/abcast.js`, with compose's flags for n1. */
async function imageCommand(): Promise<string[]> {
  const text = await readFile(join(deploy, 'Dockerfile'), 'utf8');
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(text)?.[1] ?? '[]') as string[];
  assert.deepEqual(entrypoint, ['node', 'bin/abcast.js', 'start']);
  return [...entrypoint.slice(2), ...((await compose()).services.n1.command as string[])];
}

test('the image command runs as a plain process; the health check passes; SIGTERM stops it', {
  timeout: 60_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-deploy-'));
  const [peerPort, httpPort] = await freePorts(2);
  // Only what a container changes: its own ports, data path and peer names.
  const swaps: Record<string, string> = {
    'n1=n1:7001,n2=n2:7001,n3=n3:7001': `n1=127.0.0.1:${peerPort}`,
    'n1=http://n1:8001,n2=http://n2:8001,n3=http://n3:8001': `n1=http://127.0.0.1:${httpPort}`,
    '/var/lib/abcast': join(root, 'data'),
    '0.0.0.0:7001': `0.0.0.0:${peerPort}`,
    '0.0.0.0:8001': `0.0.0.0:${httpPort}`,
  };
  const args = (await imageCommand()).map((arg) => swaps[arg] ?? arg);
  const node = spawnCli(args);
  const health = join(deploy, 'healthcheck.mjs');
  const check = () =>
    spawnSync(process.execPath, [health], {
      env: { ...process.env, ABCAST_HEALTH_URL: `http://127.0.0.1:${httpPort}/readyz` },
    }).status;
  try {
    await waitFor(() => check() === 0, 'the health check passes', 30_000);
    assert.match(node.stdout(), /"name":"n1"/, 'JSON log lines');
    // The node is ready (elected, serving) a moment before `start` prints its warning, and on
    // a loaded machine the check can pass in between.
    await waitFor(() => /--insecure/.test(node.stderr()), 'the --insecure warning on stderr');
    node.child.kill('SIGTERM');
    assert.equal(await node.exited, 0);
    assert.equal(check(), 1, 'a stopped node fails the check');
  } finally {
    if (node.child.exitCode === null) node.child.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  }
});

test('the systemd unit passes systemd-analyze verify', {
  skip: existsSync('/usr/bin/systemd-analyze') ? false : 'systemd-analyze is not installed',
}, async () => {
  const unit = join(deploy, 'systemd', 'abcast.service');
  const verified = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  assert.equal(verified.status, 0, verified.stderr);
  assert.equal(verified.stderr.trim(), '', 'no warning');
  const text = await readFile(unit, 'utf8');
  assert.match(text, /^Restart=on-failure$/m);
  assert.match(text, /^KillSignal=SIGTERM$/m);
  // The example config is one `abcast start --config` accepts.
  const settings = await startSettings({ config: join(deploy, 'systemd', 'node.example.json') });
  assert.equal(settings.logFormat, 'json');
  assert.equal(settings.httpPeers.n3, 'https://10.0.0.3:8001');
});
