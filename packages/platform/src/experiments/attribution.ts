/**
 * What a visitor did with the recommendations, per experiment: a small JSON state and the pure rule
 * that folds one canonical event into it. The streams topology keeps one state per (experiment,
 * visitor) in a key-value store (the events are keyed by visitor, so one task sees all of a
 * visitor's events) and hands `visitorSummary(state)` to the report. No I/O, no clock: time is the
 * event's `timestamp`.
 *
 * Rules (docs/experiments.md):
 * - exposure: a `Product List Viewed` whose `list_id` marks a recommendation widget (starts with
 *   `widgetPrefix`, default "recs", or is one of `widgetListIds`), that carries a non-empty
 *   `properties.extra.attribution_token` (the token the recommendations API returned) and shows at
 *   least one product. Its products are remembered as shown, with the time.
 * - click: a `Product Clicked` with a non-empty `extra.attribution_token`, or with an
 *   `extra.list_id` that marks a widget. The clicked product counts as shown too.
 * - order: an `Order Completed` in the merchant's currency (others are counted, not summed), once
 *   per `order_id`. Its money is `total`, else `revenue`, else Σ price × quantity (the cubes' rule);
 *   its items are Σ quantity. A line is attributed to the recommendations when its product
 *   (`product_id`, else `sku`) was shown to the visitor at most `windowMs` before the order
 *   (and not after it); the attributed money of a line is price × quantity, and an order's
 *   attributed money is capped at the order's money.
 *
 * Bounded: at most `maxShown` shown products (the most recently shown are kept) and `maxOrderIds`
 * order ids; products shown longer ago than `windowMs + latenessMs` before the newest event seen are
 * dropped, as no order can be attributed to them any more (unless it arrives later than `latenessMs`).
 */
import { orderAmount, type CanonicalEvent, type EventOf, type Product } from '../contract/index.ts';
import { PlatformError, PlatformErrors } from '../errors.ts';

export interface AttributionConfig {
  /** The merchant's ISO 4217 currency: the report's money. Orders in other currencies are counted, not summed. */
  readonly currency: string;
  /** An ordered item is attributed when it was shown at most this long before the order. Default 1 hour. */
  readonly windowMs: number;
  /** Shown products kept per visitor (the most recently shown). Default 200. */
  readonly maxShown: number;
  /** A `list_id` that starts with this marks a recommendation widget; null: no prefix rule. Default "recs". */
  readonly widgetPrefix: string | null;
  /** `list_id`s that mark a recommendation widget, besides the prefix. Default none. */
  readonly widgetListIds: readonly string[];
  /**
   * How far behind the newest event seen for the visitor (in event time) an order may be and still
   * find every product shown within its window. Default 15 minutes.
   */
  readonly latenessMs: number;
  /** Order ids remembered per visitor, so that an order sent twice counts once. Default 20. */
  readonly maxOrderIds: number;
}

export const DEFAULT_ATTRIBUTION = Object.freeze({
  windowMs: 60 * 60 * 1000,
  maxShown: 200,
  widgetPrefix: 'recs',
  widgetListIds: Object.freeze([]) as readonly string[],
  latenessMs: 15 * 60 * 1000,
  maxOrderIds: 20,
});

function invalid(message: string, field: string): PlatformError {
  return new PlatformError(PlatformErrors.INVALID_PARAMETER, message, { details: { field } });
}

function wholeAtLeast(v: unknown, min: number, field: string, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw invalid(`${field} must be a whole number of at least ${min} (${what}); got ${String(v)}.`, field);
  }
  return v;
}

/**
 * The attribution configuration with defaults filled in, checked. Throws a PlatformError with code
 * SHOP_ERR_INVALID_PARAMETER naming the field.
 */
export function attributionConfig(options: Partial<AttributionConfig> & { currency: string }): AttributionConfig {
  const currency = options.currency;
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) {
    throw invalid(`currency must be an ISO 4217 code in upper case, like "USD"; got ${String(currency)}.`, 'currency');
  }
  const windowMs = wholeAtLeast(options.windowMs ?? DEFAULT_ATTRIBUTION.windowMs, 1, 'windowMs', 'milliseconds');
  const maxShown = wholeAtLeast(options.maxShown ?? DEFAULT_ATTRIBUTION.maxShown, 1, 'maxShown', 'products');
  const latenessMs = wholeAtLeast(options.latenessMs ?? DEFAULT_ATTRIBUTION.latenessMs, 0, 'latenessMs', 'milliseconds');
  const maxOrderIds = wholeAtLeast(options.maxOrderIds ?? DEFAULT_ATTRIBUTION.maxOrderIds, 0, 'maxOrderIds', 'order ids');
  const widgetPrefix = options.widgetPrefix === undefined ? DEFAULT_ATTRIBUTION.widgetPrefix : options.widgetPrefix;
  if (widgetPrefix !== null && (typeof widgetPrefix !== 'string' || widgetPrefix.length === 0)) {
    throw invalid(`widgetPrefix must be a non-empty string or null; got ${String(widgetPrefix)}.`, 'widgetPrefix');
  }
  const ids = options.widgetListIds ?? DEFAULT_ATTRIBUTION.widgetListIds;
  if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string' || x.length === 0)) {
    throw invalid('widgetListIds must be an array of non-empty strings.', 'widgetListIds');
  }
  if (widgetPrefix === null && ids.length === 0) {
    throw invalid('Name the recommendation widgets: a widgetPrefix, widgetListIds, or both.', 'widgetListIds');
  }
  return Object.freeze({ currency, windowMs, maxShown, widgetPrefix, widgetListIds: Object.freeze([...ids]), latenessMs, maxOrderIds });
}

/** Version of the state's shape; a store restoring another version must migrate it. */
export const VISITOR_STATE_VERSION = 1;

/**
 * One visitor's state in one experiment. Plain JSON (numbers, strings, arrays): it is written to a
 * key-value store and its changelog as is. Times are epoch milliseconds (event time); money is in
 * minor units of the configured currency.
 */
export interface VisitorState {
  v: 1;
  variant: string;
  /** Time of the earliest exposure, null until exposed. */
  firstExposureAt: number | null;
  /** The newest event time folded in (exposure, click or order), null before any. */
  lastEventAt: number | null;
  exposures: number;
  clicks: number;
  /** [product key, last shown at], oldest first; at most `maxShown` entries. */
  shown: [string, number][];
  /** Orders in the configured currency, each order id once. */
  orders: number;
  revenue: number;
  /** Orders of two or more items (Σ quantity ≥ 2). */
  multiItemOrders: number;
  /** Orders with at least one attributed line. */
  attributedOrders: number;
  attributedRevenue: number;
  /** Σ quantity of the attributed lines. */
  attributedItems: number;
  /** Orders in another currency: counted here, left out of every other number. */
  otherCurrencyOrders: number;
  /** The most recent order ids (at most `maxOrderIds`), to count an order sent twice once. */
  orderIds: string[];
}

/** A new visitor's state in the variant it was assigned. */
export function newVisitorState(variant: string): VisitorState {
  return {
    v: VISITOR_STATE_VERSION,
    variant,
    firstExposureAt: null,
    lastEventAt: null,
    exposures: 0,
    clicks: 0,
    shown: [],
    orders: 0,
    revenue: 0,
    multiItemOrders: 0,
    attributedOrders: 0,
    attributedRevenue: 0,
    attributedItems: 0,
    otherCurrencyOrders: 0,
    orderIds: [],
  };
}

// ---- events --------------------------------------------------------------------------------------

/** Whether a list id marks a recommendation widget. */
export function isWidgetList(listId: unknown, config: AttributionConfig): boolean {
  if (typeof listId !== 'string' || listId.length === 0) return false;
  if (config.widgetPrefix !== null && listId.startsWith(config.widgetPrefix)) return true;
  return config.widgetListIds.includes(listId);
}

/** `properties.extra.attribution_token` when it is a non-empty string, else null. */
export function attributionToken(event: CanonicalEvent): string | null {
  if (event.type === 'identify') return null;
  const t = (event.properties as { extra?: Record<string, unknown> }).extra?.['attribution_token'];
  return typeof t === 'string' && t.length > 0 ? t : null;
}

/** The key a product is recognised by: product_id, else sku; null when it has neither. */
export function productKey(p: Pick<Product, 'product_id' | 'sku'>): string | null {
  return p.product_id ?? p.sku ?? null;
}

export type EventRole = 'exposure' | 'click' | 'order';

/** What an event is to the experiments, or null when it does not change a visitor's state. */
export function eventRole(event: CanonicalEvent, config: AttributionConfig): EventRole | null {
  switch (event.event) {
    case 'Product List Viewed':
      return isWidgetList(event.properties.list_id, config) && attributionToken(event) !== null && event.properties.products.length > 0
        ? 'exposure'
        : null;
    case 'Product Clicked':
      return attributionToken(event) !== null || isWidgetList(event.properties.extra?.['list_id'], config) ? 'click' : null;
    case 'Order Completed':
      return 'order';
    default:
      return null;
  }
}

// ---- the update rule -----------------------------------------------------------------------------

/** Shown products with `keys` (re)marked at time t: each keeps its latest time; oldest first; bounded. */
function markShown(shown: readonly [string, number][], keys: readonly string[], t: number, config: AttributionConfig, newest: number): [string, number][] {
  const m = new Map<string, number>(shown);
  for (const k of keys) {
    const old = m.get(k);
    if (old === undefined || t > old) m.set(k, t);
  }
  return prune([...m], config, newest);
}

/** Sorted oldest first (stable), without the entries no order can use, at most maxShown (the newest). */
function prune(entries: [string, number][], config: AttributionConfig, newest: number): [string, number][] {
  const horizon = newest - config.windowMs - config.latenessMs;
  const kept = entries.filter((e) => e[1] >= horizon).sort((a, b) => a[1] - b[1]);
  return kept.length > config.maxShown ? kept.slice(kept.length - config.maxShown) : kept;
}

function newestOf(state: VisitorState, t: number): number {
  return state.lastEventAt === null || t > state.lastEventAt ? t : state.lastEventAt;
}

/**
 * The visitor's state after one event. Pure: `state` is not modified; the same object comes back
 * when the event does not concern the experiments (see `eventRole`) or repeats an order already
 * counted.
 */
export function applyEvent(state: VisitorState, event: CanonicalEvent, config: AttributionConfig): VisitorState {
  const role = eventRole(event, config);
  if (role === null) return state;
  const t = event.timestamp;
  const newest = newestOf(state, t);
  switch (role) {
    case 'exposure': {
      const e = event as EventOf<'Product List Viewed'>;
      const keys: string[] = [];
      for (const p of e.properties.products) {
        const k = productKey(p);
        if (k !== null) keys.push(k);
      }
      return {
        ...state,
        lastEventAt: newest,
        exposures: state.exposures + 1,
        firstExposureAt: state.firstExposureAt === null || t < state.firstExposureAt ? t : state.firstExposureAt,
        shown: markShown(state.shown, keys, t, config, newest),
      };
    }
    case 'click': {
      const k = productKey((event as EventOf<'Product Clicked'>).properties);
      return {
        ...state,
        lastEventAt: newest,
        clicks: state.clicks + 1,
        shown: k === null ? prune([...state.shown], config, newest) : markShown(state.shown, [k], t, config, newest),
      };
    }
    case 'order':
      return applyOrder(state, event as EventOf<'Order Completed'>, config, newest);
  }
}

function applyOrder(state: VisitorState, e: EventOf<'Order Completed'>, config: AttributionConfig, newest: number): VisitorState {
  const p = e.properties;
  if (state.orderIds.includes(p.order_id)) return state;
  const orderIds = config.maxOrderIds === 0 ? [] : [...state.orderIds, p.order_id].slice(-config.maxOrderIds);
  const shown = prune([...state.shown], config, newest);
  if (p.currency !== config.currency) {
    return { ...state, lastEventAt: newest, shown, orderIds, otherCurrencyOrders: state.otherCurrencyOrders + 1 };
  }
  const t = e.timestamp;
  const lastShown = new Map<string, number>(state.shown);
  const amount = orderAmount(e);
  let items = 0;
  let attributedItems = 0;
  let attributedMoney = 0;
  for (const line of p.products) {
    items += line.quantity;
    const k = productKey(line);
    if (k === null) continue;
    const at = lastShown.get(k);
    if (at !== undefined && at <= t && t - at <= config.windowMs) {
      attributedItems += line.quantity;
      attributedMoney += (line.price ?? 0) * line.quantity;
    }
  }
  return {
    ...state,
    lastEventAt: newest,
    shown,
    orderIds,
    orders: state.orders + 1,
    revenue: state.revenue + amount,
    multiItemOrders: state.multiItemOrders + (items >= 2 ? 1 : 0),
    attributedOrders: state.attributedOrders + (attributedItems > 0 ? 1 : 0),
    attributedRevenue: state.attributedRevenue + Math.min(attributedMoney, amount),
    attributedItems: state.attributedItems + attributedItems,
  };
}

// ---- the summary ---------------------------------------------------------------------------------

/** The numbers of one visitor that the report adds up (money in minor units of the configured currency). */
export interface VisitorSummary {
  /** Saw at least one recommendation widget. */
  exposed: boolean;
  /** Clicked a recommendation at least once. */
  engaged: boolean;
  exposures: number;
  clicks: number;
  orders: number;
  revenue: number;
  multiItemOrders: number;
  attributedOrders: number;
  attributedRevenue: number;
  attributedItems: number;
  otherCurrencyOrders: number;
}

export function visitorSummary(state: VisitorState): VisitorSummary {
  return {
    exposed: state.exposures > 0,
    engaged: state.clicks > 0,
    exposures: state.exposures,
    clicks: state.clicks,
    orders: state.orders,
    revenue: state.revenue,
    multiItemOrders: state.multiItemOrders,
    attributedOrders: state.attributedOrders,
    attributedRevenue: state.attributedRevenue,
    attributedItems: state.attributedItems,
    otherCurrencyOrders: state.otherCurrencyOrders,
  };
}
