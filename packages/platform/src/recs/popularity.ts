/**
 * Popular products per merchant: a Space-Saving summary of products by exponentially decayed count
 * (forward decay by event time: an event at t weighs 2^((t − landmark) / halfLife), so recent
 * purchases count more, and the order of two events never changes their weights). The fallback of
 * the recommenders when they know too little. Pure functions over plain state, no I/O.
 *
 * State: ONE key-value entry per merchant (`PopularityState`): at most `capacity` counters, at most
 * `100 + capacity × (length of a product id + 56)` bytes of JSON. Deterministic: the state depends only
 * on the sequence of updates (event times, not the clock).
 *
 * Guarantee (Space-Saving over decayed weights): with `D` the decayed total weight, a product whose
 * decayed count exceeds `D / capacity` is kept, and a kept count overestimates by at most its error.
 * Keep `capacity` a few times the `limit` asked of `popularTop` (default 200 for a top 20-50).
 */
import { ssScale, ssTop, ssOffer, ssValidate, type Counter } from './space-saving.ts';

export interface PopularityConfig {
  /** Counters kept (Space-Saving capacity). */
  capacity: number;
  /** Half-life of a purchase's weight, ms; null: no decay (all-time counts). */
  halfLifeMs: number | null;
}

export const DEFAULT_POPULARITY: PopularityConfig = { capacity: 200, halfLifeMs: 14 * 86_400_000 };

/** One merchant's popular products. Plain data. */
export interface PopularityState {
  v: 1;
  /** Landmark (epoch ms) of the decayed counts; 0 without decay. */
  t: number;
  /** Decayed total weight offered. */
  n: number;
  /** Space-Saving counters `[productId, count, error]`, in slot order (space-saving.ts), at most `capacity`. */
  top: Counter[];
}

const RESCALE_HALF_LIVES = 64;
const FORGET_HALF_LIVES = 1000;

export function emptyPopularity(): PopularityState {
  return { v: 1, t: 0, n: 0, top: [] };
}

/**
 * Counts `productIds` (each once per call; e.g. the distinct products of an order) at event time
 * `at`, with `weight` each, in place.
 * @returns the state, to be written back.
 */
export function popularityAdd(
  state: PopularityState | undefined,
  productIds: readonly string[],
  at: number,
  cfg: PopularityConfig,
  weight = 1,
): PopularityState {
  const s = state ?? emptyPopularity();
  let g = 1;
  if (cfg.halfLifeMs !== null) {
    if (!Number.isFinite(at)) throw new RangeError(`Event time must be finite, got ${at}.`);
    if (s.n === 0) s.t = at;
    const ahead = (at - s.t) / cfg.halfLifeMs;
    if (ahead >= RESCALE_HALF_LIVES) {
      const k = Math.floor(ahead);
      if (k > FORGET_HALF_LIVES) {
        s.n = 0;
        s.top = [];
      } else {
        const f = 2 ** -k;
        s.n *= f;
        ssScale(s.top, f);
        if (s.top.some((c) => !(c[1] > 0))) s.top = s.top.filter((c) => c[1] > 0);
      }
      s.t += k * cfg.halfLifeMs;
    }
    g = 2 ** ((at - s.t) / cfg.halfLifeMs);
  }
  const w = weight * g;
  if (!(w > 0)) return s;
  const seen = new Set<string>();
  for (const id of productIds) {
    if (seen.has(id)) continue;
    seen.add(id);
    s.n += w;
    ssOffer(s.top, id, w, cfg.capacity);
  }
  return s;
}

export interface PopularItem {
  id: string;
  /** Decayed count at `s.t` units; comparable within a state. */
  score: number;
}

/** The `limit` most popular products, by decreasing decayed count then id, skipping `exclude`. */
export function popularTop(state: PopularityState | undefined, limit: number, exclude?: ReadonlySet<string>): PopularItem[] {
  if (state === undefined || limit <= 0) return [];
  const out: PopularItem[] = [];
  for (const [id, count] of ssTop(state.top)) {
    if (exclude?.has(id)) continue;
    out.push({ id, score: count });
    if (out.length >= limit) break;
  }
  return out;
}

export function isPopularityState(o: unknown, capacity: number): o is PopularityState {
  if (typeof o !== 'object' || o === null) return false;
  const s = o as Record<string, unknown>;
  return s['v'] === 1 && typeof s['t'] === 'number' && typeof s['n'] === 'number' && ssValidate(s['top'], capacity);
}
