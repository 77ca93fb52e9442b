// Proves the TCP transport keeps the transport contract, by running the shared conformance
// suite against real transports on 127.0.0.1 ephemeral ports.
import { runConformance } from './conformance.ts';
import { TcpHarness } from './tcp-harness.ts';

runConformance('tcp', () => new TcpHarness());
