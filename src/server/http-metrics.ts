/**
 * What the HTTP layer counts about itself: requests by route and status, their latency, the
 * latency of a broadcast until it is committed, and the event streams with the bytes they
 * hold for slow consumers (bounded: a stream waits for its socket to drain).
 */
import type { StreamWriter } from './exchange.ts';
import { type Exposition, Histogram, type HistogramSeries, LabelledCounter } from './exposition.ts';

const latencyBoundsSeconds = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export class HttpMetrics {
  private readonly requests = new LabelledCounter();
  private readonly requestSeconds = new Histogram(latencyBoundsSeconds);
  private readonly broadcastSeconds = new Histogram(latencyBoundsSeconds);
  private freshSeriesCache: HistogramSeries | null = null;
  private duplicateSeriesCache: HistogramSeries | null = null;
  private readonly streams = new Set<StreamWriter>();
  private streamEventCount = 0;
  private streamDrainWaitCount = 0;
  private streamStallCount = 0;
  private broadcastCount = 0;
  private broadcastSecondsSum = 0;
  private binaryConnectionCount = 0;
  private binaryRequestCount = 0;
  private binaryRunCount = 0;

  /**
   * The series a request counts in, by route, method and status: found again by a plain
   * string key, since serialising the labels for every request cost more than counting.
   */
  private readonly requestSeries = new Map<
    string,
    { readonly count: { value: number }; seconds: HistogramSeries | null }
  >();

  /** `route` is a route name from the routing table (or "unmatched"), never a raw path. */
  requestDone(route: string, method: string, status: number, seconds: number | null): void {
    const key = `${route} ${method} ${status}`;
    let series = this.requestSeries.get(key);
    if (series === undefined) {
      series = {
        count: this.requests.series({ route, method, status: String(status) }),
        seconds: null,
      };
      this.requestSeries.set(key, series);
    }
    series.count.value++;
    if (seconds === null) return;
    // Made on first use: a series shows in /metrics once something was observed in it.
    series.seconds ??= this.requestSeconds.series({ route });
    this.requestSeconds.observeIn(series.seconds, seconds);
  }

  private get freshSeries(): HistogramSeries {
    this.freshSeriesCache ??= this.broadcastSeconds.series({ duplicate: 'false' });
    return this.freshSeriesCache;
  }

  private get duplicateSeries(): HistogramSeries {
    this.duplicateSeriesCache ??= this.broadcastSeconds.series({ duplicate: 'true' });
    return this.duplicateSeriesCache;
  }

  broadcastDone(seconds: number, duplicate: boolean): void {
    this.broadcastsDone(
      seconds,
      duplicate ? { fresh: 0, duplicates: 1 } : { fresh: 1, duplicates: 0 },
    );
  }

  /**
   * Broadcasts of one run answered together, after `seconds`: the same as that many
   * `broadcastDone` calls, at the cost of one.
   */
  broadcastsDone(
    seconds: number,
    counts: { readonly fresh: number; readonly duplicates: number },
  ): void {
    if (counts.fresh > 0) this.broadcastSeconds.observeIn(this.freshSeries, seconds, counts.fresh);
    if (counts.duplicates > 0) {
      this.broadcastSeconds.observeIn(this.duplicateSeries, seconds, counts.duplicates);
    }
    const count = counts.fresh + counts.duplicates;
    this.broadcastCount += count;
    this.broadcastSecondsSum += seconds * count;
  }

  /** Broadcasts answered and their summed latency since start: the dashboard's mean per interval. */
  broadcastTotals(): { readonly count: number; readonly secondsSum: number } {
    return { count: this.broadcastCount, secondsSum: this.broadcastSecondsSum };
  }

  get openStreamCount(): number {
    return this.streams.size;
  }

  streamOpened(stream: StreamWriter): void {
    this.streams.add(stream);
  }

  streamClosed(stream: StreamWriter): void {
    this.streams.delete(stream);
  }

  /** The binary client port (binary-server.ts): connections open, requests taken. */
  binaryConnection(change: 1 | -1): void {
    this.binaryConnectionCount += change;
  }

  binaryRequest(): void {
    this.binaryRequestCount++;
  }

  /** A broadcastRun frame taken (a request too). */
  binaryRun(): void {
    this.binaryRunCount++;
  }

  streamEvent(count = 1): void {
    this.streamEventCount += count;
  }

  streamDrainWait(): void {
    this.streamDrainWaitCount++;
  }

  streamStalled(): void {
    this.streamStallCount++;
  }

  /** Bytes written to event streams and not yet handed to the kernel, over every stream. */
  streamBufferedBytes(): number {
    let total = 0;
    for (const stream of this.streams) total += stream.bufferedBytes;
    return total;
  }

  write(exposition: Exposition): void {
    this.requests.write(exposition, 'abcast_http_requests_total', 'HTTP requests answered.');
    this.requestSeconds.write(
      exposition,
      'abcast_http_request_duration_seconds',
      'Time from request to the end of the answer (event streams excluded).',
    );
    this.broadcastSeconds.write(
      exposition,
      'abcast_http_broadcast_duration_seconds',
      'Time from POST /v1/broadcast to its commit on a quorum and delivery on this node.',
    );
    exposition.single(
      'abcast_http_streams_open',
      'gauge',
      'Open event streams.',
      this.streams.size,
    );
    exposition.single(
      'abcast_http_stream_buffered_bytes',
      'gauge',
      'Event-stream bytes held in this process for consumers, over all streams.',
      this.streamBufferedBytes(),
    );
    exposition.single(
      'abcast_http_stream_events_total',
      'counter',
      'Messages sent as events on event streams.',
      this.streamEventCount,
    );
    exposition.single(
      'abcast_binary_connections_open',
      'gauge',
      'Open connections on the binary client port.',
      this.binaryConnectionCount,
    );
    exposition.single(
      'abcast_binary_requests_total',
      'counter',
      'Requests taken on the binary client port (they count in the HTTP request metrics too).',
      this.binaryRequestCount,
    );
    exposition.single(
      'abcast_binary_runs_total',
      'counter',
      'Runs of broadcasts taken in broadcastRun frames on the binary client port (requests too).',
      this.binaryRunCount,
    );
    exposition.single(
      'abcast_http_stream_drain_waits_total',
      'counter',
      'Times an event stream paused until a slow consumer drained its socket.',
      this.streamDrainWaitCount,
    );
    exposition.single(
      'abcast_http_stream_stalls_total',
      'counter',
      'Event streams and backups cut because their reader took nothing for the stall timeout.',
      this.streamStallCount,
    );
  }
}
