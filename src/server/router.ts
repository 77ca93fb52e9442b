/**
 * The routing table: method and path pattern to handler. A path that matches no pattern is a
 * 404; a path that matches with another method is a 405 that lists the allowed ones.
 */
import type { AccessRole } from './auth.ts';
import type { RouteContext } from './context.ts';
import { HttpError } from './errors.ts';

export type RouteHandler = (context: RouteContext) => Promise<void>;

export interface Route {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** "/v1/members/:id": literal segments, and `:name` segments captured as parameters. */
  readonly pattern: string;
  /**
   * The least role that may call it, when the server checks identities (access.ts);
   * `public`: anyone, always (health probes and the dashboard's static files, which carry
   * no data).
   */
  readonly access: AccessRole | 'public';
  readonly handler: RouteHandler;
}

export interface RouteMatch {
  readonly route: Route;
  readonly params: Readonly<Record<string, string>>;
}

const pathSegmentsMax = 16;

function matchPattern(pattern: string, path: string): Record<string, string> | null {
  const expected = pattern.split('/');
  const actual = path.split('/');
  if (expected.length !== actual.length || actual.length > pathSegmentsMax) return null;
  const params: Record<string, string> = {};
  for (let at = 0; at < expected.length; at++) {
    const want = expected[at] as string;
    const got = actual[at] as string;
    if (want.startsWith(':')) {
      if (got === '') return null;
      try {
        params[want.slice(1)] = decodeURIComponent(got);
      } catch {
        return null;
      }
    } else if (want !== got) return null;
  }
  return params;
}

/**
 * HEAD is a GET without its body (RFC 9110 §9.3.2), taken where load balancers and uptime
 * checks send it: the public GET routes (the health probes, the dashboard's files), none of
 * which streams. Node's server leaves the body of a HEAD answer out on its own.
 */
function headable(route: Route): boolean {
  return route.method === 'GET' && route.access === 'public';
}

export function findRoute(routes: readonly Route[], method: string, path: string): RouteMatch {
  const allowed: string[] = [];
  for (const route of routes) {
    const params = matchPattern(route.pattern, path);
    if (params === null) continue;
    if (route.method === method || (method === 'HEAD' && headable(route))) {
      return { route, params };
    }
    allowed.push(route.method);
    if (headable(route)) allowed.push('HEAD');
  }
  if (allowed.length === 0) {
    throw new HttpError(404, 'not_found', `no route for ${path.slice(0, 200)}`);
  }
  throw new HttpError(
    405,
    'method_not_allowed',
    `${method} is not allowed here; use ${allowed.join(', ')}`,
    {
      allow: allowed.join(', '),
    },
  );
}
