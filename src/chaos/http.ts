/**
 * Raw HTTP for the chaos runner: one request with a deadline, its JSON answer. Deliberately
 * not the SDK, so the raw clients and the nemesis see exactly what a node answers.
 */
/** One raw HTTP exchange; throws on network errors and on the attempt deadline. */
export async function request(
  url: string,
  init: { method: string; body?: unknown },
  timeoutMs: number,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: init.method,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { error: 'unparsable', text: text.slice(0, 200) };
  }
  return { status: response.status, body };
}

export function errorCode(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code ?? (error as { name?: string }).name ?? 'error';
}
