/**
 * What the HTTP server and the binary client port share about their sockets: listening on
 * "host:port" and the certificate, key and CA they serve TLS with.
 */
import type { AddressInfo, Server } from 'node:net';
import { formatAddress, parseAddress } from '../transport/address.ts';
import type { TlsMaterial } from '../transport/tls.ts';

/** Listens on "host:port" (port 0 picks a free one); resolves with `scheme://host:port`. */
export async function listenOn(server: Server, address: string, scheme: string): Promise<string> {
  const { host, port } = parseAddress(address, true);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return `${scheme}://${formatAddress({ host: bound.address, port: bound.port })}`;
}

/** `ca` checks client certificates, when the server asks for them (certificateNameOf). */
export function tlsServerOptions(material: TlsMaterial): { cert: string; key: string; ca: string } {
  return { cert: material.certificatePem, key: material.keyPem, ca: material.caPem };
}
