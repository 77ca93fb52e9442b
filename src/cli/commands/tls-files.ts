/**
 * The TLS flags of `abcast start`: which files the peer links and the HTTP API use, the
 * refusal to listen beyond loopback without them, and the re-reading on SIGHUP.
 *
 * `--cert/--key/--ca` serve both sides unless `--client-cert/--client-key/--client-ca` give
 * the HTTP side its own. A node whose peer or HTTP address (or any peer's address) leaves
 * the machine without TLS would let anyone who reaches the port forge Raft messages or
 * change the membership, so it does not start unless told `--insecure`.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseAddress } from '../../transport/address.ts';
import { TlsCredentials, type TlsMaterial } from '../../transport/tls.ts';
import { CliError } from './errors.ts';

export interface TlsFiles {
  readonly certificatePath: string;
  readonly keyPath: string;
  readonly caPath: string;
}

export interface TlsSettings {
  /** Mutual TLS between the nodes; null for plain TCP. */
  readonly peer: TlsFiles | null;
  /** HTTPS on the API; null for plain HTTP. */
  readonly http: TlsFiles | null;
  readonly insecure: boolean;
}

export interface TlsFlagValues {
  readonly cert?: unknown;
  readonly key?: unknown;
  readonly ca?: unknown;
  readonly clientCert?: unknown;
  readonly clientKey?: unknown;
  readonly clientCa?: unknown;
  readonly insecure?: unknown;
}

/** The three files of one side, all or none; a CliError names what is missing. */
function filesOf(
  names: readonly [string, string, string],
  values: readonly [unknown, unknown, unknown],
): TlsFiles | null {
  const given = values.filter((value) => value !== undefined);
  if (given.length === 0) return null;
  if (given.length < 3) {
    const missing = names.filter((_, at) => values[at] === undefined);
    throw new CliError(`${names.join(', ')} go together; missing ${missing.join(', ')}`);
  }
  const [certificatePath, keyPath, caPath] = values.map(String) as [string, string, string];
  return { certificatePath, keyPath, caPath };
}

export function tlsSettings(values: TlsFlagValues): TlsSettings {
  const peer = filesOf(['--cert', '--key', '--ca'], [values.cert, values.key, values.ca]);
  const http =
    filesOf(
      ['--client-cert', '--client-key', '--client-ca'],
      [values.clientCert, values.clientKey, values.clientCa],
    ) ?? peer;
  return { peer, http, insecure: values.insecure === true };
}

/** 127.0.0.0/8, ::1 and localhost; 0.0.0.0 and :: are every interface, not loopback. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1' || bare === '0:0:0:0:0:0:0:1';
}

/**
 * Throws when an address other than loopback would carry plain traffic and `--insecure`
 * was not given; returns the addresses that do (for the warning under `--insecure`).
 */
export function checkExposure(
  tls: TlsSettings,
  addresses: {
    listen: string;
    http: string;
    peers: readonly string[];
    binary?: string | null;
  },
): string[] {
  const exposed: string[] = [];
  const hostOf = (address: string) => parseAddress(address, true).host;
  if (tls.peer === null) {
    for (const address of [addresses.listen, ...addresses.peers]) {
      if (!isLoopbackHost(hostOf(address))) exposed.push(`peer traffic on ${address}`);
    }
  }
  if (tls.http === null && !isLoopbackHost(hostOf(addresses.http))) {
    exposed.push(`HTTP on ${addresses.http}`);
  }
  const binary = addresses.binary ?? null;
  if (tls.http === null && binary !== null && !isLoopbackHost(hostOf(binary))) {
    exposed.push(`the binary client port on ${binary}`);
  }
  if (exposed.length > 0 && !tls.insecure) {
    throw new CliError(
      `refusing to run without TLS beyond loopback (${exposed[0]}${exposed.length > 1 ? `, and ${exposed.length - 1} more` : ''}): ` +
        'give --cert, --key and --ca (make them with `abcast certs`), or --insecure to run open anyway',
    );
  }
  return exposed;
}

async function readText(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${flag} ${path}: ${(error as Error).message}`);
  }
}

export async function readTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  return {
    certificatePem: await readText('the certificate', files.certificatePath),
    keyPem: await readText('the key', files.keyPath),
    caPem: await readText('the CA', files.caPath),
  };
}

export async function loadCredentials(files: TlsFiles): Promise<TlsCredentials> {
  const material = await readTlsMaterial(files);
  try {
    return new TlsCredentials(material);
  } catch (error) {
    throw new CliError(`${files.certificatePath}: ${(error as Error).message}`);
  }
}

/** Re-reads `files` into `credentials`; a failure keeps the old ones and says why. */
export async function reloadCredentials(
  credentials: TlsCredentials,
  files: TlsFiles,
): Promise<void> {
  const material = await readTlsMaterial(files);
  try {
    credentials.update(material);
  } catch (error) {
    throw new CliError(`${files.certificatePath}: ${(error as Error).message}`);
  }
}
