/** Popular products per merchant (src/recs/popularity.ts): decayed counts, bound, determinism, JSON. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, Zipf } from '../../src/simulate/rng.ts';
import { emptyPopularity, isPopularityState, popularTop, popularityAdd, type PopularityConfig, type PopularityState } from '../../src/recs/popularity.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2024, 0, 1);

describe('popularity', () => {
  it('counts each product once per call, all time without decay', () => {
    const cfg: PopularityConfig = { capacity: 10, halfLifeMs: null };
    let s = popularityAdd(undefined, ['a', 'b', 'a'], T0, cfg);
    s = popularityAdd(s, ['b'], T0 + 100 * DAY, cfg);
    s = popularityAdd(s, ['c'], T0, cfg, 0.5);
    assert.deepEqual(popularTop(s, 10), [{ id: 'b', score: 2 }, { id: 'a', score: 1 }, { id: 'c', score: 0.5 }]);
    assert.deepEqual(popularTop(s, 2, new Set(['b'])), [{ id: 'a', score: 1 }, { id: 'c', score: 0.5 }]);
    assert.equal(s.n, 3.5);
    assert.deepEqual(popularTop(undefined, 3), []);
    assert.deepEqual(popularTop(s, 0), []);
  });

  it('decays by event time: recent purchases outweigh older ones, one half-life = half', () => {
    const cfg: PopularityConfig = { capacity: 10, halfLifeMs: 7 * DAY };
    let s: PopularityState | undefined;
    for (let i = 0; i < 3; i++) s = popularityAdd(s, ['old'], T0, cfg);
    for (let i = 0; i < 2; i++) s = popularityAdd(s, ['new'], T0 + 14 * DAY, cfg);
    // Two purchases two half-lives later weigh 2 × 4 = 8 units of the landmark; three old ones 3.
    assert.deepEqual(popularTop(s, 2), [{ id: 'new', score: 8 }, { id: 'old', score: 3 }]);
    // Arrival order does not matter: the weights are those of the event times.
    let r: PopularityState | undefined;
    for (let i = 0; i < 2; i++) r = popularityAdd(r, ['new'], T0 + 14 * DAY, cfg);
    for (let i = 0; i < 3; i++) r = popularityAdd(r, ['old'], T0, cfg);
    assert.deepEqual(popularTop(r, 2).map((p) => p.id), ['new', 'old']);
    assert.ok(Math.abs(popularTop(r, 2)[0]!.score / popularTop(r, 2)[1]!.score - 8 / 3) < 1e-12);
  });

  it('rescales over years of short half-lives without overflowing', () => {
    const cfg: PopularityConfig = { capacity: 5, halfLifeMs: 3_600_000 };
    let s: PopularityState | undefined;
    for (let d = 0; d < 3 * 365; d += 5) {
      const at = T0 + d * DAY + (d % 3) * 3_600_000;
      s = popularityAdd(s, [`p${d % 7}`, 'steady'], at, cfg);
      s = popularityAdd(s, ['steady'], at, cfg);
    }
    assert.ok(s !== undefined && Number.isFinite(s.n) && s.top.every((c) => Number.isFinite(c[1]) && c[1] > 0));
    assert.equal(popularTop(s, 1)[0]!.id, 'steady');
    assert.ok(isPopularityState(s, 5));
  });

  it('keeps at most `capacity` counters over a 100k-product catalogue, and finds the bestsellers', () => {
    const cfg: PopularityConfig = { capacity: 100, halfLifeMs: 30 * DAY };
    const rng = new Rng(3);
    const zipf = new Zipf(100_000, 1.1);
    let s: PopularityState | undefined;
    for (let i = 0; i < 50_000; i++) {
      s = popularityAdd(s, [`sku-${zipf.sample(rng)}`], T0 + i * 60_000, cfg);
      if (s.top.length > cfg.capacity) assert.fail(`${s.top.length} counters`);
    }
    assert.deepEqual(popularTop(s, 3).map((p) => p.id), ['sku-0', 'sku-1', 'sku-2']);
    assert.ok(Buffer.byteLength(JSON.stringify(s)) <= 100 + cfg.capacity * ('sku-99999'.length + 56));
  });

  it('is deterministic and survives a JSON round trip between any two updates', () => {
    const cfg: PopularityConfig = { capacity: 20, halfLifeMs: 2 * DAY };
    const rng = new Rng(9);
    const zipf = new Zipf(500, 1);
    const events = Array.from({ length: 3_000 }, (_, i): [string[], number] => [[`p${zipf.sample(rng)}`, `p${zipf.sample(rng)}`], T0 + i * 600_000]);
    let a: PopularityState | undefined;
    let b = JSON.stringify(emptyPopularity());
    for (const [ids, at] of events) {
      a = popularityAdd(a, ids, at, cfg);
      b = JSON.stringify(popularityAdd(JSON.parse(b) as PopularityState, ids, at, cfg));
    }
    assert.equal(JSON.stringify(a), b);
    assert.equal(isPopularityState(JSON.parse(b), 20), true);
    assert.equal(isPopularityState({ v: 1, t: 0, n: 0, top: [['a', 1, 0]] }, 0), false);
  });
});
