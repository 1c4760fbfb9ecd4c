/** The FBT and OYML update rules and the query (src/recs/models.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TOTAL_KEY, applyCoUpdates, coEstimate, type CoItemState } from '../../src/recs/cooccurrence.ts';
import {
  DEFAULT_FBT,
  DEFAULT_OYML,
  FbtModel,
  OymlModel,
  cartAdd,
  cartRemove,
  distanceWeight,
  orderUpdates,
  recommend,
  sessionEvent,
  type CartState,
  type OymlConfig,
  type SessionState,
} from '../../src/recs/models.ts';
import { DEFAULT_POPULARITY, popularityAdd } from '../../src/recs/popularity.ts';

const close = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} ≉ ${expected}`);

describe('FBT updates', () => {
  it('an order: every pair of distinct products once, both ways, and one basket each', () => {
    const u = orderUpdates(['a', 'b', 'a', '', 'c'], 5, DEFAULT_FBT);
    assert.deepEqual(u.map((x) => [x.key, x.count]), [['a', 1], ['b', 1], ['c', 1], [TOTAL_KEY, 1]]);
    assert.deepEqual(u[0]!.pairs, ['a', 'b', 'c'], 'the key itself is skipped when applied');
    assert.deepEqual(orderUpdates([], 5, DEFAULT_FBT), []);
    const big = Array.from({ length: DEFAULT_FBT.maxBasket + 1 }, (_, i) => `p${i}`);
    assert.deepEqual(orderUpdates(big, 5, DEFAULT_FBT), [], 'orders above maxBasket are not baskets');
    assert.equal(orderUpdates(big.slice(1), 5, DEFAULT_FBT).length, DEFAULT_FBT.maxBasket + 1);
  });

  it('a cart: the product added pairs with the products already there, with the cart weight', () => {
    const cfg = { ...DEFAULT_FBT, cartWeight: 0.5, maxCart: 3 };
    const m = new Map<string, CoItemState>();
    let cart: CartState | undefined;
    for (const p of ['a', 'b', 'a', 'c']) {
      const r = cartAdd(cart, p, 0, cfg);
      cart = r.cart;
      applyCoUpdates(m, r.updates, cfg.co);
    }
    assert.deepEqual(cart, { items: ['a', 'b', 'c'] });
    assert.equal(m.get(TOTAL_KEY)!.n, 0.5, 'one cart basket');
    assert.deepEqual([m.get('a')!.n, m.get('b')!.n, m.get('c')!.n], [0.5, 0.5, 0.5], 'adding a again changes nothing');
    assert.equal(coEstimate(m.get('c')!, 'a', 200).count, 0.5);
    assert.equal(coEstimate(m.get('a')!, 'c', 200).count, 0.5);
    assert.equal(coEstimate(m.get('a')!, 'b', 200).count, 0.5);
    // Bounded: the oldest product is forgotten.
    const r = cartAdd(cart, 'd', 0, cfg);
    assert.deepEqual(r.cart, { items: ['b', 'c', 'd'] });
    assert.deepEqual(r.updates[0]!.pairs, ['a', 'b', 'c']);
    assert.deepEqual(cartRemove(r.cart, 'c'), { items: ['b', 'd'] });
    assert.deepEqual(cartAdd(undefined, '', 0, cfg).updates, []);
  });
});

describe('OYML updates', () => {
  it('weights a pair by its distance in the session: 1/d, or exp(−(d−1)/τ)', () => {
    assert.equal(distanceWeight({ kind: 'inverse' }, 1), 1);
    assert.equal(distanceWeight({ kind: 'inverse' }, 4), 0.25);
    close(distanceWeight({ kind: 'exp', tau: 2 }, 3), Math.exp(-1));
    const cfg: OymlConfig = { ...DEFAULT_OYML, window: 3 };
    const m = new Map<string, CoItemState>();
    let s: SessionState | undefined;
    for (const p of ['a', 'b', 'c', 'b', 'd', 'e']) {
      const r = sessionEvent(s, p, 0, cfg);
      s = r.session;
      applyCoUpdates(m, r.updates, cfg.co);
    }
    // Sequence of distinct products in the window: a; a b; a b c; (b again: moves) a c b; c b d (a leaves); b d e.
    assert.deepEqual(s, { recent: ['b', 'd', 'e'] });
    const c = (x: string, y: string): number => coEstimate(m.get(x)!, y, cfg.co.capacity).count;
    assert.equal(c('b', 'a'), 1);
    assert.equal(c('c', 'a'), 0.5);
    assert.equal(c('c', 'b'), 1);
    assert.equal(c('a', 'c'), 0.5, 'both ways');
    assert.equal(c('d', 'b'), 1, 'b moved to the most recent position when viewed again');
    assert.equal(c('d', 'c'), 0.5);
    assert.equal(c('d', 'a'), 1 / 3);
    assert.equal(c('e', 'a'), 0, 'a left the window of 3');
    assert.equal(c('e', 'd'), 1);
    assert.equal(c('e', 'b'), 0.5);
    assert.deepEqual(['a', 'b', 'c', 'd', 'e'].map((p) => m.get(p)!.n), [1, 1, 1, 1, 1], 'a view again is no new basket');
    assert.equal(m.get(TOTAL_KEY)!.n, 1, 'one session');
  });
});

describe('recommend', () => {
  const model = (): FbtModel => {
    const m = new FbtModel({ co: { capacity: 20, halfLifeMs: null } });
    const orders = [
      ['tent', 'pegs'], ['tent', 'pegs'], ['tent', 'pegs', 'lamp'], ['tent', 'mat'], ['tent', 'mat'],
      ['lamp', 'battery'], ['lamp', 'battery'], ['lamp', 'battery'], ['mat', 'pillow'],
      ['socks'], ['socks'], ['socks'], ['socks'], ['hat'], ['hat'], ['hat'],
    ];
    orders.forEach((o, i) => m.order(o, i));
    return m;
  };

  it('sums the scores of several seeds and never returns the seeds or the excluded products', () => {
    const m = model();
    const one = m.recommend(['tent'], 5, { scoring: 'raw', estimate: 'upper' });
    assert.deepEqual(one.items.map((r) => [r.id, r.score]), [['pegs', 3], ['mat', 2], ['lamp', 1]]);
    assert.equal(one.fallback, false, 'no popularity given: fewer items, no fallback');
    const two = m.recommend(['tent', 'lamp'], 5, { scoring: 'raw', estimate: 'upper' });
    assert.deepEqual(two.items.map((r) => [r.id, r.score]), [['pegs', 3 + 1], ['battery', 3], ['mat', 2]]);
    assert.equal(two.knownSeeds, 2);
    const ex = m.recommend(['tent', 'lamp'], 5, { scoring: 'raw', estimate: 'upper', exclude: ['pegs'] });
    assert.deepEqual(ex.items.map((r) => r.id), ['battery', 'mat']);
    assert.ok(ex.items.every((r) => r.source === 'model'));
  });

  it('falls back to popular products when the model knows too little, and says so', () => {
    const m = model();
    let pop = popularityAdd(undefined, ['socks', 'hat', 'tent'], 0, DEFAULT_POPULARITY);
    pop = popularityAdd(pop, ['socks', 'hat'], 1, DEFAULT_POPULARITY);
    pop = popularityAdd(pop, ['socks'], 2, DEFAULT_POPULARITY);
    const cold = m.recommend(['never-seen'], 3, { popularity: pop });
    assert.equal(cold.fallback, true);
    assert.equal(cold.knownSeeds, 0);
    assert.deepEqual(cold.items.map((r) => [r.id, r.source]), [['socks', 'popular'], ['hat', 'popular'], ['tent', 'popular']]);
    const partial = m.recommend(['mat'], 4, { scoring: 'raw', estimate: 'upper', popularity: pop });
    assert.equal(partial.fallback, true);
    assert.deepEqual(partial.items.map((r) => [r.id, r.source]), [['tent', 'model'], ['pillow', 'model'], ['socks', 'popular'], ['hat', 'popular']]);
    const enough = m.recommend(['tent'], 2, { popularity: pop });
    assert.equal(enough.fallback, false);
    assert.equal(m.recommend(['tent'], 0, { popularity: pop }).items.length, 0);
  });

  it('is deterministic: ties are broken by id, and the same events give the same answers', () => {
    const a = model();
    const b = model();
    for (const seeds of [['tent'], ['lamp'], ['mat', 'tent'], ['socks']]) assert.deepEqual(a.recommend(seeds, 10), b.recommend(seeds, 10));
    const m = new FbtModel();
    m.order(['x', 'c'], 0);
    m.order(['x', 'b'], 0);
    m.order(['x', 'a'], 0);
    assert.deepEqual(m.recommend(['x'], 3, { scoring: 'raw' }).items.map((r) => r.id), ['a', 'b', 'c']);
  });

  it('serves from any reader of the entries, e.g. one that parses JSON on each read', () => {
    const m = model();
    const json = new Map([...m.entries].map(([k, v]) => [k, JSON.stringify(v)]));
    const reader = { get: (k: string): CoItemState | undefined => (json.has(k) ? (JSON.parse(json.get(k)!) as CoItemState) : undefined) };
    for (const seeds of [['tent'], ['lamp', 'mat']]) assert.deepEqual(recommend(reader, seeds, 5, { co: m.cfg.co }), m.recommend(seeds, 5));
  });
});

describe('in-memory models', () => {
  it('FBT learns from orders and carts; OYML from sessions', () => {
    const f = new FbtModel();
    f.cartAdd('cart-1', 'a', 0);
    f.cartAdd('cart-1', 'b', 1);
    f.cartClear('cart-1');
    f.cartAdd('cart-1', 'c', 2);
    assert.deepEqual(f.carts.get('cart-1'), { items: ['c'] });
    assert.equal(coEstimate(f.get('a')!, 'b', f.cfg.co.capacity).count, DEFAULT_FBT.cartWeight);
    assert.equal(coEstimate(f.get('c')!, 'a', f.cfg.co.capacity).count, 0);
    const o = new OymlModel();
    for (const p of ['a', 'b', 'c']) o.event('s1', p, 0);
    o.sessionEnd('s1');
    o.event('s1', 'd', 0);
    assert.equal(coEstimate(o.get('c')!, 'a', o.cfg.co.capacity).count, 0.5);
    assert.equal(o.get('d')!.nb.length, 0, 'a new session');
    assert.deepEqual(o.recommend(['a'], 2, { scoring: 'raw', estimate: 'upper' }).items.map((r) => r.id), ['b', 'c']);
    const st = f.stats();
    assert.equal(st.entries, 4);
    assert.ok(st.maxCounters <= f.cfg.co.capacity && st.jsonBytes > 0);
  });
});
