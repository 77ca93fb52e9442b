/**
 * glibc malloc settings for a node process. glibc reads them from GLIBC_TUNABLES once, as
 * the process starts (a running process cannot change them), so they go into the
 * environment of every node process we launch: `abcast dev` and the test clusters
 * (process-cluster.ts), the benchmarks, the Dockerfile and the systemd unit. `abcast start`
 * run by hand says at start-up when they are missing.
 *
 * Why: a loaded node frees and allocates tens of MB/s of socket reads and log entries
 * outside the V8 heap, through malloc. By default glibc gives the top of its heap back to
 * the kernel whenever more than 128 KiB of it is free (`brk` down) and grows it again 128 KiB
 * at a time: a leader at 128 in flight made ≈80 `brk` calls a second, and every page given
 * back is unmapped (with a TLB flush on every core the process runs on) and faulted in and
 * zeroed again when next used. With the top kept up to 32 MiB and grown 8 MiB at a time, the
 * leader made 7 in 5 s. CPU per message in alternated runs was the same or lower, by up to a
 * tenth (docs/performance-profile.md, "glibc's heap"), inside this shared machine's noise.
 * The price is memory: up to 32 MiB of freed heap a process keeps instead of returning it.
 *
 * Harmless elsewhere: musl, macOS and Windows ignore the variable.
 */

/** glibc's tunable names and the values a node runs with (bytes). */
export const nodeMallocTunables: Readonly<Record<string, number>> = {
  'glibc.malloc.trim_threshold': 32 * 1024 * 1024,
  'glibc.malloc.top_pad': 8 * 1024 * 1024,
};

const variable = 'GLIBC_TUNABLES';

/** The names an operator's GLIBC_TUNABLES sets (`name=value` pairs joined by colons). */
function tunableNames(value: string | undefined): Set<string> {
  const names = new Set<string>();
  for (const pair of (value ?? '').split(':')) {
    const name = pair.split('=', 1)[0]?.trim();
    if (name) names.add(name);
  }
  return names;
}

/**
 * `env` with the node's malloc tunables added to GLIBC_TUNABLES: a tunable the operator
 * already set keeps their value, and their other tunables stay as given.
 */
export function withNodeMallocTunables(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const given = env[variable] ?? '';
  const names = tunableNames(given);
  const added = Object.entries(nodeMallocTunables)
    .filter(([name]) => !names.has(name))
    .map(([name, bytes]) => `${name}=${bytes}`);
  if (added.length === 0) return env;
  return { ...env, [variable]: [given, ...added].filter((part) => part !== '').join(':') };
}

/** The tunables this process was started without (none when every one is set, to any value). */
export function missingMallocTunables(env: NodeJS.ProcessEnv = process.env): string[] {
  const names = tunableNames(env[variable]);
  return Object.keys(nodeMallocTunables).filter((name) => !names.has(name));
}

/** Whether this process runs on glibc, where the tunables take effect. */
export function runsOnGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } })
    ?.header;
  return typeof header?.glibcVersionRuntime === 'string';
}

/** `GLIBC_TUNABLES=…` as an operator would set it, for the start-up notice and the docs. */
export function nodeMallocAssignment(): string {
  return `${variable}=${withNodeMallocTunables({})[variable]}`;
}
