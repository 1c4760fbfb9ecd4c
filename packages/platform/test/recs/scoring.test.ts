/** Scores (src/recs/scoring.ts) against hand-computed values, and the ranking of an item's neighbours. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TOTAL_KEY, applyCoUpdates, type CoConfig, type CoItemState } from '../../src/recs/cooccurrence.ts';
import { orderUpdates, DEFAULT_FBT } from '../../src/recs/models.ts';
import { byScore, cosine, jaccard, llr, pairScore, rankNeighbours, topScores } from '../../src/recs/scoring.ts';

const close = (actual: number, expected: number, tol = 1e-9): void => assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${actual} ≉ ${expected}`);

/** llr(c(a,b), c(a), c(b), N) from the 2×2 table k11 k12 / k21 k22. */
const llrOfTable = (k11: number, k12: number, k21: number, k22: number): number => llr(k11, k11 + k12, k11 + k21, k11 + k12 + k21 + k22);

describe('scores', () => {
  it('cosine and Jaccard', () => {
    close(cosine(2, 4, 9), 2 / 6);
    close(cosine(3, 3, 3), 1);
    assert.equal(cosine(1, 0, 4), 0);
    close(jaccard(2, 4, 9), 2 / 11);
    close(jaccard(3, 3, 3), 1);
    assert.equal(jaccard(0, 0, 0), 0);
  });

  it('LLR: Dunning’s G², by hand and against the published reference values', () => {
    // N = 20, rows 4 | 16, columns 5 | 15: G² = 2 [3 ln 3 + ln(1/3) + 2 ln(1/2) + 14 ln(7/6)] = 5.93807946…
    close(llrOfTable(3, 1, 2, 14), 2 * (3 * Math.log(3) + Math.log(1 / 3) + 2 * Math.log(0.5) + 14 * Math.log(7 / 6)));
    close(llrOfTable(3, 1, 2, 14), 5.938079467595891);
    // The values of Apache Mahout's LogLikelihoodTest (k11, k12, k21, k22).
    close(llrOfTable(1, 0, 0, 1), 2.772589, 1e-6);
    close(llrOfTable(10, 0, 0, 10), 27.72589, 1e-6);
    close(llrOfTable(5, 1995, 0, 100000), 39.33052, 1e-6);
    close(llrOfTable(1000, 1995, 1000, 100000), 4730.737, 1e-6);
    close(llrOfTable(1000, 1000, 1000, 100000), 5734.343, 1e-6);
    close(llrOfTable(1000, 1000, 1000, 99000), 5714.932, 1e-6);
  });

  it('LLR is 0 unless b is more likely with a than without it', () => {
    assert.equal(llr(1, 10, 10, 100), 0, 'expected 1 together, saw 1: independent');
    assert.equal(llr(0, 10, 10, 100), 0, 'never together: a negative association');
    assert.ok(llr(5, 10, 10, 100) > 0);
    assert.equal(llr(0, 0, 0, 0), 0);
  });

  it('clamps an overestimated co-occurrence to min(c(a), c(b))', () => {
    assert.equal(pairScore('raw', 7, 3, 5, 100), 3);
    close(pairScore('cosine', 7, 3, 5, 100), 3 / Math.sqrt(15));
    close(pairScore('jaccard', 7, 3, 5, 100), 3 / 5);
    close(pairScore('llr', 7, 3, 5, 100), llr(3, 3, 5, 100));
  });

  it('ranks an item’s neighbours by the chosen score', () => {
    const co: CoConfig = { capacity: 10, halfLifeMs: null };
    const m = new Map<string, CoItemState>();
    const orders = [
      ['a', 'pop'], ['a', 'pop'], ['a', 'niche'], ['a', 'niche'], ['a', 'pop'],
      ['pop', 'x'], ['pop', 'y'], ['pop', 'z'], ['pop', 'w'], ['pop', 'v'], ['niche', 'x'],
    ];
    for (const o of orders) applyCoUpdates(m, orderUpdates(o, 0, { ...DEFAULT_FBT, co }), co);
    // c(a) = 5, c(pop) = 8, c(niche) = 3, N = 11; c(a,pop) = 3, c(a,niche) = 2.
    assert.equal(m.get(TOTAL_KEY)!.n, 11);
    const rank = (scoring: 'raw' | 'cosine' | 'jaccard' | 'llr'): Array<[string, number]> =>
      rankNeighbours(m, 'a', co, { scoring, estimate: 'upper' }).map((r) => [r.id, r.score]);
    assert.deepEqual(rank('raw'), [['pop', 3], ['niche', 2]]);
    const cos = rank('cosine');
    assert.deepEqual(cos.map(([id]) => id), ['niche', 'pop'], 'normalised, the niche product goes first');
    close(cos[0]![1], 2 / Math.sqrt(15));
    close(cos[1]![1], 3 / Math.sqrt(40));
    const jac = rank('jaccard');
    close(jac[0]![1], 2 / 6);
    close(jac[1]![1], 3 / 10);
    // pop is in 8 of 11 orders and in 3 of a's 5: no more likely with a than without (3·11 ≤ 5·8), so LLR drops it.
    const l = rank('llr');
    assert.deepEqual(l.map(([id]) => id), ['niche']);
    close(l[0]![1], llr(2, 5, 3, 11));
    assert.equal(llr(3, 5, 8, 11), 0);
    assert.deepEqual(rankNeighbours(m, 'unknown', co, { scoring: 'llr' }), []);
  });

  it('scores the estimate asked for: upper, lower (count − error) or Misra–Gries (count − min)', () => {
    const co: CoConfig = { capacity: 2, halfLifeMs: null };
    const m = new Map<string, CoItemState>();
    for (const o of [['a', 'b'], ['a', 'b'], ['a', 'b'], ['a', 'c'], ['a', 'd']]) applyCoUpdates(m, orderUpdates(o, 0, { ...DEFAULT_FBT, co }), co);
    // a's summary (capacity 2): b 3 (error 0), then c 1 evicted by d: [d, 2, 1]; min = 2.
    assert.deepEqual(m.get('a')!.nb, [['b', 3, 0], ['d', 2, 1]]);
    const counts = (estimate: 'upper' | 'lower' | 'mg'): Array<[string, number]> => rankNeighbours(m, 'a', co, { scoring: 'raw', estimate }).map((r) => [r.id, r.count]);
    assert.deepEqual(counts('upper'), [['b', 3], ['d', 2]]);
    assert.deepEqual(counts('lower'), [['b', 3], ['d', 1]]);
    assert.deepEqual(counts('mg'), [['b', 1]], 'd is at the floor: it scores nothing');
    assert.deepEqual(rankNeighbours(m, 'a', co, { scoring: 'raw', estimate: 'upper', minSupport: 3 }).map((r) => r.id), ['b']);
  });

  it('selects the top k like a full sort, ties by id', () => {
    const scores: Array<[string, number]> = [['e', 1], ['b', 3], ['a', 3], ['d', 2], ['c', 5], ['f', 2], ['g', 0.5]];
    const sorted = scores.map(([id, score]) => ({ id, score })).sort(byScore);
    for (let k = 0; k <= 8; k++) assert.deepEqual(topScores(scores, k), sorted.slice(0, k));
  });
});
