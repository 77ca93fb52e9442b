/**
 * The routes for running a node rather than using the order: health probes, the dashboard
 * and its live feed, and backups. Kept apart from the API routes (index.ts adds them).
 */
import type { Route } from '../router.ts';
import { dashboardAssetRoute, dashboardFeedRoute, dashboardPageRoute } from './dashboard.ts';
import { healthzRoute, readyzRoute } from './health.ts';
import { snapshotRoute } from './snapshot.ts';

export const opsRoutes: readonly Route[] = [
  { method: 'GET', pattern: '/healthz', access: 'public', handler: healthzRoute },
  { method: 'GET', pattern: '/readyz', access: 'public', handler: readyzRoute },
  { method: 'GET', pattern: '/', access: 'public', handler: dashboardPageRoute },
  { method: 'GET', pattern: '/dashboard/:file', access: 'public', handler: dashboardAssetRoute },
  { method: 'GET', pattern: '/v1/dashboard', access: 'read', handler: dashboardFeedRoute },
  { method: 'GET', pattern: '/v1/snapshot', access: 'admin', handler: snapshotRoute },
];
