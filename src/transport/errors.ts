/**
 * Typed errors of the transport. Callers match on `code`, never on the message text.
 *
 * A `CodecError` means bytes from outside (a socket, a file) are not a valid encoding, or a
 * frame handed to the encoder breaks a rule the decoder would enforce. Decoding throws
 * nothing else: any other exception out of the codec is a bug of ours.
 */

export type CodecErrorCode =
  /** The input ends inside a field. */
  | 'TRUNCATED'
  /** The frame is complete but bytes follow it. */
  | 'TRAILING_BYTES'
  /** The format version byte is not one this build reads. */
  | 'UNSUPPORTED_VERSION'
  /** The type byte names no frame or packet. */
  | 'UNKNOWN_TYPE'
  /** A field holds a value outside its domain (a negative index, an unsorted voter list). */
  | 'INVALID_VALUE'
  /** A count or length is larger than the rules or the remaining input allow. */
  | 'LIMIT_EXCEEDED'
  /** A string field is not well-formed UTF-8. */
  | 'INVALID_UTF8';

export type ErrorDetails = Readonly<Record<string, string | number | null>>;

export class CodecError extends Error {
  constructor(
    readonly code: CodecErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = 'CodecError';
  }
}

export type TransportErrorCode =
  /** A peer address is not "host:port" with a port in 1..65535. */
  | 'INVALID_ADDRESS'
  /** An option is missing, of the wrong type or out of range. */
  | 'INVALID_OPTIONS'
  /** The transport could not listen (port taken, bad interface). */
  | 'LISTEN_FAILED'
  /** `start()` was called on a transport that is started or closed. */
  | 'INVALID_STATE'
  /** The TLS certificate, key and CA are unreadable, do not match, or name another node. */
  | 'INVALID_TLS';

export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

export type ProtocolErrorCode =
  /** A packet arrived that the connection's state does not allow (a frame before Hello). */
  | 'UNEXPECTED_PACKET'
  /** A frame's `from` is not the node that completed the handshake. */
  | 'WRONG_SENDER'
  /** A frame's `to` is not this node. */
  | 'WRONG_RECIPIENT'
  /** A streamed snapshot announces more bytes than `snapshotBytesMax`. */
  | 'SNAPSHOT_TOO_LARGE'
  /** A snapshot chunk does not continue the stream in progress. */
  | 'SNAPSHOT_OUT_OF_ORDER';

/** The other end broke the link protocol; the connection closes, the process carries on. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}
