// Proves the atomic replace over a recording file system: the steps run in the order that
// makes the new content durable (write, fsync, close, rename, directory fsync), and a failed
// step removes the temporary file and leaves the old file alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AtomicWriteFileSystem, replaceFileAtomically } from '../../src/util/atomic-file.ts';

function recordingFiles(failOn: string | null): { files: AtomicWriteFileSystem; steps: string[] } {
  const steps: string[] = [];
  const step = async (name: string) => {
    steps.push(name);
    if (name === failOn) throw Object.assign(new Error(`${name} failed`), { code: 'EIO' });
  };
  const files: AtomicWriteFileSystem = {
    open: async (path) => {
      await step(`open ${path}`);
      return {
        write: (chunks) => step(`write ${chunks.length}`),
        datasync: () => step('datasync'),
        close: () => step('close'),
      };
    },
    rename: (from, to) => step(`rename ${from} ${to}`),
    unlink: (path) => step(`unlink ${path}`),
    syncDirectory: (path) => step(`syncDirectory ${path}`),
  };
  return { files, steps };
}

const write = (files: AtomicWriteFileSystem, counter: { fsyncCount: number }) =>
  replaceFileAtomically({
    files,
    path: '/d/state',
    chunks: [new Uint8Array(3), new Uint8Array(4)],
    temporaryPath: '/d/state.tmp',
    directory: '/d',
    onFsync: () => {
      counter.fsyncCount++;
    },
  });

test('the steps run in durable order and count two fsyncs', async () => {
  const { files, steps } = recordingFiles(null);
  const counter = { fsyncCount: 0 };
  assert.equal(await write(files, counter), 7);
  assert.deepEqual(steps, [
    'open /d/state.tmp',
    'write 2',
    'datasync',
    'close',
    'rename /d/state.tmp /d/state',
    'syncDirectory /d',
  ]);
  assert.equal(counter.fsyncCount, 2);
});

test('a failed fsync removes the temporary file and never renames', async () => {
  const { files, steps } = recordingFiles('datasync');
  const counter = { fsyncCount: 0 };
  await assert.rejects(write(files, counter), { code: 'EIO' });
  assert.deepEqual(steps, [
    'open /d/state.tmp',
    'write 2',
    'datasync',
    'close',
    'unlink /d/state.tmp',
  ]);
  assert.equal(counter.fsyncCount, 0);
});
