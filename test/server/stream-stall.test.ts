// An event stream whose reader stops taking what is written is cut once it has waited for
// the reader for the stall timeout (checked at each keep-alive), and its slot goes back; a
// stream with nothing to send is not, however long it idles. Three real nodes, a real socket
// whose reader is paused, the server's own metrics, and the servers' clock moved by the test
// (their timers stay real), so that "not before" is proven as well as "once past".
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { after, before, test } from 'node:test';
import type { Environment } from '../../src/util/environment.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { waitFor } from '../support/ports.ts';
import { type HttpCluster, metric, scrape, startHttpCluster } from './cluster.ts';

const streamStallTimeoutMs = 60_000;
let cluster: HttpCluster;
/** How far the servers' monotonic clock is ahead of the real one. */
let clockAheadMs = 0;
const environment: Environment = {
  ...systemEnvironment,
  monotonicMs: () => systemEnvironment.monotonicMs() + clockAheadMs,
};

before(async () => {
  cluster = await startHttpCluster({ keepAliveIntervalMs: 100, streamStallTimeoutMs, environment });
});

after(async () => {
  await cluster.close();
});

async function openStream(url: string, from: number): Promise<IncomingMessage> {
  const request = get(`${url}/v1/stream?from=${from}`);
  const [res] = (await once(request, 'response')) as [IncomingMessage];
  assert.equal(res.statusCode, 200);
  return res;
}

test('a reader that takes nothing for the stall timeout is cut, and its slot freed', {
  timeout: 60_000,
}, async () => {
  const follower = await cluster.follower();
  const leader = await cluster.leader();
  const series = async (name: string) => metric(await scrape(follower.url), name);
  const stallsBefore = await series('abcast_http_stream_stalls_total');
  const drainWaitsBefore = await series('abcast_http_stream_drain_waits_total');
  const res = await openStream(follower.url, leader.node.status().lastPosition + 1);
  res.pause();
  // The cut ends the response unfinished: node:http reports it as an 'aborted' error.
  let abortedSeen = false;
  res.on('error', () => {
    abortedSeen = true;
  });
  const closed = new Promise((resolve) => res.once('close', resolve));
  // Rounds of 100 messages of 16 KiB until the socket's buffers are full and the route waits
  // for the reader, then five more (8 MB), so that it still has events to write when the
  // kernel has taken what it will.
  const payload = new TextEncoder().encode(JSON.stringify('x'.repeat(16 << 10)));
  const round = () =>
    Promise.all(Array.from({ length: 100 }, () => leader.node.broadcast(payload)));
  for (let count = 0; count < 40; count++) {
    if ((await series('abcast_http_stream_drain_waits_total')) > drainWaitsBefore) break;
    await round();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (let count = 0; count < 5; count++) await round();
  assert.ok(
    (await series('abcast_http_stream_drain_waits_total')) > drainWaitsBefore,
    'the stream waits for its reader',
  );
  // Ten keep-alives later, short of the timeout: still open.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(await series('abcast_http_streams_open'), 1, 'not cut before the stall timeout');
  assert.equal(await series('abcast_http_stream_stalls_total'), stallsBefore);
  clockAheadMs += streamStallTimeoutMs;
  await waitFor(
    async () => (await series('abcast_http_streams_open')) === 0,
    'the stalled stream is cut',
    10_000,
  );
  assert.equal(await series('abcast_http_stream_stalls_total'), stallsBefore + 1);
  res.resume();
  await closed;
  assert.ok(abortedSeen, 'the reader sees its stream cut, not ended');
});

test('a stream with nothing to send stays open past the stall timeout', {
  timeout: 30_000,
}, async () => {
  const follower = await cluster.follower();
  const stallsBefore = metric(await scrape(follower.url), 'abcast_http_stream_stalls_total');
  const res = await openStream(follower.url, follower.node.status().lastPosition + 1);
  let keepAlives = 0;
  res.on('data', (chunk: Buffer) => {
    if (chunk.toString().startsWith(':')) keepAlives++;
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  clockAheadMs += streamStallTimeoutMs * 2;
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.ok(!res.destroyed && !res.complete, 'the idle stream is still open');
  assert.ok(keepAlives > 0, 'keep-alives flow');
  assert.equal(metric(await scrape(follower.url), 'abcast_http_stream_stalls_total'), stallsBefore);
  res.destroy();
});
