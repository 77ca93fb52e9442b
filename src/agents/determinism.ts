/**
 * The development-mode guard against non-deterministic reducers. Replicas stay identical only
 * if the reducer's answer depends on the state, the command and the apply context alone.
 * The guard applies each command twice — once to a copy of the state with the process's
 * clocks and random sources perturbed, once for real — and compares results and states. A
 * reducer that reads `Date.now()`, `new Date()`, `performance.now()` or `Math.random()` gives
 * two different answers and is caught at the first command where it matters, instead of
 * replicas silently drifting apart in production.
 *
 * It costs a copy of the state and a second application per command: for development and
 * tests, not production.
 */
import { isDeepStrictEqual } from 'node:util';

/** What one application produced: a result, or the error the reducer threw. */
export type Outcome<Result> =
  | { readonly ok: true; readonly result: Result }
  | { readonly ok: false; readonly error: string };

/** How far the perturbed clocks are moved: far enough that no rounding hides it. */
const clockShiftMs = 7 * 24 * 3600 * 1000 + 12_345;

/** Runs `body` with the clocks shifted and Math.random on a different sequence. */
export function withPerturbedGlobals<T>(body: () => T): T {
  const RealDate = globalThis.Date;
  const realRandom = Math.random;
  const realPerformanceNow = performance.now;
  let randomState = 0x2545f491;
  // A proxy rather than a subclass: the Dates a reducer makes from `context.time` must be
  // plain Dates (the same prototype, `instanceof Date` true for the ones already in the
  // state), or a deterministic reducer would be taken for a non-deterministic one.
  const shiftedNowMs = () => RealDate.now() + clockShiftMs;
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args: unknown[], newTarget) {
      return args.length === 0
        ? Reflect.construct(target, [shiftedNowMs()], newTarget)
        : Reflect.construct(target, args, newTarget);
    },
    apply: () => new RealDate(shiftedNowMs()).toString(),
    get(target, key, receiver) {
      return key === 'now' ? shiftedNowMs : Reflect.get(target, key, receiver);
    },
  });
  Math.random = () => {
    // xorshift: deterministic, and unlike anything the real generator returns next.
    randomState ^= randomState << 13;
    randomState ^= randomState >>> 17;
    randomState ^= randomState << 5;
    return (randomState >>> 0) / 2 ** 32;
  };
  performance.now = () => realPerformanceNow.call(performance) + clockShiftMs;
  try {
    return body();
  } finally {
    globalThis.Date = RealDate;
    Math.random = realRandom;
    performance.now = realPerformanceNow;
  }
}

export function runReducer<Result>(apply: () => Result): Outcome<Result> {
  try {
    const result = apply();
    if (result instanceof Promise) {
      // An async reducer would finish at a different point on every replica.
      void result.catch(() => undefined);
      return { ok: false, error: 'the reducer returned a Promise; reducers must be synchronous' };
    }
    return { ok: true, result };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** Where two applications of one command differ, or null when they agree. */
export function differenceOf<State, Result>(
  first: { state: State; outcome: Outcome<Result> },
  second: { state: State; outcome: Outcome<Result> },
): string | null {
  if (!isDeepStrictEqual(first.outcome, second.outcome)) {
    return `the result differs: ${describe(first.outcome)} then ${describe(second.outcome)}`;
  }
  if (!isDeepStrictEqual(first.state, second.state)) return 'the state differs';
  return null;
}

function describe(value: unknown): string {
  try {
    const text = JSON.stringify(value) ?? String(value);
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  } catch {
    return String(value);
  }
}

/**
 * Whether `restored` (the state after a trip through JSON and the machine's decoder) is
 * `original` again. Deep and strict about types (a Map that came back as `{}` is not), but
 * equal numbers are equal: JSON writes -0 as 0, and the two behave alike in any reducer
 * that does not divide by them, so a -0 from some payload must not stop every snapshot.
 */
export function survivesJson(original: unknown, restored: unknown): boolean {
  if (typeof original === 'number' && typeof restored === 'number') return original === restored;
  if (typeof original !== 'object' || original === null || restored === null) {
    return Object.is(original, restored);
  }
  if (
    typeof restored !== 'object' ||
    Object.getPrototypeOf(original) !== Object.getPrototypeOf(restored)
  ) {
    return false;
  }
  if (original instanceof Map) {
    const other = restored as Map<unknown, unknown>;
    if (original.size !== other.size) return false;
    const otherEntries = [...other.entries()];
    return [...original.entries()].every(
      ([key, value], at) =>
        survivesJson(key, otherEntries[at]?.[0]) && survivesJson(value, otherEntries[at]?.[1]),
    );
  }
  if (original instanceof Set) {
    const other = [...(restored as Set<unknown>)];
    return (
      original.size === other.length &&
      [...original].every((item, at) => survivesJson(item, other[at]))
    );
  }
  if (ArrayBuffer.isView(original) || original instanceof Date) {
    return isDeepStrictEqual(original, restored);
  }
  const keys = Object.keys(original);
  const otherKeys = Object.keys(restored);
  if (keys.length !== otherKeys.length) return false;
  return keys.every(
    (key, at) =>
      otherKeys[at] === key &&
      survivesJson(
        (original as Record<string, unknown>)[key],
        (restored as Record<string, unknown>)[key],
      ),
  );
}

/**
 * A deep copy that keeps prototypes, for the guard's first application: a state or command
 * of class instances must behave in the copy as in the original (structuredClone would hand
 * the reducer plain objects, and a deterministic reducer would look non-deterministic).
 * Functions are shared; private `#fields` cannot be copied (give encodeState/decodeState).
 */
export function copyKeepingPrototypes<T>(value: T, seen = new Map<object, unknown>()): T {
  if (typeof value !== 'object' || value === null) return value;
  const known = seen.get(value);
  if (known !== undefined) return known as T;
  const prototype = Object.getPrototypeOf(value) as object | null;
  let copy: object;
  if (value instanceof Date) {
    copy = new Date(value.getTime());
  } else if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    copy = structuredClone(value);
  } else if (value instanceof Map) {
    const map = new Map<unknown, unknown>();
    seen.set(value, map);
    for (const [key, item] of value) {
      map.set(copyKeepingPrototypes(key, seen), copyKeepingPrototypes(item, seen));
    }
    copy = map;
  } else if (value instanceof Set) {
    const set = new Set<unknown>();
    seen.set(value, set);
    for (const item of value) set.add(copyKeepingPrototypes(item, seen));
    copy = set;
  } else {
    copy = Array.isArray(value) ? [] : {};
  }
  Object.setPrototypeOf(copy, prototype);
  seen.set(value, copy);
  if (value instanceof Map || value instanceof Set || value instanceof Date) return copy as T;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return copy as T;
  for (const key of Reflect.ownKeys(value)) {
    const descriptor = Object.getOwnPropertyDescriptor(value, key) as PropertyDescriptor;
    if ('value' in descriptor) descriptor.value = copyKeepingPrototypes(descriptor.value, seen);
    Object.defineProperty(copy, key, descriptor);
  }
  // A frozen original stays frozen in the copy, so a write throws in both applications.
  if (!Object.isExtensible(value)) Object.preventExtensions(copy);
  return copy as T;
}
