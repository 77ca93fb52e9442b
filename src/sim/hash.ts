/**
 * 32-bit hashing for the simulator's fingerprints: entry data, log prefixes, the application's
 * hash chain and the trace. Only 32-bit integer arithmetic, so a seed's fingerprints are the
 * same on every platform. These are bug detectors, not cryptography: a collision can hide a
 * divergence only with probability about 2^-32 per comparison.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the bytes. */
export function hashBytes(bytes: Uint8Array): number {
  let hash = FNV_OFFSET;
  for (let offset = 0; offset < bytes.length; offset++) {
    hash = Math.imul(hash ^ (bytes[offset] as number), FNV_PRIME);
  }
  return hash >>> 0;
}

const dataHashCache = new WeakMap<Uint8Array, number>();

/**
 * `hashBytes`, remembered per buffer: in the simulator the same entry buffer travels from the
 * leader to every follower, so most entries are hashed once. Entry data is never mutated
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
export function mix32(hash: number, word: number): number {
  let k = Math.imul(word | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let h = (hash | 0) ^ k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}

/** Folds a safe integer (index, term, position) of up to 53 bits. */
export function mixNumber(hash: number, value: number): number {
  const high = Math.floor(value / 4294967296);
  return mix32(mix32(hash, value >>> 0), high >>> 0);
}

/** MurmurHash3's finaliser: spreads every input bit over the output. */
export function finish32(hash: number): number {
  let h = hash >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function hashString(text: string): number {
  let hash = FNV_OFFSET;
  for (let offset = 0; offset < text.length; offset++) {
    hash = Math.imul(hash ^ text.charCodeAt(offset), FNV_PRIME);
  }
  return hash >>> 0;
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
