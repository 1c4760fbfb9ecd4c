/**
 * The offline evaluation of "Frequently bought together" (issue 9's protocol), pure: train on the
 * baskets before a cutoff; then, for each later basket with two or more products, hide one product,
 * ask for `k` recommendations from the others, and score HR@k (share of queries whose hidden
 * product is in the list) and MRR@k (mean of 1/rank, 0 when absent). Two baselines are computed
 * here, independently of the models: popularity (most purchased before the cutoff) and exact
 * (unbounded) co-occurrence counts.
 */
import type { Basket } from './online-retail.ts';
import { FbtModel, distinctIds, type FbtConfig } from '../models.ts';
import { popularityAdd, type PopularityConfig, type PopularityState } from '../popularity.ts';
import type { Scoring } from '../scoring.ts';

export interface Query {
  invoiceNo: string;
  /** The basket's other products. */
  seeds: string[];
  hidden: string;
}

/**
 * Which product is hidden: `last` the basket's last distinct product (in the order of the
 * invoice's lines: the one added last), one query per basket; `each` every product in turn, one
 * query per product.
 */
export type HoldOut = 'last' | 'each';

/** Training baskets: local date before `cutoff` (`YYYY-MM-DD`); test: the others. */
export function splitAt(baskets: readonly Basket[], cutoff: string): { train: Basket[]; test: Basket[] } {
  const train: Basket[] = [];
  const test: Basket[] = [];
  for (const b of baskets) (b.date < cutoff ? train : test).push(b);
  return { train, test };
}

export function makeQueries(test: readonly Basket[], holdOut: HoldOut): Query[] {
  const out: Query[] = [];
  for (const b of test) {
    const products = distinctIds(b.products);
    if (products.length < 2) continue;
    const hide = holdOut === 'last' ? [products.length - 1] : products.map((_, i) => i);
    for (const i of hide) out.push({ invoiceNo: b.invoiceNo, seeds: products.filter((_, j) => j !== i), hidden: products[i]! });
  }
  return out;
}

export interface Figures {
  queries: number;
  /** HR@k: share of queries whose hidden product is among the k recommended. */
  hr: number;
  /** MRR@k: mean of 1/rank of the hidden product (0 when not among the k). */
  mrr: number;
  /** Share of queries where the recommender used its fallback (when it says so). */
  fallback?: number;
}

/** Scores a recommender (seeds → ranked ids, the first k count) on the queries. */
export function evaluate(queries: readonly Query[], recommender: (seeds: string[]) => readonly string[], k = 10): Figures {
  let hits = 0;
  let rr = 0;
  for (const q of queries) {
    const list = recommender(q.seeds);
    const rank = list.slice(0, k).indexOf(q.hidden);
    if (rank >= 0) {
      hits++;
      rr += 1 / (rank + 1);
    }
  }
  const n = queries.length;
  return { queries: n, hr: n === 0 ? 0 : hits / n, mrr: n === 0 ? 0 : rr / n };
}

/**
 * HR@k and MRR@k of hiding every product of every basket in turn (`makeQueries(test, 'each')`),
 * for a recommender whose score is a sum over the seeds, as `recommend()` and the raw baseline are:
 * `seedScores(p)` gives p's contribution to each candidate. The basket's sum is computed once, and
 * each hidden product's own contribution subtracted, so a basket of n products costs n seed look-ups
 * instead of n(n − 1). Candidates: score > 0, not a seed; best k by score then id; `fill` (the
 * fallback) completes a list shorter than k. Sums are in another order than `recommend()`'s, so
 * exact ties can differ by rounding.
 */
export function evaluateEachInTurn(
  test: readonly Basket[],
  seedScores: (seed: string) => ReadonlyMap<string, number>,
  k = 10,
  fill?: (exclude: ReadonlySet<string>, n: number) => string[],
): Figures {
  let queries = 0;
  let hits = 0;
  let rr = 0;
  for (const b of test) {
    const products = distinctIds(b.products);
    if (products.length < 2) continue;
    const parts = products.map(seedScores);
    const total = new Map<string, number>();
    for (const part of parts) for (const [id, v] of part) total.set(id, (total.get(id) ?? 0) + v);
    const inBasket = new Set(products);
    products.forEach((hidden, h) => {
      const own = parts[h]!;
      const best: Array<[string, number]> = [];
      for (const [id, t] of total) {
        if (id !== hidden && inBasket.has(id)) continue;
        const score = t - (own.get(id) ?? 0);
        if (!(score > 0)) continue;
        if (best.length === k) {
          const [lid, ls] = best[k - 1]!;
          if (score < ls || (score === ls && id > lid)) continue;
        }
        let i = best.length;
        while (i > 0 && (best[i - 1]![1] < score || (best[i - 1]![1] === score && best[i - 1]![0] > id))) i--;
        best.splice(i, 0, [id, score]);
        if (best.length > k) best.pop();
      }
      const list = best.map(([id]) => id);
      if (list.length < k && fill !== undefined) {
        const ex = new Set(inBasket);
        ex.delete(hidden);
        for (const id of list) ex.add(id);
        list.push(...fill(ex, k - list.length));
      }
      queries++;
      const rank = list.indexOf(hidden);
      if (rank >= 0) {
        hits++;
        rr += 1 / (rank + 1);
      }
    });
  }
  return { queries, hr: queries === 0 ? 0 : hits / queries, mrr: queries === 0 ? 0 : rr / queries };
}

// ---- baselines ---------------------------------------------------------------------------------

/** Baseline 1: the k products in most training baskets (ties by id), minus the query's products. */
export class PopularityBaseline {
  readonly ranked: string[];

  constructor(train: readonly Basket[]) {
    const counts = new Map<string, number>();
    for (const b of train) for (const p of distinctIds(b.products)) counts.set(p, (counts.get(p) ?? 0) + 1);
    this.ranked = [...counts].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).map(([id]) => id);
  }

  recommend(seeds: readonly string[], k: number): string[] {
    const ex = new Set(seeds);
    const out: string[] = [];
    for (const id of this.ranked) {
      if (out.length >= k) break;
      if (!ex.has(id)) out.push(id);
    }
    return out;
  }
}

/**
 * Exact co-occurrence counts over every training basket (no bound: a dense count matrix of the
 * catalogue, then each product's non-zero row), and the marginals. Baseline 2 is
 * `recommend(seeds, k, 'raw')`: each candidate scores the sum of its raw co-purchase counts with the
 * seeds. The other scorings give the unbounded reference of the bounded model.
 */
export class ExactCooccurrence {
  readonly ids: string[] = [];
  readonly index = new Map<string, number>();
  /** Per product: the indexes of its neighbours and the co-occurrence counts. */
  readonly rows: Array<{ cols: Int32Array; counts: Uint32Array }> = [];
  readonly marginal: Uint32Array;
  readonly total: number;
  /** Distinct (ordered) pairs counted. */
  readonly pairCount: number;

  constructor(train: readonly Basket[], maxBasket = Infinity) {
    const baskets: number[][] = [];
    for (const b of train) {
      const items = distinctIds(b.products);
      if (items.length > maxBasket) continue;
      baskets.push(
        items.map((id) => {
          let i = this.index.get(id);
          if (i === undefined) {
            i = this.ids.length;
            this.ids.push(id);
            this.index.set(id, i);
          }
          return i;
        }),
      );
    }
    const n = this.ids.length;
    if (n > 20_000) throw new RangeError(`The dense matrix of ${n} products is too large for this baseline.`);
    const dense = new Uint32Array(n * n);
    this.marginal = new Uint32Array(n);
    for (const items of baskets) {
      for (const a of items) {
        this.marginal[a]!++;
        const row = a * n;
        for (const b of items) if (b !== a) dense[row + b]!++;
      }
    }
    let pairs = 0;
    for (let a = 0; a < n; a++) {
      let nnz = 0;
      for (let b = 0; b < n; b++) if (dense[a * n + b]! > 0) nnz++;
      const cols = new Int32Array(nnz);
      const counts = new Uint32Array(nnz);
      let j = 0;
      for (let b = 0; b < n; b++) {
        const c = dense[a * n + b]!;
        if (c > 0) {
          cols[j] = b;
          counts[j++] = c;
        }
      }
      this.rows.push({ cols, counts });
      pairs += nnz;
    }
    this.pairCount = pairs;
    this.total = baskets.length;
  }

  count(a: string, b: string): number {
    const i = this.index.get(a);
    const j = this.index.get(b);
    if (i === undefined || j === undefined) return 0;
    const { cols, counts } = this.rows[i]!;
    const at = cols.indexOf(j);
    return at < 0 ? 0 : counts[at]!;
  }

  recommend(seeds: readonly string[], k: number, scoring: Scoring = 'raw'): string[] {
    const scores = (this.scratch ??= new Float64Array(this.ids.length));
    const touched: number[] = [];
    const ex = new Set<number>();
    for (const s of seeds) {
      const i = this.index.get(s);
      if (i !== undefined) ex.add(i);
    }
    for (const a of ex) {
      const { cols, counts } = this.rows[a]!;
      const ca = this.marginal[a]!;
      for (let j = 0; j < cols.length; j++) {
        const b = cols[j]!;
        const cab = counts[j]!;
        const s = scoring === 'raw' ? cab : exactScore(scoring, cab, ca, this.marginal[b]!, this.total);
        if (s > 0) {
          if (scores[b] === 0) touched.push(b);
          scores[b]! += s;
        }
      }
    }
    const best: Array<[number, number]> = [];
    for (const b of touched) {
      const s = scores[b]!;
      scores[b] = 0;
      if (ex.has(b)) continue;
      if (best.length === k) {
        const [lb, ls] = best[k - 1]!;
        if (s < ls || (s === ls && this.ids[b]! > this.ids[lb]!)) continue;
      }
      let i = best.length;
      while (i > 0 && (best[i - 1]![1] < s || (best[i - 1]![1] === s && this.ids[best[i - 1]![0]]! > this.ids[b]!))) i--;
      best.splice(i, 0, [b, s]);
      if (best.length > k) best.pop();
    }
    return best.map(([b]) => this.ids[b]!);
  }

  /** A seed's contribution to each candidate (see `recommend`), for `evaluateEachInTurn`. */
  seedScores(seed: string, scoring: Scoring = 'raw'): Map<string, number> {
    const out = new Map<string, number>();
    const a = this.index.get(seed);
    if (a === undefined) return out;
    const { cols, counts } = this.rows[a]!;
    const ca = this.marginal[a]!;
    for (let j = 0; j < cols.length; j++) {
      const b = cols[j]!;
      const s = scoring === 'raw' ? counts[j]! : exactScore(scoring, counts[j]!, ca, this.marginal[b]!, this.total);
      if (s > 0) out.set(this.ids[b]!, s);
    }
    return out;
  }

  private scratch: Float64Array | undefined;
}

function xlx(x: number): number {
  return x > 0 ? x * Math.log(x) : 0;
}

/** The scorings on exact counts, written out again (not scoring.ts): the reference of the bounded model. */
function exactScore(scoring: Exclude<Scoring, 'raw'>, cab: number, ca: number, cb: number, n: number): number {
  if (scoring === 'cosine') return cab / Math.sqrt(ca * cb);
  if (scoring === 'jaccard') return cab / (ca + cb - cab);
  // G² = 2 Σ k log(k N / (row · column)) over the four cells; 0 unless positively associated.
  if (cab * n <= ca * cb) return 0;
  const k12 = ca - cab;
  const k21 = cb - cab;
  const k22 = n - ca - cb + cab;
  return 2 * (xlx(cab) + xlx(k12) + xlx(k21) + xlx(k22) + xlx(n) - xlx(ca) - xlx(n - ca) - xlx(cb) - xlx(n - cb));
}

// ---- Shopstream's model ------------------------------------------------------------------------

/** FBT trained on the baskets as orders, in order (each basket is one `order`). */
export function trainFbt(train: readonly Basket[], cfg: Partial<FbtConfig> = {}): FbtModel {
  const m = new FbtModel(cfg);
  for (const b of train) m.order(b.products, b.at);
  return m;
}

/** The merchant's popular products from the same baskets (the model's fallback). */
export function trainPopularity(train: readonly Basket[], cfg: PopularityConfig): PopularityState {
  let s: PopularityState | undefined;
  for (const b of train) s = popularityAdd(s, b.products, b.at, cfg);
  return s ?? popularityAdd(undefined, [], 0, cfg);
}
