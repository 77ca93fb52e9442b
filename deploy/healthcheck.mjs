// The container's HEALTHCHECK: exits 0 when the node's /readyz answers 200 within 2 s.
// ABCAST_HEALTH_URL overrides the URL (another port, or https:// with a self-signed CA, for
// which NODE_EXTRA_CA_CERTS names the CA file).
const url = process.env.ABCAST_HEALTH_URL ?? 'http://127.0.0.1:8001/readyz';
try {
  const answer = await fetch(url, { signal: AbortSignal.timeout(2000) });
  process.exit(answer.status === 200 ? 0 : 1);
} catch {
  process.exit(1);
}
