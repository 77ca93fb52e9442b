/**
 * Mutual TLS for peer links: the certificate, key and CA a node presents and trusts, and
 * the rule that ties a certificate to a node id.
 *
 * Identity: a peer is who its certificate says, not who its Hello says. A certificate
 * names a node by the SAN URI `abcast://node/<id>` (percent-encoded) or, when it carries no
 * `abcast://` URI at all (one issued by another tool), by its subject CN. A certificate with
 * an `abcast://` URI of another kind (a client's) names no node, whatever its CN says.
 *
 * The CA is the cluster's own: any certificate it signed is a member's or a client's, so a
 * dialling node checks the node id in the answering certificate, not the host name in the
 * address (addresses change with membership and are often bare IPs).
 *
 * Rotation: `update` builds the new context before it replaces the old, so a bad set of
 * files leaves the node running on the old ones. Connections already open keep the keys
 * they were made with; new ones use the new files.
 */
import { X509Certificate } from 'node:crypto';
import {
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
} from 'node:tls';
import type { NodeId } from '../raft/types.ts';
import { TransportError } from './errors.ts';

export const nodeUriPrefix = 'abcast://node/';
const abcastUriPrefix = 'abcast://';

/** PEM text, as read from the files. `caPem` may hold several certificates. */
export interface TlsMaterial {
  readonly certificatePem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

type Listener = (material: TlsMaterial) => void;

export class TlsCredentials {
  private materialNow: TlsMaterial;
  private contextNow: SecureContext;
  private readonly listeners = new Set<Listener>();

  /** Throws `TransportError` ('INVALID_TLS') when the files do not make a usable context. */
  constructor(material: TlsMaterial) {
    this.contextNow = secureContextOf(material);
    this.materialNow = material;
  }

  get material(): TlsMaterial {
    return this.materialNow;
  }

  /** For new outbound connections; inbound ones take `material` through their server. */
  get secureContext(): SecureContext {
    return this.contextNow;
  }

  /** The node id this node's own certificate names, or null. */
  get certifiedNodeId(): NodeId | null {
    const certificate = new X509Certificate(this.materialNow.certificatePem);
    return nodeIdOf(certificate.subjectAltName, commonNameOf(certificate.subject));
  }

  /** Replaces the files; throws (keeping the old ones) when the new ones are unusable. */
  update(material: TlsMaterial): void {
    const context = secureContextOf(material);
    this.contextNow = context;
    this.materialNow = material;
    for (const listener of this.listeners) listener(material);
  }

  /** `listener` runs after every successful update; returns the function that removes it. */
  onUpdate(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function secureContextOf(material: TlsMaterial): SecureContext {
  try {
    // Parsing the certificates here names the broken file; OpenSSL's errors do not.
    new X509Certificate(material.certificatePem);
    new X509Certificate(material.caPem);
    return createSecureContext({
      cert: material.certificatePem,
      key: material.keyPem,
      ca: material.caPem,
      minVersion: 'TLSv1.2',
    });
  } catch (error) {
    throw new TransportError(
      'INVALID_TLS',
      `the TLS certificate, key and CA do not go together: ${(error as Error).message}`,
    );
  }
}

/** The CN of a subject as node:crypto prints it ("CN=n1\nO=…"), or undefined. */
export function commonNameOf(subject: string | undefined): string | undefined {
  if (subject === undefined) return undefined;
  for (const line of subject.split('\n')) {
    if (line.startsWith('CN=')) return line.slice(3);
  }
  return undefined;
}

/**
 * The node a certificate names (see the module comment), from its SAN as Node prints it
 * ("URI:abcast://node/n1, DNS:localhost, IP Address:127.0.0.1") and its subject CN.
 * Several node URIs name no node: a certificate stands for one node only.
 */
export function nodeIdOf(
  subjectAltName: string | undefined,
  commonName: string | undefined,
): NodeId | null {
  const uris = (subjectAltName ?? '')
    .split(', ')
    .filter((name) => name.startsWith('URI:'))
    .map((name) => name.slice(4));
  const ours = uris.filter((uri) => uri.startsWith(abcastUriPrefix));
  if (ours.length === 0) return commonName === undefined || commonName === '' ? null : commonName;
  const nodes = ours.filter((uri) => uri.startsWith(nodeUriPrefix));
  if (nodes.length !== 1) return null;
  try {
    const nodeId = decodeURIComponent((nodes[0] as string).slice(nodeUriPrefix.length));
    return nodeId === '' ? null : nodeId;
  } catch {
    return null;
  }
}

/** The node a verified peer certificate names; null for none or an unverified one. */
export function certifiedPeerOf(socket: TLSSocket): NodeId | null {
  if (!socket.authorized) return null;
  return nodeIdOfCertificate(socket.getPeerCertificate());
}

export function nodeIdOfCertificate(
  certificate: PeerCertificate | null | undefined,
): NodeId | null {
  // An empty object is what Node returns when the peer sent no certificate.
  if (certificate === null || certificate === undefined || certificate.subject === undefined) {
    return null;
  }
  const commonName: unknown = certificate.subject.CN;
  // Several CNs are ambiguous: such a subject names no one.
  return nodeIdOf(
    certificate.subjectaltname,
    typeof commonName === 'string' ? commonName : undefined,
  );
}
