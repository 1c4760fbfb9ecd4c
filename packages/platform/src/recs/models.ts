/**
 * The two recommenders, as update rules over the bounded co-occurrence model (cooccurrence.ts),
 * and the query that turns seed products into recommendations. Pure functions, no I/O.
 *
 * - FBT, "Frequently bought together": baskets are orders (every pair of distinct products of an
 *   order, once per order) and carts (each product added to a cart pairs with the products already
 *   in it). Order baskets weigh `orderWeight`, cart baskets `cartWeight`.
 * - OYML, "Others you may like": baskets are sessions. Each product viewed or engaged with pairs
 *   with the previous `window` distinct products of the session, with a weight that falls off with
 *   their distance d (1 for the previous one): `1/d` (`inverse`) or `exp(−(d−1)/τ)` (`exp`).
 *
 * Every rule returns the `CoUpdate`s of one event (one per key touched, plus the total) and, for
 * carts and sessions, the small bounded state of that cart or session, to be kept by the caller
 * (in a topology: a key-value store keyed by cart or session). The classes at the end keep it all
 * in memory, for tests, benchmarks and a single process.
 */
import {
  TOTAL_KEY,
  applyCoUpdates,
  checkCoConfig,
  type CoConfig,
  type CoItemState,
  type CoReader,
  type CoUpdate,
} from './cooccurrence.ts';
import { DEFAULT_ESTIMATE, DEFAULT_SCORING, scoreNeighbours, topScores, type Estimate, type Scoring } from './scoring.ts';
import { popularTop, type PopularityState } from './popularity.ts';

// ---- FBT ---------------------------------------------------------------------------------------

export interface FbtConfig {
  co: CoConfig;
  /** Weight of an order basket. Default 1. */
  orderWeight: number;
  /** Weight of a cart basket (a cart that becomes an order counts as both). Default 0.5. */
  cartWeight: number;
  /**
   * Orders with more distinct products are not used (their n(n−1) pairs would cost the most and say
   * the least: wholesale restocking, not a shopper's basket). Default 100.
   */
  maxBasket: number;
  /** Products remembered per cart (the oldest are forgotten). Default 100. */
  maxCart: number;
}

/** The defaults, chosen by the offline evaluation (docs/recommendations.md). */
export const DEFAULT_FBT: FbtConfig = {
  co: { capacity: 200, halfLifeMs: null },
  orderWeight: 1,
  cartWeight: 0.5,
  maxBasket: 100,
  maxCart: 100,
};

/** The distinct non-empty ids, in order of first appearance. */
export function distinctIds(ids: Iterable<string>): string[] {
  const seen = new Set<string>();
  for (const id of ids) if (id !== '' && !seen.has(id)) seen.add(id);
  return [...seen];
}

/**
 * The updates of one order: each distinct product counts one basket and pairs with every other
 * (both directions), all with `orderWeight`; the total counts one basket. None for an order with
 * more than `maxBasket` distinct products, or none at all.
 */
export function orderUpdates(productIds: readonly string[], at: number, cfg: FbtConfig): CoUpdate[] {
  const items = distinctIds(productIds);
  if (items.length === 0 || items.length > cfg.maxBasket) return [];
  const w = cfg.orderWeight;
  const out: CoUpdate[] = items.map((key) => ({ key, at, count: w, pairs: items, weights: w }));
  out.push({ key: TOTAL_KEY, at, count: w, pairs: [], weights: 0 });
  return out;
}

/** A cart's products (distinct, oldest first, at most `maxCart`). Plain data. */
export interface CartState {
  items: string[];
}

/**
 * A product added to a cart: when it is new to the cart, it counts one (cart) basket and pairs with
 * each product already there, both directions, with `cartWeight`; the cart's first product also
 * counts one basket in the total. Adding a product the cart has changes nothing.
 */
export function cartAdd(cart: CartState | undefined, productId: string, at: number, cfg: FbtConfig): { cart: CartState; updates: CoUpdate[] } {
  const items = cart?.items ?? [];
  if (productId === '' || items.includes(productId)) return { cart: { items }, updates: [] };
  const w = cfg.cartWeight;
  const updates: CoUpdate[] = [{ key: productId, at, count: w, pairs: items, weights: w }];
  for (const q of items) updates.push({ key: q, at, count: 0, pairs: [productId], weights: w });
  if (items.length === 0) updates.push({ key: TOTAL_KEY, at, count: w, pairs: [], weights: 0 });
  const next = [...items, productId];
  if (next.length > cfg.maxCart) next.splice(0, next.length - cfg.maxCart);
  return { cart: { items: next }, updates };
}

/** A product removed from a cart: forgotten by the cart (what was counted stays counted). */
export function cartRemove(cart: CartState | undefined, productId: string): CartState {
  return { items: (cart?.items ?? []).filter((id) => id !== productId) };
}

// ---- OYML --------------------------------------------------------------------------------------

export type DistanceDecay = { kind: 'inverse' } | { kind: 'exp'; tau: number };

export interface OymlConfig {
  co: CoConfig;
  /** How many previous distinct products of the session a product pairs with (W). Default 10. */
  window: number;
  /** Weight of a pair d positions apart. Default `inverse` (1/d). */
  decay: DistanceDecay;
}

export const DEFAULT_OYML: OymlConfig = {
  co: { capacity: 200, halfLifeMs: null },
  window: 10,
  decay: { kind: 'inverse' },
};

/** The weight of two products d ≥ 1 positions apart. */
export function distanceWeight(decay: DistanceDecay, d: number): number {
  return decay.kind === 'inverse' ? 1 / d : Math.exp(-(d - 1) / decay.tau);
}

/** A session's recent distinct products, oldest first, at most `window`. Plain data. */
export interface SessionState {
  recent: string[];
}

/**
 * A product viewed (or engaged with) in a session. New to the session's window: it counts one basket
 * and pairs with each of the previous distinct products at distance d with `distanceWeight(d)`, both
 * directions; the session's first product counts one basket in the total. Already in the window: it
 * only moves to the most recent position (each pair is counted once per session).
 */
export function sessionEvent(session: SessionState | undefined, productId: string, at: number, cfg: OymlConfig): { session: SessionState; updates: CoUpdate[] } {
  const recent = session?.recent ?? [];
  if (productId === '') return { session: { recent }, updates: [] };
  const i = recent.indexOf(productId);
  if (i >= 0) {
    const next = recent.filter((id) => id !== productId);
    next.push(productId);
    return { session: { recent: next }, updates: [] };
  }
  const pairs: string[] = [];
  const weights: number[] = [];
  const updates: CoUpdate[] = [];
  for (let d = 1; d <= Math.min(cfg.window, recent.length); d++) {
    const q = recent[recent.length - d]!;
    const w = distanceWeight(cfg.decay, d);
    pairs.push(q);
    weights.push(w);
    updates.push({ key: q, at, count: 0, pairs: [productId], weights: w });
  }
  updates.unshift({ key: productId, at, count: 1, pairs, weights });
  if (recent.length === 0) updates.push({ key: TOTAL_KEY, at, count: 1, pairs: [], weights: 0 });
  const next = [...recent, productId];
  if (next.length > cfg.window) next.splice(0, next.length - cfg.window);
  return { session: { recent: next }, updates };
}

// ---- the query ---------------------------------------------------------------------------------

export interface RecommendOptions {
  /** The model's configuration (its capacity and half-life). */
  co: CoConfig;
  /** Default `DEFAULT_SCORING`. */
  scoring?: Scoring;
  /** Neighbours with a smaller estimated co-occurrence are ignored. Default 0. */
  minSupport?: number;
  /** Which Space-Saving estimate to score (scoring.ts). Default `DEFAULT_ESTIMATE`. */
  estimate?: Estimate;
  /** Products never to recommend (besides the seeds): the cart, what was bought. */
  exclude?: Iterable<string>;
  /** Popular products to fill with when the model has fewer than `limit` (e.g. the merchant's). */
  popularity?: PopularityState;
}

export interface Recommended {
  id: string;
  score: number;
  /** `model`: a neighbour of the seeds (score: the sum of its scores over the seeds); `popular`: the fallback (score: its decayed count). */
  source: 'model' | 'popular';
}

export interface Recommendation {
  items: Recommended[];
  /** True when popular products were used because the model knew fewer than `limit` for these seeds. */
  fallback: boolean;
  /** How many distinct seeds the model has neighbours for. */
  knownSeeds: number;
}

/**
 * Up to `limit` products for the seed products: each candidate scores the sum, over the seeds, of
 * its score as a neighbour of the seed; seeds and `exclude` are never returned. When that gives
 * fewer than `limit`, the rest are the most popular products (not excluded, not already there) and
 * `fallback` is true. Ties are broken by id: the answer depends only on the state.
 */
export function recommend(model: CoReader, productIds: readonly string[], limit: number, opts: RecommendOptions): Recommendation {
  const seeds = distinctIds(productIds);
  const excluded = new Set<string>(seeds);
  for (const id of opts.exclude ?? []) excluded.add(id);
  const scores = new Map<string, number>();
  let knownSeeds = 0;
  const scoreOpts = { scoring: opts.scoring ?? DEFAULT_SCORING, minSupport: opts.minSupport ?? 0, estimate: opts.estimate ?? DEFAULT_ESTIMATE };
  const add = (id: string, score: number): void => {
    if (!excluded.has(id)) scores.set(id, (scores.get(id) ?? 0) + score);
  };
  for (const seed of seeds) if (scoreNeighbours(model, seed, opts.co, scoreOpts, add) > 0) knownSeeds++;
  const items: Recommended[] = topScores(scores, limit).map(({ id, score }) => ({ id, score, source: 'model' as const }));
  let fallback = false;
  if (items.length < limit && opts.popularity !== undefined) {
    for (const r of items) excluded.add(r.id);
    for (const p of popularTop(opts.popularity, limit - items.length, excluded)) {
      items.push({ id: p.id, score: p.score, source: 'popular' });
      fallback = true;
    }
  }
  return { items, fallback, knownSeeds };
}

// ---- in memory ---------------------------------------------------------------------------------

/** Size of a model's state: entries, neighbour counters and the bytes of its JSON. */
export interface ModelStats {
  entries: number;
  counters: number;
  maxCounters: number;
  jsonBytes: number;
}

export function modelStats(entries: Iterable<[string, CoItemState]>): ModelStats {
  let n = 0;
  let counters = 0;
  let maxCounters = 0;
  let jsonBytes = 0;
  for (const [key, s] of entries) {
    n++;
    counters += s.nb.length;
    maxCounters = Math.max(maxCounters, s.nb.length);
    jsonBytes += Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(s));
  }
  return { entries: n, counters, maxCounters, jsonBytes };
}

/** FBT in one process: the entries in a `Map`, carts in another (a topology keeps both in state stores). */
export class FbtModel implements CoReader {
  readonly cfg: FbtConfig;
  readonly entries = new Map<string, CoItemState>();
  readonly carts = new Map<string, CartState>();

  constructor(cfg: Partial<FbtConfig> = {}) {
    this.cfg = { ...DEFAULT_FBT, ...cfg };
    checkCoConfig(this.cfg.co);
  }

  get(key: string): CoItemState | undefined {
    return this.entries.get(key);
  }

  order(productIds: readonly string[], at: number): void {
    applyCoUpdates(this.entries, orderUpdates(productIds, at, this.cfg), this.cfg.co);
  }

  cartAdd(cartId: string, productId: string, at: number): void {
    const r = cartAdd(this.carts.get(cartId), productId, at, this.cfg);
    this.carts.set(cartId, r.cart);
    applyCoUpdates(this.entries, r.updates, this.cfg.co);
  }

  /** The cart was ordered or abandoned: forget it. */
  cartClear(cartId: string): void {
    this.carts.delete(cartId);
  }

  recommend(productIds: readonly string[], limit: number, opts: Omit<RecommendOptions, 'co'> = {}): Recommendation {
    return recommend(this, productIds, limit, { ...opts, co: this.cfg.co });
  }

  stats(): ModelStats {
    return modelStats(this.entries);
  }
}

/** OYML in one process: the entries in a `Map`, sessions in another. */
export class OymlModel implements CoReader {
  readonly cfg: OymlConfig;
  readonly entries = new Map<string, CoItemState>();
  readonly sessions = new Map<string, SessionState>();

  constructor(cfg: Partial<OymlConfig> = {}) {
    this.cfg = { ...DEFAULT_OYML, ...cfg };
    checkCoConfig(this.cfg.co);
  }

  get(key: string): CoItemState | undefined {
    return this.entries.get(key);
  }

  event(sessionId: string, productId: string, at: number): void {
    const r = sessionEvent(this.sessions.get(sessionId), productId, at, this.cfg);
    this.sessions.set(sessionId, r.session);
    applyCoUpdates(this.entries, r.updates, this.cfg.co);
  }

  /** The session ended: forget it. */
  sessionEnd(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  recommend(productIds: readonly string[], limit: number, opts: Omit<RecommendOptions, 'co'> = {}): Recommendation {
    return recommend(this, productIds, limit, { ...opts, co: this.cfg.co });
  }

  stats(): ModelStats {
    return modelStats(this.entries);
  }
}
