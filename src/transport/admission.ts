/**
 * The checks both transports make before a frame may queue for a peer: the transport runs,
 * the frame encodes (the codec's rules hold), it comes from this node, and its peer is known.
 * A frame that fails one is dropped, counted and (rate-limited) logged, never thrown.
 */
import type { NodeId } from '../raft/types.ts';
import { CodecError } from './errors.ts';
import type { ThrottledLogger } from './log-throttle.ts';
import type { TransportCounters } from './stats.ts';
import type { Frame } from './types.ts';

export interface Admission<Link, Encoded> {
  readonly link: Link;
  /** What `encode` returned: the bytes, or only their count. */
  readonly encoded: Encoded;
}

export function admitFrame<Link, Encoded>(
  frame: Frame,
  context: {
    readonly running: boolean;
    readonly nodeId: NodeId;
    readonly counters: TransportCounters;
    readonly logger: ThrottledLogger;
    readonly encode: (frame: Frame) => Encoded;
    readonly linkTo: (nodeId: NodeId) => Link | null;
  },
): Admission<Link, Encoded> | null {
  const { counters, logger } = context;
  if (!context.running) {
    counters.drop('closed', 1, null);
    return null;
  }
  let encoded: Encoded;
  try {
    encoded = context.encode(frame);
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    logger.error({ code: error.code, error: error.message }, 'transport dropped an invalid frame');
    counters.drop('invalidFrame', 1, null);
    return null;
  }
  if (frame.from !== context.nodeId) {
    logger.error({ from: frame.from }, 'transport dropped a frame not from this node');
    counters.drop('invalidFrame', 1, null);
    return null;
  }
  const link = context.linkTo(frame.to);
  if (link === null) {
    counters.drop('unknownPeer', 1, null);
    return null;
  }
  return { link, encoded };
}
