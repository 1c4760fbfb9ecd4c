/** Space-Saving (src/recs/space-saving.ts): its guarantees against exact counts, its bound, determinism, JSON. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Zipf } from '../../src/simulate/rng.ts';
import { ssGet, ssMin, ssOffer, ssOfferAll, ssScale, ssShrink, ssTop, ssValidate, type Counter } from '../../src/recs/space-saving.ts';

/** A Zipf stream of `n` keys out of `universe`, with weights (1 when `weighted` is false). */
function stream(seed: number, n: number, universe: number, weighted: boolean): Array<[string, number]> {
  const rng = new Rng(seed);
  const zipf = new Zipf(universe, 1.1);
  return Array.from({ length: n }, () => [`k${zipf.sample(rng)}`, weighted ? rng.pick([0.5, 1, 2, 3.25]) : 1]);
}

/** Checks every Space-Saving guarantee of `heap` (capacity `cap`) against the exact totals. */
function checkGuarantees(heap: Counter[], cap: number, exact: Map<string, number>): void {
  const total = [...exact.values()].reduce((a, b) => a + b, 0);
  const min = ssMin(heap, cap);
  const eps = 1e-9 * total;
  assert.ok(heap.length <= cap, 'at most capacity counters');
  assert.ok(ssValidate(heap, cap), 'a valid summary');
  // Σ counts = total weight offered (each offer adds its weight to exactly one counter).
  assert.ok(Math.abs(heap.reduce((a, c) => a + c[1], 0) - total) <= eps);
  assert.ok(min <= total / cap + eps, 'min ≤ W / C');
  for (const [key, count, error] of heap) {
    const truth = exact.get(key) ?? 0;
    assert.ok(count + eps >= truth, `${key}: count ${count} overestimates ${truth}`);
    assert.ok(count - error <= truth + eps, `${key}: count − error ${count - error} ≤ ${truth}`);
    assert.ok(error <= min + eps, `${key}: error ${error} ≤ min ${min}`);
  }
  for (const [key, truth] of exact) {
    if (ssGet(heap, key) === undefined) assert.ok(truth <= min + eps, `${key} (${truth}) is not kept, so it is at most min ${min}`);
    if (truth > min + eps) assert.ok(ssGet(heap, key) !== undefined, `heavy hitter ${key} (${truth} > ${min}) kept`);
  }
}

describe('Space-Saving', () => {
  it('counts exactly while there are fewer distinct keys than counters', () => {
    const heap: Counter[] = [];
    for (const [k, w] of [['a', 1], ['b', 2], ['a', 3], ['c', 0.5]] as const) ssOffer(heap, k, w, 3);
    assert.deepEqual(ssTop(heap), [['a', 4, 0], ['b', 2, 0], ['c', 0.5, 0]]);
    assert.equal(ssMin(heap, 3), 0.5);
    assert.equal(ssMin(heap, 4), 0, 'not full: nothing was ever evicted');
  });

  it('replaces the smallest counter by (min + w, error min)', () => {
    const heap: Counter[] = [];
    ssOffer(heap, 'a', 5, 2);
    ssOffer(heap, 'b', 2, 2);
    assert.equal(ssOffer(heap, 'c', 1, 2), 'b');
    assert.deepEqual(ssTop(heap), [['a', 5, 0], ['c', 3, 2]]);
    assert.equal(ssOffer(heap, 'b', 4, 2), 'c');
    assert.deepEqual(ssTop(heap), [['b', 7, 3], ['a', 5, 0]]);
  });

  for (const weighted of [false, true]) {
    it(`keeps its guarantees on a skewed stream${weighted ? ' with weights' : ''} (counts ≥ truth ≥ count − error, error ≤ min ≤ W/C, heavy hitters kept)`, () => {
      for (const cap of [10, 50, 200]) {
        const heap: Counter[] = [];
        const exact = new Map<string, number>();
        for (const [i, [k, w]] of stream(cap, 20_000, 5_000, weighted).entries()) {
          ssOffer(heap, k, w, cap);
          exact.set(k, (exact.get(k) ?? 0) + w);
          if (i % 4_999 === 0) checkGuarantees(heap, cap, exact);
        }
        checkGuarantees(heap, cap, exact);
        // A key whose lower bound exceeds another's upper bound is truly more frequent.
        for (const x of heap) for (const y of heap) if (x[1] - x[2] > y[1]) assert.ok(exact.get(x[0])! > exact.get(y[0])!);
        if (cap >= 50) {
          // Zipf(1.1) with 50 counters or more: the top keys are far enough apart to keep their rank.
          const truthTop = [...exact].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k]) => k);
          assert.deepEqual(ssTop(heap, 3).map((c) => c[0]), truthTop, `capacity ${cap}`);
        }
      }
    });
  }

  it('offers a list like one offer each (skipping a key and weights ≤ 0), and returns the weight offered', () => {
    const a: Counter[] = [];
    const b: Counter[] = [];
    const keys = ['x', 'y', 'self', 'z', 'y', 'w'];
    const weights = [1, 2, 5, 0, 0.5, 3];
    assert.equal(ssOfferAll(a, keys, weights, 3, 'self', 2), 13);
    for (const [i, k] of keys.entries()) if (k !== 'self' && weights[i]! > 0) ssOffer(b, k, weights[i]! * 2, 3);
    assert.deepEqual(a, b);
  });

  it('evicts the least count, and among equal counts the lowest slot, whatever happened before', () => {
    const heap: Counter[] = [];
    for (const k of ['a', 'b', 'c']) ssOffer(heap, k, 1, 3);
    assert.equal(ssOffer(heap, 'd', 1, 3), 'a', 'three counts of 1: slot 0');
    assert.deepEqual(heap, [['d', 2, 1], ['b', 1, 0], ['c', 1, 0]], 'd takes the slot of a');
    assert.equal(ssOffer(heap, 'e', 1, 3), 'b');
    ssOffer(heap, 'c', 1, 3);
    assert.equal(ssOffer(heap, 'f', 1, 3), 'd', 'd, e and c at 2: the lowest slot');
    assert.deepEqual(JSON.parse(JSON.stringify(heap)), [['f', 3, 2], ['e', 2, 1], ['c', 2, 0]]);
  });

  it('is deterministic, and a JSON round trip changes nothing (not even what is evicted next)', () => {
    const s = stream(7, 5_000, 2_000, true);
    const run = (roundTripEvery: number): Counter[] => {
      let heap: Counter[] = [];
      for (const [i, [k, w]] of s.entries()) {
        if (roundTripEvery > 0 && i % roundTripEvery === 0) heap = JSON.parse(JSON.stringify(heap)) as Counter[];
        ssOffer(heap, k, w, 25);
      }
      return heap;
    };
    const plain = run(0);
    assert.deepEqual(run(0), plain);
    assert.deepEqual(run(97), plain, 'read back from a store every 97 offers');
    assert.equal(JSON.stringify(run(1)), JSON.stringify(plain));
  });

  it('drops its smallest counters when the capacity is lowered', () => {
    const heap: Counter[] = [];
    for (let i = 1; i <= 10; i++) ssOffer(heap, `k${i}`, i, 10);
    ssShrink(heap, 4);
    assert.deepEqual(ssTop(heap).map((c) => c[0]), ['k10', 'k9', 'k8', 'k7']);
    assert.ok(ssValidate(heap, 4));
    ssOffer(heap, 'new', 1, 3);
    assert.equal(heap.length, 3);
    assert.ok(ssValidate(heap, 3));
  });

  it('scales counts and errors (decay)', () => {
    const heap: Counter[] = [];
    for (const [k, w] of stream(3, 500, 100, true)) ssOffer(heap, k, w, 20);
    const before = ssTop(heap);
    ssScale(heap, 0.25);
    assert.ok(ssValidate(heap, 20));
    assert.deepEqual(ssTop(heap), before.map(([k, c, e]) => [k, c * 0.25, e * 0.25]));
  });

  it('refuses bad weights and capacities, and recognises bad state', () => {
    assert.throws(() => ssOffer([], 'a', 0, 3), RangeError);
    assert.throws(() => ssOffer([], 'a', Number.NaN, 3), RangeError);
    assert.throws(() => ssOffer([], 'a', Infinity, 3), RangeError);
    assert.throws(() => ssShrink([['a', 1, 0]], 0), RangeError);
    assert.equal(ssValidate([['a', 1, 0], ['b', 2, 0]], 2), true);
    assert.equal(ssValidate([['a', 1, 0], ['a', 2, 0]], 2), false, 'a key twice');
    assert.equal(ssValidate([['a', 1, 0], ['b', 2, 0]], 1), false, 'above capacity');
    assert.equal(ssValidate([['a', 1, 2]], 1), false, 'error above count');
    assert.equal(ssValidate({ a: 1 }, 5), false);
  });

  it('stays within its bound over a 100k-key stream', () => {
    const heap: Counter[] = [];
    const rng = new Rng(11);
    for (let i = 0; i < 200_000; i++) {
      ssOffer(heap, `p${rng.int(0, 99_999)}`, 1, 64);
      if (heap.length > 64) assert.fail(`${heap.length} counters`);
    }
    assert.equal(heap.length, 64);
  });
});
