/**
 * What `abcast dev --secure` prepares in its data directory before the nodes start: a
 * cluster CA and a certificate per node under <data>/certs (made once, reused on restart),
 * and the lines that tell the user how to reach the cluster with them.
 *
 * Client authentication (issue #11, item 4) plugs in here: an admin token written beside
 * the certificates, its flag added to `nodeArgs` and its use to `usage`.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { useCaFile } from './http-client.ts';

export interface DevSecurity {
  readonly certsDir: string;
  readonly caPath: string;
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
  // This process asks the nodes whether they are up, over HTTPS.
  await useCaFile(ca.certificatePath);
  return {
    certsDir,
    caPath: ca.certificatePath,
    nodeArgs(nodeId) {
      const node = certificates.nodePaths(certsDir, nodeId);
      return ['--cert', node.certificatePath, '--key', node.keyPath, '--ca', ca.certificatePath];
    },
    usage(firstUrl) {
      return [
        `mutual TLS between the nodes, HTTPS for clients; certificates in ${certsDir}`,
        `try  export ABCAST_CA=${ca.certificatePath}`,
        `     abcast send --node ${firstUrl} '{"hello":"world"}'`,
        `     abcast tail --node ${firstUrl}   and   abcast status --node ${firstUrl}`,
        `SDK: connect({ endpoints: ['${firstUrl}'], ca: readFileSync('${ca.certificatePath}', 'utf8') })`,
        `rotate: abcast certs node --dir ${certsDir} --id n1 --hosts 127.0.0.1,localhost, then kill -HUP the node`,
      ];
    },
  };
}
