/** Flag parsing for the simulator's command line and its seed files. */

export class CliError extends Error {
  readonly code = 'BAD_FLAGS';
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** `--help` or `-h` anywhere asks for the usage, whatever else the command line holds. */
export function asksForHelp(argv: readonly string[]): boolean {
  return argv.some((arg) => arg === '--help' || arg === '-h');
}

/** A seed in decimal or 0x-hex, within u32. */
export function parseSeed(text: string): number {
  const value = /^0x[0-9a-f]{1,8}$/i.test(text)
    ? Number.parseInt(text.slice(2), 16)
    : /^[0-9]{1,10}$/.test(text)
      ? Number(text)
      : Number.NaN;
  if (!Number.isSafeInteger(value) || value > 0xffffffff) {
    throw new CliError(
      `bad seed ${JSON.stringify(text)}: expected a decimal or 0x-hex number below 2^32`,
    );
  }
  return value;
}
