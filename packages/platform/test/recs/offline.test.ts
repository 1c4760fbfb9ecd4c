/**
 * Offline evaluation of "Frequently bought together" on the real Online Retail data set (issue 9's
 * protocol, docs/recommendations.md): trained on the invoices before 2011-11-01, each later invoice
 * with two or more products asks for 10 products from all but its last product, which it hides.
 * Shopstream's model (bounded, normalised, with its defaults) must beat, on HR@10 and MRR@10, both
 * baselines computed in the same run: popularity and exact raw co-occurrence counts.
 * bench/recs-offline.bench.ts prints the figures and the sensitivity to the settings.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { RETAIL_NON_PRODUCT_CODES, readRetailBaskets, type Basket } from '../../src/recs/eval/online-retail.ts';
import { ExactCooccurrence, PopularityBaseline, evaluate, evaluateEachInTurn, makeQueries, splitAt, trainFbt, trainPopularity, type Query } from '../../src/recs/eval/protocol.ts';
import { DEFAULT_FBT, type FbtModel } from '../../src/recs/models.ts';
import { DEFAULT_POPULARITY, popularTop } from '../../src/recs/popularity.ts';
import { DEFAULT_SCORING, scoreNeighbours } from '../../src/recs/scoring.ts';

const K = 10;

describe('FBT offline on Online Retail', () => {
  let baskets: Basket[];
  let train: Basket[];
  let test: Basket[];
  let queries: Query[];

  before(async () => {
    baskets = await readRetailBaskets();
    ({ train, test } = splitAt(baskets, '2011-11-01'));
    queries = makeQueries(test, 'last');
  });

  it('reads the invoices as baskets of distinct products, without cancellations or non-products', () => {
    assert.equal(baskets.length, 19_773);
    assert.equal(train.length, 16_206);
    assert.equal(test.length, 3_567);
    assert.equal(queries.length, 3_325);
    const nonProducts = new Set(RETAIL_NON_PRODUCT_CODES);
    for (const b of baskets) {
      assert.ok(!/^[CA]/.test(b.invoiceNo), b.invoiceNo);
      assert.ok(b.products.length > 0 && new Set(b.products).size === b.products.length, b.invoiceNo);
      for (const p of b.products) assert.ok(!nonProducts.has(p) && !p.startsWith('GIFT_') && p === p.toUpperCase(), `${b.invoiceNo}: ${p}`);
    }
    assert.ok(train.every((b) => b.date < '2011-11-01') && test.every((b) => b.date >= '2011-11-01'));
    // 536365, the file's first invoice, at 08:26 London time (GMT in December).
    assert.deepEqual(baskets[0], { invoiceNo: '536365', date: '2010-12-01 08:26:00', at: Date.UTC(2010, 11, 1, 8, 26), products: ['85123A', '71053', '84406B', '84029G', '84029E', '22752', '21730'] });
    const q = queries.find((x) => x.invoiceNo === test[0]!.invoiceNo)!;
    assert.deepEqual([...q.seeds, q.hidden], test[0]!.products, 'the last product is hidden');
  });

  let model: FbtModel;

  it('beats popularity and raw co-occurrence on HR@10 and MRR@10, with a bounded state', (t) => {
    const t0 = performance.now();
    model = trainFbt(train, {});
    const trainMs = performance.now() - t0;
    const popularity = trainPopularity(train, DEFAULT_POPULARITY);
    let fallbacks = 0;
    const shopstream = evaluate(
      queries,
      (seeds) => {
        const r = model.recommend(seeds, K, { popularity });
        if (r.fallback) fallbacks++;
        return r.items.map((x) => x.id);
      },
      K,
    );
    const popBaseline = new PopularityBaseline(train);
    const pop = evaluate(queries, (seeds) => popBaseline.recommend(seeds, K), K);
    const exact = new ExactCooccurrence(train);
    const raw = evaluate(queries, (seeds) => exact.recommend(seeds, K, 'raw'), K);
    const stats = model.stats();
    const line = (name: string, f: { hr: number; mrr: number }): string => `${name}: HR@10 ${f.hr.toFixed(4)}, MRR@10 ${f.mrr.toFixed(4)}`;
    t.diagnostic(`${queries.length} queries; ${line('shopstream', shopstream)} (fallback in ${fallbacks}); ${line('popularity', pop)}; ${line('raw co-occurrence', raw)}`);
    t.diagnostic(`trained on ${train.length} orders in ${(trainMs / 1000).toFixed(1)} s: ${stats.entries} entries, ${stats.counters} counters (≤ ${stats.maxCounters} per entry), ${(stats.jsonBytes / 1e6).toFixed(1)} MB of JSON`);

    assert.ok(shopstream.hr > pop.hr, `HR@10: ${shopstream.hr} > popularity ${pop.hr}`);
    assert.ok(shopstream.mrr > pop.mrr, `MRR@10: ${shopstream.mrr} > popularity ${pop.mrr}`);
    assert.ok(shopstream.hr > raw.hr, `HR@10: ${shopstream.hr} > raw co-occurrence ${raw.hr}`);
    assert.ok(shopstream.mrr > raw.mrr, `MRR@10: ${shopstream.mrr} > raw co-occurrence ${raw.mrr}`);
    assert.ok(stats.maxCounters <= DEFAULT_FBT.co.capacity);
    assert.ok(stats.counters < exact.pairCount / 5, `${stats.counters} counters against ${exact.pairCount} exact pairs`);
  });

  it('scores every product hidden in turn (the bench shortcut) as recommend() does, up to the rounding of exact ties', () => {
    const popularity = trainPopularity(train, DEFAULT_POPULARITY);
    const sample = test.filter((b) => b.products.length >= 2 && b.products.length <= 20).slice(0, 80);
    const viaApi = evaluate(makeQueries(sample, 'each'), (seeds) => model.recommend(seeds, K, { popularity }).items.map((x) => x.id), K);
    const seedScores = (seed: string): Map<string, number> => {
      const out = new Map<string, number>();
      scoreNeighbours(model, seed, model.cfg.co, { scoring: DEFAULT_SCORING }, (id, score) => out.set(id, score));
      return out;
    };
    const viaShortcut = evaluateEachInTurn(sample, seedScores, K, (ex, n) => popularTop(popularity, n, ex).map((p) => p.id));
    assert.ok(viaApi.queries > 500);
    assert.equal(viaShortcut.queries, viaApi.queries);
    // The shortcut sums in another order: two candidates with equal scores (Jaccard's 1/3 + 1/2 and
    // 1/2 + 1/3) can round apart and swap ranks. Nothing more.
    assert.ok(Math.abs(viaShortcut.hr - viaApi.hr) <= 0.002, `HR@10 ${viaShortcut.hr} ≈ ${viaApi.hr}`);
    assert.ok(Math.abs(viaShortcut.mrr - viaApi.mrr) <= 0.002, `MRR@10 ${viaShortcut.mrr} ≈ ${viaApi.mrr}`);
  });
});
