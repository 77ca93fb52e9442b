/**
 * The log of an `abcast start` process. In a terminal, readable coloured lines (pino-pretty,
 * in this thread so nothing is lost at exit); anywhere else, or with `--log-format json`, one
 * JSON object per line for collectors.
 *
 * Start-up is quiet: while a cluster comes up, its nodes start one after the other and each
 * fails to reach the peers not yet listening (ECONNREFUSED). That is expected, not a warning:
 * a peer's link going down before it was ever open, within `startupGraceMs` of the start, is
 * logged at debug. Later, or once the link had been open, it is a warning as before.
 */
import { pino } from 'pino';
import type { NodeLogger } from '../broadcast/node.ts';

export const logFormats = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof logFormats)[number];

/** How long after start an unreachable peer is expected (nodes start in any order). */
export const startupGraceMs = 30_000;

export interface ProcessLogger extends NodeLogger {
  debug(fields: Readonly<Record<string, unknown>>, message: string): void;
}

/** `auto`: pretty on a terminal, JSON otherwise. */
export function prettyWanted(format: LogFormat, isTerminal: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTerminal);
}

export async function createProcessLogger(options: {
  /** Shown on every line, so the lines of a local cluster's nodes tell which node spoke. */
  readonly name: string;
  readonly level: string;
  readonly format: LogFormat;
  readonly nowMs: () => number;
}): Promise<ProcessLogger> {
  const base = { name: options.name, level: options.level };
  // Loaded only when used: every other command starts without it.
  const pretty = prettyWanted(options.format, process.stdout.isTTY === true)
    ? (await import('pino-pretty')).PinoPretty
    : null;
  const logger =
    pretty !== null
      ? pino(
          base,
          pretty({
            colorize: true,
            sync: true,
            translateTime: 'HH:MM:ss.l',
            ignore: 'pid,hostname',
            singleLine: true,
          }),
        )
      : pino(base);
  return quietStartup(logger, { startedMs: options.nowMs(), nowMs: options.nowMs });
}

/** Link events the transport logs by peer: "transport link open" / "transport link down". */
const linkOpen = 'transport link open';
const linkDown = 'transport link down';

/**
 * Wraps `logger` so that a peer that is not up yet during start-up is not reported as a
 * warning (see the file comment). Every other line passes through unchanged.
 */
export function quietStartup(
  logger: ProcessLogger,
  clock: { readonly startedMs: number; readonly nowMs: () => number },
): ProcessLogger {
  const everOpen = new Set<string>();
  return {
    debug: (fields, message) => logger.debug(fields, message),
    info: (fields, message) => {
      if (message === linkOpen && typeof fields.peer === 'string') everOpen.add(fields.peer);
      logger.info(fields, message);
    },
    warn: (fields, message) => {
      const peer = fields.peer;
      const expected =
        message === linkDown &&
        typeof peer === 'string' &&
        !everOpen.has(peer) &&
        clock.nowMs() - clock.startedMs < startupGraceMs;
      if (expected) logger.debug({ ...fields, startup: true }, `${message} (peer not up yet)`);
      else logger.warn(fields, message);
    },
    error: (fields, message) => logger.error(fields, message),
  };
}
