/**
 * What `abcast dev --secure` prepares in its data directory before the nodes start: a
 * cluster CA and a certificate per node under <data>/certs, an auth file with one admin
 * identity and that identity's token (made once, reused on restart), and the lines that
 * tell the user how to reach the cluster with them.
 *
 * The token is kept in <data>/certs/admin.token (0600) because the auth file holds only its
 * hash: a development cluster restarted on its directory must stay reachable with it.
 */
import { access, chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createIdentity } from './auth-file.ts';
import { useCaFile, useToken } from './http-client.ts';

export interface DevSecurity {
  readonly certsDir: string;
  readonly caPath: string;
  readonly authPath: string;
  readonly tokenPath: string;
  /** The TLS flags of one node's `abcast start`. */
  nodeArgs(nodeId: string): string[];
  /** Lines to print once the cluster is up. */
  usage(firstUrl: string): string[];
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export async function prepareDevSecurity(
  dataDir: string,
  nodeIds: readonly string[],
): Promise<DevSecurity> {
  // Loaded here only: the X.509 library is not needed by an insecure cluster.
  const certificates = await import('../certificates.ts');
  const certsDir = join(dataDir, 'certs');
  const ca = certificates.caPaths(certsDir);
  if (!(await exists(ca.keyPath))) {
    await certificates.createCa(certsDir, certificates.caValidityDaysDefault);
  }
  for (const nodeId of nodeIds) {
    if (await exists(certificates.nodePaths(certsDir, nodeId).keyPath)) continue;
    await certificates.issueNode(certsDir, {
      nodeId,
      hosts: ['127.0.0.1', 'localhost', '::1'],
      days: certificates.leafValidityDaysDefault,
    });
  }
  const authPath = join(certsDir, 'auth.json');
  const tokenPath = join(certsDir, 'admin.token');
  if (!(await exists(tokenPath))) {
    const token = await createIdentity({
      authPath,
      name: 'admin',
      role: 'admin',
      withToken: true,
      replace: true,
    });
    await writeFile(tokenPath, `${token}\n`, { mode: 0o600 });
    await chmod(tokenPath, 0o600);
  }
  // This process asks the nodes whether they are up, over HTTPS and with the token.
  await useCaFile(ca.certificatePath);
  useToken((await readFile(tokenPath, 'utf8')).trim());
  return {
    certsDir,
    caPath: ca.certificatePath,
    authPath,
    tokenPath,
    nodeArgs(nodeId) {
      const node = certificates.nodePaths(certsDir, nodeId);
      return [
        ...['--cert', node.certificatePath, '--key', node.keyPath, '--ca', ca.certificatePath],
        ...['--auth', authPath],
      ];
    },
    usage(firstUrl) {
      return [
        `mutual TLS between the nodes, HTTPS and tokens for clients; certificates and tokens in ${certsDir}`,
        `try  export ABCAST_CA=${ca.certificatePath}`,
        `     export ABCAST_TOKEN=$(cat ${tokenPath})`,
        `     abcast send --node ${firstUrl} '{"hello":"world"}'`,
        `     abcast tail --node ${firstUrl}   and   abcast status --node ${firstUrl}`,
        `more identities: abcast token create --auth ${authPath} --name alice --role write, then kill -HUP the nodes`,
        `SDK: connect({ endpoints: ['${firstUrl}'], ca: readFileSync('${ca.certificatePath}', 'utf8'), token: process.env.ABCAST_TOKEN })`,
        `rotate: abcast certs node --dir ${certsDir} --id n1 --hosts 127.0.0.1,localhost, then kill -HUP the node`,
      ];
    },
  };
}
