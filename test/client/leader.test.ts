/**
 * The SDK finds the leader among its endpoints and sends there first (no forward hop), and
 * finds the new one after a leadership transfer, checked through each node's count of
 * batches it proposed as leader.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { waitFor } from '../support/ports.ts';

test('broadcasts go to the leader, and follow it after a transfer', {
  timeout: 60_000,
}, async () => {
  const cluster = await startHttpCluster();
  try {
    const leader = await cluster.leader();
    // The leader last, so that preferring it is the search's doing, not the list order.
    const ordered = [...cluster.members.filter((m) => m !== leader), leader];
    const client = connect({ endpoints: ordered.map((m) => m.url) });
    try {
      await client.broadcast('warm-up');
      const before = leader.node.status().proposalCount;
      // Forwards are proposed by the leader too, so count the followers' own requests:
      // nothing may reach a follower's HTTP API once the leader is known.
      await waitFor(async () => {
        await client.broadcast('probe');
        return client.endpointAt(0) === leader.url;
      }, 'the client prefers the leader');
      for (let count = 0; count < 20; count++) await client.broadcast({ count });
      assert.ok(leader.node.status().proposalCount >= before + 20);
      const target = cluster.members.find((m) => m !== leader)!;
      assert.equal(leader.node.transferLeadership(target.id).accepted, true);
      await waitFor(() => target.node.status().role === 'leader', 'the transfer completes');
      await waitFor(async () => {
        await client.broadcast('after transfer');
        return client.endpointAt(0) === target.url;
      }, 'the client follows the new leader');
    } finally {
      client.close();
    }
  } finally {
    await cluster.close();
  }
});
