/**
 * The simulator's agenda: a binary min-heap of events ordered by virtual tick, then by a
 * random order key drawn when the event was scheduled (so events of one tick run in a
 * seed-chosen order, which is how same-tick reordering is explored), then by insertion.
 */
import { assert } from '../util/assert.ts';

interface Slot<T> {
  readonly atTicks: number;
  readonly order: number;
  readonly sequence: number;
  readonly event: T;
}

export class EventQueue<T> {
  private readonly heap: Slot<T>[] = [];
  private sequence = 0;

  constructor(private readonly eventsMax: number) {
    assert(Number.isSafeInteger(eventsMax) && eventsMax > 0, 'eventsMax is positive');
  }

  get size(): number {
    return this.heap.length;
  }

  /** Throws when the agenda would pass its bound: a run that floods itself is a bug. */
  push(atTicks: number, order: number, event: T): void {
    assert(Number.isSafeInteger(atTicks) && atTicks >= 0, 'events happen at whole ticks');
    assert(this.heap.length < this.eventsMax, 'the event queue stays within its bound');
    const slot: Slot<T> = { atTicks, order, sequence: this.sequence++, event };
    const heap = this.heap;
    let position = heap.length;
    heap.push(slot);
    while (position > 0) {
      const parent = (position - 1) >> 1;
      const above = heap[parent] as Slot<T>;
      if (!before(slot, above)) break;
      heap[position] = above;
      position = parent;
    }
    heap[position] = slot;
  }

  /** The tick of the next event, or Infinity when none is left. */
  peekTicks(): number {
    const first = this.heap[0];
    return first === undefined ? Number.POSITIVE_INFINITY : first.atTicks;
  }

  pop(): T {
    const heap = this.heap;
    const first = heap[0];
    assert(first !== undefined, 'pop from a non-empty queue');
    const last = heap.pop() as Slot<T>;
    if (heap.length > 0) {
      let position = 0;
      const length = heap.length;
      for (;;) {
        const left = 2 * position + 1;
        if (left >= length) break;
        const right = left + 1;
        const smaller =
          right < length && before(heap[right] as Slot<T>, heap[left] as Slot<T>) ? right : left;
        const child = heap[smaller] as Slot<T>;
        if (!before(child, last)) break;
        heap[position] = child;
        position = smaller;
      }
      heap[position] = last;
    }
    return first.event;
  }

  /** Removes every event; used when a run ends. */
  clear(): void {
    this.heap.length = 0;
  }
}

function before<T>(left: Slot<T>, right: Slot<T>): boolean {
  if (left.atTicks !== right.atTicks) return left.atTicks < right.atTicks;
  if (left.order !== right.order) return left.order < right.order;
  return left.sequence < right.sequence;
}
