/**
 * Shoppers who react to the recommendations they are shown (the `recs` option of the simulator;
 * docs/simulator.md, "Shoppers who react to recommendations").
 *
 * With the option on, every product page a human views shows a recommendation widget. The plan
 * holds a *widget slot* there (who, which product, when, and a seed of its own); when run.ts is
 * about to send the batch that holds the slot, it asks the recommendations API
 * (`GET /v1/merchants/{id}/recommendations`, with the merchant's public write key, the visitor's id
 * and the experiment when one is given), and `react` turns the answer into the messages the
 * storefront sends: the widget's exposure (`Product List Viewed` with `list_id`, the products shown
 * and the `attribution_token`), maybe a `Product Clicked`, and maybe a purchase of the clicked
 * product together with the product viewed (two `Product Added` and an `Order Completed`).
 *
 * The reaction follows the hidden co-purchase structure (the bundles of model.ts): the shopper looks
 * at the shown products in order; each catches its eye with probability `clickComplement` when it is
 * a bundle mate of the product viewed (a true complement), `clickOther` otherwise; the shopper clicks
 * the first that does, and buys it with the product viewed with probability `buyComplement` (a
 * complement) or `buyOther`.
 *
 * `react` is pure: its outcome is a function of the slot (so of the plan's seed) and of the API's
 * answer only. It draws from the slot's own PRNG, never from the plan's streams, so the rest of the
 * traffic is the same with the option on or off.
 */
import { minorUnits } from '../contract/money.ts';
import type { Product } from './model.ts';
import { Rng } from './rng.ts';

export const RECS_MODEL_NAMES = ['frequently-bought-together', 'others-you-may-like'] as const;
export type RecsModelName = (typeof RECS_MODEL_NAMES)[number];

/** The `recs` option of planSimulation. Every field has a default. */
export interface RecsOptions {
  /** The model the widget asks for. Default "frequently-bought-together". */
  model?: RecsModelName;
  /** An experiment to pass to the API (`experiment=ID`, which assigns the visitor). Default none. */
  experiment?: string;
  /** Products the widget asks for (and shows). Default 4. */
  limit?: number;
  /** The widget's `list_id`; it must mark a widget for the report (start with "recs"). Default "recs-pdp". */
  listId?: string;
  /** Probability that a shown product that completes the viewed product's bundle catches the shopper's eye. Default 0.2. */
  clickComplement?: number;
  /** The same for any other shown product. Default 0.01. */
  clickOther?: number;
  /** Probability that a clicked complement is bought with the product viewed. Default 0.1. */
  buyComplement?: number;
  /** The same for another clicked product. Default 0.01. */
  buyOther?: number;
}

export type ResolvedRecs = Required<Omit<RecsOptions, 'experiment'>> & { experiment: string | null };

export const DEFAULT_RECS: Readonly<Omit<ResolvedRecs, 'experiment'>> = Object.freeze({
  model: 'frequently-bought-together',
  limit: 4,
  listId: 'recs-pdp',
  clickComplement: 0.2,
  clickOther: 0.01,
  buyComplement: 0.1,
  buyOther: 0.01,
});

/** Checks the option and fills in the defaults; throws an Error naming the bad field. */
export function resolveRecs(o: RecsOptions | true): ResolvedRecs {
  const x: RecsOptions = o === true ? {} : o;
  const r: ResolvedRecs = {
    model: x.model ?? DEFAULT_RECS.model,
    experiment: x.experiment ?? null,
    limit: x.limit ?? DEFAULT_RECS.limit,
    listId: x.listId ?? DEFAULT_RECS.listId,
    clickComplement: x.clickComplement ?? DEFAULT_RECS.clickComplement,
    clickOther: x.clickOther ?? DEFAULT_RECS.clickOther,
    buyComplement: x.buyComplement ?? DEFAULT_RECS.buyComplement,
    buyOther: x.buyOther ?? DEFAULT_RECS.buyOther,
  };
  if (!RECS_MODEL_NAMES.includes(r.model)) throw new Error(`simulate: recs.model must be one of ${RECS_MODEL_NAMES.join(', ')}`);
  if (r.experiment !== null && (typeof r.experiment !== 'string' || r.experiment === '')) throw new Error('simulate: recs.experiment must be a non-empty string');
  if (!(Number.isInteger(r.limit) && r.limit >= 1 && r.limit <= 100)) throw new Error('simulate: recs.limit must be an integer in 1..100');
  if (typeof r.listId !== 'string' || r.listId === '') throw new Error('simulate: recs.listId must be a non-empty string');
  for (const k of ['clickComplement', 'clickOther', 'buyComplement', 'buyOther'] as const) {
    if (!(r[k] >= 0 && r[k] <= 1)) throw new Error(`simulate: recs.${k} must be a probability in [0, 1]`);
  }
  return r;
}

/** What a widget needs to know of its merchant's shop: shared by every slot of the merchant. */
export interface WidgetShop {
  merchantId: string;
  currency: string;
  /** Minor-unit exponent of the currency. */
  exponent: number;
  products: ReadonlyMap<string, Product>;
  /** product id → its bundle (the hidden co-purchase structure). */
  bundleOf: ReadonlyMap<string, readonly string[]>;
  /** The prefix of the merchant's order ids in this plan (drawn from the seed). */
  orderPrefix: string;
}

/** A widget on a human's product page, as planned: everything but the API's answer. */
export interface WidgetSlot {
  merchantId: string;
  anonymousId: string;
  /** The product viewed: the widget's seed product. */
  productId: string;
  /** Event time of the exposure (epoch ms); the reaction's messages follow within WIDGET_SPAN_MS of the product view. */
  time: number;
  /** The slot's number within its merchant's plan (order ids). */
  n: number;
  /** The reaction's own PRNG seed. */
  seed: number;
  /** The product view's userId (null before identify) and context, copied onto the widget's messages. */
  userId: string | null;
  context: Record<string, unknown>;
  shop: WidgetShop;
  recs: ResolvedRecs;
}

/** A slot in a batch action: its messages go before `body.batch[at]` (at the end when `at` is the length). */
export interface PlannedWidget {
  /** The slot's number in the plan (send order), across merchants. */
  id: number;
  at: number;
  slot: WidgetSlot;
}

/** The part of the API's answer the widget uses. */
export interface RecsAnswer {
  items: Array<{ product_id: string }>;
  attribution_token?: string;
  experiment?: { id: string; variant: string };
}

/** What happened with one widget: what the API answered, what the shopper did, what was sent. */
export interface WidgetOutcome {
  id: number;
  merchantId: string;
  anonymousId: string;
  productId: string;
  /** The variant the API assigned (null without an experiment, or when the API could not be asked). */
  variant: string | null;
  shown: string[];
  /** Shown products that complete the viewed product's bundle. */
  complements: number;
  clicked: string | null;
  clickedComplement: boolean;
  order: { orderId: string; totalMinor: number } | null;
  /** The messages the storefront sends for it, in order (none when nothing was shown). */
  messages: Array<Record<string, unknown>>;
  /** Set when the API could not be asked: nothing was shown. */
  error?: string;
}

/**
 * The reaction's messages follow the product view within this span (exposure 0.3–1.5 s after it,
 * the order at most 7.3 s after it); humans dwell at least 8 s on a page, so they fit in the page's
 * time, and the plan only puts a widget where the span ends inside the window.
 */
export const WIDGET_SPAN_MS = 8_000;

/** The path and query of the API request for a slot. */
export function recsRequestPath(slot: WidgetSlot): string {
  const q = new URLSearchParams({ model: slot.recs.model, product_id: slot.productId, limit: String(slot.recs.limit), visitor_id: slot.anonymousId });
  if (slot.recs.experiment !== null) q.set('experiment', slot.recs.experiment);
  return `/v1/merchants/${encodeURIComponent(slot.merchantId)}/recommendations?${q.toString()}`;
}

/** Reads the API's answer; throws when it is not an answer of the recommendations API. */
export function parseRecsAnswer(text: string): RecsAnswer {
  const x = JSON.parse(text) as Record<string, unknown>;
  const items = x?.['items'];
  if (!Array.isArray(items) || !items.every((i) => typeof (i as Record<string, unknown>)?.['product_id'] === 'string')) {
    throw new Error('the recommendations answer has no items [{ product_id }]');
  }
  const answer: RecsAnswer = { items: items.map((i) => ({ product_id: (i as { product_id: string }).product_id })) };
  if (typeof x['attribution_token'] === 'string') answer.attribution_token = x['attribution_token'];
  const e = x['experiment'] as Record<string, unknown> | undefined;
  if (e !== undefined && e !== null && typeof e['id'] === 'string' && typeof e['variant'] === 'string') answer.experiment = { id: e['id'], variant: e['variant'] };
  return answer;
}

/** Minor units as the number sent, checked to read back exactly (as model.ts does). */
function amount(minor: number, exponent: number): number {
  const a = minor / 10 ** exponent;
  if (minorUnits(a, exponent) !== minor) throw new Error(`simulator: ${minor} minor units do not round-trip as ${String(a)}`);
  return a;
}

function fields(p: Product, exponent: number): Record<string, unknown> {
  return { product_id: p.product_id, sku: p.sku, name: p.name, brand: p.brand, category: p.category, price: amount(p.priceMinor, exponent) };
}

/**
 * The shopper's reaction to the API's answer (null: the API could not be asked, nothing is shown).
 * Pure: the same slot and answer always give the same outcome, byte for byte.
 */
export function react(w: Pick<PlannedWidget, 'id' | 'slot'>, answer: RecsAnswer | null, error?: string): WidgetOutcome {
  const { slot } = w;
  const { shop, recs } = slot;
  const r = new Rng(slot.seed);
  const outcome: WidgetOutcome = {
    id: w.id,
    merchantId: slot.merchantId,
    anonymousId: slot.anonymousId,
    productId: slot.productId,
    variant: answer?.experiment?.variant ?? null,
    shown: [],
    complements: 0,
    clicked: null,
    clickedComplement: false,
    order: null,
    messages: [],
    ...(error !== undefined && { error }),
  };
  if (answer === null) return outcome;
  // A widget shows distinct products other than the one viewed, at most `limit` of them.
  const shown: string[] = [];
  for (const { product_id: id } of answer.items) if (id !== slot.productId && !shown.includes(id) && shown.length < recs.limit) shown.push(id);
  outcome.shown = shown;
  if (shown.length === 0) return outcome;
  const bundle = shop.bundleOf.get(slot.productId) ?? [];
  const isComplement = (id: string) => id !== slot.productId && bundle.includes(id);
  outcome.complements = shown.filter(isComplement).length;

  const messageId = () => `ajs-next-${r.hex(32)}`;
  let t = slot.time;
  const message = (fieldsOf: Record<string, unknown>): Record<string, unknown> => ({
    ...fieldsOf,
    messageId: messageId(),
    anonymousId: slot.anonymousId,
    ...(slot.userId !== null && { userId: slot.userId }),
    timestamp: new Date(t).toISOString(),
    context: slot.context,
  });
  const token = answer.attribution_token;
  const productOf = (id: string, position: number): Record<string, unknown> => {
    const p = shop.products.get(id);
    return { ...(p !== undefined ? fields(p, shop.exponent) : { product_id: id }), position };
  };
  outcome.messages.push(
    message({
      type: 'track',
      event: 'Product List Viewed',
      properties: { list_id: recs.listId, currency: shop.currency, products: shown.map((id, i) => productOf(id, i + 1)), ...(token !== undefined && { attribution_token: token }) },
    }),
  );

  // The shopper looks at the products in order and clicks the first that catches its eye.
  const draws = shown.map(() => r.next());
  const k = shown.findIndex((id, i) => draws[i]! < (isComplement(id) ? recs.clickComplement : recs.clickOther));
  const buyDraw = r.next();
  const delays = [r.int(800, 2500), r.int(300, 900), r.int(300, 900), r.int(500, 1500)];
  if (k < 0) return outcome;
  const clicked = shown[k]!;
  outcome.clicked = clicked;
  outcome.clickedComplement = isComplement(clicked);
  t += delays[0]!;
  outcome.messages.push(
    message({
      type: 'track',
      event: 'Product Clicked',
      properties: { ...productOf(clicked, k + 1), currency: shop.currency, list_id: recs.listId, ...(token !== undefined && { attribution_token: token }) },
    }),
  );

  // The purchase: the clicked product with the one viewed (both must be products of the shop).
  const viewed = shop.products.get(slot.productId);
  const bought = shop.products.get(clicked);
  if (viewed === undefined || bought === undefined) return outcome;
  if (!(buyDraw < (outcome.clickedComplement ? recs.buyComplement : recs.buyOther))) return outcome;
  const cartId = `cart-${shop.orderPrefix}-w${slot.n}`;
  for (const [i, p] of [viewed, bought].entries()) {
    t += delays[1 + i]!;
    outcome.messages.push(
      message({ type: 'track', event: 'Product Added', properties: { ...fields(p, shop.exponent), quantity: 1, cart_id: cartId, currency: shop.currency, value: amount(p.priceMinor, shop.exponent) } }),
    );
  }
  t += delays[3]!;
  const subtotal = viewed.priceMinor + bought.priceMinor;
  // The storefront's shipping rule (model.ts): free from 75.00, else 4.90.
  const scale = shop.exponent >= 2 ? 10 ** (shop.exponent - 2) : 1;
  const shipping = subtotal >= 7500 * scale ? 0 : 490 * scale;
  const orderId = `o-${shop.orderPrefix}-w${slot.n}`;
  outcome.order = { orderId, totalMinor: subtotal + shipping };
  outcome.messages.push(
    message({
      type: 'track',
      event: 'Order Completed',
      properties: {
        order_id: orderId,
        checkout_id: `chk-${shop.orderPrefix}-w${slot.n}`,
        total: amount(subtotal + shipping, shop.exponent),
        subtotal: amount(subtotal, shop.exponent),
        revenue: amount(subtotal, shop.exponent),
        shipping: amount(shipping, shop.exponent),
        tax: 0,
        currency: shop.currency,
        products: [viewed, bought].map((p) => ({ ...fields(p, shop.exponent), quantity: 1 })),
      },
    }),
  );
  return outcome;
}

/** A batch's messages with its widgets' messages in place, from their outcomes (by plan id). */
export function expandBatch(batch: ReadonlyArray<Record<string, unknown>>, widgets: readonly PlannedWidget[] | undefined, outcomeOf: (id: number) => WidgetOutcome | undefined): Array<Record<string, unknown>> {
  if (widgets === undefined || widgets.length === 0) return [...batch];
  const out: Array<Record<string, unknown>> = [];
  let i = 0;
  for (const w of widgets) {
    while (i < w.at) out.push(batch[i++]!);
    const o = outcomeOf(w.id);
    if (o !== undefined) out.push(...o.messages);
  }
  while (i < batch.length) out.push(batch[i++]!);
  return out;
}
