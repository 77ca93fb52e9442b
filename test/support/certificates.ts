/**
 * Certificates for tests, made by the same code as `abcast certs`: a CA in a temporary
 * directory and node or client certificates from it, read back as TLS material.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  caPaths,
  createCa,
  type IssuedFiles,
  issueClient,
  issueNode,
} from '../../src/cli/certificates.ts';
import { TlsCredentials, type TlsMaterial } from '../../src/transport/tls.ts';

export interface TestCa {
  readonly dir: string;
  readonly caPem: string;
  node(nodeId: string, hosts?: readonly string[]): Promise<TlsMaterial>;
  client(name: string): Promise<TlsMaterial>;
  credentials(nodeId: string): Promise<TlsCredentials>;
  remove(): Promise<void>;
}

export async function testCa(): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), 'abcast-ca-'));
  await createCa(dir, 2);
  const caPem = await readFile(caPaths(dir).certificatePath, 'utf8');
  const material = async (files: IssuedFiles): Promise<TlsMaterial> => ({
    certificatePem: await readFile(files.certificatePath, 'utf8'),
    keyPem: await readFile(files.keyPath, 'utf8'),
    caPem,
  });
  const node = async (nodeId: string, hosts: readonly string[] = ['127.0.0.1', 'localhost']) =>
    material(await issueNode(dir, { nodeId, hosts, days: 2 }));
  return {
    dir,
    caPem,
    node,
    client: async (name) => material(await issueClient(dir, { name, days: 2 })),
    credentials: async (nodeId) => new TlsCredentials(await node(nodeId)),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
