// A read of the message store writes the records the store buffered first; when that write
// fails (a full disk), the node stops with storage_failed as it does when a write fails while
// applying, and its subscribers end as on any stop: not a raw error (an HTTP 500 `internal`)
// from a node that goes on with a store short of what it counted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStoreFiles, MessageStore } from '../../src/store/index.ts';
import { encode, TwinCluster, waitFor } from './twin-cluster.ts';

/** Memory files whose writes fail as a full disk's do, once told to. */
class FillingStoreFiles extends MemoryStoreFiles {
  full = false;

  override write(name: string, data: Buffer, offset: number): void {
    if (this.full) {
      throw Object.assign(new Error(`ENOSPC: no space left on device, write '${name}'`), {
        code: 'ENOSPC',
        syscall: 'write',
      });
    }
    super.write(name, data, offset);
  }
}

test('a store write that fails in a read stops the node: storage_failed', async () => {
  const cluster = await TwinCluster.start();
  try {
    const leader = await cluster.waitForLeader();
    const id = cluster.followers(leader)[0] as string;
    await cluster.stop(id);
    const files = new FillingStoreFiles();
    const store = new MessageStore({ files, segmentBytesMax: 1 << 20 });
    const node = await cluster.startNode(id, {
      deliveries: { store, backfill: false, retainBytesMax: null },
    });
    // Applied records stay in the store's buffer (one write per 256 KiB); the first read
    // of them (the cluster's recorder follows every node) writes them, into a full disk.
    files.full = true;
    for (let seq = 1; seq <= 5; seq++) {
      await cluster.node(leader).broadcast(encode(`m${seq}`), { clientId: 'reader', seq });
    }
    await waitFor(() => node.status().stopped !== null, 'the node stopped');
    assert.equal(node.status().stopped?.code, 'storage_failed');
  } finally {
    await cluster.close();
  }
});
