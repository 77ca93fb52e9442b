/**
 * The certificates of a cluster, made without openssl: one private CA, a certificate per
 * node (serverAuth and clientAuth, since a node both accepts and dials peer links) and one
 * per client. Each is ECDSA P-256 with SHA-256, built by @peculiar/x509 over Node's
 * WebCrypto, so no ASN.1 is written here.
 *
 * Identities: a node's certificate carries its id twice, as the subject CN and as the SAN
 * URI `abcast://node/<id>` (percent-encoded), a client's as CN and `abcast://client/<name>`.
 * The transport reads the URI first (src/transport/tls.ts), so a client certificate whose
 * CN happens to equal a node id is never taken for that node.
 *
 * Files: `ca.crt`, `ca.key`, `node-<id>.crt`, `node-<id>.key`, `client-<name>.crt`,
 * `client-<name>.key`. Keys are written 0600, certificates 0644, each through a temporary
 * file renamed into place, so a node re-reading its files on SIGHUP never sees half a file.
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { nodeUriPrefix } from '../transport/tls.ts';
import { CliError } from './commands/errors.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const dayMs = 24 * 60 * 60 * 1000;
/** Backdated so that a peer whose clock is a little behind still accepts a new certificate. */
const notBeforeSkewMs = 60 * 60 * 1000;
export const caValidityDaysDefault = 3650;
export const leafValidityDaysDefault = 825;

const clientUriPrefix = 'abcast://client/';

export interface IssuedFiles {
  readonly certificatePath: string;
  readonly keyPath: string;
}

export interface CertificateAuthority {
  readonly certificate: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
}

export function caPaths(dir: string): IssuedFiles {
  return { certificatePath: join(dir, 'ca.crt'), keyPath: join(dir, 'ca.key') };
}

export function nodePaths(dir: string, nodeId: string): IssuedFiles {
  return {
    certificatePath: join(dir, `node-${fileSafe(nodeId)}.crt`),
    keyPath: join(dir, `node-${fileSafe(nodeId)}.key`),
  };
}

export function clientPaths(dir: string, name: string): IssuedFiles {
  return {
    certificatePath: join(dir, `client-${fileSafe(name)}.crt`),
    keyPath: join(dir, `client-${fileSafe(name)}.key`),
  };
}

/** A name usable in a file name as it is; anything else is refused rather than mangled. */
function fileSafe(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name.startsWith('.')) {
    throw new CliError(
      `"${name}" cannot name a certificate file: use 1-64 letters, digits, '.', '_' or '-'`,
    );
  }
  return name;
}

/** 16 random bytes, positive as DER INTEGER wants (RFC 5280 §4.1.2.2 allows up to 20). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}

/** The last instant a certificate can name: its dates run to the year 9999 (RFC 5280 §4.1.2.5). */
const notAfterLastMs = Date.UTC(9999, 11, 31, 23, 59, 59);

function validity(days: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isSafeInteger(days) || days < 1) throw new CliError('--days takes an integer >= 1');
  const now = Date.now();
  // Past it the certificate was written with a date no TLS library reads ("Bad time value").
  if (now + days * dayMs > notAfterLastMs) {
    throw new CliError(`--days ${days} ends past 9999-12-31, the last date a certificate holds`);
  }
  return { notBefore: new Date(now - notBeforeSkewMs), notAfter: new Date(now + days * dayMs) };
}

/** A distinguished-name value with the characters that would change its meaning escaped. */
function dnValue(value: string): string {
  return value.replace(/([,+"\\<>;=#])/g, '\\$1');
}

/** Makes a new CA in `dir`; refuses to replace one, which would orphan every issued cert. */
export async function createCa(dir: string, days: number): Promise<IssuedFiles> {
  const paths = caPaths(dir);
  if (await exists(paths.keyPath)) {
    throw new CliError(
      `${paths.keyPath} exists: a new CA would leave every certificate it signed untrusted`,
    );
  }
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=abcast cluster CA ${randomBytes(4).toString('hex')}`,
    ...validity(days),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((error: Error) => {
    throw new CliError(`--dir ${dir} cannot hold the CA: ${error.message}`);
  });
  await writeIssued(paths, certificate, keys.privateKey);
  return paths;
}

export async function loadCa(dir: string): Promise<CertificateAuthority> {
  const paths = caPaths(dir);
  let certificatePem: string;
  let keyPem: string;
  try {
    certificatePem = await readFile(paths.certificatePath, 'utf8');
    keyPem = await readFile(paths.keyPath, 'utf8');
  } catch (error) {
    throw new CliError(
      `no CA in ${dir} (${(error as Error).message}); make one with: abcast certs ca --dir ${dir}`,
    );
  }
  const certificate = new x509.X509Certificate(certificatePem);
  const privateKey = await webcrypto.subtle.importKey(
    'pkcs8',
    x509.PemConverter.decodeFirst(keyPem),
    algorithm,
    false,
    ['sign'],
  );
  const publicKey = await certificate.publicKey.export(algorithm, ['verify']);
  return { certificate, keys: { privateKey, publicKey } };
}

function subjectAltNames(uri: string, hosts: readonly string[]): x509.JsonGeneralName[] {
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: uri }];
  for (const host of hosts) {
    names.push(isIP(host) === 0 ? { type: 'dns', value: host } : { type: 'ip', value: host });
  }
  return names;
}

async function issue(
  ca: CertificateAuthority,
  leaf: { commonName: string; uri: string; hosts: readonly string[]; usages: readonly string[] },
  paths: IssuedFiles,
  days: number,
): Promise<IssuedFiles> {
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${dnValue(leaf.commonName)}`,
    issuer: ca.certificate.subject,
    ...validity(days),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([...leaf.usages]),
      new x509.SubjectAlternativeNameExtension(subjectAltNames(leaf.uri, leaf.hosts)),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  await writeIssued(paths, certificate, keys.privateKey);
  return paths;
}

/** A node's certificate: its id as CN and SAN URI, `hosts` as DNS names or IP addresses. */
export async function issueNode(
  dir: string,
  options: { nodeId: string; hosts: readonly string[]; days: number },
): Promise<IssuedFiles> {
  const ca = await loadCa(dir);
  return issue(
    ca,
    {
      commonName: options.nodeId,
      uri: `${nodeUriPrefix}${encodeURIComponent(options.nodeId)}`,
      hosts: options.hosts,
      usages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    },
    nodePaths(dir, options.nodeId),
    options.days,
  );
}

/** A client's certificate: clientAuth only, so it can never serve as a node. */
export async function issueClient(
  dir: string,
  options: { name: string; days: number },
): Promise<IssuedFiles> {
  const ca = await loadCa(dir);
  return issue(
    ca,
    {
      commonName: options.name,
      uri: `${clientUriPrefix}${encodeURIComponent(options.name)}`,
      hosts: [],
      usages: [x509.ExtendedKeyUsage.clientAuth],
    },
    clientPaths(dir, options.name),
    options.days,
  );
}

async function writeIssued(
  paths: IssuedFiles,
  certificate: x509.X509Certificate,
  privateKey: CryptoKey,
): Promise<void> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', privateKey);
  await writeAtomically(paths.keyPath, x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), 0o600);
  await writeAtomically(paths.certificatePath, certificate.toString('pem'), 0o644);
}

/** Temporary file with its final mode from the start, then rename: never a readable key. */
async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, `${text.trimEnd()}\n`, { mode, flag: 'wx' });
  // The umask may have taken bits the mode asked for; a key must end exactly 0600.
  await chmod(temporary, mode);
  await rename(temporary, path);
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(
    () => true,
    () => false,
  );
}
