/**
 * A canonical event (as the pipeline writes it to `events.filtered`) → one Meta Conversions API
 * server event. Pure: the forwarder decides separately whether to send it (merchant enabled, event
 * not too old) and sends it. docs/meta-capi.md describes every field.
 *
 * Sources: Meta's "Server Event Parameters" and "Custom Data Parameters"
 * (https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event,
 * …/parameters/custom-data) and, where a canonical field could feed more than one Meta field,
 * Segment's "Facebook Conversions API (Actions)" destination defaults (Purchase and
 * InitiateCheckout `value` ← `revenue`, `event_id` ← `messageId`, `event_source_url` ←
 * `context.page.url`).
 */
import type { CanonicalEvent, EventOf, Product } from '../contract/schema.ts';
import { currencyExponent } from '../contract/currencies.ts';
import type { PipelineEvent } from '../pipeline/topology.ts';
import { mergeTraits, userDataFrom, type UserData } from './user-data.ts';

/** The canonical events forwarded to Meta, and the Meta standard event each becomes. */
export const META_EVENT_NAMES = {
  'Page Viewed': 'PageView',
  'Product Viewed': 'ViewContent',
  'Product Added': 'AddToCart',
  'Checkout Started': 'InitiateCheckout',
  'Order Completed': 'Purchase',
  'Products Searched': 'Search',
} as const satisfies Partial<Record<CanonicalEvent['event'], string>>;

export type ForwardedEventName = keyof typeof META_EVENT_NAMES;
export type MetaEventName = (typeof META_EVENT_NAMES)[ForwardedEventName];

/** One element of `custom_data.contents`. */
export interface Content {
  /** The product's `product_id`, else its `sku`. */
  id: string;
  quantity: number;
  /** Unit price in the currency's major unit (19.99), when the product has a price. */
  item_price?: number;
}

/** Meta's `custom_data`: only the fields that apply to the event are present. */
export interface CustomData {
  /** In the currency's major unit, exact: 1999 EUR minor units → 19.99, 1999 JPY → 1999, 1999 KWD → 1.999. */
  value?: number;
  /** ISO 4217, upper case. */
  currency?: string;
  content_ids?: string[];
  contents?: Content[];
  content_type?: 'product';
  num_items?: number;
  order_id?: string;
  search_string?: string;
}

/** Meta's server event (one element of the `data` array of a Conversions API request). */
export interface ServerEvent {
  event_name: MetaEventName;
  /** Unix seconds (integer): the canonical event's `timestamp`, rounded down. */
  event_time: number;
  /** The canonical `messageId`: the browser pixel sends the same id, so Meta de-duplicates the pair. */
  event_id: string;
  action_source: 'website';
  /** The page the event happened on (http or https), when known. */
  event_source_url?: string;
  user_data: UserData;
  custom_data?: CustomData;
  /** Never set here. */
  opt_out?: boolean;
}

export type ToServerEventResult = { ok: true; event: ServerEvent } | { ok: false; reason: 'not_forwarded' };

/**
 * The key under which `identityTraitsOf` keeps the identified user's id among the identity traits.
 * It is not a trait: `toServerEvent` takes it out before the traits are read, and uses it as the
 * user id (→ `external_id`) of the visitor's later events that carry none.
 */
export const IDENTITY_USER_ID = '__userId';

function isForwarded(name: CanonicalEvent['event']): name is ForwardedEventName {
  return Object.hasOwn(META_EVENT_NAMES, name);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * What a visitor's identify event tells about them, to keep as the visitor's identity: the identify's
 * traits, plus its user id under `IDENTITY_USER_ID`. Null for any other event, and for an identify
 * with neither traits nor user id. A forwarder that keeps one identity per visitor can accumulate
 * successive identifies with `mergeTraits(stored, identityTraitsOf(event))`.
 */
export function identityTraitsOf(event: CanonicalEvent): Record<string, unknown> | null {
  if (event.type !== 'identify') return null;
  const out: Record<string, unknown> = {};
  if (isRecord(event.traits)) {
    for (const [k, v] of Object.entries(event.traits)) {
      if (k !== IDENTITY_USER_ID) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  if (event.userId !== null) out[IDENTITY_USER_ID] = event.userId;
  return Object.keys(out).length === 0 ? null : out;
}

/** The identity's traits and user id, or nothing when the identity is another user's. */
function identityOf(identityTraits: Record<string, unknown> | null, userId: string | null): { traits: Record<string, unknown> | null; userId: string | null } {
  if (!isRecord(identityTraits)) return { traits: null, userId: null };
  const id = identityTraits[IDENTITY_USER_ID];
  const identityUserId = typeof id === 'string' && id !== '' ? id : null;
  // A browser shared by two accounts: the identity of the one who logged in before says nothing of this one.
  if (userId !== null && identityUserId !== null && identityUserId !== userId) return { traits: null, userId: null };
  const traits: Record<string, unknown> = { ...identityTraits };
  delete traits[IDENTITY_USER_ID];
  return { traits, userId: identityUserId };
}

const HTTP_URL = /^https?:\/\/\S+$/i;

function eventSourceUrl(e: CanonicalEvent): string | null {
  const fromContext = e.context.page?.url ?? null;
  if (fromContext !== null && HTTP_URL.test(fromContext)) return fromContext;
  if (e.event === 'Page Viewed' && e.properties.url !== null && HTTP_URL.test(e.properties.url)) return e.properties.url;
  return null;
}

/** Minor units → the currency's major unit. Both operands are exact doubles, and IEEE division rounds
 * correctly, so the result is the double nearest the decimal amount: 1999 / 100 === 19.99. */
function major(minor: number, currency: string): number | undefined {
  const exponent = currencyExponent(currency);
  if (exponent === undefined || !Number.isSafeInteger(minor)) return undefined;
  return minor / 10 ** exponent;
}

/** A product-line amount in minor units: price × quantity, or null when unknown or not exact. */
function lineMinor(price: number | null, quantity: number): number | null {
  if (price === null) return null;
  const total = price * quantity;
  return Number.isSafeInteger(total) ? total : null;
}

type ProductLine = Pick<Product, 'product_id' | 'sku' | 'price' | 'quantity'>;

function contentId(p: ProductLine): string | null {
  return p.product_id ?? p.sku ?? null;
}

function contentOf(p: ProductLine, currency: string): Content | null {
  const id = contentId(p);
  if (id === null) return null;
  const c: Content = { id, quantity: p.quantity };
  const price = p.price === null ? undefined : major(p.price, currency);
  if (price !== undefined) c.item_price = price;
  return c;
}

/** The sum of price × quantity over the products that have a price; null when none has. */
function linesTotal(products: readonly Product[]): number | null {
  let sum: number | null = null;
  for (const p of products) {
    const line = lineMinor(p.price, p.quantity);
    if (line !== null) sum = (sum ?? 0) + line;
  }
  return sum !== null && Number.isSafeInteger(sum) ? sum : null;
}

/** contents, content_ids, content_type and num_items of a list of products. */
function productList(products: readonly Product[], currency: string, withIds: boolean): CustomData {
  const out: CustomData = {};
  const contents: Content[] = [];
  const ids: string[] = [];
  let items = 0;
  for (const p of products) {
    items += p.quantity;
    const c = contentOf(p, currency);
    if (c === null) continue;
    contents.push(c);
    if (!ids.includes(c.id)) ids.push(c.id);
  }
  if (withIds && ids.length > 0) out.content_ids = ids;
  if (contents.length > 0) {
    out.contents = contents;
    out.content_type = 'product';
  }
  if (products.length > 0 && Number.isSafeInteger(items)) out.num_items = items;
  return out;
}

function withValue(cd: CustomData, minor: number | null, currency: string): CustomData {
  const value = minor === null ? undefined : major(minor, currency);
  return value === undefined ? { currency, ...cd } : { value, currency, ...cd };
}

/** ViewContent, AddToCart: the one product. */
function productCustomData(p: EventOf<'Product Viewed'>['properties'] | EventOf<'Product Added'>['properties']): CustomData {
  const out: CustomData = {};
  const content = contentOf(p, p.currency);
  if (content !== null) {
    out.content_ids = [content.id];
    out.contents = [content];
    out.content_type = 'product';
  }
  return withValue(out, lineMinor(p.price, p.quantity) ?? p.value, p.currency);
}

/** InitiateCheckout: the cart's value and lines. */
function checkoutCustomData(p: EventOf<'Checkout Started'>['properties']): CustomData {
  const lines = productList(p.products, p.currency, false);
  return withValue(lines, p.revenue ?? p.value ?? linesTotal(p.products), p.currency);
}

/** Purchase: the order's value (revenue, as Segment's destination), its lines and id. */
function purchaseCustomData(p: EventOf<'Order Completed'>['properties']): CustomData {
  const lines = productList(p.products, p.currency, true);
  return withValue({ ...lines, order_id: p.order_id }, p.revenue ?? p.total ?? linesTotal(p.products) ?? 0, p.currency);
}

function customDataOf(e: CanonicalEvent): CustomData | null {
  switch (e.event) {
    case 'Product Viewed':
    case 'Product Added':
      return productCustomData(e.properties);
    case 'Checkout Started':
      return checkoutCustomData(e.properties);
    case 'Order Completed':
      return purchaseCustomData(e.properties);
    case 'Products Searched':
      return e.properties.query !== null && e.properties.query.trim() !== '' ? { search_string: e.properties.query } : null;
    default:
      return null;
  }
}

/**
 * The Meta server event for a pipeline event, or `not_forwarded` for a canonical event Meta gets
 * none for. `identityTraits` is what `identityTraitsOf` gave for the visitor's latest identify (or
 * null): it fills the parameters the event's own `context.traits` lack, and its user id stands in
 * for an event without one; it is ignored when it belongs to another user id than the event's.
 */
export function toServerEvent(pe: PipelineEvent, identityTraits: Record<string, unknown> | null): ToServerEventResult {
  const e = pe.event;
  const name = e.event;
  if (!isForwarded(name)) return { ok: false, reason: 'not_forwarded' };
  const identity = identityOf(identityTraits, e.userId);
  const traits = mergeTraits(identity.traits, e.context.traits);
  const user_data = userDataFrom(traits, {
    userId: e.userId ?? identity.userId,
    ip: e.context.ip,
    userAgent: e.context.userAgent,
    fbc: e.context.fbc,
    fbp: e.context.fbp,
  });
  const url = eventSourceUrl(e);
  const custom = customDataOf(e);
  const event: ServerEvent = {
    event_name: META_EVENT_NAMES[name],
    event_time: Math.floor(e.timestamp / 1000),
    event_id: e.messageId,
    action_source: 'website',
    ...(url === null ? {} : { event_source_url: url }),
    user_data,
    ...(custom === null ? {} : { custom_data: custom }),
  };
  return { ok: true, event };
}
