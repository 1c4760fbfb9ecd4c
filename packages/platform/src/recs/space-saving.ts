/**
 * Weighted Space-Saving (Metwally, Agrawal, El Abbadi 2005) over a plain array: the bounded
 * counting structure behind the recommendation models (each item's neighbours, each merchant's
 * popular products). Pure functions, no I/O.
 *
 * The summary is a `Counter[]` of at most `capacity` entries `[key, count, error]`, kept as a binary
 * min-heap ordered by (count, key): the root is the smallest counter, and among equal counts the
 * smallest key (so the counter evicted never depends on how the array happens to be laid out).
 * The array is plain data: it goes through `JSON.stringify`/`JSON.parse` unchanged.
 *
 * Offering `key` with weight `w > 0`:
 * - kept: its count grows by `w`;
 * - not kept, fewer than `capacity` counters: a new counter `[key, w, 0]`;
 * - not kept, full: the smallest counter `[k, m, e]` is replaced by `[key, m + w, m]`.
 *
 * Guarantees, with `W` the total weight offered and `m` the smallest count once full (0 before):
 * - a kept key's count overestimates its true total by at most its `error`, and `error ≤ m ≤ W / capacity`;
 *   `count − error` is a lower bound of the true total;
 * - a key whose true total exceeds `m` (in particular any key above `W / capacity`) is kept;
 * - a key that is not kept has a true total of at most `m`.
 *
 * A `Map` from key to heap position speeds up look-ups. It is a cache held in a `WeakMap` keyed by
 * the array (never serialised): an array read back from JSON gets its index rebuilt on first use,
 * O(capacity). Only the functions of this module may change an array they have indexed.
 */

/** `[key, count, error]`: `count` overestimates the key's total weight by at most `error`. */
export type Counter = [key: string, count: number, error: number];

const indexes = new WeakMap<Counter[], Map<string, number>>();

function indexOf(heap: Counter[]): Map<string, number> {
  let idx = indexes.get(heap);
  if (idx === undefined || idx.size !== heap.length) {
    idx = new Map();
    for (let i = 0; i < heap.length; i++) idx.set(heap[i]![0], i);
    indexes.set(heap, idx);
  }
  return idx;
}

/** True when counter a sorts before counter b: smaller count, or equal count and smaller key. */
function less(a: Counter, b: Counter): boolean {
  return a[1] < b[1] || (a[1] === b[1] && a[0] < b[0]);
}

function siftDown(heap: Counter[], idx: Map<string, number>, i: number): void {
  const n = heap.length;
  const item = heap[i]!;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && less(heap[r]!, heap[l]!) ? r : l;
    const child = heap[c]!;
    if (!less(child, item)) break;
    heap[i] = child;
    idx.set(child[0], i);
    i = c;
  }
  heap[i] = item;
  idx.set(item[0], i);
}

function siftUp(heap: Counter[], idx: Map<string, number>, i: number): void {
  const item = heap[i]!;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const parent = heap[p]!;
    if (!less(item, parent)) break;
    heap[i] = parent;
    idx.set(parent[0], i);
    i = p;
  }
  heap[i] = item;
  idx.set(item[0], i);
}

/**
 * Adds `weight` (> 0, finite) to `key` in the summary `heap` of at most `capacity` counters (≥ 1),
 * in place. A heap above `capacity` (the capacity was lowered) first drops its smallest counters.
 * @returns the key evicted to make room, if any.
 */
export function ssOffer(heap: Counter[], key: string, weight: number, capacity: number): string | undefined {
  if (!(weight > 0) || !Number.isFinite(weight)) throw new RangeError(`Space-Saving weight must be a positive finite number, got ${weight}.`);
  const idx = indexOf(heap);
  const at = idx.get(key);
  if (at !== undefined) {
    heap[at]![1] += weight;
    siftDown(heap, idx, at);
    return undefined;
  }
  ssShrink(heap, capacity);
  if (heap.length < capacity) {
    heap.push([key, weight, 0]);
    siftUp(heap, idx, heap.length - 1);
    return undefined;
  }
  const root = heap[0]!;
  const evicted = root[0];
  idx.delete(evicted);
  heap[0] = [key, root[1] + weight, root[1]];
  siftDown(heap, idx, 0);
  return evicted;
}

/** Drops the smallest counters until at most `capacity` (≥ 1) remain, in place. */
export function ssShrink(heap: Counter[], capacity: number): void {
  if (!(capacity >= 1) || !Number.isInteger(capacity)) throw new RangeError(`Space-Saving capacity must be a positive integer, got ${capacity}.`);
  if (heap.length <= capacity) return;
  const idx = indexOf(heap);
  while (heap.length > capacity) {
    const last = heap.pop()!;
    idx.delete(heap.length === 0 ? last[0] : heap[0]![0]);
    if (heap.length === 0) break;
    heap[0] = last;
    siftDown(heap, idx, 0);
  }
}

/** The counter of `key`, if it is kept (do not modify it). */
export function ssGet(heap: Counter[], key: string): Readonly<Counter> | undefined {
  const at = indexOf(heap).get(key);
  return at === undefined ? undefined : heap[at];
}

/** The smallest count once `capacity` counters are in use, else 0: the bound on every error and on any key not kept. */
export function ssMin(heap: readonly Counter[], capacity: number): number {
  return heap.length >= capacity && heap.length > 0 ? heap[0]![1] : 0;
}

/** The counters by decreasing count, then increasing key; the first `limit` when given. A copy. */
export function ssTop(heap: readonly Counter[], limit = heap.length): Counter[] {
  return heap
    .map((c): Counter => [c[0], c[1], c[2]])
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, Math.max(0, limit));
}

/** Multiplies every count and error by `factor` (> 0), in place. Keeps the heap order (used to rescale decayed counts). */
export function ssScale(heap: Counter[], factor: number): void {
  if (!(factor > 0)) throw new RangeError(`Space-Saving scale factor must be positive, got ${factor}.`);
  for (const c of heap) {
    c[1] *= factor;
    c[2] *= factor;
  }
  // A product can round two different counts to the same value: restore the (count, key) order.
  const idx = indexOf(heap);
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(heap, idx, i);
}

/** Checks the invariants of a summary read from outside (a state store, a file): shape, heap order, unique keys. */
export function ssValidate(heap: unknown, capacity: number): heap is Counter[] {
  if (!Array.isArray(heap) || heap.length > capacity) return false;
  const seen = new Set<string>();
  for (let i = 0; i < heap.length; i++) {
    const c: unknown = heap[i];
    if (!Array.isArray(c) || c.length !== 3) return false;
    const [k, n, e] = c as unknown[];
    if (typeof k !== 'string' || typeof n !== 'number' || typeof e !== 'number') return false;
    if (!(n > 0) || !(e >= 0) || e > n || !Number.isFinite(n) || seen.has(k)) return false;
    seen.add(k);
    if (i > 0 && less(c as Counter, heap[(i - 1) >> 1] as Counter)) return false;
  }
  return true;
}
