/**
 * A map from integer keys to values for keys that arrive in increasing order and mostly
 * leave in about that order: a session's seqs and the chain's flight ids. With 10,000
 * broadcasts in flight a Map of them churns (each one set and deleted once): it is
 * rehashed into a new table every few thousand messages, each table large enough to be
 * allocated straight in the old generation, and its lookups miss the cache. Here the keys
 * from the lowest one on are slots of a ring, so a key's slot is found by subtraction, and
 * a window that moves on allocates nothing: the ring grows (doubles) only when the window
 * outgrows it. (An array pushed at the back and cut from the front now and then made a new
 * one every thousand keys or so, each living long enough to be copied out of V8's young
 * generation, and at 10,000 in flight large enough to be allocated straight in the old.)
 *
 * A key left far behind (a message retried for long while thousands of others pass) would
 * hold the window open behind it, a hole per key passed: once the window is mostly holes,
 * its front entries move to a Map of their own, and the window starts after them.
 */
export class KeyWindow<V> {
  /**
   * Key `first + i` is in slot `(head + i) & (ring.length - 1)`, for i below `span`; every
   * other slot is undefined. The ring's length is a power of two.
   */
  private ring: (V | undefined)[] = new Array<V | undefined>(16).fill(undefined);
  private head = 0;
  private first = 0;
  /** Keys from `first` the window covers, holes included; its first and last are set. */
  private span = 0;
  private windowCount = 0;
  /** Keys below the window, moved out of it (see above); usually empty. */
  private readonly behind = new Map<number, V>();

  get size(): number {
    return this.windowCount + this.behind.size;
  }

  get(key: number): V | undefined {
    const at = key - this.first;
    const value = at >= 0 && at < this.span ? this.ring[this.slotOf(at)] : undefined;
    return value !== undefined || this.behind.size === 0 ? value : this.behind.get(key);
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  /** `value` is never undefined (undefined marks a hole). */
  set(key: number, value: V): this {
    // A key is in one place only: one moved out stays out.
    if (this.behind.size > 0 && this.behind.has(key)) {
      this.behind.set(key, value);
      return this;
    }
    if (this.windowCount === 0) {
      this.head = 0;
      this.first = key;
      this.span = 0;
    }
    const at = key - this.first;
    if (at < 0) {
      this.behind.set(key, value);
      return this;
    }
    if (at >= this.ring.length) this.grow(at + 1);
    const slot = this.slotOf(at);
    if (this.ring[slot] === undefined) this.windowCount += 1;
    this.ring[slot] = value;
    if (at >= this.span) this.span = at + 1;
    return this;
  }

  delete(key: number): boolean {
    const at = key - this.first;
    const slot = this.slotOf(at);
    if (at < 0 || at >= this.span || this.ring[slot] === undefined) {
      return this.behind.size > 0 && this.behind.delete(key);
    }
    this.ring[slot] = undefined;
    this.windowCount -= 1;
    if (this.windowCount === 0) {
      this.span = 0;
      return true;
    }
    // Holes at either end leave the window.
    while (this.ring[this.head] === undefined) this.advance();
    while (this.ring[this.slotOf(this.span - 1)] === undefined) this.span -= 1;
    this.compact();
    return true;
  }

  /** Those moved out first, then the window's, each in key order. */
  *keys(): IterableIterator<number> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  /** Changes while iterating are seen as a Map's are: a key deleted before it is reached is skipped. */
  *entries(): IterableIterator<[number, V]> {
    let listed: Set<number> | null = null;
    if (this.behind.size > 0) {
      const moved = [...this.behind.entries()].sort((a, b) => a[0] - b[0]);
      listed = new Set(moved.map(([key]) => key));
      yield* moved;
    }
    // A key moved out may lie within a window begun below it: listed once, above. One moved
    // out while this runs is still found (through `get`).
    for (let key = this.first; key - this.first < this.span; key++) {
      const value = this.get(key);
      if (value !== undefined && listed?.has(key) !== true) yield [key, value];
    }
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries();
  }

  private slotOf(at: number): number {
    return (this.head + at) & (this.ring.length - 1);
  }

  /** The window's front moves one key on (its slot is a hole). */
  private advance(): void {
    this.head = (this.head + 1) & (this.ring.length - 1);
    this.first += 1;
    this.span -= 1;
  }

  /** A ring of at least `slotCount` slots, the window copied to its front. */
  private grow(slotCount: number): void {
    let length = this.ring.length * 2;
    while (length < slotCount) length *= 2;
    const ring = new Array<V | undefined>(length).fill(undefined);
    for (let at = 0; at < this.span; at++) ring[at] = this.ring[this.slotOf(at)];
    this.ring = ring;
    this.head = 0;
  }

  /** Moves the front entries out once the window is mostly holes (a key left far behind). */
  private compact(): void {
    if (this.span <= 4 * this.windowCount + 1024) return;
    // Move entries out from the front until the window is dense again.
    while (this.span > 2 * this.windowCount + 512) {
      const value = this.ring[this.head];
      if (value !== undefined) {
        this.behind.set(this.first, value);
        this.ring[this.head] = undefined;
        this.windowCount -= 1;
      }
      this.advance();
      while (this.span > 0 && this.ring[this.head] === undefined) this.advance();
    }
    if (this.windowCount === 0) this.span = 0;
  }
}
