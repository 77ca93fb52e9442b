/**
 * Cross-origin requests from web pages (`--cors-origins`): a page on another origin may call
 * the API (broadcast, messages, the event stream, and every other route) when its origin is
 * listed, or with `*` (for development: any page at all). Without the flag no CORS header is
 * ever sent and browsers keep pages of other origins out, as before. With it or without, a
 * page's request that changes state runs only for a listed origin or the node's own
 * (`mayChangeState`).
 *
 * Tokens travel in `Authorization`, never in cookies, so credentials mode is not needed and
 * `Access-Control-Allow-Credentials` is never sent: a page must hold the token itself.
 * `Last-Event-ID` is allowed in preflights, so a fetch-based stream reader can resume; the
 * browser's own EventSource reconnection sends it too.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './errors.ts';

export interface CorsPolicy {
  /** Any origin (`*`), or only these exact origins ("https://app.example:8443"). */
  readonly anyOrigin: boolean;
  readonly origins: ReadonlySet<string>;
}

const originPattern = /^https?:\/\/[A-Za-z0-9.\-_[\]:]+$/;

/** "https://a.example,http://localhost:5173" or "*": a policy, or an error naming the bad entry. */
export function parseCorsOrigins(text: string): CorsPolicy {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new Error('--cors-origins takes "*" or a list of origins');
  if (entries.includes('*')) {
    if (entries.length > 1) throw new Error('--cors-origins: "*" stands alone');
    return { anyOrigin: true, origins: new Set() };
  }
  for (const entry of entries) {
    if (!originPattern.test(entry)) {
      throw new Error(
        `--cors-origins: "${entry}" is not an origin (scheme://host[:port], no path, no trailing slash)`,
      );
    }
  }
  return { anyOrigin: false, origins: new Set(entries.map((entry) => entry.toLowerCase())) };
}

/** Headers a page may send beyond the safelisted ones. */
const allowedRequestHeaders = 'authorization, content-type, last-event-id';
/** Headers a page may read beyond the safelisted ones. */
const exposedHeaders = 'retry-after, allow, www-authenticate';
const preflightMaxAgeSeconds = 600;

export interface CorsAnswer {
  /** Headers to add to the answer (empty when the request is not cross-origin or not allowed). */
  readonly headers: Readonly<Record<string, string>>;
  /** A preflight: answer 204 with `headers` and run no route. */
  readonly preflight: boolean;
}

/**
 * What to answer a request with `origin` (its Origin header, if any). A preflight from an
 * origin not allowed is a 403 (thrown), so the page's console says why; a plain request from
 * one runs as usual without CORS headers, and the browser withholds the answer from the page.
 */
export function corsAnswer(
  policy: CorsPolicy | null,
  request: { readonly method: string; readonly origin: string | undefined },
  isPreflight: boolean,
): CorsAnswer {
  const none = { headers: {}, preflight: false };
  if (policy === null || request.origin === undefined) return none;
  const allowed = policy.anyOrigin || policy.origins.has(request.origin.toLowerCase());
  if (!allowed) {
    if (isPreflight) {
      throw new HttpError(403, 'forbidden', `origin ${request.origin} is not in --cors-origins`);
    }
    return none;
  }
  const headers: Record<string, string> = {
    'access-control-allow-origin': policy.anyOrigin ? '*' : request.origin,
    'access-control-expose-headers': exposedHeaders,
  };
  // The answer differs by origin, so caches must key on it.
  if (!policy.anyOrigin) headers.vary = 'Origin';
  if (!isPreflight) return { headers, preflight: false };
  return {
    headers: {
      ...headers,
      'access-control-allow-methods': 'GET, POST, DELETE',
      'access-control-allow-headers': allowedRequestHeaders,
      'access-control-max-age': String(preflightMaxAgeSeconds),
    },
    preflight: true,
  };
}

/**
 * The node:http side: adds the CORS headers to `res` and answers a preflight (204) or a
 * refused one (403) itself. True when the request was answered here; the route runs otherwise.
 */
export function applyCors(
  policy: CorsPolicy | null,
  req: IncomingMessage,
  res: ServerResponse,
  scheme: 'http' | 'https',
): boolean {
  const origin = req.headers.origin;
  // Not from a page (curl, the SDK, any server-side client): nothing to check or add.
  if (origin === undefined) return false;
  const method = req.method ?? '';
  if (changesState(method) && !mayChangeState(policy, origin, `${scheme}://${req.headers.host}`)) {
    const body = JSON.stringify({
      error: 'forbidden',
      message: `a page of origin ${origin.slice(0, 200)} may not ${method} here: only this node's own pages and the origins in --cors-origins may`,
    });
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8' });
    res.end(body);
    return true;
  }
  if (policy === null) return false;
  const isPreflight =
    req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
  let answer: CorsAnswer;
  try {
    answer = corsAnswer(policy, { method, origin }, isPreflight);
  } catch (error) {
    const refusal = error as HttpError;
    const body = JSON.stringify({ error: refusal.code, message: refusal.message });
    res.writeHead(refusal.status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(body);
    return true;
  }
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  if (!answer.preflight) return false;
  res.writeHead(204, { 'content-length': '0' });
  res.end();
  return true;
}

/**
 * A page of any site may send a POST its browser deems simple (a `text/plain` body, no
 * Authorization) with no preflight; the browser only hides the answer. On a node without
 * `--auth` that broadcast, added a member or moved the leadership on a stranger's behalf
 * (cross-site request forgery). Browsers name the page's origin in `Origin` on such requests,
 * so those that change state run only for this node's own pages (its dashboard) and the
 * origins `--cors-origins` lets in. Clients that are not browsers send no Origin.
 */
function changesState(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

function mayChangeState(policy: CorsPolicy | null, origin: string, ownOrigin: string): boolean {
  const lowered = origin.toLowerCase();
  if (policy !== null && (policy.anyOrigin || policy.origins.has(lowered))) return true;
  return lowered === ownOrigin.toLowerCase();
}
