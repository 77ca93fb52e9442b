/**
 * Probes for load balancers and orchestrators (docs/ops.md), open to anyone even with
 * `--auth`: they say whether to send traffic here, nothing about the data.
 *
 * GET /healthz: the process serves HTTP (a liveness probe: restart the process if not).
 * GET /readyz[?lagMax=N]: this node is worth sending clients to: it runs (its storage did
 * not fail), it knows a leader, and it has applied what it knows committed to within
 * `lagMax` log entries (default 1000). 200 with every check, or 503 `not_ready` naming the
 * failed ones. A follower only learns the commit index from its leader, so "caught up" is
 * against what the leader told it; a follower cut off from the leader fails on `leader`
 * after an election timeout instead.
 */
import type { ServedStatus } from '../context.ts';
import { sendJson } from '../respond.ts';
import type { RouteHandler } from '../router.ts';
import { integerParameter, queryParameters } from '../validate.ts';

export const readyLagEntriesDefault = 1000;

export interface ReadinessCheck {
  readonly name: 'storage' | 'leader' | 'caught_up';
  readonly ok: boolean;
  readonly detail: string;
}

/** Each readiness check on `status`; pure, so the dashboard shows the same verdicts. */
export function readinessChecks(status: ServedStatus, lagEntriesMax: number): ReadinessCheck[] {
  const lagEntries = Math.max(0, status.commitIndex - status.appliedIndex);
  return [
    {
      name: 'storage',
      ok: status.stopped === null,
      detail: status.stopped === null ? 'running' : `the node stopped (${status.stopped.code})`,
    },
    {
      name: 'leader',
      ok: status.leaderId !== null,
      detail: status.leaderId === null ? 'no known leader' : `leader ${status.leaderId}`,
    },
    {
      name: 'caught_up',
      ok: lagEntries <= lagEntriesMax,
      detail: `${lagEntries} committed entries not yet applied (at most ${lagEntriesMax})`,
    },
  ];
}

export const healthzRoute: RouteHandler = async (context) => {
  queryParameters(context.url, []);
  sendJson(context.response, 200, { status: 'ok', id: context.server.node.id });
};

export const readyzRoute: RouteHandler = async (context) => {
  const query = queryParameters(context.url, ['lagMax']);
  const lagMax = integerParameter(query.get('lagMax'), 'lagMax', {
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    fallback: readyLagEntriesDefault,
  });
  const status = context.server.node.status();
  const checks = readinessChecks(status, lagMax);
  const failed = checks.filter((check) => !check.ok);
  const body = {
    id: status.id,
    role: status.role,
    leader: status.leaderId,
    checks: Object.fromEntries(checks.map((check) => [check.name, check])),
  };
  if (failed.length === 0) {
    sendJson(context.response, 200, { status: 'ready', ...body });
    return;
  }
  const reasons = failed.map((check) => `${check.name}: ${check.detail}`).join('; ');
  sendJson(
    context.response,
    503,
    { error: 'not_ready', message: `not ready: ${reasons}`, ...body },
    { 'retry-after': String(context.server.settings.retryAfterSeconds) },
  );
};
