/**
 * Offline evaluation of "Frequently bought together" on the Online Retail data set (issue 9's
 * protocol; docs/recommendations.md): train on the invoices before 2011-11-01, then for each later
 * invoice with two or more products hide its last product (the last distinct StockCode in line
 * order) and ask for 10 products from the others. HR@10 and MRR@10 of Shopstream's model (bounded:
 * Space-Saving per product; normalised scoring), and in the same run of two baselines computed
 * here: popularity (the 10 products in most training invoices, minus the query's) and exact raw
 * co-occurrence counts (unbounded). Then the sensitivity, which justifies the defaults: the scoring
 * under three protocols (the last product hidden; every product hidden in turn; the last product
 * hidden and only the one before it as the seed), the capacity C, the Space-Saving estimate, the
 * largest order used and the half-life.
 *
 *   node bench/recs-offline.bench.ts
 *   BENCH_SENSITIVITY=0 node bench/recs-offline.bench.ts      # the figures of the defaults only
 */
import { performance } from 'node:perf_hooks';
import { readRetailBaskets, RETAIL_DATA } from '../packages/platform/src/recs/eval/online-retail.ts';
import { ExactCooccurrence, PopularityBaseline, evaluate, evaluateEachInTurn, makeQueries, splitAt, trainFbt, trainPopularity, type Figures, type Query } from '../packages/platform/src/recs/eval/protocol.ts';
import { DEFAULT_FBT, type FbtConfig, type FbtModel } from '../packages/platform/src/recs/models.ts';
import { DEFAULT_POPULARITY, popularTop, type PopularityState } from '../packages/platform/src/recs/popularity.ts';
import { DEFAULT_ESTIMATE, DEFAULT_SCORING, SCORINGS, scoreNeighbours, type Estimate, type Scoring } from '../packages/platform/src/recs/scoring.ts';

const CUTOFF = '2011-11-01';
const K = 10;
const SENSITIVITY = process.env['BENCH_SENSITIVITY'] !== '0';
const DAY = 86_400_000;

const f4 = (x: number): string => x.toFixed(4);
const ms = (x: number): string => `${(x / 1000).toFixed(1)} s`;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

function modelFigures(m: FbtModel, qs: readonly Query[], pop: PopularityState, scoring: Scoring = DEFAULT_SCORING, estimate: Estimate = DEFAULT_ESTIMATE): Figures {
  let fallbacks = 0;
  const f = evaluate(
    qs,
    (seeds) => {
      const r = m.recommend(seeds, K, { scoring, estimate, popularity: pop });
      if (r.fallback) fallbacks++;
      return r.items.map((x) => x.id);
    },
    K,
  );
  return { ...f, fallback: qs.length === 0 ? 0 : fallbacks / qs.length };
}

function timedTrain(train: Parameters<typeof trainFbt>[0], cfg: Partial<FbtConfig>): { model: FbtModel; ms: number; heap: number } {
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const model = trainFbt(train, cfg);
  const took = performance.now() - t0;
  return { model, ms: took, heap: process.memoryUsage().heapUsed - heap0 };
}

const t0 = performance.now();
const baskets = await readRetailBaskets(RETAIL_DATA);
const readMs = performance.now() - t0;
const { train, test } = splitAt(baskets, CUTOFF);
const queries = makeQueries(test, 'last');
const trainProducts = new Set(train.flatMap((b) => b.products));
const cold = queries.filter((q) => !trainProducts.has(q.hidden)).length;
console.log(`Online Retail: ${baskets.length} invoices with products (read with DuckDB in ${ms(readMs)}); training: ${train.length} invoices before ${CUTOFF}, ${trainProducts.size} products;`);
console.log(`test: ${test.length} invoices, ${queries.length} queries (two or more products, the last one hidden); the hidden product was never bought before the cutoff in ${cold} (${((100 * cold) / queries.length).toFixed(1)}%).\n`);

// ---- the defaults against the baselines ---------------------------------------------------------

const popBaseline = new PopularityBaseline(train);
const popFig = evaluate(queries, (s) => popBaseline.recommend(s, K), K);
let t = performance.now();
const exact = new ExactCooccurrence(train);
const exactMs = performance.now() - t;
const rawFig = evaluate(queries, (s) => exact.recommend(s, K, 'raw'), K);

const popState = trainPopularity(train, DEFAULT_POPULARITY);
const def = timedTrain(train, {});
const defFig = modelFigures(def.model, queries, popState);
const stats = def.model.stats();
t = performance.now();
modelFigures(def.model, queries, popState);
const queryMs = (performance.now() - t) / queries.length;

const cfg = def.model.cfg;
console.log(`Defaults: scoring ${DEFAULT_SCORING}, estimate ${DEFAULT_ESTIMATE}, C = ${cfg.co.capacity}, orders of at most ${cfg.maxBasket} products, half-life ${cfg.co.halfLifeMs === null ? 'none' : `${cfg.co.halfLifeMs / DAY} d`}; popularity fallback: ${DEFAULT_POPULARITY.capacity} counters, half-life ${(DEFAULT_POPULARITY.halfLifeMs ?? 0) / DAY} d.\n`);
console.log('| recommender | HR@10 | MRR@10 | ratio to raw co-occurrence (HR, MRR) |');
console.log('|---|---|---|---|');
const row = (name: string, f: Figures): void => console.log(`| ${name} | ${f4(f.hr)} | ${f4(f.mrr)} | ${(f.hr / rawFig.hr).toFixed(2)}, ${(f.mrr / rawFig.mrr).toFixed(2)} |`);
row(`**Shopstream FBT** (bounded, ${DEFAULT_SCORING}; popularity fallback in ${(100 * (defFig.fallback ?? 0)).toFixed(1)}% of queries)`, defFig);
row('baseline: popularity (top 10 before the cutoff)', popFig);
row('baseline: raw co-occurrence (exact, unbounded)', rawFig);
console.log(`\n${queries.length} queries. Training the model: ${ms(def.ms)} for ${train.length} orders (${(def.ms / train.length).toFixed(2)} ms per order), heap +${mb(def.heap)};`);
console.log(`state: ${stats.entries} entries (products + the total), ${stats.counters} neighbour counters, at most ${stats.maxCounters} per entry (bound C = ${cfg.co.capacity}), ${mb(stats.jsonBytes)} of JSON.`);
console.log(`Exact baseline: ${exact.pairCount} distinct ordered pairs (built in ${ms(exactMs)}). A query of the model: ${queryMs.toFixed(2)} ms on average (${(queries.reduce((a, q) => a + q.seeds.length, 0) / queries.length).toFixed(1)} seed products).\n`);

// ---- sensitivity --------------------------------------------------------------------------------

if (SENSITIVITY) {
  const cell = (f: Figures): string => `${f4(f.hr)} / ${f4(f.mrr)}`;

  // Every product hidden in turn: an invoice of n products gives n queries of n − 1 seeds. Each
  // basket's per-seed scores are summed once and each hidden product's own part subtracted
  // (evaluateEachInTurn: the scoring code of recommend(), scoreNeighbours, and the same fill).
  const each = makeQueries(test, 'each');
  const fill = (ex: ReadonlySet<string>, n: number): string[] => popularTop(popState, n, ex).map((p) => p.id);
  const seedsOf =
    (m: FbtModel, scoring: Scoring) =>
    (seed: string): Map<string, number> => {
      const out = new Map<string, number>();
      scoreNeighbours(m, seed, m.cfg.co, { scoring, estimate: DEFAULT_ESTIMATE }, (id, score) => out.set(id, score));
      return out;
    };
  // One seed: the product before the hidden one (a product page's question).
  const single = queries.map((q) => ({ ...q, seeds: q.seeds.slice(-1) }));
  const eachSeeds = each.reduce((a, q) => a + q.seeds.length, 0) / each.length;
  console.log(`Scoring under three protocols (C = ${cfg.co.capacity}, estimate ${DEFAULT_ESTIMATE}), HR@10 / MRR@10:\n`);
  console.log(`| recommender | last product hidden (${queries.length} queries) | every product in turn (${each.length} queries, ${eachSeeds.toFixed(0)} seeds on average) | last hidden, the one before as the only seed (${single.length}) |`);
  console.log('|---|---|---|---|');
  for (const scoring of SCORINGS) {
    const last = scoring === DEFAULT_SCORING ? defFig : modelFigures(def.model, queries, popState, scoring);
    const e = evaluateEachInTurn(test, seedsOf(def.model, scoring), K, fill);
    const one = modelFigures(def.model, single, popState, scoring);
    console.log(`| Shopstream FBT, ${scoring}${scoring === DEFAULT_SCORING ? ' (default)' : ''} | ${cell(last)} | ${cell(e)} | ${cell(one)} |`);
  }
  const pe = evaluate(each, (s) => popBaseline.recommend(s, K), K);
  const ps = evaluate(single, (s) => popBaseline.recommend(s, K), K);
  console.log(`| baseline: popularity | ${cell(popFig)} | ${cell(pe)} | ${cell(ps)} |`);
  const re = evaluateEachInTurn(test, (seed) => exact.seedScores(seed, 'raw'), K);
  const rs = evaluate(single, (s) => exact.recommend(s, K, 'raw'), K);
  console.log(`| baseline: raw co-occurrence (exact) | ${cell(rawFig)} | ${cell(re)} | ${cell(rs)} |\n`);

  console.log(`Scoring × capacity C (estimate ${DEFAULT_ESTIMATE}, orders ≤ ${DEFAULT_FBT.maxBasket} products), HR@10 / MRR@10:\n`);
  console.log(`| C | training | state (JSON) | ${SCORINGS.join(' | ')} |`);
  console.log(`|---|---|---|${SCORINGS.map(() => '---').join('|')}|`);
  const byCapacity = new Map<number, FbtModel>();
  for (const capacity of [20, 50, 200, 500]) {
    const r = capacity === cfg.co.capacity ? def : timedTrain(train, { co: { ...cfg.co, capacity } });
    byCapacity.set(capacity, r.model);
    const cells = SCORINGS.map((s) => cell(modelFigures(r.model, queries, popState, s)));
    console.log(`| ${capacity} | ${ms(r.ms)} | ${mb(r.model.stats().jsonBytes)} | ${cells.join(' | ')} |`);
  }
  const exact100 = new ExactCooccurrence(train, DEFAULT_FBT.maxBasket);
  console.log(`| exact, unbounded (orders ≤ ${DEFAULT_FBT.maxBasket}) | | | ${SCORINGS.map((s) => cell(evaluate(queries, (q) => exact100.recommend(q, K, s), K))).join(' | ')} |`);
  console.log(`| exact, unbounded (all orders) | | | ${SCORINGS.map((s) => cell(evaluate(queries, (q) => exact.recommend(q, K, s), K))).join(' | ')} |`);

  console.log(`\nSpace-Saving estimate scored (C = ${cfg.co.capacity}), HR@10 / MRR@10:\n`);
  console.log(`| estimate | ${SCORINGS.join(' | ')} |`);
  console.log(`|---|${SCORINGS.map(() => '---').join('|')}|`);
  for (const estimate of ['upper', 'lower', 'mg'] as const) {
    console.log(`| ${estimate} | ${SCORINGS.map((s) => cell(modelFigures(def.model, queries, popState, s, estimate))).join(' | ')} |`);
  }
  const c50 = byCapacity.get(50)!;
  console.log(`| (C = 50) upper | ${SCORINGS.map((s) => cell(modelFigures(c50, queries, popState, s, 'upper'))).join(' | ')} |`);
  console.log(`| (C = 50) lower | ${SCORINGS.map((s) => cell(modelFigures(c50, queries, popState, s, 'lower'))).join(' | ')} |`);

  console.log(`\nLargest order used (maxBasket) and half-life of the counts (${DEFAULT_SCORING}, C = ${cfg.co.capacity}), HR@10 / MRR@10:\n`);
  console.log('| variant | training | HR@10 / MRR@10 |');
  console.log('|---|---|---|');
  for (const maxBasket of [25, 50, 100, 200, Infinity]) {
    const r = maxBasket === cfg.maxBasket ? def : timedTrain(train, { maxBasket });
    console.log(`| maxBasket ${maxBasket} | ${ms(r.ms)} | ${cell(maxBasket === cfg.maxBasket ? defFig : modelFigures(r.model, queries, popState))} |`);
  }
  for (const days of [30, 90]) {
    const r = timedTrain(train, { co: { ...cfg.co, halfLifeMs: days * DAY } });
    console.log(`| half-life ${days} d | ${ms(r.ms)} | ${cell(modelFigures(r.model, queries, popState))} |`);
  }
  const noPop = evaluate(queries, (s) => def.model.recommend(s, K).items.map((x) => x.id), K);
  console.log(`| no popularity fallback | | ${cell(noPop)} |`);
}
