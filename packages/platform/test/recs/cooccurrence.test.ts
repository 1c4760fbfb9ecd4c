/** The bounded co-occurrence model (src/recs/cooccurrence.ts): updates, bound, decay, JSON, determinism. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Zipf } from '../../src/simulate/rng.ts';
import {
  TOTAL_KEY,
  applyCoUpdate,
  applyCoUpdates,
  checkCoConfig,
  coEstimate,
  coNeighbours,
  decodeCoState,
  encodeCoState,
  isCoState,
  rebase,
  type CoConfig,
  type CoItemState,
} from '../../src/recs/cooccurrence.ts';
import { orderUpdates, DEFAULT_FBT, type FbtConfig } from '../../src/recs/models.ts';

const DAY = 86_400_000;
const fbt = (co: CoConfig): FbtConfig => ({ ...DEFAULT_FBT, co });

function trainOrders(orders: readonly string[][], cfg: FbtConfig, start = 0, step = 0): Map<string, CoItemState> {
  const m = new Map<string, CoItemState>();
  orders.forEach((o, i) => applyCoUpdates(m, orderUpdates(o, start + i * step, cfg), cfg.co));
  return m;
}

describe('co-occurrence entries', () => {
  it('counts baskets and pairs exactly below capacity', () => {
    const cfg = fbt({ capacity: 10, halfLifeMs: null });
    const m = trainOrders([['a', 'b', 'c'], ['a', 'b'], ['b', 'c', 'b'], ['d']], cfg);
    assert.deepEqual(m.get(TOTAL_KEY), { v: 1, t: 0, n: 4, w: 0, nb: [] });
    assert.equal(m.get('a')!.n, 2);
    assert.equal(m.get('b')!.n, 3, 'b twice in one order counts once');
    assert.deepEqual(coNeighbours(m.get('b')!), [['a', 2, 0], ['c', 2, 0]]);
    assert.deepEqual(coNeighbours(m.get('c')!), [['b', 2, 0], ['a', 1, 0]]);
    assert.deepEqual(m.get('d'), { v: 1, t: 0, n: 1, w: 0, nb: [] });
    assert.equal(m.get('b')!.w, 4, 'weight offered to b’s summary');
    assert.deepEqual(coEstimate(m.get('a')!, 'c', 10), { count: 1, error: 0, kept: true });
    assert.deepEqual(coEstimate(m.get('a')!, 'd', 10), { count: 0, error: 0, kept: false });
  });

  it('is symmetric for orders: c(a,b) in a’s entry equals c(b,a) in b’s when nothing is evicted', () => {
    const rng = new Rng(5);
    const orders = Array.from({ length: 300 }, () => Array.from({ length: rng.int(1, 6) }, () => `p${rng.int(0, 20)}`));
    const m = trainOrders(orders, fbt({ capacity: 50, halfLifeMs: null }));
    for (const [a, s] of m) {
      if (a === TOTAL_KEY) continue;
      for (const [b, count] of s.nb) assert.equal(coEstimate(m.get(b)!, a, 50).count, count);
      assert.ok(s.nb.every(([, c]) => c <= s.n), 'c(a,b) ≤ c(a)');
    }
  });

  it('never holds more than C neighbours per entry over a 100k-product catalogue', () => {
    const capacity = 16;
    const cfg = fbt({ capacity, halfLifeMs: 30 * DAY });
    const rng = new Rng(17);
    const zipf = new Zipf(100_000, 0.8);
    const m = new Map<string, CoItemState>();
    let maxSeen = 0;
    for (let i = 0; i < 15_000; i++) {
      const order = Array.from({ length: rng.int(2, 12) }, () => `sku-${zipf.sample(rng)}`);
      for (const u of orderUpdates(order, i * 60_000, cfg)) {
        const s = applyCoUpdate(m.get(u.key), u, cfg.co);
        m.set(u.key, s);
        if (s.nb.length > capacity) assert.fail(`${u.key}: ${s.nb.length} neighbours`);
        maxSeen = Math.max(maxSeen, s.nb.length);
      }
    }
    assert.equal(maxSeen, capacity, 'the popular products fill their summaries');
    assert.ok(m.size > 30_000, `${m.size} entries: a large catalogue`);
    // The documented size bound: 100 + C × (id + 56) bytes of JSON per entry.
    for (const [key, s] of m) {
      const bytes = Buffer.byteLength(encodeCoState(s));
      assert.ok(bytes <= 100 + capacity * ('sku-99999'.length + 56), `${key}: ${bytes} bytes`);
      assert.ok(isCoState(s, capacity));
    }
  });

  it('is deterministic and survives a JSON round trip between any two updates', () => {
    const cfg = fbt({ capacity: 8, halfLifeMs: 7 * DAY });
    const rng = new Rng(23);
    const zipf = new Zipf(300, 1);
    const orders = Array.from({ length: 2_000 }, () => Array.from({ length: rng.int(2, 8) }, () => `p${zipf.sample(rng)}`));
    const a = trainOrders(orders, cfg, Date.UTC(2024, 0, 1), 3_600_000);
    const b = trainOrders(orders, cfg, Date.UTC(2024, 0, 1), 3_600_000);
    // The same updates, each entry read from and written to a JSON store (as a state store's serde would).
    const store = new Map<string, string>();
    orders.forEach((o, i) => {
      for (const u of orderUpdates(o, Date.UTC(2024, 0, 1) + i * 3_600_000, cfg)) {
        const prev = store.get(u.key);
        store.set(u.key, encodeCoState(applyCoUpdate(prev === undefined ? undefined : decodeCoState(prev, cfg.co.capacity), u, cfg.co)));
      }
    });
    assert.deepEqual([...a], [...b]);
    assert.deepEqual(new Map([...store].map(([k, v]) => [k, JSON.parse(v) as CoItemState])), a);
  });

  it('decays by event time: an order one half-life later weighs twice as much', () => {
    const cfg: CoConfig = { capacity: 4, halfLifeMs: DAY };
    const t0 = Date.UTC(2024, 5, 1);
    let s = applyCoUpdate(undefined, { key: 'a', at: t0, count: 1, pairs: ['x'], weights: 1 }, cfg);
    s = applyCoUpdate(s, { key: 'a', at: t0 + DAY, count: 1, pairs: ['y'], weights: 1 }, cfg);
    assert.equal(s.t, t0);
    assert.equal(s.n, 3);
    assert.deepEqual(coNeighbours(s), [['y', 2, 0], ['x', 1, 0]]);
    // An event earlier than the landmark weighs less (the order of arrival does not matter).
    s = applyCoUpdate(s, { key: 'a', at: t0 - DAY, count: 1, pairs: ['z'], weights: 1 }, cfg);
    assert.equal(coEstimate(s, 'z', 4).count, 0.5);
  });

  it('moves the landmark instead of overflowing after many half-lives', () => {
    const cfg: CoConfig = { capacity: 4, halfLifeMs: 3_600_000 };
    let s: CoItemState | undefined;
    const t0 = Date.UTC(2020, 0, 1);
    // Ten years of hourly half-lives: 2^87,600 would overflow a double many times over.
    for (let y = 0; y <= 10; y++) s = applyCoUpdate(s, { key: 'a', at: t0 + y * 365 * DAY, count: 1, pairs: ['x', 'y'], weights: [1, 2] }, cfg);
    assert.ok(s !== undefined && Number.isFinite(s.n) && s.n > 0);
    assert.ok(s.t > t0 + 9 * 365 * DAY, 'the landmark follows the events');
    const x = coEstimate(s, 'x', 4).count;
    const y = coEstimate(s, 'y', 4).count;
    assert.ok(Math.abs(y / x - 2) < 1e-12, 'ratios are kept');
    assert.ok(Math.abs(s.n - x) < 1e-9 * s.n, 'the last year dominates');
    assert.equal(rebase(4, 0, 3_600_000, 3_600_000), 2);
    assert.equal(rebase(4, 0, 3_600_000, null), 4);
  });

  it('refuses bad configurations and bad entries', () => {
    assert.throws(() => checkCoConfig({ capacity: 0, halfLifeMs: null }), RangeError);
    assert.throws(() => checkCoConfig({ capacity: 2.5, halfLifeMs: null }), RangeError);
    assert.throws(() => checkCoConfig({ capacity: 5, halfLifeMs: 0 }), RangeError);
    assert.throws(() => decodeCoState('{"v":1,"t":0,"n":1,"w":3,"nb":[["a",1,0],["b",1,0],["c",1,0]]}', 2), /capacity/);
    assert.throws(() => decodeCoState('{"v":2,"t":0,"n":1,"w":0,"nb":[]}', 2));
    assert.deepEqual(decodeCoState('{"v":1,"t":0,"n":1,"w":1,"nb":[["a",1,0]]}', 2), { v: 1, t: 0, n: 1, w: 1, nb: [['a', 1, 0]] });
  });
});
