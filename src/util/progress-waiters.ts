/**
 * Waiters on a counter that only grows (an applied index, a position): each waits until the
 * counter reaches its target. They are kept in a min-heap by target, so that waking costs
 * O(log n) per waiter woken rather than a look at every waiter on every step: thousands of
 * concurrent submits or reads stay cheap. Waiters on one target wake in the order they came.
 *
 * The caller owns what a waiter is (a callback, a record) and what waking it means; this
 * only keeps them in order. A waiter removed before its target (a timeout, an abort) leaves a
 * stale heap slot, tidied away once stale slots outnumber live ones.
 */
import { assert } from './assert.ts';
import { heapPop, heapPush, heapTidy } from './heap.ts';

export class ProgressWaiters<Waiter> {
  /** [target, id]: the id breaks ties, so waiters on one target keep their arrival order. */
  private readonly heap: [number, number][] = [];
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;

  get size(): number {
    return this.waiters.size;
  }

  /** Heap slots, stale ones included: stays within about twice `size` (plus a constant). */
  get slotCount(): number {
    return this.heap.length;
  }

  /** Keeps `waiter` until the counter reaches `target`; returns the id that removes it. */
  add(target: number, waiter: Waiter): number {
    assert(Number.isSafeInteger(target), 'a waiter waits for a whole number');
    const id = this.nextId++;
    this.waiters.set(id, waiter);
    heapPush(this.heap, [target, id]);
    return id;
  }

  /** Forgets a waiter that no longer waits; false when it was already woken or removed. */
  remove(id: number): boolean {
    if (!this.waiters.delete(id)) return false;
    heapTidy(this.heap, ([, slot]) => this.waiters.has(slot), this.waiters.size);
    return true;
  }

  /**
   * Removes and returns, lowest target first, every waiter whose target is at or below
   * `reached`: the caller wakes them.
   */
  reach(reached: number): Waiter[] {
    const woken: Waiter[] = [];
    for (let top = this.heap[0]; top !== undefined && top[0] <= reached; top = this.heap[0]) {
      heapPop(this.heap);
      const waiter = this.waiters.get(top[1]);
      // Absent when it was removed early: its slot just goes.
      if (waiter === undefined) continue;
      this.waiters.delete(top[1]);
      woken.push(waiter);
    }
    assert((this.heap[0]?.[0] ?? Number.POSITIVE_INFINITY) > reached, 'every reached waiter left');
    return woken;
  }

  /** Removes and returns every waiter, in no particular order: the counter will not move. */
  takeAll(): Waiter[] {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    this.heap.length = 0;
    return all;
  }
}
