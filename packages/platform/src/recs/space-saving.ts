/**
 * Weighted Space-Saving (Metwally, Agrawal, El Abbadi 2005) over a plain array: the bounded
 * counting structure behind the recommendation models (each item's neighbours, each merchant's
 * popular products). Pure functions, no I/O.
 *
 * The summary is a `Counter[]` of at most `capacity` entries `[key, count, error]`, in slot order:
 * a new counter is appended while there is room; once full, a new key takes the slot of the counter
 * it evicts. The array is plain data: it goes through `JSON.stringify`/`JSON.parse` unchanged.
 *
 * Offering `key` with weight `w > 0`:
 * - kept: its count grows by `w`;
 * - not kept, fewer than `capacity` counters: a new counter `[key, w, 0]`;
 * - not kept, full: the smallest counter `[k, m, e]` is replaced by `[key, m + w, m]`. The smallest
 *   is the one of least count, and among equal counts the one in the lowest slot: the choice
 *   depends on the array alone, so the same offers on the same array give the same array, whether
 *   it stayed in memory or went through a store.
 *
 * Guarantees, with `W` the total weight offered and `m` the smallest count once full (0 before):
 * - a kept key's count overestimates its true total by at most its `error`, and `error ≤ m ≤ W / capacity`;
 *   `count − error` is a lower bound of the true total (and so is `count − m`, the Misra–Gries counter);
 * - a key whose true total exceeds `m` (in particular any key above `W / capacity`) is kept;
 * - a key that is not kept has a true total of at most `m`.
 *
 * Speed: a min-heap of slots, the counts in a typed array and a `Map` from key to slot form an
 * index of the array, held in a `WeakMap` keyed by the array (never serialised): an array read
 * back from JSON gets its index rebuilt on first use, O(capacity). An offer costs one `Map` look-up
 * and O(log capacity) typed-array moves. Only the functions of this module may change an array
 * they have indexed.
 */

/** `[key, count, error]`: `count` overestimates the key's total weight by at most `error`. */
export type Counter = [key: string, count: number, error: number];

interface Index {
  /** Key → slot. */
  slots: Map<string, number>;
  /** Counts by slot (a copy of `counter[1]`). */
  counts: Float64Array;
  /** Binary min-heap of slots by (count, slot). */
  heap: Int32Array;
  /** Position in `heap` of each slot. */
  pos: Int32Array;
  size: number;
}

const indexes = new WeakMap<Counter[], Index>();

function less(counts: Float64Array, a: number, b: number): boolean {
  const ca = counts[a]!;
  const cb = counts[b]!;
  return ca < cb || (ca === cb && a < b);
}

function siftDown(ix: Index, i: number): void {
  const { heap, pos, counts, size } = ix;
  const slot = heap[i]!;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) break;
    const r = l + 1;
    const c = r < size && less(counts, heap[r]!, heap[l]!) ? r : l;
    const child = heap[c]!;
    if (!less(counts, child, slot)) break;
    heap[i] = child;
    pos[child] = i;
    i = c;
  }
  heap[i] = slot;
  pos[slot] = i;
}

function siftUp(ix: Index, i: number): void {
  const { heap, pos, counts } = ix;
  const slot = heap[i]!;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const parent = heap[p]!;
    if (!less(counts, slot, parent)) break;
    heap[i] = parent;
    pos[parent] = i;
    i = p;
  }
  heap[i] = slot;
  pos[slot] = i;
}

function build(arr: Counter[], room: number): Index {
  const n = arr.length;
  const cap = Math.max(room, n, 1);
  const ix: Index = { slots: new Map(), counts: new Float64Array(cap), heap: new Int32Array(cap), pos: new Int32Array(cap), size: n };
  for (let s = 0; s < n; s++) {
    const c = arr[s]!;
    ix.slots.set(c[0], s);
    ix.counts[s] = c[1];
    ix.heap[s] = s;
    ix.pos[s] = s;
  }
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(ix, i);
  return ix;
}

/** The index of `arr`, with room for `capacity` counters; rebuilt when missing or out of date. */
function indexOf(arr: Counter[], capacity: number): Index {
  let ix = indexes.get(arr);
  if (ix === undefined || ix.size !== arr.length || ix.counts.length < capacity) {
    ix = build(arr, capacity);
    indexes.set(arr, ix);
  }
  return ix;
}

function checkCapacity(capacity: number): void {
  if (!(capacity >= 1) || !Number.isInteger(capacity)) throw new RangeError(`Space-Saving capacity must be a positive integer, got ${capacity}.`);
}

function checkWeight(weight: number): void {
  if (!(weight > 0) || weight === Infinity) throw new RangeError(`Space-Saving weight must be a positive finite number, got ${weight}.`);
}

function offer(arr: Counter[], ix: Index, key: string, weight: number, capacity: number): string | undefined {
  const slot = ix.slots.get(key);
  if (slot !== undefined) {
    const count = ix.counts[slot]! + weight;
    ix.counts[slot] = count;
    arr[slot]![1] = count;
    siftDown(ix, ix.pos[slot]!);
    return undefined;
  }
  if (ix.size < capacity) {
    const s = ix.size++;
    arr.push([key, weight, 0]);
    ix.slots.set(key, s);
    ix.counts[s] = weight;
    ix.heap[s] = s;
    ix.pos[s] = s;
    siftUp(ix, s);
    return undefined;
  }
  // Replace the smallest counter (the heap's root) in its slot, reusing its array.
  const s = ix.heap[0]!;
  const c = arr[s]!;
  const evicted = c[0];
  ix.slots.delete(evicted);
  ix.slots.set(key, s);
  const min = c[1];
  c[0] = key;
  c[1] = ix.counts[s] = min + weight;
  c[2] = min;
  siftDown(ix, 0);
  return evicted;
}

/**
 * Adds `weight` (> 0, finite) to `key` in the summary `arr` of at most `capacity` counters (≥ 1),
 * in place. A summary above `capacity` (the capacity was lowered) first drops its smallest counters.
 * @returns the key evicted to make room, if any.
 */
export function ssOffer(arr: Counter[], key: string, weight: number, capacity: number): string | undefined {
  checkWeight(weight);
  checkCapacity(capacity);
  if (arr.length > capacity) ssShrink(arr, capacity);
  return offer(arr, indexOf(arr, capacity), key, weight, capacity);
}

/**
 * Offers each of `keys` but `skip`, with weight `weights[i]` (or `weights` when it is a number)
 * times `scale`, in order: the same as calling `ssOffer` for each. Weights ≤ 0 are skipped.
 * @returns the total weight offered.
 */
export function ssOfferAll(arr: Counter[], keys: readonly string[], weights: number | readonly number[], capacity: number, skip?: string, scale = 1): number {
  checkCapacity(capacity);
  if (arr.length > capacity) ssShrink(arr, capacity);
  const ix = indexOf(arr, capacity);
  let total = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key === skip) continue;
    const w = (typeof weights === 'number' ? weights : weights[i]!) * scale;
    if (!(w > 0)) continue;
    checkWeight(w);
    offer(arr, ix, key, w, capacity);
    total += w;
  }
  return total;
}

/** Drops the smallest counters until at most `capacity` (≥ 1) remain, in place (the last slot fills each hole). */
export function ssShrink(arr: Counter[], capacity: number): void {
  checkCapacity(capacity);
  while (arr.length > capacity) {
    const ix = indexOf(arr, arr.length);
    const s = ix.heap[0]!;
    const last = arr.pop()!;
    if (s < arr.length) arr[s] = last;
    indexes.delete(arr);
  }
}

/** The counter of `key`, if it is kept (read it at once: it is not to be modified, and a later offer may reuse it). */
export function ssGet(arr: Counter[], key: string): Readonly<Counter> | undefined {
  const s = indexOf(arr, arr.length).slots.get(key);
  return s === undefined ? undefined : arr[s];
}

/** The smallest count once `capacity` counters are in use, else 0: the bound on every error and on any key not kept. */
export function ssMin(arr: readonly Counter[], capacity: number): number {
  if (arr.length < capacity || arr.length === 0) return 0;
  let min = Infinity;
  for (const c of arr) if (c[1] < min) min = c[1];
  return min;
}

/** The counters by decreasing count, then increasing key; the first `limit` when given. A copy. */
export function ssTop(arr: readonly Counter[], limit = arr.length): Counter[] {
  return arr
    .map((c): Counter => [c[0], c[1], c[2]])
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, Math.max(0, limit));
}

/** Multiplies every count and error by `factor` (> 0), in place (used to rescale decayed counts). */
export function ssScale(arr: Counter[], factor: number): void {
  if (!(factor > 0)) throw new RangeError(`Space-Saving scale factor must be positive, got ${factor}.`);
  for (const c of arr) {
    c[1] *= factor;
    c[2] *= factor;
  }
  // A product can round two different counts to the same value: rebuild the index.
  indexes.delete(arr);
}

/** Checks a summary read from outside (a state store, a file): shape, bound, unique keys, 0 ≤ error ≤ count. */
export function ssValidate(arr: unknown, capacity: number): arr is Counter[] {
  if (!Array.isArray(arr) || arr.length > capacity) return false;
  const seen = new Set<string>();
  for (const c of arr as unknown[]) {
    if (!Array.isArray(c) || c.length !== 3) return false;
    const [k, n, e] = c as unknown[];
    if (typeof k !== 'string' || typeof n !== 'number' || typeof e !== 'number') return false;
    if (!(n > 0) || !(e >= 0) || e > n || !Number.isFinite(n) || seen.has(k)) return false;
    seen.add(k);
  }
  return true;
}
