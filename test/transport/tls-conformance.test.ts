// Proves the TCP transport keeps the transport contract over mutual TLS, by running the
// shared conformance suite against TLS transports on 127.0.0.1, each node with its own
// certificate from one test CA.
import { after } from 'node:test';
import type { TlsCredentials } from '../../src/transport/tls.ts';
import { testCa } from '../support/certificates.ts';
import { runConformance } from './conformance.ts';
import { TcpHarness } from './tcp-harness.ts';

const ca = await testCa();
after(() => ca.remove());
const credentials = new Map<string, TlsCredentials>();
for (const nodeId of ['a', 'b', 'c']) credentials.set(nodeId, await ca.credentials(nodeId));

runConformance('tcp+tls', () => new TcpHarness((nodeId) => ({ tls: credentials.get(nodeId) })));
