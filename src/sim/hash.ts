/**
 * 32-bit hashing for the simulator's fingerprints of entry data and log prefixes. Only 32-bit integer arithmetic, so a seed's fingerprints are the
 * same on every platform. These are bug detectors, not cryptography: a collision can hide a
 * divergence only with probability about 2^-32 per comparison.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the bytes. */
function hashBytes(bytes: Uint8Array): number {
  let hash = FNV_OFFSET;
  for (let offset = 0; offset < bytes.length; offset++) {
    hash = Math.imul(hash ^ (bytes[offset] as number), FNV_PRIME);
  }
  return hash >>> 0;
}

const dataHashCache = new WeakMap<Uint8Array, number>();

/**
 * `hashBytes`, remembered per buffer: a node's entry buffer is seen when it is taken, made
 * durable and delivered, so it is hashed once. Entry data is never mutated
 * (types.ts declares it readonly), so a cached hash stays valid.
 */
export function hashData(bytes: Uint8Array): number {
  const cached = dataHashCache.get(bytes);
  if (cached !== undefined) return cached;
  const hash = hashBytes(bytes);
  dataHashCache.set(bytes, hash);
  return hash;
}

/** Folds one 32-bit word into a running hash (MurmurHash3's block step). */
function mix32(hash: number, word: number): number {
  let k = Math.imul(word | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let h = (hash | 0) ^ k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}

/** Folds a safe integer (index, term, position) of up to 53 bits. */
function mixNumber(hash: number, value: number): number {
  const high = Math.floor(value / 4294967296);
  return mix32(mix32(hash, value >>> 0), high >>> 0);
}

const KIND_CODE = { normal: 1, noop: 2, config: 3 } as const;

/** The hash of a log prefix ending in this entry: equal prefixes, equal hashes. */
export function extendPrefixHash(
  previousPrefixHash: number,
  term: number,
  kind: keyof typeof KIND_CODE,
  dataHash: number,
): number {
  return mix32(mixNumber(mix32(previousPrefixHash, KIND_CODE[kind]), term), dataHash);
}
