/**
 * Headless Chromium for the dashboard tests, driven by playwright-core (which downloads no
 * browser: it drives Debian's `chromium`). Where no Chromium is installed the tests skip with
 * a message saying how to get one, except under CI (CI=true), where `.ci/run` installs it and
 * its absence is a failure.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

const candidates = [
  process.env.ABCAST_CHROMIUM,
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
];

export function chromiumPath(): string | null {
  for (const path of candidates)
    if (path !== undefined && path !== '' && existsSync(path)) return path;
  return null;
}

/** Why the browser tests cannot run here, or null when they can (a failure under CI). */
export function skipReason(): string | null {
  if (chromiumPath() !== null) return null;
  const reason =
    'no Chromium found (apt-get install -y chromium, or set ABCAST_CHROMIUM): browser tests skipped';
  if (process.env.CI === 'true')
    throw new Error(`${reason}; CI must have it (.ci/run installs it)`);
  return reason;
}

export async function launchBrowser(): Promise<Browser> {
  const path = chromiumPath();
  if (path === null) throw new Error('no Chromium');
  // As root (CI, containers) Chromium refuses its sandbox.
  return chromium.launch({ executablePath: path, args: ['--no-sandbox'] });
}

/** Where screenshots go: test/dashboard/artifacts (ignored by git). */
export async function artifactPath(name: string): Promise<string> {
  const folder = fileURLToPath(new URL('./artifacts/', import.meta.url));
  await mkdir(folder, { recursive: true });
  return join(folder, name);
}
