// A membership request whose record reaches the log after its deadline changes nothing, on
// three real nodes (in-memory twins) asked through the HTTP route of POST /v1/members: the
// follower that takes the request cannot hand its record to the leader (its Forward frames
// are dropped), the cluster's wall clock (the batches' stamps, and the request's deadline)
// jumps past the request timeout, and once the frames flow again the follower's next copy
// commits stamped after the deadline. The caller, still waiting, is answered 503 `timeout`
// with `"outcome": "expired"`, and every node's configuration and members list stay as they
// were: no learner added, no voter removed. No real time is waited for the deadline: only the clock the nodes read moves.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type InProcessRequest,
  type InProcessResponse,
  InProcessServer,
} from '../../src/server/in-process.ts';
import { createServerContext } from '../../src/server/settings.ts';
import type { Environment } from '../../src/util/environment.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { TwinCluster, twinTuning, waitFor } from '../broadcast/twin-cluster.ts';
import { logger } from './cluster.ts';

/** How far the nodes' wall clock is ahead of the system's. */
let clockAheadMs = 0;

/** The system's timers and monotonic clock, with a wall clock the test moves on. */
const environment: Environment = {
  ...systemEnvironment,
  nowMs: () => systemEnvironment.nowMs() + clockAheadMs,
};

let cluster: TwinCluster;

before(async () => {
  cluster = await TwinCluster.start({ tuning: { environment } });
});

after(async () => {
  await cluster.close();
});

/**
 * Sends `request` to a follower whose records cannot reach the leader, moves the wall clock
 * past its deadline, lets the records through, and returns the answer with the leader's id.
 */
async function answeredAfterItsDeadline(
  request: (followerId: string, otherFollowerId: string) => InProcessRequest,
): Promise<{ response: InProcessResponse; leaderId: string; otherFollowerId: string }> {
  const leaderId = await cluster.waitForLeader();
  const [followerId, otherFollowerId] = cluster.followers(leaderId) as [string, string];
  const follower = cluster.node(followerId);
  const server = new InProcessServer(createServerContext({ node: follower, logger, environment }));
  const isForward = (frame: { type: string; from: string }) =>
    frame.type === 'Forward' && frame.from === followerId;
  const held = cluster.dropFrames(isForward);
  const forwards = cluster.watchFrames(isForward);
  try {
    const answer = server.handle(
      request(followerId, otherFollowerId),
      new AbortController().signal,
    );
    // The record has left the follower at least once: its deadline was taken before the jump.
    await waitFor(() => forwards.count > 0, 'the record sent to the leader');
    clockAheadMs += twinTuning.requestTimeoutMs + 1000;
    held.remove();
    return { response: await answer, leaderId, otherFollowerId };
  } finally {
    held.remove();
    await server.close();
  }
}

/** The answer says the record came too late and changed nothing. */
function assertExpired(response: InProcessResponse): void {
  const body = JSON.parse(response.body) as Record<string, unknown>;
  assert.equal(response.status, 503, response.body);
  assert.equal(body.error, 'timeout');
  assert.equal(body.outcome, 'expired');
}

/** Every node has applied what the leader committed so far, and its members are n1–n3. */
async function assertMembersUnchanged(leaderId: string): Promise<void> {
  const commitIndex = cluster.node(leaderId).status().commitIndex;
  for (const id of cluster.ids) {
    await waitFor(
      () => cluster.node(id).status().appliedIndex >= commitIndex,
      `${id} applied the record`,
    );
    const { config, members } = cluster.node(id).status();
    assert.deepEqual(config.learners, [], `${id}: no learner`);
    assert.deepEqual([...config.voters].sort(), ['n1', 'n2', 'n3'], `${id}: the voters`);
    assert.deepEqual(members.map((member) => member.id).sort(), ['n1', 'n2', 'n3'], `${id}`);
  }
}

test('a request to add a member recorded after its deadline is answered expired and adds none', async () => {
  const { response, leaderId } = await answeredAfterItsDeadline(() => ({
    method: 'POST',
    url: '/v1/members',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'n9', address: '127.0.0.1:7999', voter: false }),
  }));
  assertExpired(response);
  await assertMembersUnchanged(leaderId);
});

test('a request to remove a member recorded after its deadline is answered expired and removes none', async () => {
  const { response, leaderId } = await answeredAfterItsDeadline((_, otherFollowerId) => ({
    method: 'DELETE',
    url: `/v1/members/${otherFollowerId}`,
    headers: {},
    body: null,
  }));
  assertExpired(response);
  await assertMembersUnchanged(leaderId);
});
