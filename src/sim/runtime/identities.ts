/**
 * The simulated cluster's auth file, as production has one: every identity of mix.ts's
 * `simIdentities` with the `write` role and a token of its own, which the nodes know only by
 * its SHA-256. Parsed by the real parser and checked by the real door (src/server/access.ts)
 * on every request, so the sessions the nodes bind are bound to identities the way they are
 * in production. Backfill reads as an identity of its own with the `read` role, as
 * `--backfill-token` gives one in production.
 */
import type { AuthSource } from '../../server/access.ts';
import { parseAuthFile, tokenSha256Hex } from '../../server/auth.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import { simIdentities } from './mix.ts';

export interface SimAuth {
  readonly source: AuthSource;
  /** Each identity's token, in the order of `simIdentities`. */
  readonly tokens: readonly string[];
  /** The backfill identity's token. */
  readonly backfillToken: string;
}

const base64urlAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A token shaped like `abcast token create`'s (256 bits in base64url), drawn from the seed. */
function drawToken(prng: Prng): string {
  let text = 'abcast_';
  for (let at = 0; at < 43; at++) text += base64urlAlphabet[prng.below(64)];
  return text;
}

export function simAuth(prng: Prng): SimAuth {
  const tokens = simIdentities.map(() => drawToken(prng));
  // Drawn after the clients' tokens, which stay what they were.
  const backfillToken = drawToken(prng);
  const file = {
    identities: [
      ...simIdentities.map((name, at) => ({
        name,
        role: 'write',
        tokenSha256: tokenSha256Hex(tokens[at] as string),
      })),
      { name: 'backfill', role: 'read', tokenSha256: tokenSha256Hex(backfillToken) },
    ],
  };
  const table = parseAuthFile(JSON.stringify(file));
  assert(table.identities.length === tokens.length + 1, 'one token per identity');
  return { source: { table }, tokens, backfillToken };
}
