/**
 * SHA-256 and a constant-time comparison, for the server's token checks (src/server/auth.ts)
 * and the digests of delivered ranges that `abcast verify` compares (GET /v1/digest).
 * Both are pure functions of their input, so they are safe in the deterministic folders;
 * they live here only because node:crypto, which also holds randomness, is kept out of them.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The SHA-256 of `text`'s UTF-8 bytes, 32 bytes. */
export function sha256(text: string): Uint8Array {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Whether `a` and `b` hold the same bytes, in a time that depends only on their length. */
export function equalInConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** An incremental SHA-256: feed bytes in order, then read the hex digest once. */
export interface Sha256Hasher {
  update(bytes: Uint8Array): Sha256Hasher;
  hex(): string;
}

export function sha256Hasher(): Sha256Hasher {
  const hash = createHash('sha256');
  const hasher: Sha256Hasher = {
    update(bytes) {
      hash.update(bytes);
      return hasher;
    },
    hex: () => hash.digest('hex'),
  };
  return hasher;
}
