// `abcast snapshot save` and `restore` over a streamed backup, in this process: a node double
// behind the real HTTP server holds thousands of messages; `save` streams them to a file that
// appears only once whole, `restore` reads it back a line at a time and makes a data
// directory. A file cut short, changed, or rewritten with a valid checksum but no end line or
// a missing message is refused before anything is written; a version 1 file still restores;
// an answer that stops short or fails midway leaves no file behind; a restore cut short
// leaves a mark that `start` and another restore refuse.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { markRestoreStarted, restoreMarkerName } from '../../src/cli/commands/restore-marker.ts';
import { restoreSnapshot, saveSnapshot } from '../../src/cli/commands/snapshot.ts';
import {
  fileHeaderLine,
  messageLineBytesMax,
  readSnapshotFile,
  type SnapshotMessage,
} from '../../src/cli/commands/snapshot-file.ts';
import { runNode, startSettings } from '../../src/cli/commands/start.ts';
import type { ServedNode } from '../../src/server/context.ts';
import { createHttpServer, type HttpServer } from '../../src/server/http.ts';
import { FileStorage } from '../../src/storage/file-storage.ts';
import { streamRecordPayloadBytesMax } from '../../src/transport/stream-records.ts';
import { logger } from '../server/cluster.ts';

const messageCount = 2_500;
const lastIndex = messageCount + 10;
const peers = 'n1=127.0.0.1:1,n2=127.0.0.1:2';

function payloadOf(position: number): Uint8Array {
  return Buffer.from(`message ${position}`);
}

/** A node holding positions 1..messageCount, whose state is an empty session table. */
const node = {
  id: 'n1',
  backup: async () => ({
    snapshot: {
      meta: { index: lastIndex, term: 4, config: { voters: ['n1'], learners: [] } },
      data: new Uint8Array([0, 0, 0, 0]),
    },
    position: messageCount,
  }),
  status: () => ({ id: 'n1', firstRetainedPosition: 1 }),
  read: (from: number, limit: number) =>
    Array.from({ length: Math.min(limit, messageCount - from + 1) }, (_, at) => ({
      position: from + at,
      index: from + at + 10,
      term: 4,
      clientId: 'c',
      seq: from + at,
      topic: 'orders',
      payload: payloadOf(from + at),
      logTimeMs: 1_000,
    })),
} as unknown as ServedNode;

let root: string;
let http: HttpServer;
let url: string;
let saved: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'abcast-backup-'));
  http = createHttpServer({ node, logger });
  url = await http.listen('127.0.0.1:0');
  saved = join(root, 'backup.snap');
  await saveSnapshot(saved, { node: url, messages: true });
});

after(async () => {
  await http.close();
  await rm(root, { recursive: true, force: true });
});

function restoreFlags(data: string) {
  return { data, id: 'n1', peers, clusterId: 'abcast' };
}

/** The body lines of a saved file, and a file made of `lines` with a checksum that matches. */
async function bodyLines(): Promise<string[]> {
  const text = (await readFile(saved)).toString('utf8');
  return text.slice(text.indexOf('\n') + 1, -1).split('\n');
}

async function fileOf(name: string, lines: readonly string[]): Promise<string> {
  const body = Buffer.from(`${lines.join('\n')}\n`);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const path = join(root, name);
  await writeFile(path, Buffer.concat([fileHeaderLine(sha256, body.length), body]));
  return path;
}

/** What a restored data directory holds. */
async function persistedIn(data: string) {
  const { storage, persisted } = await FileStorage.open({
    dataDir: data,
    clusterId: 'abcast',
    nodeId: 'n1',
  });
  await storage.close();
  return persisted;
}

async function refused(file: string, message: RegExp): Promise<void> {
  const data = join(root, `refused-${Math.random().toString(16).slice(2)}`);
  await assert.rejects(restoreSnapshot(file, restoreFlags(data)), { name: 'CliError', message });
  await assert.rejects(readdir(data), { code: 'ENOENT' }, 'nothing was written');
}

test('save streams every message to a file that restore reads back into a data directory', async () => {
  assert.deepEqual((await readdir(root)).sort(), ['backup.snap'], 'no partial file is left');
  const headerLine = (await readFile(saved, 'utf8')).split('\n')[0] as string;
  assert.equal(JSON.parse(headerLine).version, 2);
  const messages: SnapshotMessage[] = [];
  const summary = await readSnapshotFile(saved, (message) => messages.push(message));
  assert.equal(summary.messageCount, messageCount);
  assert.deepEqual(
    [summary.header.index, summary.header.term, summary.header.position],
    [lastIndex, 4, messageCount],
  );
  assert.deepEqual(
    messages.map((message) => message.position),
    Array.from({ length: messageCount }, (_, at) => at + 1),
  );
  const last = messages.at(-1) as SnapshotMessage;
  assert.deepEqual(Buffer.from(last.payloadBase64, 'base64'), Buffer.from(payloadOf(messageCount)));

  const data = join(root, 'restored');
  await restoreSnapshot(saved, restoreFlags(data));
  const persisted = await persistedIn(data);
  assert.equal(persisted.snapshot?.meta.index, lastIndex);
  assert.deepEqual(persisted.snapshot?.meta.config.voters, ['n1', 'n2']);
  assert.equal(persisted.hardState?.commit, lastIndex);
});

test('a version 2 file cut short, changed, or without its end line is refused', async () => {
  const bytes = await readFile(saved);
  const cut = join(root, 'cut.snap');
  await writeFile(cut, bytes.subarray(0, bytes.length - 100));
  await refused(cut, /damaged: its checksum does not match/);
  const changed = Buffer.from(bytes);
  changed[changed.length >> 1] = (changed[changed.length >> 1] as number) ^ 1;
  const flipped = join(root, 'flipped.snap');
  await writeFile(flipped, changed);
  await refused(flipped, /damaged: its checksum does not match/);
  // Checksums that match: what is wrong is what the lines say.
  const lines = await bodyLines();
  await refused(
    await fileOf('no-end.snap', lines.slice(0, -1)),
    /not a whole backup: it stops after 2500 messages, without its end line/,
  );
  await refused(
    await fileOf(
      'hole.snap',
      lines.filter((_, at) => at !== 100),
    ),
    /not a whole backup: line 101 holds position 101, not 100/,
  );
  await refused(
    await fileOf('failed.snap', [...lines.slice(0, 50), '{"error":"compacted","message":"gone"}']),
    /not a whole backup: the node could not finish it: compacted: gone/,
  );
});

test('a version 1 file, one JSON body, still restores', async () => {
  const body = Buffer.from(
    JSON.stringify({
      format: 'abcast-snapshot',
      version: 1,
      node: 'n1',
      takenAtMs: 0,
      ...{ index: 9, term: 2, config: { voters: ['n1'], learners: [] }, position: 2 },
      ...{ state: Buffer.from([0, 0, 0, 0]).toString('base64'), firstPosition: 1 },
      messages: [1, 2].map((position) => ({
        ...{ position, index: position + 5, term: 2, client: '', seq: 0, topic: '', time: 0 },
        payloadBase64: Buffer.from(`v1 ${position}`).toString('base64'),
      })),
    }),
  );
  const sha256 = createHash('sha256').update(body).digest('hex');
  const header = { format: 'abcast-snapshot', version: 1, sha256, bodyBytes: body.length };
  const file = join(root, 'v1.snap');
  await writeFile(file, Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), body]));
  const messages: SnapshotMessage[] = [];
  const summary = await readSnapshotFile(file, (message) => messages.push(message));
  assert.equal(summary.messageCount, 2);
  assert.equal(Buffer.from(messages[1]?.payloadBase64 ?? '', 'base64').toString(), 'v1 2');
  const data = join(root, 'restored-v1');
  await restoreSnapshot(file, restoreFlags(data));
  const persisted = await persistedIn(data);
  assert.equal(persisted.snapshot?.meta.index, 9);
  assert.equal(persisted.hardState?.term, 2);
  const trailing = join(root, 'v1-trailing.snap');
  await writeFile(trailing, Buffer.concat([await readFile(file), Buffer.from('\ngarbage')]));
  await refused(trailing, /damaged: its checksum does not match/);
});

function partialsIn(names: readonly string[]): string[] {
  return names.filter((name) => name.endsWith('.partial'));
}

/** A server answering 200 with `lines`, then cutting the connection (`cut`) or ending. */
async function answering(lines: readonly string[], cut: boolean): Promise<Server> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/x-ndjson' });
    response.write(lines.map((line) => `${line}\n`).join(''));
    if (cut) setImmediate(() => response.socket?.destroy());
    else response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

test('an answer that stops short or fails midway leaves the earlier file as it was', async () => {
  const lines = await bodyLines();
  const target = join(root, 'kept.snap');
  await writeFile(target, 'an earlier backup');
  const cases: [readonly string[], boolean, RegExp][] = [
    [lines.slice(0, 1_000), true, /sent no whole backup: the answer broke off/],
    [lines.slice(0, -1), false, /sent no whole backup: it stops after 2500 messages/],
    [
      [...lines.slice(0, 10), '{"error":"compacted","message":"position 10 is no longer kept"}'],
      false,
      /sent no whole backup: the node could not finish it: compacted/,
    ],
  ];
  for (const [answer, cut, message] of cases) {
    const server = await answering(answer, cut);
    const { port } = server.address() as { port: number };
    try {
      await assert.rejects(
        saveSnapshot(target, { node: `http://127.0.0.1:${port}`, messages: true }),
        {
          name: 'CliError',
          message,
        },
      );
    } finally {
      server.close();
    }
    assert.equal(await readFile(target, 'utf8'), 'an earlier backup');
    assert.deepEqual(partialsIn(await readdir(root)), []);
  }
});

test('a message line with a field missing, unknown, of another type, or not base64 is refused', async () => {
  const lines = await bodyLines();
  const first = JSON.parse(lines[1] as string) as Record<string, unknown>;
  const changes: [string, Record<string, unknown>, RegExp][] = [
    ['no-topic', { topic: undefined }, /line 2 \(position 1\) has no topic/],
    ['extra', { priority: 1 }, /line 2 \(position 1\) has a field this release does not know/],
    ['seq-text', { seq: '1' }, /line 2 \(position 1\) has a seq that is not a count/],
    ['key-number', { key: 7 }, /line 2 \(position 1\) has a key that is not text/],
    ['not-base64', { payloadBase64: 'bWVz!c2FnZQ' }, /holds no payload in base64/],
  ];
  for (const [name, change, message] of changes) {
    const changed = JSON.stringify({ ...first, ...change });
    await refused(
      await fileOf(`${name}.snap`, [lines[0] as string, changed, ...lines.slice(2)]),
      message,
    );
  }
  // A keyed and a compacted message are a whole backup.
  const keyed = JSON.stringify({ ...first, key: 'k', compacted: true });
  const file = await fileOf('keyed.snap', [lines[0] as string, keyed, ...lines.slice(2)]);
  const messages: SnapshotMessage[] = [];
  await readSnapshotFile(file, (message) => messages.push(message));
  assert.deepEqual([messages[0]?.key, messages[0]?.compacted], ['k', true]);
});

test('a file missing or a directory is refused in one line naming it', async () => {
  await refused(join(root, 'absent.snap'), /^could not read .*absent\.snap: ENOENT/);
  await refused(root, /^could not read .*: EISDIR/);
});

test('a save into a directory that does not exist says so, and does not ask the node', async () => {
  let asked = 0;
  const server = createServer((_request, response) => {
    asked++;
    response.writeHead(500).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    const target = join(root, 'no-such-directory', 'backup.snap');
    await assert.rejects(
      saveSnapshot(target, { node: `http://127.0.0.1:${port}`, messages: true }),
      {
        name: 'CliError',
        message: /^could not write .*no-such-directory\/backup\.snap\.[-0-9a-f]+\.partial: ENOENT/,
      },
    );
  } finally {
    server.close();
  }
  assert.equal(asked, 0);
});

test('two saves to one file at once each write a whole file of their own', async () => {
  const lines = await bodyLines();
  const header = JSON.parse(lines[0] as string) as Record<string, unknown>;
  const other = [JSON.stringify({ ...header, takenAtMs: 7 }), ...lines.slice(1)];
  const directory = join(root, 'concurrent');
  await mkdir(directory);
  const target = join(directory, 'backup.snap');
  let secondAsked = () => {};
  const secondStarted = new Promise<void>((resolve) => {
    secondAsked = resolve;
  });
  let firstSaved: Promise<unknown> = Promise.resolve();
  // The first answer waits until the second save began; the second until the first finished.
  const servers = [
    createServer((_request, response) => {
      void secondStarted.then(() => {
        response.writeHead(200).end(lines.map((line) => `${line}\n`).join(''));
      });
    }),
    createServer((_request, response) => {
      secondAsked();
      void firstSaved.finally(() => {
        response.writeHead(200).end(other.map((line) => `${line}\n`).join(''));
      });
    }),
  ];
  const urls = await Promise.all(
    servers.map(async (server) => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    }),
  );
  try {
    firstSaved = saveSnapshot(target, { node: urls[0] as string, messages: true });
    const secondSaved = saveSnapshot(target, { node: urls[1] as string, messages: true });
    await Promise.all([firstSaved, secondSaved]);
  } finally {
    for (const server of servers) server.close();
  }
  const summary = await readSnapshotFile(target);
  assert.equal(summary.header.takenAtMs, 7, 'the last to finish is the file');
  assert.deepEqual(partialsIn(await readdir(directory)), []);
});

test('a line after the header longer than any message line is refused as damage', async () => {
  const lines = await bodyLines();
  const huge = 'x'.repeat(messageLineBytesMax + 1);
  await refused(
    await fileOf('huge-line.snap', [lines[0] as string, huge, ...lines.slice(1)]),
    new RegExp(`damaged: a line is longer than ${messageLineBytesMax} bytes`),
  );
});

/** Every file under `directory` and its bytes, by relative path. */
async function filesIn(directory: string): Promise<Record<string, string>> {
  const names = (await readdir(directory, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
  const files: Record<string, string> = {};
  for (const name of names.sort()) {
    files[name.slice(directory.length)] = (await readFile(name)).toString('hex');
  }
  return files;
}

test('restore writes the same data directory from a version 2 file as from version 1', async () => {
  const lines = await bodyLines();
  const header = JSON.parse(lines[0] as string) as Record<string, unknown>;
  const body = Buffer.from(
    JSON.stringify({
      ...header,
      version: 1,
      messages: lines.slice(1, -1).map((line) => JSON.parse(line)),
    }),
  );
  const sha256 = createHash('sha256').update(body).digest('hex');
  const v1 = join(root, 'same-v1.snap');
  const v1Header = { format: 'abcast-snapshot', version: 1, sha256, bodyBytes: body.length };
  await writeFile(v1, Buffer.concat([Buffer.from(`${JSON.stringify(v1Header)}\n`), body]));
  const fromV1 = join(root, 'same-from-v1');
  const fromV2 = join(root, 'same-from-v2');
  await restoreSnapshot(v1, restoreFlags(fromV1));
  await restoreSnapshot(saved, restoreFlags(fromV2));
  const written = await filesIn(fromV2);
  assert.ok(Object.keys(written).length > 0);
  assert.deepEqual(written, await filesIn(fromV1));
  // A directory that holds a node is refused, whatever the version.
  await assert.rejects(restoreSnapshot(saved, restoreFlags(fromV1)), /already holds a node's data/);
  await assert.rejects(restoreSnapshot(v1, restoreFlags(fromV2)), /already holds a node's data/);
  assert.deepEqual(await filesIn(fromV2), written);
});

test('a file changed in any of the ways a copy or an editor changes one is refused', async () => {
  const bytes = await readFile(saved);
  const lines = await bodyLines();
  const headerBytes = bytes.indexOf(0x0a) + 1;
  const lastLine = bytes.lastIndexOf(0x0a, bytes.length - 2) + 1;
  const unicode = await fileOf('unicode.snap', [
    lines[0] as string,
    JSON.stringify({ ...JSON.parse(lines[1] as string), topic: 'ключ' }),
    ...lines.slice(2),
  ]);
  const unicodeBytes = await readFile(unicode);
  const header = JSON.parse(bytes.subarray(0, headerBytes).toString()) as { sha256: string };
  const body = bytes.subarray(headerBytes);
  const damaged = /damaged: its checksum does not match/;
  const cases: [string, Buffer, RegExp][] = [
    ['crlf', Buffer.from(bytes.toString('utf8').replaceAll('\n', '\r\n')), damaged],
    ['cut-at-line', bytes.subarray(0, lastLine), damaged],
    ['cut-in-char', unicodeBytes.subarray(0, unicodeBytes.indexOf('ключ') + 3), damaged],
    [
      'body-bytes',
      Buffer.concat([fileHeaderLine(header.sha256, body.length + 1), body, Buffer.from('\n')]),
      damaged,
    ],
    ['trailing', Buffer.concat([bytes, Buffer.from('{"end":true,"messageCount":0}\n')]), damaged],
    ['no-file-header', body, /is a node's answer without the file's header line and checksum/],
    ['empty', Buffer.alloc(0), /is not an abcast snapshot \(no header line\)/],
  ];
  for (const [name, content, message] of cases) {
    const path = join(root, `${name}.snap`);
    await writeFile(path, content);
    await refused(path, message);
  }
  // Checksums that match the lines as changed.
  const end = lines.at(-1) as string;
  await refused(await fileOf('after-end.snap', [...lines, end]), /line 2502 follows the end line/);
  const duplicated = [lines[0], lines[1], ...lines.slice(1)] as string[];
  await refused(await fileOf('dup.snap', duplicated), /line 3 holds position 1, not 2/);
  const swapped = [lines[0], lines[2], lines[1], ...lines.slice(3)] as string[];
  await refused(await fileOf('swapped.snap', swapped), /line 2 holds position 2, not 1/);
  await refused(
    await fileOf('no-header.snap', lines.slice(1)),
    /its first line is not a snapshot header/,
  );
});

test('a message of the largest payload, client id, topic and key saves and reads back whole', async () => {
  const payload = Buffer.alloc(streamRecordPayloadBytesMax, 0xc3);
  const text = '"\\\u0001'.repeat(85);
  const largest = {
    ...{ position: 1, index: 11, term: 4, clientId: text, seq: 1, topic: text, key: text },
    ...{ payload, logTimeMs: 1_000 },
  };
  const bigNode = {
    ...node,
    backup: async () => ({ ...(await node.backup?.()), position: 1 }),
    read: (from: number) => (from === 1 ? [largest] : []),
  } as unknown as ServedNode;
  const bigHttp = createHttpServer({ node: bigNode, logger });
  const bigUrl = await bigHttp.listen('127.0.0.1:0');
  const file = join(root, 'largest.snap');
  try {
    await saveSnapshot(file, { node: bigUrl, messages: true });
  } finally {
    await bigHttp.close();
  }
  const messages: SnapshotMessage[] = [];
  await readSnapshotFile(file, (message) => messages.push(message));
  assert.equal(messages.length, 1);
  assert.deepEqual([messages[0]?.client, messages[0]?.topic, messages[0]?.key], [text, text, text]);
  assert.ok(Buffer.from(messages[0]?.payloadBase64 ?? '', 'base64').equals(payload));
});

test('a state that does not read is refused before the data directory is made', async () => {
  const lines = await bodyLines();
  const header = JSON.parse(lines[0] as string) as Record<string, unknown>;
  for (const state of [Buffer.from([0, 0]), Buffer.from([9, 0, 0, 0, 1])]) {
    const changed = JSON.stringify({ ...header, state: state.toString('base64') });
    await refused(
      await fileOf('bad-state.snap', [changed, ...lines.slice(1)]),
      /the snapshot state is (too short|damaged)/,
    );
  }
});

test('a node of an earlier release, answering version 1, is named as such', async () => {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    response.end(JSON.stringify({ format: 'abcast-snapshot', version: 1, messages: [] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const target = join(root, 'from-v1-node.snap');
  try {
    await assert.rejects(
      saveSnapshot(target, { node: `http://127.0.0.1:${port}`, messages: true }),
      {
        name: 'CliError',
        message: /answered a snapshot of version 1 \(an earlier release\)/,
      },
    );
  } finally {
    server.close();
  }
  await assert.rejects(readFile(target), { code: 'ENOENT' });
});

test('a restore cut short leaves a mark that start and a second restore refuse', {
  timeout: 60_000,
}, async () => {
  const done = join(root, 'restored-whole');
  await restoreSnapshot(saved, restoreFlags(done));
  assert.ok(!(await readdir(done)).includes(restoreMarkerName), 'a whole restore leaves no mark');
  // The storage fails as it opens (a leftover it cannot remove): the mark was made first.
  const cut = join(root, 'restored-cut');
  await mkdir(join(cut, 'snapshot.bin.tmp', 'in-the-way'), { recursive: true });
  await assert.rejects(restoreSnapshot(saved, restoreFlags(cut)));
  assert.ok((await readdir(cut)).includes(restoreMarkerName), 'the mark is left');
  // What a restore killed after the storage's first segment leaves: a node's identity and
  // an empty log, which `start` took for a new member.
  const killed = join(root, 'restored-killed');
  await markRestoreStarted(killed);
  await persistedIn(killed);
  const unfinished = /holds an unfinished restore \(restore-incomplete\).*Remove the directory/;
  for (const data of [cut, killed]) {
    await assert.rejects(restoreSnapshot(saved, restoreFlags(data)), {
      name: 'CliError',
      message: unfinished,
    });
    const settings = await startSettings({
      id: 'n1',
      data,
      listen: '127.0.0.1:1',
      http: '127.0.0.1:3',
      peers,
    });
    await assert.rejects(runNode(settings), { name: 'CliError', message: unfinished });
  }
});
