/** GET /metrics: Prometheus text exposition of the node's and the HTTP layer's numbers. */
import type { RouteContext } from '../context.ts';
import { Exposition } from '../exposition.ts';
import { writeMemoryMetrics, writeNodeMetrics } from '../node-metrics.ts';
import { queryParameters } from '../validate.ts';

export async function metricsRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const exposition = new Exposition();
  writeNodeMetrics(exposition, context.server.node.status());
  const memory = context.server.processMemory?.();
  if (memory !== undefined) writeMemoryMetrics(exposition, memory);
  context.server.metrics.write(exposition);
  const text = exposition.text();
  if (!context.response.answerable) return;
  context.response.send({
    status: 200,
    headers: {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
      'cache-control': 'no-store',
    },
    body: text,
  });
}
