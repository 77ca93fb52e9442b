/**
 * The few members of a connected byte stream that both ends of the binary client protocol
 * use (src/server/binary-server.ts, src/client/binary-exchange.ts). Node's `net.Socket` and
 * `tls.TLSSocket` have them all, so production passes its sockets as they are; the
 * simulator passes its own connection (src/sim/runtime/sim-connection.ts), carried by its
 * scheduler with seeded latency, chunking and resets.
 *
 * The contract is a TCP socket's as Node gives it: bytes arrive in order, never lost or
 * repeated while the connection lives, but cut into 'data' chunks anywhere; 'close' comes
 * once, after 'error' when there was one; `end` sends what was written and then the end of
 * the stream; `destroy` drops what was not yet sent.
 */

export interface DuplexConnection {
  /** True once destroyed or closed: writes are dropped. */
  readonly destroyed: boolean;
  /** The last write went past the high-water mark and 'drain' has not come since. */
  readonly writableNeedDrain: boolean;
  /** Bytes written and not yet handed to the network. */
  readonly writableLength: number;
  write(bytes: Uint8Array): boolean;
  /** Gathers writes until the matching `uncork`, then sends them as one. */
  cork(): void;
  uncork(): void;
  end(): unknown;
  destroy(): unknown;
  /** Stops and restarts 'data' events (the bytes wait, and the peer's writes back up). */
  pause(): unknown;
  resume(): unknown;
  setNoDelay(noDelay?: boolean): unknown;
  /** Whether the connection keeps a production process alive by itself. */
  ref(): unknown;
  unref(): unknown;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (error: Error & { readonly code?: string }) => void): unknown;
  on(event: 'close' | 'drain', listener: () => void): unknown;
  once(event: 'close' | 'drain', listener: () => void): unknown;
  off(event: 'close' | 'drain', listener: () => void): unknown;
}
