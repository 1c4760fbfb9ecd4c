/**
 * Scores of a co-occurrence: how strongly item b goes with item a, from the co-occurrence count
 * c(a,b), the basket counts c(a) and c(b) and the total N (all weighted, in the same units). Raw
 * counts favour popular items (a bestseller co-occurs with everything); the normalised scores
 * divide that out. Pure functions. See docs/recommendations.md for the choice of the default.
 */
import { TOTAL_KEY, rebase, type CoConfig, type CoItemState, type CoReader } from './cooccurrence.ts';
import { ssMin } from './space-saving.ts';

export const SCORINGS = ['cosine', 'llr', 'jaccard', 'raw'] as const;
/** cosine: c(a,b)/√(c(a)c(b)); llr: Dunning's G² (0 unless positively associated); jaccard: c(a,b)/(c(a)+c(b)−c(a,b)); raw: c(a,b). */
export type Scoring = (typeof SCORINGS)[number];

/** The default, chosen by the offline evaluation (docs/recommendations.md, BENCHMARKS.md). */
export const DEFAULT_SCORING: Scoring = 'jaccard';

export function cosine(cab: number, ca: number, cb: number): number {
  return ca > 0 && cb > 0 ? cab / Math.sqrt(ca * cb) : 0;
}

export function jaccard(cab: number, ca: number, cb: number): number {
  const union = ca + cb - cab;
  return union > 0 ? cab / union : 0;
}

function xLogX(x: number): number {
  return x > 0 ? x * Math.log(x) : 0;
}

/**
 * Dunning's log-likelihood ratio G² of the 2×2 table of baskets (with a and b: k11 = c(a,b);
 * a without b: k12 = c(a) − c(a,b); b without a: k21 = c(b) − c(a,b); neither: k22 = N − c(a) − c(b) + c(a,b)),
 * in Mahout's entropy form: 2 (H(rows) + H(columns) − H(cells)) with H(k…) = xlogx(Σk) − Σ xlogx(k), natural logs.
 * It grows with the evidence of any dependence, so it is 0 here unless b is more likely with a than
 * without it (k11·N > c(a)·c(b)): a recommender wants only positive associations.
 */
export function llr(cab: number, ca: number, cb: number, n: number): number {
  const k11 = cab;
  const k12 = Math.max(0, ca - cab);
  const k21 = Math.max(0, cb - cab);
  const k22 = Math.max(0, n - ca - cb + cab);
  const total = k11 + k12 + k21 + k22;
  if (total <= 0 || k11 * total <= (k11 + k12) * (k11 + k21)) return 0;
  const rows = xLogX(total) - xLogX(k11 + k12) - xLogX(k21 + k22);
  const cols = xLogX(total) - xLogX(k11 + k21) - xLogX(k12 + k22);
  const cells = xLogX(total) - xLogX(k11) - xLogX(k12) - xLogX(k21) - xLogX(k22);
  return Math.max(0, 2 * (rows + cols - cells));
}

/** The score of one pair. `cab` is clamped to min(c(a), c(b)) (a Space-Saving count can overestimate). */
export function pairScore(scoring: Scoring, cab: number, ca: number, cb: number, n: number): number {
  const c = Math.min(cab, ca, cb);
  switch (scoring) {
    case 'cosine':
      return cosine(c, ca, cb);
    case 'llr':
      return llr(c, ca, cb, Math.max(n, ca + cb - c));
    case 'jaccard':
      return jaccard(c, ca, cb);
    case 'raw':
      return c;
  }
}

/**
 * Which estimate of c(a,b) to score, from a Space-Saving counter `[b, count, error]` of a's summary
 * whose smallest counter is `min` (0 while the summary is not full: then every count is exact):
 * - `upper`: count (never below the truth);
 * - `lower`: count − error, the weight seen since the counter was (re)assigned (never above the truth);
 * - `mg`: count − min, the Misra–Gries counter (never above `lower`): only what stands out of the
 *   summary's noise floor; a neighbour at the floor scores nothing.
 */
export type Estimate = 'upper' | 'lower' | 'mg';

/** The default estimate, chosen by the offline evaluation. */
export const DEFAULT_ESTIMATE: Estimate = 'mg';

export interface ScoreOptions {
  scoring: Scoring;
  /** Neighbours whose estimated co-occurrence is below this are ignored (noise). Default 0: none. */
  minSupport?: number;
  /** Default `DEFAULT_ESTIMATE`. */
  estimate?: Estimate;
}

export interface ScoredNeighbour {
  id: string;
  score: number;
  /** Estimated (weighted) co-occurrence with the item, in the item's units. */
  count: number;
}

/**
 * Calls `visit(id, score, count)` for each neighbour of `item` in `model` with a score > 0, in the
 * summary's order. Returns how many neighbours the item has (0: the model has no entry for it).
 */
export function scoreNeighbours(
  model: CoReader,
  item: string,
  cfg: CoConfig,
  opts: ScoreOptions,
  visit: (id: string, score: number, count: number) => void,
): number {
  const a = model.get(item);
  if (a === undefined || a.nb.length === 0) return 0;
  const h = cfg.halfLifeMs;
  const total = model.get(TOTAL_KEY);
  const n = total === undefined ? 0 : rebase(total.n, total.t, a.t, h);
  const minSupport = opts.minSupport ?? 0;
  const estimate = opts.estimate ?? DEFAULT_ESTIMATE;
  const floor = estimate === 'mg' ? ssMin(a.nb, cfg.capacity) : 0;
  const scoring = opts.scoring;
  for (const [id, upper, error] of a.nb) {
    const count = estimate === 'upper' ? upper : estimate === 'lower' ? upper - error : upper - floor;
    if (!(count > 0) || count < minSupport) continue;
    const b: CoItemState | undefined = model.get(id);
    // b co-occurred with a, so it has an entry, unless its entry expired: then c(b) ≥ c(a,b) is all we know.
    const cb = b === undefined ? count : rebase(b.n, b.t, a.t, h);
    const score = pairScore(scoring, count, a.n, cb, n);
    if (score > 0) visit(id, score, count);
  }
  return a.nb.length;
}

/**
 * The neighbours of `item` in `model`, scored, by decreasing score then increasing id. Empty when
 * the model has no entry for the item. At most `cfg.capacity` of them.
 */
export function rankNeighbours(model: CoReader, item: string, cfg: CoConfig, opts: ScoreOptions): ScoredNeighbour[] {
  const out: ScoredNeighbour[] = [];
  scoreNeighbours(model, item, cfg, opts, (id, score, count) => out.push({ id, score, count }));
  return out.sort(byScore);
}

/** Decreasing score, then increasing id (deterministic). */
export function byScore(x: { id: string; score: number }, y: { id: string; score: number }): number {
  return y.score - x.score || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
}

/** The `k` best of `scores` by `byScore`, best first (a selection, not a sort of them all). */
export function topScores(scores: Iterable<[string, number]>, k: number): Array<{ id: string; score: number }> {
  const best: Array<{ id: string; score: number }> = [];
  if (k <= 0) return best;
  for (const [id, score] of scores) {
    if (best.length === k) {
      const last = best[k - 1]!;
      if (score < last.score || (score === last.score && id > last.id)) continue;
    }
    const e = { id, score };
    let i = best.length;
    while (i > 0 && byScore(e, best[i - 1]!) < 0) i--;
    best.splice(i, 0, e);
    if (best.length > k) best.pop();
  }
  return best;
}
