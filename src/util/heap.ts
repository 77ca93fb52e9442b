/**
 * A binary min-heap kept in a plain array, so that it can live inside a replicated state and
 * be snapshotted as JSON with it (src/agents keeps leases and open tasks this way). Items are
 * tuples compared field by field; equal leading fields fall through to the next, which is how
 * callers break ties deterministically (a sequence number or an id last).
 */
/** Heap items are tuples compared field by field (numbers, then strings). */
export type HeapItem = readonly (number | string)[];

function less(a: HeapItem, b: HeapItem): boolean {
  for (let at = 0; at < a.length; at++) {
    const x = a[at] as number | string;
    const y = b[at] as number | string;
    if (x !== y) return x < y;
  }
  return false;
}

export function heapPush<T extends HeapItem>(heap: T[], item: T): void {
  heap.push(item);
  let at = heap.length - 1;
  while (at > 0) {
    const parent = (at - 1) >> 1;
    if (!less(heap[at] as T, heap[parent] as T)) break;
    [heap[at], heap[parent]] = [heap[parent] as T, heap[at] as T];
    at = parent;
  }
}

export function heapPop<T extends HeapItem>(heap: T[]): T | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length === 0 || last === undefined) return top;
  heap[0] = last;
  let at = 0;
  for (;;) {
    const left = 2 * at + 1;
    const right = left + 1;
    let smallest = at;
    if (left < heap.length && less(heap[left] as T, heap[smallest] as T)) smallest = left;
    if (right < heap.length && less(heap[right] as T, heap[smallest] as T)) smallest = right;
    if (smallest === at) break;
    [heap[at], heap[smallest]] = [heap[smallest] as T, heap[at] as T];
    at = smallest;
  }
  return top;
}

/**
 * Drops stale items from the top (so the top is always live) and rebuilds the heap when
 * stale items outnumber live ones, which keeps it O(live) in size under many renewals.
 */
export function heapTidy<T extends HeapItem>(
  heap: T[],
  isLive: (item: T) => boolean,
  liveCount: number,
): void {
  while (heap.length > 0 && !isLive(heap[0] as T)) heapPop(heap);
  if (heap.length <= 2 * liveCount + 64) return;
  const live = heap.filter(isLive);
  heap.length = 0;
  for (const item of live) heapPush(heap, item);
}
