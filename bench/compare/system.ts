/** What each contender of the race provides to the load generator. */
import type { Send } from './load.ts';

/** A client made for one load level (the abcast SDK's window depends on it). */
export interface Sender {
  readonly send: Send;
  close(): Promise<void>;
}

/** One client library and protocol a system is driven through. */
export interface Way {
  readonly id: string;
  /** The client, as the results name it: library and protocol. */
  readonly client: string;
  /** Opens a client for `inFlight` messages at once, connected to the leader where it can. */
  open(inFlight: number): Promise<Sender>;
}

/** A 3-node cluster on 127.0.0.1, running until `stop`. */
export interface RunningCluster {
  /** The server's own version, as it reports it. */
  readonly version: string;
  /** Every server process, for their CPU time. */
  readonly serverPids: readonly number[];
  readonly ways: readonly Way[];
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** A fresh directory for this cluster's data and logs. */
  readonly root: string;
  readonly payloadBytes: number;
}

/** How a system's default configuration treats an acknowledged write. */
export interface Durability {
  readonly fsyncBeforeAck: boolean;
  readonly note: string;
}
