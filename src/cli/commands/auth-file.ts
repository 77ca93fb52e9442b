/**
 * The auth file on disk (its format and rules are src/server/auth.ts): read for `abcast
 * start --auth`, and written by `abcast token create`, which adds one identity, prints its
 * token once and keeps only the token's SHA-256. The file is written 0600 through a
 * temporary file and a rename, so a node re-reading it on SIGHUP sees the old file or the
 * new one, never half of one.
 */

import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  type AccessRole,
  AuthFileError,
  type AuthTable,
  accessRoles,
  type IdentityEntry,
  parseAuthFile,
  tokenSha256Hex,
} from '../../server/auth.ts';
import { CliError } from './errors.ts';

/** A new token: 256 random bits, base64url, with a prefix that says what it is. */
export function newToken(): string {
  return `abcast_${randomBytes(32).toString('base64url')}`;
}

/** The table of the auth file at `path`; a CliError names the file and the field. */
export async function readAuthFile(path: string): Promise<AuthTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read the auth file ${path}: ${(error as Error).message}`);
  }
  try {
    return parseAuthFile(text);
  } catch (error) {
    if (error instanceof AuthFileError)
      throw new CliError(`the auth file ${path}: ${error.message}`);
    throw error;
  }
}

/** The entries of the file at `path` as JSON, or none when it does not exist yet. */
async function readEntries(path: string): Promise<IdentityEntry[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return [];
    throw new CliError(`cannot read the auth file ${path}: ${(error as Error).message}`);
  }
  // Checked whole first, so that a broken file is reported, not extended.
  await readAuthFile(path);
  return (JSON.parse(text) as { identities: IdentityEntry[] }).identities;
}

async function writeEntries(path: string, entries: readonly IdentityEntry[]): Promise<void> {
  const text = `${JSON.stringify({ identities: entries }, null, 2)}\n`;
  // The result must parse: a mistake here must not reach a running node on SIGHUP.
  parseAuthFile(text);
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, text, { mode: 0o600, flag: 'wx' });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

export interface TokenRequest {
  readonly authPath: string;
  readonly name: string;
  readonly role: AccessRole;
  readonly publish?: readonly string[];
  readonly subscribe?: readonly string[];
  /** False for an identity reached only by a client certificate of that name. */
  readonly withToken: boolean;
  /** Replace an identity of that name instead of refusing. */
  readonly replace: boolean;
}

/** Adds the identity to the file (created if missing); resolves with its token, if any. */
export async function createIdentity(request: TokenRequest): Promise<string | null> {
  if (!accessRoles.includes(request.role)) {
    throw new CliError(`--role takes one of ${accessRoles.join(', ')}`);
  }
  const entries = await readEntries(request.authPath);
  const existing = entries.findIndex((entry) => entry.name === request.name);
  if (existing >= 0 && !request.replace) {
    throw new CliError(
      `${request.authPath} already has an identity named ${request.name}; --replace replaces it (its old token stops working)`,
    );
  }
  const token = request.withToken ? newToken() : null;
  const entry: IdentityEntry = {
    name: request.name,
    role: request.role,
    ...(token === null ? {} : { tokenSha256: tokenSha256Hex(token) }),
    ...(request.publish === undefined ? {} : { publish: request.publish }),
    ...(request.subscribe === undefined ? {} : { subscribe: request.subscribe }),
  };
  const next =
    existing >= 0 ? entries.map((old, at) => (at === existing ? entry : old)) : [...entries, entry];
  try {
    await writeEntries(request.authPath, next);
  } catch (error) {
    if (error instanceof AuthFileError) {
      throw new CliError(`not written: ${error.message.replace(/^identities\[\d+\]\./, '--')}`);
    }
    // The file is written beside itself and renamed: a failure names that scratch file, so
    // the line says which --auth could not be written.
    throw new CliError(
      `cannot write the auth file ${request.authPath}: ${(error as Error).message}`,
    );
  }
  return token;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').filter((part) => part !== '')];
}

interface TokenCreateFlags {
  auth: string;
  name: string;
  role: string;
  publish?: string[];
  subscribe?: string[];
  token: boolean;
  replace?: boolean;
}

export function tokenCommand(program: Command): void {
  const token = program.command('token').description('manage the identities of an auth file');
  token
    .command('create')
    .description('add an identity to an auth file (created 0600) and print its token once')
    .requiredOption('--auth <file>', 'the auth file that `abcast start --auth` reads')
    .requiredOption('--name <name>', 'the identity (also the name of its client certificate)')
    .requiredOption(
      '--role <role>',
      'read (messages, stream, status), write (+ send), admin (+ members, transfer, metrics)',
    )
    .option(
      '--publish <pattern>',
      'topics it may send to, * as a wildcard (repeat or comma-separate); default all',
      collect,
    )
    .option(
      '--subscribe <pattern>',
      'topics it may read (repeat or comma-separate); default all',
      collect,
    )
    .option(
      '--no-token',
      'no token: the identity is reached only by a client certificate of its name',
    )
    .option('--replace', 'replace an identity of that name (its old token stops working)')
    .action(async (flags: TokenCreateFlags) => {
      const created = await createIdentity({
        authPath: flags.auth,
        name: flags.name,
        role: flags.role as AccessRole,
        publish: flags.publish,
        subscribe: flags.subscribe,
        withToken: flags.token,
        replace: flags.replace === true,
      });
      if (created !== null) console.log(created);
      console.error(
        created === null
          ? `abcast: ${flags.name} (${flags.role}) added to ${flags.auth}: it signs in with a client certificate named ${flags.name}`
          : `abcast: ${flags.name} (${flags.role}) added to ${flags.auth}; the token above is shown only now. Nodes read the file at start and on SIGHUP.`,
      );
    });
}
