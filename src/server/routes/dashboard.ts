/**
 * The dashboard every node serves (docs/ops.md): GET / is the page, GET /dashboard/:file its
 * scripts and styles (this package's `dashboard/` folder and the uPlot chart library, nothing
 * from a CDN), both open to anyone since they hold no data; GET /v1/dashboard is its live
 * feed, Server-Sent Events of the DashboardFeed's views (`history` once, then a `view` every
 * second), readable like the rest of the cluster's state. The history also says who the page
 * is served as (`viewer`), so that it offers admin buttons only to an admin: the routes
 * behind them check the role again, whatever a page shows.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { RouteContext, ServerContext } from '../context.ts';
import { DashboardFeed, type DashboardView } from '../dashboard-feed.ts';
import { HttpError } from '../errors.ts';
import type { RouteHandler } from '../router.ts';
import { queryParameters } from '../validate.ts';

/** The same path from src/server/routes and from the built dist/server/routes. */
const assetsFolder = new URL('../../../dashboard/', import.meta.url);
const require = createRequire(import.meta.url);

const assets: Readonly<Record<string, { readonly path: () => string; readonly type: string }>> = {
  'index.html': {
    path: () => fileURLToPath(new URL('index.html', assetsFolder)),
    type: 'text/html; charset=utf-8',
  },
  'app.js': {
    path: () => fileURLToPath(new URL('app.js', assetsFolder)),
    type: 'text/javascript; charset=utf-8',
  },
  'app.css': {
    path: () => fileURLToPath(new URL('app.css', assetsFolder)),
    type: 'text/css; charset=utf-8',
  },
  'uplot.js': {
    path: () => require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'uplot.css': {
    path: () => require.resolve('uplot/dist/uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
};

/** Read once per process: a few hundred kilobytes that never change while it runs. */
const assetCache = new Map<string, Promise<Buffer>>();

async function sendAsset(context: RouteContext, name: string): Promise<void> {
  const asset = assets[name];
  if (asset === undefined) throw new HttpError(404, 'not_found', `no dashboard file ${name}`);
  let bytes = assetCache.get(name);
  if (bytes === undefined) {
    bytes = readFile(asset.path());
    assetCache.set(name, bytes);
    bytes.catch(() => assetCache.delete(name));
  }
  const body = (await bytes).toString('utf8');
  if (!context.response.answerable) return;
  context.response.send({
    status: 200,
    headers: {
      'content-type': asset.type,
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-cache',
      // The page loads only its own files; it talks to this node, and to the leader's HTTP
      // API for a leadership transfer when this node is a follower.
      'content-security-policy':
        "default-src 'self'; connect-src 'self' http: https:; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
      'x-content-type-options': 'nosniff',
    },
    body,
  });
}

export const dashboardPageRoute: RouteHandler = async (context) => {
  queryParameters(context.url, ['token']);
  await sendAsset(context, 'index.html');
};

export const dashboardAssetRoute: RouteHandler = async (context) => {
  queryParameters(context.url, []);
  await sendAsset(context, context.params.file ?? '');
};

const feeds = new WeakMap<ServerContext, DashboardFeed>();

function feedOf(server: ServerContext): DashboardFeed {
  let feed = feeds.get(server);
  if (feed === undefined) {
    feed = new DashboardFeed(server);
    feeds.set(server, feed);
  }
  return feed;
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const dashboardFeedRoute: RouteHandler = async (context) => {
  queryParameters(context.url, []);
  const { metrics, settings } = context.server;
  if (metrics.openStreamCount >= settings.streamsMax) {
    throw new HttpError(503, 'overloaded', `${settings.streamsMax} event streams are open`, {
      streamsMax: settings.streamsMax,
    });
  }
  const feed = feedOf(context.server);
  const stream = context.startStream(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  metrics.streamOpened(stream);
  stream.write(`retry: ${settings.retryAfterSeconds * 1000}\n\n`);
  const viewer =
    context.identity === null ? null : { name: context.identity.name, role: context.identity.role };
  stream.write(event('history', { ...feed.history(), viewer }));
  // A page that stops reading misses views rather than making this process hold them.
  const unsubscribe = feed.subscribe((view: DashboardView) => {
    if (!stream.behind && !stream.gone) stream.write(event('view', view));
  });
  const { signal } = context;
  try {
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    unsubscribe();
    metrics.streamClosed(stream);
    if (!stream.gone) stream.end();
  }
};
