/**
 * The transport's public surface: the `Transport` interface and its frames, the TCP and
 * in-memory implementations, the codec (also usable for anything that stores frames) and
 * the typed errors callers match on.
 */
export { decodeFrame, encodeFrame, frameFormatVersion, measureFrame } from './codec.ts';
export {
  CodecError,
  type CodecErrorCode,
  ProtocolError,
  type ProtocolErrorCode,
  TransportError,
  type TransportErrorCode,
} from './errors.ts';
export { MemoryNetwork, MemoryTransport, type MemoryTransportOptions } from './memory.ts';
export { TcpTransport } from './tcp.ts';
export { type TcpTransportOptions, tcpTransportDefaults } from './tcp-options.ts';
export { TlsCredentials, type TlsMaterial } from './tls.ts';
export type {
  DropReason,
  ForwardFrame,
  ForwardOutcome,
  ForwardResultFrame,
  Frame,
  FrameHandler,
  FrameType,
  LinkState,
  PeerLinkStats,
  Transport,
  TransportLogger,
  TransportStats,
} from './types.ts';
export { dropReasons, silentLogger } from './types.ts';
export { nodeIdBytesMax } from './validate.ts';
