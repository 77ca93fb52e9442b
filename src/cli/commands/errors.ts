/**
 * What the CLI does with mistakes: each becomes a `CliError`, printed by main as one line on
 * stderr with a non-zero exit. Errors of the library and of HTTP are turned into lines that
 * say what to fix, never a stack trace.
 */

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

interface CodedError {
  readonly code?: unknown;
  readonly message: string;
}

/**
 * The exit code of a start that a restart cannot fix: a data directory of a newer release,
 * of another cluster or of another node. 78 is `EX_CONFIG` of sysexits.h; the systemd unit
 * lists it in `RestartPreventExitStatus`, so a supervisor stops instead of looping.
 */
export const exitCodeRestartWillNotHelp = 78;

const refusedDirectoryCodes = new Set(['FORMAT_TOO_NEW', 'WRONG_CLUSTER', 'WRONG_NODE']);

/** What the process exits with for an error that ended a command. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  const code = error instanceof Error ? (error as CodedError).code : undefined;
  return typeof code === 'string' && refusedDirectoryCodes.has(code)
    ? exitCodeRestartWillNotHelp
    : 1;
}

/**
 * A CliError's message on one line. Its words are ours, but it may quote what it refused
 * (JSON.parse's message quotes the text, a config or auth file with its line breaks): each
 * break is shown as `\n`, as it would be written in JSON.
 */
function cliLine(message: string): string {
  return message.replace(/\r?\n/g, '\\n');
}

/** One line for any error thrown while running a command. */
export function describeError(error: unknown): string {
  if (error instanceof CliError) return cliLine(error.message);
  if (!(error instanceof Error)) return String(error);
  const coded = error as CodedError;
  if (coded.code === 'LOCKED') {
    return `the data directory is locked: another abcast process uses it (${error.message})`;
  }
  if (coded.code === 'LISTEN_FAILED' || coded.code === 'EADDRINUSE') {
    return /EADDRINUSE/.test(error.message) || coded.code === 'EADDRINUSE'
      ? `port in use: ${error.message}`
      : error.message;
  }
  return error.message.split('\n')[0] ?? error.name;
}

/** A positive integer flag, or a CliError naming the flag. */
export function positiveIntegerFlag(name: string, text: string, min = 1): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min) {
    throw new CliError(`--${name} takes an integer >= ${min}, got "${text}"`);
  }
  return value;
}
