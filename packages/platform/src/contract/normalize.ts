/**
 * Segment Spec message → canonical event (docs/events.md). A pure function of the message and the
 * ingest context, called by the collector for every message of a request; it must cost a few
 * microseconds (bench/contract.bench.ts), so it reads fields directly, compiles nothing, creates no
 * closure per call, and builds every object in one literal so that V8 keeps one shape per event name
 * (two with `extra`, which is added only when a client sent unknown properties).
 *
 * Refusals are thrown inside as a small `Reject` (not an Error: no stack is captured) and caught once
 * in `normalizeEvent`, which returns them as `{ ok: false, reason }`.
 */
import { PlatformErrors } from '../errors.ts';
import type { PlatformErrorCode, PlatformErrorSpecOf } from '../errors.ts';
import { normalizeCurrency, currencyExponent } from './currencies.ts';
import { TRACK_EVENT_NAMES, canonicalEventName } from './event-names.ts';
import { minorUnits, moneyProblem } from './money.ts';
import { CANONICAL_EVENT_VERSION } from './schema.ts';
import type { CanonicalEvent, EventContext, Product } from './schema.ts';
import { parseTimestamp } from './time.ts';

export type SegmentType = 'track' | 'page' | 'identify';

export interface IngestContext {
  merchantId: string;
  /** The merchant's ISO 4217 currency, used when an event with money names none. */
  defaultCurrency: string;
  /** When the collector received the request, epoch ms. */
  receivedAt: number;
  /** The batch-level `sentAt` of a /v1/batch request, raw (analytics-node sends it there). */
  batchSentAt?: unknown;
  /** A batch-level `context` object (Segment allows one); the message's context wins field by field. */
  batchContext?: unknown;
  /** The client IP of the request, used when the message has no `context.ip`. */
  requestIp?: string;
  /** The request's User-Agent header, used when the message has no `context.userAgent`. */
  requestUserAgent?: string;
  /** The value of a trusted CDN country header, when the operator configured one. */
  cdnCountry?: string;
  /** How far after receivedAt the corrected event time may be. Default 1 hour. */
  maxFutureMs?: number;
  /** How far before receivedAt the corrected event time may be. Default 30 days. */
  maxPastMs?: number;
}

export interface RejectReason {
  code: PlatformErrorCode;
  /** A sentence for the developer who sent the event: what is wrong and what is expected. */
  message: string;
  /** Where in the message, e.g. `properties.products[1].price`. */
  path?: string;
}

export type NormalizeResult = { ok: true; event: CanonicalEvent } | { ok: false; reason: RejectReason };

export const DEFAULT_MAX_FUTURE_MS = 3_600_000;
export const DEFAULT_MAX_PAST_MS = 30 * 24 * 3_600_000;
/** Longest accepted messageId, anonymousId, userId and sessionId. */
export const MAX_ID_LENGTH = 256;
/**
 * Largest encoded canonical event (UTF-8 JSON), as Segment's 32 KB per message. `normalizeEvent`
 * does not encode; whoever encodes checks it (`checkEventSize`), the collector on every event.
 */
export const MAX_EVENT_BYTES = 32 * 1024;
/** The largest |epoch ms| of a JavaScript Date. */
const MAX_DATE_MS = 8.64e15;

/**
 * Segment's server-side libraries. Their requests come from the merchant's servers, so the request's
 * IP address, User-Agent header and CDN country describe that server, not the shopper: they are not
 * used for these messages (Segment too fills in the IP "for client side events only":
 * https://segment.com/docs/connections/spec/common/#context-fields-automatically-collected).
 */
export const SERVER_LIBRARIES: ReadonlySet<string> = new Set([
  '@segment/analytics-node',
  'analytics-node',
  'analytics-python',
  'analytics-ruby',
  'analytics-go',
  'analytics-java',
  'analytics-php',
  'analytics.net',
]);

type Obj = Record<string, unknown>;

class Reject {
  code: PlatformErrorCode;
  message: string;
  path: string | undefined;
  constructor(code: PlatformErrorCode, message: string, path: string | undefined) {
    this.code = code;
    this.message = message;
    this.path = path;
  }
}

function fail(spec: PlatformErrorSpecOf, message: string, path?: string): never {
  throw new Reject(spec.code, message, path);
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function at(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`;
}

/** How a value is named in a message: `a number (42)`, `an object`, `"abc"`. */
function describe(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return `the string ${JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v)}`;
    case 'number':
      return Number.isFinite(v) ? `the number ${v}` : 'a number that is not finite';
    case 'boolean':
      return `the boolean ${v}`;
    case 'undefined':
      return 'nothing';
    case 'object':
      return v === null ? 'null' : Array.isArray(v) ? 'an array' : 'an object';
    default:
      return `a ${typeof v}`;
  }
}

/** A text field: a string as given (empty → null), a finite number as its decimal string, or null. */
function text(v: unknown, prefix: string, key: string): string | null {
  if (typeof v === 'string') return v === '' ? null : v;
  if (v === undefined || v === null) return null;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  const path = at(prefix, key);
  return fail(PlatformErrors.EVENT_SCHEMA, `${path} must be a string; got ${describe(v)}.`, path);
}

/** An identifier: a string, or a safe integer turned into its string; empty → null. */
function ident(v: unknown, path: string): string | null {
  let s: string;
  if (typeof v === 'string') {
    if (v === '') return null;
    s = v;
  } else if (v === undefined || v === null) {
    return null;
  } else if (typeof v === 'number' && Number.isSafeInteger(v)) {
    s = String(v);
  } else {
    return fail(
      PlatformErrors.EVENT_SCHEMA,
      `${path} must be a string (a whole number is accepted and turned into one); got ${describe(v)}.`,
      path,
    );
  }
  if (s.length > MAX_ID_LENGTH) {
    fail(PlatformErrors.EVENT_SCHEMA, `${path} is ${s.length} characters long; at most ${MAX_ID_LENGTH} are accepted.`, path);
  }
  return s;
}

/** An optional nested object of the message: undefined when absent, refused when not an object. */
function objectAt(v: unknown, path: string): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (isObj(v)) return v;
  return fail(PlatformErrors.EVENT_SCHEMA, `${path} must be an object; got ${describe(v)}.`, path);
}

function time(v: unknown, path: string, what: string): number | null {
  if (v === undefined || v === null) return null;
  const t = parseTimestamp(v);
  if (Number.isNaN(t)) {
    fail(
      PlatformErrors.INVALID_TIMESTAMP,
      `${what} is ${describe(v)}, which is not a valid time; expected an ISO-8601 date-time with a time zone such as "2024-05-01T12:30:00.000Z", or epoch milliseconds.`,
      path,
    );
  }
  return t;
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/** A limit, said exactly: "1 hour", "30 days", "90 seconds". */
function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} day${ms === 86_400_000 ? '' : 's'}`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} hour${ms === 3_600_000 ? '' : 's'}`;
  if (ms % 60_000 === 0) return `${ms / 60_000} minute${ms === 60_000 ? '' : 's'}`;
  if (ms % 1_000 === 0) return `${ms / 1_000} seconds`;
  return `${ms} ms`;
}

/** A measured gap, said roughly: "about 2 hours", "about 61 days". */
function roughly(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  const [n, unit] = ms < 90_000 ? [ms / 1_000, 'second'] : ms < 5_400_000 ? [ms / 60_000, 'minute'] : ms < 129_600_000 ? [ms / 3_600_000, 'hour'] : [ms / 86_400_000, 'day'];
  const r = Math.round(n);
  return `${r === n ? '' : 'about '}${r} ${unit}${r === 1 ? '' : 's'}`;
}

// ---- money -------------------------------------------------------------------------------------

/** The event's currency, set by `resolveCurrency` (one event is normalized at a time). */
let currencyCode = '';
let currencyExp = 2;

function resolveCurrency(raw: unknown, ctx: IngestContext): void {
  if (raw === undefined || raw === null || raw === '') {
    const code = typeof ctx.defaultCurrency === 'string' ? normalizeCurrency(ctx.defaultCurrency) : undefined;
    if (code === undefined) {
      fail(
        PlatformErrors.INVALID_CURRENCY,
        `The event names no currency and the merchant's default currency ${describe(ctx.defaultCurrency)} is not an ISO 4217 code; send properties.currency (such as "EUR") or fix the merchant's currency.`,
        'properties.currency',
      );
    }
    currencyCode = code;
  } else {
    const code = typeof raw === 'string' ? normalizeCurrency(raw) : undefined;
    if (code === undefined) {
      fail(
        PlatformErrors.INVALID_CURRENCY,
        `properties.currency is ${describe(raw)}, which is not an active ISO 4217 currency code; expected three letters such as "USD", "EUR" or "JPY".`,
        'properties.currency',
      );
    }
    currencyCode = code;
  }
  currencyExp = currencyExponent(currencyCode)!;
}

/** A money field in minor units of the event's currency; null when absent. */
function money(v: unknown, prefix: string, key: string): number | null {
  if (v === undefined || v === null || v === '') return null;
  const r = minorUnits(v, currencyExp);
  if (Number.isSafeInteger(r)) {
    if (r >= 0) return r;
    // A discount is an amount taken off: storefronts that send it negative mean the same thing.
    if (key === 'discount') return -r;
  }
  const path = at(prefix, key);
  if (Number.isSafeInteger(r)) {
    fail(PlatformErrors.INVALID_MONEY, `${path} is ${describe(v)}; amounts must not be negative (only discount may be, and is stored as the amount taken off).`, path);
  }
  return fail(PlatformErrors.INVALID_MONEY, moneyProblem(v, currencyExp, path), path);
}

/** A whole number from a number or a string of digits; NaN otherwise. */
function whole(v: unknown): number {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : NaN;
  if (typeof v !== 'string' || v.length === 0 || v.length > 16) return NaN;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return NaN;
  }
  return Number(v);
}

function quantity(v: unknown, prefix: string): number {
  if (v === undefined || v === null || v === '') return 1;
  const n = whole(v);
  if (n >= 1) return n;
  const path = at(prefix, 'quantity');
  return fail(PlatformErrors.EVENT_SCHEMA, `${path} must be a whole number of at least 1; got ${describe(v)}.`, path);
}

function position(v: unknown, prefix: string): number | null {
  if (v === undefined || v === null || v === '') return null;
  const n = whole(v);
  if (n >= 0) return n;
  const path = at(prefix, 'position');
  return fail(PlatformErrors.EVENT_SCHEMA, `${path} must be a whole number of at least 0 (the position in a list); got ${describe(v)}.`, path);
}

// ---- properties --------------------------------------------------------------------------------

const PRODUCT_FIELDS = ['product_id', 'sku', 'name', 'brand', 'category', 'variant', 'price', 'quantity', 'position', 'url', 'image_url', 'coupon'];
const PRODUCT_KEYS = new Set(PRODUCT_FIELDS);
const PRODUCT_EVENT_KEYS = new Set([...PRODUCT_FIELDS, 'cart_id', 'value', 'currency', 'session_id']);
const SEARCHED_KEYS = new Set(['query', 'session_id']);
const LIST_KEYS = new Set(['list_id', 'category', 'currency', 'products', 'session_id']);
const CART_KEYS = new Set(['cart_id', 'currency', 'products', 'session_id']);
const CHECKOUT_KEYS = new Set(['checkout_id', 'order_id', 'affiliation', 'value', 'revenue', 'shipping', 'tax', 'discount', 'coupon', 'currency', 'products', 'session_id']);
const ORDER_KEYS = new Set(['order_id', 'checkout_id', 'affiliation', 'total', 'subtotal', 'revenue', 'shipping', 'tax', 'discount', 'coupon', 'currency', 'products', 'session_id']);
const PAGE_KEYS = new Set(['name', 'category', 'path', 'url', 'referrer', 'title', 'search', 'session_id']);
const EMPTY: Obj = Object.freeze({}) as Obj;

/** The entries of `src` whose keys are not in `known`, as given; undefined when there are none. */
function extras(src: Obj, known: ReadonlySet<string>): Obj | undefined {
  let extra: Obj | undefined;
  for (const k in src) {
    if (known.has(k)) continue;
    const v = src[k];
    if (v === undefined) continue;
    extra ??= {};
    if (k === '__proto__') Object.defineProperty(extra, k, { value: v, enumerable: true, writable: true, configurable: true });
    else extra[k] = v;
  }
  return extra;
}

function product(src: Obj, prefix: string): Product {
  const p: Product = {
    product_id: text(src['product_id'], prefix, 'product_id'),
    sku: text(src['sku'], prefix, 'sku'),
    name: text(src['name'], prefix, 'name'),
    brand: text(src['brand'], prefix, 'brand'),
    category: text(src['category'], prefix, 'category'),
    variant: text(src['variant'], prefix, 'variant'),
    price: money(src['price'], prefix, 'price'),
    quantity: quantity(src['quantity'], prefix),
    position: position(src['position'], prefix),
    url: text(src['url'], prefix, 'url'),
    image_url: text(src['image_url'], prefix, 'image_url'),
    coupon: text(src['coupon'], prefix, 'coupon'),
  };
  const extra = extras(src, PRODUCT_KEYS);
  if (extra !== undefined) p.extra = extra;
  return p;
}

function products(v: unknown): Product[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    return fail(PlatformErrors.EVENT_SCHEMA, `properties.products must be an array of product objects; got ${describe(v)}.`, 'properties.products');
  }
  const out: Product[] = [];
  for (let i = 0; i < v.length; i++) {
    const item: unknown = v[i];
    const prefix = `properties.products[${i}]`;
    if (!isObj(item)) fail(PlatformErrors.EVENT_SCHEMA, `${prefix} must be a product object; got ${describe(item)}.`, prefix);
    out.push(product(item, prefix));
  }
  return out;
}

type Props = Obj & { extra?: Obj };

function withExtra<P extends Props>(props: P, src: Obj, known: ReadonlySet<string>): P {
  const extra = extras(src, known);
  if (extra !== undefined) props.extra = extra;
  return props;
}

const P = 'properties';

function trackProperties(name: string, p: Obj, ctx: IngestContext): Props {
  switch (name) {
    case 'Products Searched': {
      const q = p['query'];
      const structured = typeof q === 'object' && q !== null; // the spec allows an object; kept in extra
      const props: Props = withExtra({ query: structured ? null : text(q, P, 'query') }, p, SEARCHED_KEYS);
      if (structured) (props.extra ??= {})['query'] = q;
      return props;
    }
    case 'Product List Viewed':
      resolveCurrency(p['currency'], ctx);
      return withExtra(
        {
          list_id: text(p['list_id'], P, 'list_id'),
          category: text(p['category'], P, 'category'),
          currency: currencyCode,
          products: products(p['products']),
        },
        p,
        LIST_KEYS,
      );
    case 'Cart Viewed':
      resolveCurrency(p['currency'], ctx);
      return withExtra({ cart_id: text(p['cart_id'], P, 'cart_id'), currency: currencyCode, products: products(p['products']) }, p, CART_KEYS);
    case 'Checkout Started':
      resolveCurrency(p['currency'], ctx);
      return withExtra(
        {
          checkout_id: text(p['checkout_id'], P, 'checkout_id'),
          order_id: text(p['order_id'], P, 'order_id'),
          affiliation: text(p['affiliation'], P, 'affiliation'),
          value: money(p['value'], P, 'value'),
          revenue: money(p['revenue'], P, 'revenue'),
          shipping: money(p['shipping'], P, 'shipping'),
          tax: money(p['tax'], P, 'tax'),
          discount: money(p['discount'], P, 'discount'),
          coupon: text(p['coupon'], P, 'coupon'),
          currency: currencyCode,
          products: products(p['products']),
        },
        p,
        CHECKOUT_KEYS,
      );
    case 'Order Completed': {
      const orderId = text(p['order_id'], P, 'order_id');
      if (orderId === null) {
        fail(
          PlatformErrors.EVENT_SCHEMA,
          'An Order Completed event needs properties.order_id (a string): it identifies the order, so that the same order is never counted twice.',
          'properties.order_id',
        );
      }
      resolveCurrency(p['currency'], ctx);
      return withExtra(
        {
          order_id: orderId,
          checkout_id: text(p['checkout_id'], P, 'checkout_id'),
          affiliation: text(p['affiliation'], P, 'affiliation'),
          total: money(p['total'], P, 'total'),
          subtotal: money(p['subtotal'], P, 'subtotal'),
          revenue: money(p['revenue'], P, 'revenue'),
          shipping: money(p['shipping'], P, 'shipping'),
          tax: money(p['tax'], P, 'tax'),
          discount: money(p['discount'], P, 'discount'),
          coupon: text(p['coupon'], P, 'coupon'),
          currency: currencyCode,
          products: products(p['products']),
        },
        p,
        ORDER_KEYS,
      );
    }
    default:
      // Product Clicked, Viewed, Added, Removed: one product at the top level of properties.
      resolveCurrency(p['currency'], ctx);
      return withExtra(
        {
          product_id: text(p['product_id'], P, 'product_id'),
          sku: text(p['sku'], P, 'sku'),
          name: text(p['name'], P, 'name'),
          brand: text(p['brand'], P, 'brand'),
          category: text(p['category'], P, 'category'),
          variant: text(p['variant'], P, 'variant'),
          price: money(p['price'], P, 'price'),
          quantity: quantity(p['quantity'], P),
          position: position(p['position'], P),
          url: text(p['url'], P, 'url'),
          image_url: text(p['image_url'], P, 'image_url'),
          coupon: text(p['coupon'], P, 'coupon'),
          cart_id: text(p['cart_id'], P, 'cart_id'),
          value: money(p['value'], P, 'value'),
          currency: currencyCode,
        },
        p,
        PRODUCT_EVENT_KEYS,
      );
  }
}

// ---- context -----------------------------------------------------------------------------------

/** The message context's field unless it is null or absent, else the batch context's. */
function pick(mc: Obj | undefined, bc: Obj | undefined, key: string): unknown {
  const v = mc === undefined ? undefined : mc[key];
  return v !== undefined && v !== null ? v : bc === undefined ? undefined : bc[key];
}

/** ISO 3166 alpha-2 codes upper-cased; Cloudflare's "XX" (unknown) dropped; anything else as sent. */
function country(raw: string | null): string | null {
  if (raw === null || raw.length !== 2) return raw;
  const a = raw.charCodeAt(0) | 32;
  const b = raw.charCodeAt(1) | 32;
  if (a < 97 || a > 122 || b < 97 || b > 122) return raw;
  return a === 120 && b === 120 ? null : raw.toUpperCase();
}

function decodeParam(s: string): string | null {
  if (s === '') return null;
  let v = s;
  if (v.indexOf('+') >= 0) v = v.replaceAll('+', ' ');
  if (v.indexOf('%') >= 0) {
    try {
      v = decodeURIComponent(v);
    } catch {
      // A malformed escape: keep the text as sent.
    }
  }
  return v;
}

/** `utm_source`, `utm_medium`, `utm_campaign`, `utm_term`, `utm_content` of a URL (or `?search`). */
export function campaignFromUrl(url: string): EventContext['campaign'] {
  let end = url.indexOf('#');
  if (end < 0) end = url.length;
  const q = url.indexOf('?');
  if (q < 0 || q > end) return null;
  const utm = url.indexOf('utm_', q);
  if (utm < 0 || utm > end) return null;
  let source: string | null = null;
  let medium: string | null = null;
  let name: string | null = null;
  let term: string | null = null;
  let content: string | null = null;
  let i = q + 1;
  while (i < end) {
    let amp = url.indexOf('&', i);
    if (amp < 0 || amp > end) amp = end;
    if (url.startsWith('utm_', i)) {
      const eq = url.indexOf('=', i);
      if (eq > 0 && eq < amp) {
        const value = decodeParam(url.slice(eq + 1, amp));
        switch (url.slice(i + 4, eq)) {
          case 'source':
            source ??= value;
            break;
          case 'medium':
            medium ??= value;
            break;
          case 'campaign':
            name ??= value;
            break;
          case 'term':
            term ??= value;
            break;
          case 'content':
            content ??= value;
            break;
        }
      }
    }
    i = amp + 1;
  }
  if (source === null && medium === null && name === null && term === null && content === null) return null;
  return { source, medium, name, term, content };
}

function buildContext(mc: Obj | undefined, bc: Obj | undefined, ctx: IngestContext, channel: unknown, pageProps: Obj | undefined): EventContext {
  // library: an object {name, version}, or (old libraries) a bare name.
  const lib = pick(mc, bc, 'library');
  let library: EventContext['library'] = null;
  if (typeof lib === 'string') {
    library = { name: lib === '' ? null : lib, version: null };
  } else if (lib !== undefined && lib !== null) {
    const l = objectAt(lib, 'context.library')!;
    library = { name: text(l['name'], 'context.library', 'name'), version: text(l['version'], 'context.library', 'version') };
  }
  const serverSide = channel === 'server' || (library !== null && library.name !== null && SERVER_LIBRARIES.has(library.name.toLowerCase()));

  const mp = mc === undefined ? undefined : objectAt(mc['page'], 'context.page');
  const bp = bc === undefined ? undefined : objectAt(bc['page'], 'context.page');
  const pp = pageProps;
  let url = text(pick(mp, bp, 'url'), 'context.page', 'url');
  let path = text(pick(mp, bp, 'path'), 'context.page', 'path');
  let referrer = text(pick(mp, bp, 'referrer'), 'context.page', 'referrer');
  let title = text(pick(mp, bp, 'title'), 'context.page', 'title');
  let search = text(pick(mp, bp, 'search'), 'context.page', 'search');
  if (pp !== undefined) {
    // A page call describes its page in properties too (analytics.js sends both; server libraries only properties).
    url ??= text(pp['url'], P, 'url');
    path ??= text(pp['path'], P, 'path');
    referrer ??= text(pp['referrer'], P, 'referrer');
    title ??= text(pp['title'], P, 'title');
    search ??= text(pp['search'], P, 'search');
  }
  const page = url === null && path === null && referrer === null && title === null && search === null ? null : { url, path, referrer, title, search };

  const mcamp = mc === undefined ? undefined : objectAt(mc['campaign'], 'context.campaign');
  const bcamp = bc === undefined ? undefined : objectAt(bc['campaign'], 'context.campaign');
  let campaign: EventContext['campaign'] = null;
  if (mcamp !== undefined || bcamp !== undefined) {
    campaign = {
      source: text(pick(mcamp, bcamp, 'source'), 'context.campaign', 'source'),
      medium: text(pick(mcamp, bcamp, 'medium'), 'context.campaign', 'medium'),
      name: text(pick(mcamp, bcamp, 'name'), 'context.campaign', 'name'),
      term: text(pick(mcamp, bcamp, 'term'), 'context.campaign', 'term'),
      content: text(pick(mcamp, bcamp, 'content'), 'context.campaign', 'content'),
    };
  } else if (url !== null) {
    campaign = campaignFromUrl(url);
  } else if (search !== null) {
    campaign = campaignFromUrl(search.charCodeAt(0) === 63 /* ? */ ? search : `?${search}`);
  }

  const ml = mc === undefined ? undefined : objectAt(mc['location'], 'context.location');
  const bl = bc === undefined ? undefined : objectAt(bc['location'], 'context.location');
  let countryValue = country(text(pick(ml, bl, 'country'), 'context.location', 'country'));
  if (countryValue === null && !serverSide && ctx.cdnCountry !== undefined && ctx.cdnCountry !== '') countryValue = country(ctx.cdnCountry);

  const traits = pick(mc, bc, 'traits');
  let ip = text(pick(mc, bc, 'ip'), 'context', 'ip');
  if (ip === null && !serverSide && ctx.requestIp !== undefined && ctx.requestIp !== '') ip = ctx.requestIp;
  let userAgent = text(pick(mc, bc, 'userAgent'), 'context', 'userAgent');
  if (userAgent === null && !serverSide && ctx.requestUserAgent !== undefined && ctx.requestUserAgent !== '') userAgent = ctx.requestUserAgent;

  return {
    ip,
    userAgent,
    page,
    campaign,
    locale: text(pick(mc, bc, 'locale'), 'context', 'locale'),
    timezone: text(pick(mc, bc, 'timezone'), 'context', 'timezone'),
    country: countryValue,
    library,
    traits: traits === undefined || traits === null ? null : objectAt(traits, 'context.traits')!,
    fbp: text(pick(mc, bc, 'fbp'), 'context', 'fbp'),
    fbc: text(pick(mc, bc, 'fbc'), 'context', 'fbc'),
  };
}

// ---- the message -------------------------------------------------------------------------------

const UNKNOWN_EVENT_HINT = `expected one of the Segment E-commerce v2 events ${TRACK_EVENT_NAMES.map((n) => `"${n}"`).join(', ')} (in any case, with any separator, or their v1 names such as "Viewed Product").`;

/**
 * The envelope of a message: what every stage needs before the rest of the message is read, and
 * what the collector checks on every event before it acknowledges it (the cheap subset of
 * `normalizeEvent`, which calls this first, so that the two can never disagree).
 */
export interface Envelope {
  message: Record<string, unknown>;
  type: SegmentType;
  /** The canonical event name. */
  event: CanonicalEvent['event'];
  messageId: string;
  anonymousId: string | null;
  userId: string | null;
  /** anonymousId, else `user:` + userId: the key of the visitor's records. */
  visitorId: string;
  originalTimestamp: number | null;
  sentAt: number | null;
  /** The event time, corrected for the client's clock. */
  timestamp: number;
}

function envelope(m: unknown, ctx: IngestContext, typeHint: SegmentType | undefined): Envelope {
  if (!isObj(m)) fail(PlatformErrors.EVENT_SCHEMA, `Each message must be a JSON object; got ${describe(m)}.`);

  // type: the message's, else the one the endpoint implies.
  let type = m['type'];
  if (type === undefined || type === null) {
    if (typeHint === undefined) {
      fail(PlatformErrors.EVENT_SCHEMA, 'The message has no type; every message of a batch needs "type": "track", "page" or "identify".', 'type');
    }
    type = typeHint;
  } else if (typeof type !== 'string') {
    fail(PlatformErrors.EVENT_SCHEMA, `type must be a string ("track", "page" or "identify"); got ${describe(type)}.`, 'type');
  }
  if (type !== 'track' && type !== 'page' && type !== 'identify') {
    fail(
      PlatformErrors.UNSUPPORTED_TYPE,
      type === 'screen' || type === 'group' || type === 'alias'
        ? `Segment ${type} calls are not supported; Shopstream accepts track, page and identify calls.`
        : `The type ${JSON.stringify(type)} is not supported; expected "track", "page" or "identify".`,
      'type',
    );
  }
  if (typeHint !== undefined && type !== typeHint) {
    fail(
      PlatformErrors.EVENT_SCHEMA,
      `The message says it is a ${type} call but was sent to the ${typeHint} endpoint; leave type out, or send it to /v1/batch.`,
      'type',
    );
  }

  let name: string;
  if (type === 'track') {
    const raw = m['event'];
    if (typeof raw !== 'string' || raw === '') {
      fail(PlatformErrors.EVENT_SCHEMA, `A track call needs an event name, a non-empty string such as "Product Viewed"; got ${describe(raw)}.`, 'event');
    }
    const canonical = canonicalEventName(raw);
    if (canonical === undefined) {
      fail(PlatformErrors.UNKNOWN_EVENT, `The event name ${JSON.stringify(raw.length > 60 ? raw.slice(0, 60) + '…' : raw)} is not one Shopstream collects; ${UNKNOWN_EVENT_HINT}`, 'event');
    }
    name = canonical;
  } else {
    name = type === 'page' ? 'Page Viewed' : 'Identify';
  }

  const rawMessageId = m['messageId'];
  if (rawMessageId === undefined || rawMessageId === null || rawMessageId === '') {
    fail(
      PlatformErrors.MISSING_MESSAGE_ID,
      'The message has no messageId; every message needs a unique messageId (a string such as a UUID) so that a retried message is counted once.',
      'messageId',
    );
  }
  const messageId = ident(rawMessageId, 'messageId')!;
  const anonymousId = ident(m['anonymousId'], 'anonymousId');
  const userId = ident(m['userId'], 'userId');
  if (anonymousId === null && userId === null) {
    fail(PlatformErrors.MISSING_IDENTITY, 'The message has neither an anonymousId nor a userId; send at least one of them (a string).', 'anonymousId');
  }

  // Times: Segment's clock-skew correction, timestamp = receivedAt - (sentAt - originalTimestamp)
  // (https://segment.com/docs/connections/spec/common/#timestamps).
  const receivedAt = ctx.receivedAt;
  const original = m['originalTimestamp'];
  const originalTimestamp =
    original !== undefined && original !== null
      ? time(original, 'originalTimestamp', 'originalTimestamp')
      : time(m['timestamp'], 'timestamp', 'timestamp');
  let sentAt = time(m['sentAt'], 'sentAt', 'sentAt');
  if (sentAt === null) sentAt = time(ctx.batchSentAt, 'sentAt', "The batch's sentAt");
  const timestamp = originalTimestamp === null ? receivedAt : sentAt === null ? originalTimestamp : receivedAt - (sentAt - originalTimestamp);
  const maxFuture = ctx.maxFutureMs ?? DEFAULT_MAX_FUTURE_MS;
  const maxPast = ctx.maxPastMs ?? DEFAULT_MAX_PAST_MS;
  if (timestamp - receivedAt > maxFuture || timestamp > MAX_DATE_MS) {
    fail(
      PlatformErrors.TIMESTAMP_FUTURE,
      `The event time ${iso(timestamp)} (corrected for the client's clock) is ${roughly(timestamp - receivedAt)} after it was received at ${iso(receivedAt)}; at most ${duration(maxFuture)} is accepted. Check the timestamp and sentAt you send.`,
      'timestamp',
    );
  }
  if (receivedAt - timestamp > maxPast || timestamp < -MAX_DATE_MS) {
    fail(
      PlatformErrors.TIMESTAMP_PAST,
      `The event time ${iso(timestamp)} (corrected for the client's clock) is ${roughly(receivedAt - timestamp)} before it was received at ${iso(receivedAt)}; events older than ${duration(maxPast)} are not accepted.`,
      'timestamp',
    );
  }

  // The shape of the top-level parts (their contents are the pipeline's to check).
  objectAt(m['context'], 'context');
  if (type === 'identify') objectAt(m['traits'], 'traits');
  else {
    const props = m['properties'];
    if (props !== undefined && props !== null && !isObj(props)) fail(PlatformErrors.EVENT_SCHEMA, `properties must be an object; got ${describe(props)}.`, 'properties');
  }
  return {
    message: m,
    type,
    event: name as CanonicalEvent['event'],
    messageId,
    anonymousId,
    userId,
    visitorId: anonymousId ?? `user:${userId}`,
    originalTimestamp,
    sentAt,
    timestamp,
  };
}

export type EnvelopeResult = { ok: true; envelope: Envelope } | { ok: false; reason: RejectReason };

/**
 * Checks a message's envelope: an object of a supported type with a known event name, a
 * messageId, an identity, and an event time within bounds. Does not read properties or context.
 */
export function checkEnvelope(message: unknown, ctx: IngestContext, typeHint?: SegmentType): EnvelopeResult {
  try {
    return { ok: true, envelope: envelope(message, ctx, typeHint) };
  } catch (err) {
    return { ok: false, reason: toReason(err) };
  }
}

function build(message: unknown, ctx: IngestContext, typeHint: SegmentType | undefined): CanonicalEvent {
  const { message: m, type, event: name, messageId, anonymousId, userId, originalTimestamp, sentAt, timestamp } = envelope(message, ctx, typeHint);
  const receivedAt = ctx.receivedAt;

  const mc = objectAt(m['context'], 'context');
  const batchContext = ctx.batchContext;
  let bc: Obj | undefined;
  if (batchContext !== undefined && batchContext !== null) {
    if (!isObj(batchContext)) {
      fail(PlatformErrors.EVENT_SCHEMA, `The batch's context must be an object; got ${describe(batchContext)}.`, 'batch.context');
    }
    bc = batchContext;
  }

  let p: Obj = EMPTY;
  if (type !== 'identify') {
    const raw = m['properties'];
    if (raw !== undefined && raw !== null) {
      if (!isObj(raw)) fail(PlatformErrors.EVENT_SCHEMA, `properties must be an object; got ${describe(raw)}.`, 'properties');
      p = raw;
    }
  }

  const context = buildContext(mc, bc, ctx, m['channel'], type === 'page' ? p : undefined);

  // The session: context.sessionId, else properties.session_id (neither is Segment standard).
  let sessionId = ident(pick(mc, bc, 'sessionId'), 'context.sessionId');
  const propSession = p['session_id'];
  let sessionConflict = false;
  if (sessionId === null) sessionId = ident(propSession, 'properties.session_id');
  else if (propSession !== undefined && propSession !== null && propSession !== '' && String(propSession) !== sessionId) sessionConflict = true;

  const visitorId = anonymousId ?? `user:${userId}`;
  if (type === 'identify') {
    const traits = m['traits'];
    return {
      v: CANONICAL_EVENT_VERSION,
      type,
      event: 'Identify',
      messageId,
      merchantId: ctx.merchantId,
      visitorId,
      anonymousId,
      userId,
      sessionId,
      timestamp,
      originalTimestamp,
      sentAt,
      receivedAt,
      context,
      traits: traits === undefined || traits === null ? {} : objectAt(traits, 'traits')!,
    };
  }

  let properties: Props;
  if (type === 'page') {
    // The page call's own properties first; context.page (the same page, from analytics.js) fills gaps.
    const page = context.page;
    const mName = m['name'];
    const mCategory = m['category'];
    properties = withExtra(
      {
        name: mName !== undefined && mName !== null ? text(mName, '', 'name') : text(p['name'], P, 'name'),
        category: mCategory !== undefined && mCategory !== null ? text(mCategory, '', 'category') : text(p['category'], P, 'category'),
        path: text(p['path'], P, 'path') ?? page?.path ?? null,
        url: text(p['url'], P, 'url') ?? page?.url ?? null,
        referrer: text(p['referrer'], P, 'referrer') ?? page?.referrer ?? null,
        title: text(p['title'], P, 'title') ?? page?.title ?? null,
        search: text(p['search'], P, 'search') ?? page?.search ?? null,
      },
      p,
      PAGE_KEYS,
    );
  } else {
    properties = trackProperties(name, p, ctx);
  }
  // Keep a properties.session_id that differs from the context's in extra rather than lose it.
  if (sessionConflict) (properties.extra ??= {})['session_id'] = propSession;
  return {
    v: CANONICAL_EVENT_VERSION,
    type,
    event: name,
    messageId,
    merchantId: ctx.merchantId,
    visitorId,
    anonymousId,
    userId,
    sessionId,
    timestamp,
    originalTimestamp,
    sentAt,
    receivedAt,
    context,
    properties,
  } as CanonicalEvent;
}

/**
 * Maps one Segment Spec message (track, page or identify; already parsed from JSON) to the
 * canonical event, or says why it is refused. `typeHint` is the type the endpoint implies
 * (`/v1/track` …) for a message that has no `type`.
 */
export function normalizeEvent(message: unknown, ctx: IngestContext, typeHint?: SegmentType): NormalizeResult {
  try {
    return { ok: true, event: build(message, ctx, typeHint) };
  } catch (err) {
    return { ok: false, reason: toReason(err) };
  }
}

function toReason(err: unknown): RejectReason {
  if (!(err instanceof Reject)) throw err;
  const reason: RejectReason = { code: err.code, message: err.message };
  if (err.path !== undefined) reason.path = err.path;
  return reason;
}

/**
 * The refusal of an encoded canonical event larger than `maxBytes` (default MAX_EVENT_BYTES), or
 * undefined when it fits.
 */
export function checkEventSize(encoded: Uint8Array, maxBytes: number = MAX_EVENT_BYTES): RejectReason | undefined {
  if (encoded.length <= maxBytes) return undefined;
  return {
    code: PlatformErrors.EVENT_TOO_LARGE.code,
    message: `The event is ${encoded.length} bytes once normalized; at most ${maxBytes} bytes are accepted per event. Send fewer or shorter properties or traits.`,
  };
}
