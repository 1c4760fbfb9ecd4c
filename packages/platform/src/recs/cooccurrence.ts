/**
 * A bounded co-occurrence model: per item, its (weighted, optionally time-decayed) count of baskets
 * and a Space-Saving summary of at most `capacity` neighbours; plus one total. Pure functions over
 * plain state, no I/O. The FBT and OYML models (models.ts) are two instances fed by different events.
 *
 * State: ONE key-value entry per item (`CoItemState`, JSON as it is) and one entry under
 * `TOTAL_KEY` for the total, so the model lives in a key-value state store with a changelog.
 * An event becomes a list of `CoUpdate`s, each for one key; `applyCoUpdate(state, update)` is the
 * whole write path, so a topology can flat-map events to updates, repartition them by `key` and
 * aggregate them in the key's task. The state after a sequence of updates depends only on that
 * sequence (no clock, no randomness; Space-Saving breaks ties from the stored array alone).
 *
 * Size bound of an item's entry: at most `capacity` neighbour counters, i.e. at most
 * `100 + capacity × (length of a product id + 56)` bytes of JSON (a count is a double: at most 24
 * characters; whole counts without decay take a few), whatever the catalogue or the traffic.
 * The number of entries is the number of distinct items seen (plus one).
 */
import { ssGet, ssMin, ssOfferAll, ssScale, ssTop, ssValidate, type Counter } from './space-saving.ts';

/** The key of the model's total (the weighted number of baskets). No product id can be empty. */
export const TOTAL_KEY = '';

export interface CoConfig {
  /** Neighbour counters kept per item (Space-Saving capacity C). */
  capacity: number;
  /**
   * Half-life of the counts in ms (forward exponential decay by event time), or null: no decay.
   * With decay, an event at time t weighs 2^((t − landmark) / halfLife) in the units of the entry's landmark.
   */
  halfLifeMs: number | null;
}

/** One key-value entry of the model: an item, or the total under `TOTAL_KEY`. Plain data. */
export interface CoItemState {
  /** Format version. */
  v: 1;
  /** Landmark (epoch ms) of the decayed counts; 0 without decay. Counts are in units of an event at `t`. */
  t: number;
  /** Weighted number of baskets containing the item (for `TOTAL_KEY`: of all baskets). Exact. */
  n: number;
  /** Total weight offered to `nb` (the Space-Saving `W`; errors are at most `W / capacity`). */
  w: number;
  /**
   * Neighbours, at most `capacity` Space-Saving counters `[productId, count, error]` in slot order
   * (space-saving.ts); `count` overestimates the weighted co-occurrence by at most `error`.
   * Empty for `TOTAL_KEY`.
   */
  nb: Counter[];
}

/**
 * What one event adds to one key: `count` to its basket count and, for each entry of `pairs` other
 * than `key` itself, its weight (`weights[i]`, or `weights` when it is a number) to that neighbour.
 * `at` is the event time (ms), used only with decay. Plain data (a record of a repartition topic).
 */
export interface CoUpdate {
  key: string;
  at: number;
  count: number;
  pairs: readonly string[];
  weights: number | readonly number[];
}

/** The read side the scorers need: an entry by key. A `Map` is one; so is a key-value store adapter. */
export interface CoReader {
  get(key: string): CoItemState | undefined;
}

/** A writable store of entries: `Map<string, CoItemState>` is one. */
export interface CoStore extends CoReader {
  set(key: string, state: CoItemState): unknown;
}

/** Counts are rescaled when an update is this many half-lives after the landmark (2^64 ≪ Number.MAX_VALUE). */
const RESCALE_HALF_LIVES = 64;
/** Counts this many half-lives old are below 2^-1000 of a new event's weight (and near the smallest double). */
const FORGET_HALF_LIVES = 1000;

export function checkCoConfig(cfg: CoConfig): void {
  if (!Number.isInteger(cfg.capacity) || cfg.capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${cfg.capacity}.`);
  if (cfg.halfLifeMs !== null && !(cfg.halfLifeMs > 0 && Number.isFinite(cfg.halfLifeMs))) {
    throw new RangeError(`halfLifeMs must be a positive number or null, got ${cfg.halfLifeMs}.`);
  }
}

export function emptyCoState(): CoItemState {
  return { v: 1, t: 0, n: 0, w: 0, nb: [] };
}

/**
 * The multiplier of an event at `at` in the units of `state`, after moving the state's landmark
 * forward (rescaling its counts) when `at` is far ahead of it. 1 without decay.
 */
function eventScale(state: CoItemState, at: number, halfLifeMs: number | null): number {
  if (halfLifeMs === null) return 1;
  if (!Number.isFinite(at)) throw new RangeError(`Event time must be finite, got ${at}.`);
  if (state.n === 0 && state.w === 0 && state.nb.length === 0) state.t = at;
  const ahead = (at - state.t) / halfLifeMs;
  if (ahead >= RESCALE_HALF_LIVES) {
    const k = Math.floor(ahead);
    if (k > FORGET_HALF_LIVES) {
      // Everything counted so far weighs less than 2^-1000 of this event: forget it.
      state.n = 0;
      state.w = 0;
      state.nb = [];
    } else {
      const f = 2 ** -k;
      state.n *= f;
      state.w *= f;
      ssScale(state.nb, f);
      // Counts that fell below the smallest double became 0: drop them.
      if (state.nb.some((c) => !(c[1] > 0))) state.nb = state.nb.filter((c) => c[1] > 0);
    }
    state.t += k * halfLifeMs;
  }
  return 2 ** ((at - state.t) / halfLifeMs);
}

/**
 * Applies one update to the entry `state` (undefined: a new entry), in place when given.
 * @returns the entry, to be written back under `u.key`.
 */
export function applyCoUpdate(state: CoItemState | undefined, u: CoUpdate, cfg: CoConfig): CoItemState {
  const s = state ?? emptyCoState();
  const g = eventScale(s, u.at, cfg.halfLifeMs);
  if (u.count !== 0) s.n += u.count * g;
  if (u.pairs.length > 0) s.w += ssOfferAll(s.nb, u.pairs, u.weights, cfg.capacity, u.key, g);
  return s;
}

/** Applies updates to a store, in order (read, apply, write back per update). */
export function applyCoUpdates(store: CoStore, updates: Iterable<CoUpdate>, cfg: CoConfig): void {
  for (const u of updates) store.set(u.key, applyCoUpdate(store.get(u.key), u, cfg));
}

/** A value of `from`'s units (landmark `fromT`) in the units of landmark `toT`. */
export function rebase(value: number, fromT: number, toT: number, halfLifeMs: number | null): number {
  return halfLifeMs === null || fromT === toT ? value : value * 2 ** ((fromT - toT) / halfLifeMs);
}

/** The estimated co-occurrence of `item` with `neighbour` (entry of `item`): count, error bound and whether it is kept. */
export function coEstimate(state: CoItemState, neighbour: string, capacity: number): { count: number; error: number; kept: boolean } {
  const c = ssGet(state.nb, neighbour);
  if (c !== undefined) return { count: c[1], error: c[2], kept: true };
  return { count: 0, error: ssMin(state.nb, capacity), kept: false };
}

/** The neighbours of an entry by decreasing estimated count (a copy). */
export function coNeighbours(state: CoItemState, limit?: number): Counter[] {
  return ssTop(state.nb, limit);
}

/** JSON of an entry (what a state store's value serde writes). */
export function encodeCoState(state: CoItemState): string {
  return JSON.stringify(state);
}

/** Reads an entry back, checking its shape and bound. @throws Error when it is not a valid entry of capacity `capacity`. */
export function decodeCoState(json: string, capacity: number): CoItemState {
  const o = JSON.parse(json) as unknown;
  if (!isCoState(o, capacity)) throw new Error('Not a co-occurrence entry (or above its capacity).');
  return o;
}

export function isCoState(o: unknown, capacity: number): o is CoItemState {
  if (typeof o !== 'object' || o === null) return false;
  const s = o as Record<string, unknown>;
  return s['v'] === 1 && typeof s['t'] === 'number' && typeof s['n'] === 'number' && typeof s['w'] === 'number' && ssValidate(s['nb'], capacity);
}
