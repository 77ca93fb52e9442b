// A consumer group on real processes: three `abcast start` nodes, and group members that are
// processes of their own (group-member.ts) reading through the SDK. Three members share 100
// keys; one is killed mid-stream (its lease runs out, its slots move, its unacknowledged
// messages go to the others, in order) and a fourth joins later (slots move from live
// members only once what they were handed is acknowledged). Then: every message is acked,
// none is acked twice (no acknowledged work repeated), and per key the acked messages were
// taken in position order (by the wall clock of the machine all processes share).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { type CliRun, kill, runCli } from '../cli/helpers.ts';
import { waitFor } from '../support/ports.ts';
import { type StreamNodes, startStreamNodes } from './stream-nodes.ts';

interface Line {
  readonly event: 'got' | 'acked' | 'lost';
  readonly member: string;
  readonly position: number;
  readonly key?: string;
  readonly deliveryCount?: number;
  readonly redelivered?: boolean;
  readonly atMs?: number;
}

interface MemberRun {
  readonly member: string;
  readonly run: CliRun;
  readonly lines: Line[];
}

const runs: CliRun[] = [];
let nodes: StreamNodes | null = null;

after(async () => {
  for (const run of runs) await kill(run);
  await nodes?.close();
});

function startMember(urls: readonly string[], member: string, leaseMs: number): MemberRun {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/cluster/group-member.ts',
      urls.join(','),
      'g',
      member,
      String(leaseMs),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: Line[] = [];
  let buffered = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const parts = buffered.split('\n');
    buffered = parts.pop() as string;
    for (const part of parts) if (part !== '') lines.push(JSON.parse(part) as Line);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  // 'close', not 'exit': a member's last lines may still wait in the pipe when it exits,
  // and the checks below read every line a member printed.
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => resolve(code)),
  );
  const run: CliRun = { child, stdout: () => '', stderr: () => err, exited };
  runs.push(run);
  return { member, run, lines };
}

const keyCount = 100;
const perKey = 8;

test('a group of 3 with 100 keys keeps per-key order across a member crash and a rebalance', {
  timeout: 120_000,
}, async () => {
  nodes = await startStreamNodes([]);
  const { urls } = nodes;
  const writer = connect({ endpoints: urls });
  const positionsByKey = new Map<string, number[]>();
  const write = async (round: number) => {
    const sent: Promise<void>[] = [];
    for (let n = 0; n < keyCount; n++) {
      const key = `k${n}`;
      sent.push(
        writer.broadcast({ key, round }, { key }).then((answer) => {
          const list = positionsByKey.get(key) ?? [];
          list.push(answer.position as number);
          positionsByKey.set(key, list);
        }),
      );
    }
    await Promise.all(sent);
  };
  const leaseMs = 1500;
  const members = ['m1', 'm2', 'm3'].map((member) => startMember(urls, member, leaseMs));
  const joined = async (names: readonly string[]) => {
    const group = await fetch(`${urls[0]}/v1/consumers/g`).then(
      (r) => r.json(),
      () => null,
    );
    const present = new Set(
      (group?.members ?? []).map((member: { member: string }) => member.member),
    );
    return names.every((name) => present.has(name));
  };
  await waitFor(() => joined(['m1', 'm2', 'm3']), 'three members joined', 30_000);
  for (let round = 0; round < perKey / 2; round++) await write(round);
  const ackedCount = () =>
    members.reduce(
      (sum, run) => sum + run.lines.filter((line) => line.event === 'acked').length,
      0,
    );
  await waitFor(
    () => members.every((run) => run.lines.filter((line) => line.event === 'acked').length >= 20),
    'every member at work',
    60_000,
  );
  const crashed = members[1] as MemberRun;
  await kill(crashed.run);
  await write(perKey / 2);
  await waitFor(() => ackedCount() >= 350, '350 acks', 60_000);
  // The rebalance: slots move from live members to the new one while work is in flight.
  members.push(startMember(urls, 'm4', leaseMs));
  await waitFor(() => joined(['m4']), 'm4 joined', 30_000);
  for (let round = perKey / 2 + 1; round < perKey; round++) await write(round);
  const total = keyCount * perKey;
  const last = Math.max(...[...positionsByKey.values()].flat());
  await waitFor(
    async () => {
      const group = await fetch(`${urls[0]}/v1/consumers/g`).then((r) => r.json());
      return group.index >= last;
    },
    'the group acked everything',
    60_000,
  );
  for (const run of members) await kill(run.run);
  writer.close();
  const listed = await runCli(['consumers', '--node', urls[0] as string]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^g +\d+ +\d+ +group, members \(slots\): /m);

  // Per position: who took it and when, and whose ack was committed.
  const acks = new Map<number, { member: string; gotMs: number }[]>();
  for (const run of members) {
    const gotAt = new Map<number, number>();
    for (const line of run.lines) {
      if (line.event === 'got') gotAt.set(line.position, line.atMs as number);
      if (line.event !== 'acked') continue;
      const list = acks.get(line.position) ?? [];
      list.push({ member: run.member, gotMs: gotAt.get(line.position) as number });
      acks.set(line.position, list);
    }
  }
  // A crashed member's ack may be committed without its line: the log says it is done, and
  // then nobody else may have taken the message after it.
  const crashedGot = new Map<number, number>();
  for (const line of crashed.lines) {
    if (line.event === 'got') crashedGot.set(line.position, line.atMs as number);
  }
  let silent = 0;
  for (const [key, positions] of positionsByKey) {
    assert.equal(positions.length, perKey);
    const taken: { position: number; gotMs: number }[] = [];
    for (const position of positions) {
      const committed = acks.get(position) ?? [];
      assert.ok(
        committed.length <= 1,
        `position ${position} (${key}) acked once, not ${committed.length} times`,
      );
      const one = committed[0];
      if (one !== undefined) {
        taken.push({ position, gotMs: one.gotMs });
        continue;
      }
      const gotMs = crashedGot.get(position);
      assert.ok(gotMs !== undefined, `position ${position} (${key}) is acked (nothing lost)`);
      silent++;
      taken.push({ position, gotMs });
    }
    taken.sort((a, b) => a.gotMs - b.gotMs);
    assert.deepEqual(
      taken.map((entry) => entry.position),
      [...positions].sort((a, b) => a - b),
      `${key}: acked messages were taken in position order`,
    );
  }
  const redelivered = members
    .flatMap((run) => run.lines)
    .filter((line) => line.event === 'got' && line.redelivered === true);
  assert.ok(silent <= 50, `${silent} acks of the crashed member went unreported`);
  assert.ok(
    (members[3] as MemberRun).lines.some((line) => line.event === 'acked'),
    'the member that joined late took part',
  );
  for (const run of members) {
    const got = run.lines.filter((line) => line.event === 'got').length;
    const acked = run.lines.filter((line) => line.event === 'acked').length;
    console.log(`${run.member}: got ${got}, acked ${acked}`);
  }
  console.log(`${total} messages, ${redelivered.length} redelivered, ${silent} silent acks`);
});
