/**
 * A map from integer keys to values for keys that arrive in increasing order and mostly
 * leave in about that order: a session's seqs and the chain's flight ids. With 10,000
 * broadcasts in flight a Map of them churns (each one set and deleted once): it is
 * rehashed into a new table every few thousand messages, each table large enough to be
 * allocated straight in the old generation, and its lookups miss the cache. Here the keys
 * from the lowest one on are slots of an array, so a key's slot is found by subtraction and
 * a window that moves on is cut from the front now and then.
 *
 * A key left far behind (a message retried for long while thousands of others pass) would
 * hold the window open behind it, a hole per key passed: once the window is mostly holes,
 * its front entries move to a Map of their own, and the window starts after them.
 */
export class KeyWindow<V> {
  /** `slots[start + i]` holds key `first + i`; every slot past `start` up to the end is in the window. */
  private slots: (V | undefined)[] = [];
  private start = 0;
  private first = 0;
  private windowCount = 0;
  /** Keys below the window, moved out of it (see above); usually empty. */
  private readonly behind = new Map<number, V>();

  get size(): number {
    return this.windowCount + this.behind.size;
  }

  get(key: number): V | undefined {
    const at = key - this.first;
    const value =
      at >= 0 && at < this.slots.length - this.start ? this.slots[this.start + at] : undefined;
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
      this.slots.length = 0;
      this.start = 0;
      this.first = key;
    }
    const at = key - this.first;
    if (at < 0) {
      this.behind.set(key, value);
      return this;
    }
    const length = this.slots.length - this.start;
    if (at < length) {
      if (this.slots[this.start + at] === undefined) this.windowCount += 1;
      this.slots[this.start + at] = value;
      return this;
    }
    for (let hole = length; hole < at; hole++) this.slots.push(undefined);
    this.slots.push(value);
    this.windowCount += 1;
    return this;
  }

  delete(key: number): boolean {
    const at = key - this.first;
    const inWindow = at >= 0 && at < this.slots.length - this.start;
    if (!inWindow || this.slots[this.start + at] === undefined) {
      return this.behind.size > 0 && this.behind.delete(key);
    }
    this.slots[this.start + at] = undefined;
    this.windowCount -= 1;
    if (this.windowCount === 0) {
      this.slots.length = 0;
      this.start = 0;
      return true;
    }
    // Holes at either end leave the window.
    while (this.slots[this.start] === undefined) {
      this.start += 1;
      this.first += 1;
    }
    while (this.slots[this.slots.length - 1] === undefined) this.slots.pop();
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
    if (this.behind.size > 0) yield* [...this.behind.entries()].sort((a, b) => a[0] - b[0]);
    for (let key = this.first; key - this.first < this.slots.length - this.start; key++) {
      const value = this.get(key);
      if (value !== undefined) yield [key, value];
    }
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries();
  }

  /**
   * Cuts the slots before the window once they are most of the array, and moves the front
   * entries out once the window is mostly holes (a key left far behind).
   */
  private compact(): void {
    const length = this.slots.length - this.start;
    if (length > 4 * this.windowCount + 1024) {
      // Move entries out from the front until the window is dense again.
      while (this.slots.length - this.start > 2 * this.windowCount + 512) {
        const value = this.slots[this.start];
        if (value !== undefined) {
          this.behind.set(this.first, value);
          this.windowCount -= 1;
        }
        this.start += 1;
        this.first += 1;
        while (this.start < this.slots.length && this.slots[this.start] === undefined) {
          this.start += 1;
          this.first += 1;
        }
      }
      if (this.windowCount === 0) {
        this.slots.length = 0;
        this.start = 0;
        return;
      }
    }
    if (this.start > 1024 && this.start * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.start);
      this.start = 0;
    }
  }
}
