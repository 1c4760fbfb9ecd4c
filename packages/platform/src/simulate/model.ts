/**
 * The shoppers and bots of one merchant: who visits, when, what they look at and buy, and which of
 * their messages are re-sent, delayed or broken. Pure and deterministic for its parameters.
 *
 * The output is a list of messages (Segment spec, as analytics.js sends them, without `sentAt`),
 * each with its event time and a virtual send time: plan.ts orders and batches them, truth.ts
 * derives what the pipeline must make of them. docs/simulator.md describes the model and its figures.
 */
import { currencyExponent } from '../contract/currencies.ts';
import { minorUnits } from '../contract/money.ts';
import { WIDGET_SPAN_MS, type ResolvedRecs, type WidgetShop, type WidgetSlot } from './react.ts';
import { hash32, Rng, Zipf } from './rng.ts';

export type VisitorClass = 'human' | 'crawler' | 'stealth_bot';

export type GenKind = 'event' | 'duplicate' | 'order_resend' | 'invalid' | 'widget';

export interface GenEvent {
  merchantId: string;
  anonymousId: string;
  cls: VisitorClass;
  /** The message as it will be sent. */
  message: Record<string, unknown>;
  /** Event time (the message's `timestamp`), epoch ms. */
  time: number;
  /** Virtual send time, epoch ms: only orders the sending. */
  sendAt: number;
  kind: GenKind;
  /** For `invalid`: the code it is refused with, and which stage refuses it. */
  invalid?: { code: string; stage: 'collector' | 'pipeline' };
  /** For `widget`: the recommendation widget to ask the API for when sending (its `message` is empty). */
  widget?: WidgetSlot;
}

export interface ModelParams {
  merchantId: string;
  currency: string;
  seed: number;
  /** Human visitors. */
  humans: number;
  products: number;
  /** The event-time window, epoch ms. */
  start: number;
  end: number;
  botShare: number;
  duplicateRate: number;
  invalidRate: number;
  orderResendRate: number;
  outOfOrderRate: number;
  lateRate: number;
  clientSessionShare: number;
  zipfS: number;
  /**
   * Seed of the catalogue, its popularity ranking and its bundles; default: drawn from `seed` (the
   * plans of earlier versions). Two plans with the same catalogue seed sell the same shop.
   */
  catalogueSeed?: number;
  /** Shoppers react to recommendations (react.ts): a widget slot after each human product view. Default off. */
  recs?: ResolvedRecs;
}

export interface Product {
  product_id: string;
  sku: string;
  name: string;
  brand: string;
  category: string;
  /** Minor units of the merchant's currency. */
  priceMinor: number;
}

export interface MerchantModelStats {
  /** Human sessions with at least one event, as generated (the pipeline's rules give the same count). */
  humanSessions: number;
  /** Orders generated (before re-sends). */
  orders: number;
  /** Page Viewed + Product Viewed events, by class, as generated (before duplicates and invalid ones). */
  humanViews: number;
  botViews: number;
  /** Events generated (kind `event`), by class. */
  humanEvents: number;
  crawlerEvents: number;
  stealthEvents: number;
  duplicates: number;
  orderResends: number;
  invalid: number;
}

export interface MerchantModel {
  events: GenEvent[];
  visitors: Record<string, VisitorClass>;
  /** The User-Agent of every human visitor (the beacon is run with it). */
  humanUserAgents: Map<string, string>;
  bundles: string[][];
  catalogue: Product[];
  stats: MerchantModelStats;
  /** With `recs`: the widget slots (kind `widget`, in `events` too), in generation order. */
  widgets: GenEvent[];
}

const CATEGORIES = ['Shoes', 'Bags', 'Jackets', 'Hats', 'Shirts', 'Trousers', 'Accessories', 'Sportswear'];
const SINGULAR: Record<string, string> = { Shoes: 'Shoe', Bags: 'Bag', Jackets: 'Jacket', Hats: 'Hat', Shirts: 'Shirt', Trousers: 'Trousers', Accessories: 'Accessory', Sportswear: 'Sportswear' };
const BRANDS = ['Northwind', 'Acme', 'Lumen', 'Fjord', 'Verde', 'Kestrel', 'Orbit', 'Saltmarsh'];
const ADJECTIVES = ['Classic', 'Urban', 'Alpine', 'Coastal', 'Vintage', 'Everyday', 'Trail', 'Studio', 'Midnight', 'Summer'];
const SEARCHES = ['red shoes', 'leather bag', 'winter jacket', 'rain coat', 'wool hat', 'running', 'gift', 'linen shirt', 'sale', 'backpack'];

/** Browser User-Agents (isbot recognises none of them): humans, and stealth bots posing as browsers. */
export const BROWSER_USER_AGENTS: readonly string[] = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67',
  'Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
];
/** Weights of BROWSER_USER_AGENTS among humans (mobile-heavy, as commerce traffic is). */
const BROWSER_WEIGHTS = [14, 22, 24, 14, 6, 6, 8, 6];
/** Stealth bots: scrapers on desktop Chrome and Linux, posing as browsers. */
const STEALTH_USER_AGENTS: readonly string[] = [
  BROWSER_USER_AGENTS[1]!,
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36',
  BROWSER_USER_AGENTS[0]!,
  BROWSER_USER_AGENTS[4]!,
];
/** Crawlers that announce themselves: isbot recognises every one. */
export const CRAWLER_USER_AGENTS: readonly string[] = [
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
  'Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)',
  'Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)',
  'Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)',
  'Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)',
];
const CRAWLER_WEIGHTS = [30, 15, 15, 12, 10, 6, 7, 5];
const LOCALES = ['en-US', 'en-GB', 'fr-FR', 'de-DE', 'es-ES', 'it-IT', 'nl-NL'];
/** Landing traffic: referrer and the query string of the landing URL. */
const SOURCES: ReadonlyArray<{ w: number; referrer: string; query: string }> = [
  { w: 40, referrer: '', query: '' },
  { w: 30, referrer: 'https://www.google.com/', query: '' },
  { w: 15, referrer: 'https://www.google.com/', query: 'utm_source=google&utm_medium=cpc&utm_campaign=spring' },
  { w: 10, referrer: '', query: 'utm_source=newsletter&utm_medium=email' },
  { w: 5, referrer: 'https://l.instagram.com/', query: 'utm_source=instagram&utm_medium=social' },
];
const UNKNOWN_EVENTS = ['Product Added to Wishlist', 'Coupon Applied', 'Product Shared', 'Promotion Viewed'];
const BAD_PRICES = ['abc', '12,99', 'free', '1.2.3'];

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** Converts minor units to the number sent, checking that the contract reads it back exactly. */
function amount(minor: number, exponent: number): number {
  const a = minor / 10 ** exponent;
  if (minorUnits(a, exponent) !== minor) throw new Error(`simulator: ${minor} minor units do not round-trip as ${String(a)}`);
  return a;
}

interface Human {
  anonymousId: string;
  userAgent: string;
  locale: string;
  clientSessions: boolean;
  userId: string | null;
  email: string;
  firstName: string;
}

interface CartLine {
  product: Product;
  quantity: number;
}

/** A visitor's stream of messages in event time; stops at the end of the window. */
class Stream {
  t: number;
  stopped = false;
  sessionId: string | null = null;
  userId: string | null = null;
  readonly out: GenEvent[] = [];
  /** With `recs`: the widgets of this visitor's product pages. */
  readonly widgets: GenEvent[] = [];
  private readonly g: Generator;
  readonly anonymousId: string;
  readonly cls: VisitorClass;
  private readonly userAgent: string;
  private readonly locale: string;

  constructor(g: Generator, anonymousId: string, cls: VisitorClass, userAgent: string, locale: string, t: number) {
    this.g = g;
    this.anonymousId = anonymousId;
    this.cls = cls;
    this.userAgent = userAgent;
    this.locale = locale;
    this.t = Math.floor(t);
  }

  private context(page: { path: string; title: string; referrer: string; query: string }): Record<string, unknown> {
    const url = `${this.g.origin}${page.path}${page.query ? `${page.path.includes('?') ? '&' : '?'}${page.query}` : ''}`;
    return {
      userAgent: this.userAgent,
      locale: this.locale,
      library: { name: 'analytics.js', version: 'next-1.70.0' },
      page: { url, path: page.path, referrer: page.referrer, title: page.title, search: page.query ? `?${page.query}` : '' },
      ...(this.sessionId !== null && { sessionId: this.sessionId }),
    };
  }

  /** Emits a message at the current time (nothing once the window has ended). */
  emit(fields: Record<string, unknown>, page: { path: string; title: string; referrer?: string; query?: string }): Record<string, unknown> | null {
    if (this.stopped || this.t > this.g.p.end) {
      this.stopped = true;
      return null;
    }
    const message: Record<string, unknown> = {
      ...fields,
      messageId: this.g.messageId(),
      anonymousId: this.anonymousId,
      ...(this.userId !== null && { userId: this.userId }),
      timestamp: new Date(this.t).toISOString(),
      context: this.context({ path: page.path, title: page.title, referrer: page.referrer ?? '', query: page.query ?? '' }),
    };
    this.out.push({ merchantId: this.g.p.merchantId, anonymousId: this.anonymousId, cls: this.cls, message, time: this.t, sendAt: this.t, kind: 'event' });
    return message;
  }

  /** A page load: the page call, then the page's track event a moment later; then the visitor dwells. */
  page(name: string, path: string, title: string, track: { event: string; properties: Record<string, unknown> } | null, dwellMs: number, landing?: { referrer: string; query: string }): boolean {
    const p = { path, title, referrer: landing?.referrer ?? '', query: landing?.query ?? '' };
    if (this.emit({ type: 'page', name, properties: { name, path, title } }, p) === null) return false;
    if (track !== null) {
      this.t += this.g.rng.int(30, 400);
      this.emit({ type: 'track', event: track.event, properties: track.properties }, p);
    }
    this.t += dwellMs;
    return !this.stopped;
  }
}

class Generator {
  readonly p: ModelParams;
  readonly rng: Rng;
  readonly origin: string;
  private readonly exponent: number;
  private readonly zipf: Zipf;
  /** Products by popularity rank. */
  private readonly byRank: Product[];
  private readonly byCategory = new Map<string, Product[]>();
  readonly bundles: string[][] = [];
  private readonly bundleOf = new Map<string, string[]>();
  private readonly productById = new Map<string, Product>();
  readonly catalogue: Product[] = [];
  private orderSeq = 1000;
  /** Drawn from the seed, so that another seed's orders never share an order_id with these. */
  private readonly orderPrefix: string;
  /** With `recs`: the shop as widgets see it, and the PRNG of the widget slots (not `rng`: the rest of the traffic stays the same). */
  private readonly shop: WidgetShop | null = null;
  private readonly widgetRng: Rng | null = null;
  private widgetSeq = 0;

  constructor(p: ModelParams) {
    this.p = p;
    this.rng = new Rng(p.seed);
    this.origin = `https://${p.merchantId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}.shop.example`;
    const exponent = currencyExponent(p.currency);
    if (exponent === undefined) throw new Error(`simulator: ${p.currency} is not an ISO 4217 currency`);
    this.exponent = exponent;
    this.orderPrefix = this.rng.hex(6);
    // The shop: its catalogue, popularity ranking and bundles (from their own seed when given).
    const c = p.catalogueSeed === undefined ? this.rng : new Rng(hash32(`${p.catalogueSeed >>> 0}\u0000catalogue\u0000${p.merchantId}`));
    const n = Math.max(5, p.products);
    for (let i = 0; i < n; i++) {
      const dollars = c.chance(0.7) ? c.int(4, 39) : c.chance(0.85) ? c.int(40, 199) : c.int(200, 599);
      const base = dollars * 100 + c.pick([99, 90, 0, 50, 95]);
      const category = c.pick(CATEGORIES);
      const id = `p-${String(i + 1).padStart(4, '0')}`;
      const product: Product = {
        product_id: id,
        sku: `${category.slice(0, 3).toUpperCase()}-${String(10000 + i)}`,
        name: `${c.pick(ADJECTIVES)} ${SINGULAR[category] ?? category} ${i + 1}`,
        brand: c.pick(BRANDS),
        category,
        priceMinor: exponent >= 2 ? base * 10 ** (exponent - 2) : base,
      };
      this.catalogue.push(product);
      this.productById.set(id, product);
    }
    this.byRank = c.shuffle([...this.catalogue]);
    this.zipf = new Zipf(n, p.zipfS);
    for (const product of this.byRank) {
      const list = this.byCategory.get(product.category) ?? [];
      list.push(product);
      this.byCategory.set(product.category, list);
    }
    // Bundles: a partition of the catalogue into groups of 3 to 5 products bought together.
    const order = c.shuffle(this.catalogue.map((x) => x.product_id));
    for (let i = 0; i < order.length; ) {
      const size = c.int(3, 5);
      const bundle = order.slice(i, i + size);
      i += size;
      if (bundle.length < 3 && this.bundles.length > 0) this.bundles[this.bundles.length - 1]!.push(...bundle);
      else this.bundles.push(bundle);
    }
    for (const b of this.bundles) for (const id of b) this.bundleOf.set(id, b);
    if (p.recs !== undefined) {
      this.shop = { merchantId: p.merchantId, currency: p.currency, exponent, products: this.productById, bundleOf: this.bundleOf, orderPrefix: this.orderPrefix };
      this.widgetRng = new Rng(hash32(`${p.seed}\u0000widgets`));
    }
  }

  messageId(): string {
    return `ajs-next-${this.rng.hex(32)}`;
  }

  money(minor: number): number {
    return amount(minor, this.exponent);
  }

  popular(): Product {
    return this.byRank[this.zipf.sample(this.rng)]!;
  }

  uniformProduct(): Product {
    return this.rng.pick(this.catalogue);
  }

  /** Another product of the product's bundle. */
  bundleMate(p: Product): Product {
    const b = this.bundleOf.get(p.product_id)!;
    const others = b.filter((id) => id !== p.product_id);
    return this.productById.get(this.rng.pick(others))!;
  }

  productFields(p: Product): Record<string, unknown> {
    return { product_id: p.product_id, sku: p.sku, name: p.name, brand: p.brand, category: p.category, price: this.money(p.priceMinor) };
  }

  productPage(s: Stream, p: Product, dwellMs: number, landing?: { referrer: string; query: string }): boolean {
    const before = s.out.length;
    const ok = s.page(p.name, `/p/${p.product_id}`, `${p.name} · ${p.brand}`, { event: 'Product Viewed', properties: { ...this.productFields(p), currency: this.p.currency, value: this.money(p.priceMinor) } }, dwellMs, landing);
    if (this.shop !== null && s.cls === 'human') this.widget(s, before, p);
    return ok;
  }

  /**
   * The recommendation widget of a human's product page: a slot after its Product Viewed, when the
   * reaction's span ends inside the window. Draws only from `widgetRng`.
   */
  private widget(s: Stream, from: number, p: Product): void {
    const view = s.out.slice(from).find((e) => e.message['event'] === 'Product Viewed');
    if (view === undefined || view.time + WIDGET_SPAN_MS > this.p.end) return;
    const r = this.widgetRng!;
    const time = view.time + r.int(300, 1500);
    const seed = Math.floor(r.next() * 0x100000000);
    const userId = typeof view.message['userId'] === 'string' ? view.message['userId'] : null;
    const slot: WidgetSlot = {
      merchantId: this.p.merchantId,
      anonymousId: s.anonymousId,
      productId: p.product_id,
      time,
      n: this.widgetSeq++,
      seed,
      userId,
      context: view.message['context'] as Record<string, unknown>,
      shop: this.shop!,
      recs: this.p.recs!,
    };
    s.widgets.push({ merchantId: this.p.merchantId, anonymousId: s.anonymousId, cls: 'human', message: {}, time, sendAt: time, kind: 'widget', widget: slot });
  }

  listingPage(s: Stream, category: string, dwellMs: number, landing?: { referrer: string; query: string }): boolean {
    const top = (this.byCategory.get(category) ?? []).slice(0, 4);
    const slug = category.toLowerCase();
    return s.page(
      category,
      `/c/${slug}`,
      category,
      { event: 'Product List Viewed', properties: { list_id: slug, category, currency: this.p.currency, products: top.map((x, i) => ({ ...this.productFields(x), position: i + 1 })) } },
      dwellMs,
      landing,
    );
  }

  searchPage(s: Stream, dwellMs: number): boolean {
    const query = this.rng.pick(SEARCHES);
    return s.page('Search', `/search?q=${encodeURIComponent(query)}`, `Search: ${query}`, { event: 'Products Searched', properties: { query } }, dwellMs);
  }

  homePage(s: Stream, dwellMs: number, landing?: { referrer: string; query: string }): boolean {
    return s.page('Home', '/', 'Home', null, dwellMs, landing);
  }

  private humanDwell(): number {
    return this.rng.int(8, 90) * SECOND + this.rng.int(0, 999);
  }

  private lines(cart: CartLine[]): Array<Record<string, unknown>> {
    return cart.map((l) => ({ ...this.productFields(l.product), quantity: l.quantity }));
  }

  /** One human session; returns true when it ended with an order. */
  private humanSession(h: Human, s: Stream, orders: GenEvent[]): boolean {
    const r = this.rng;
    s.sessionId = h.clientSessions ? `sess-${r.hex(16)}` : null;
    const source = SOURCES[r.weighted(SOURCES.map((x) => x.w))]!;
    const landing = { referrer: source.referrer, query: source.query };
    let last: Product | null = null;
    const landingKind = r.next();
    if (landingKind < 0.5) this.homePage(s, this.humanDwell(), landing);
    else if (landingKind < 0.8) this.listingPage(s, r.pick(CATEGORIES), this.humanDwell(), landing);
    else {
      last = this.popular();
      this.productPage(s, last, this.humanDwell(), landing);
    }
    const cartIntent = r.chance(0.12);
    const views = 1 + r.geometric(2.5, 14);
    for (let i = 0; i < views && !s.stopped; i++) {
      const step = r.next();
      if (step < 0.12) this.listingPage(s, last?.category ?? r.pick(CATEGORIES), this.humanDwell());
      else if (step < 0.22) this.searchPage(s, this.humanDwell());
      last = last !== null && r.chance(0.45) ? this.bundleMate(last) : this.popular();
      this.productPage(s, last, this.humanDwell());
    }
    if (s.stopped || last === null) return false;
    const cartId = `cart-${r.hex(12)}`;
    const cart: CartLine[] = [];
    const add = (p: Product) => {
      const quantity = r.chance(0.85) ? 1 : 2;
      cart.push({ product: p, quantity });
      s.t -= r.int(2, 6) * SECOND; // the add happens on the product page, before the visitor leaves it
      s.emit({ type: 'track', event: 'Product Added', properties: { ...this.productFields(p), quantity, cart_id: cartId, currency: this.p.currency, value: this.money(p.priceMinor * quantity) } }, { path: `/p/${p.product_id}`, title: p.name });
      s.t += r.int(2, 6) * SECOND;
    };
    if (!cartIntent) {
      // Some browsers add to the cart and leave.
      if (r.chance(0.05)) add(last);
      return false;
    }
    add(last);
    let anchor = last;
    for (const p of [0.6, 0.3]) {
      if (!r.chance(p)) break;
      const mate = this.bundleMate(anchor);
      if (cart.some((l) => l.product.product_id === mate.product_id)) break;
      this.productPage(s, mate, this.humanDwell());
      add(mate);
      anchor = mate;
    }
    const subtotal = cart.reduce((a, l) => a + l.product.priceMinor * l.quantity, 0);
    const products = this.lines(cart);
    if (r.chance(0.75)) s.page('Cart', '/cart', 'Your cart', { event: 'Cart Viewed', properties: { cart_id: cartId, currency: this.p.currency, products } }, this.humanDwell());
    if (s.stopped || !r.chance(0.45)) return false;
    const checkoutId = `chk-${r.hex(12)}`;
    s.page('Checkout', '/checkout', 'Checkout', { event: 'Checkout Started', properties: { checkout_id: checkoutId, value: this.money(subtotal), revenue: this.money(subtotal), currency: this.p.currency, products } }, 0);
    if (h.userId === null) {
      h.userId = `u-${r.hex(10)}`;
      s.t += r.int(20, 90) * SECOND;
      s.userId = h.userId;
      s.emit({ type: 'identify', traits: { email: h.email, firstName: h.firstName } }, { path: '/checkout', title: 'Checkout' });
    }
    s.t += r.int(30, 180) * SECOND;
    if (s.stopped || !r.chance(0.5)) return false;
    const scale = this.exponent >= 2 ? 10 ** (this.exponent - 2) : 1;
    const shipping = subtotal >= 7500 * scale ? 0 : 490 * scale;
    const total = subtotal + shipping;
    const orderId = `o-${this.orderPrefix}-${this.orderSeq++}`;
    const before = s.out.length;
    s.page('Order confirmation', '/checkout/thank-you', 'Thank you', {
      event: 'Order Completed',
      properties: {
        order_id: orderId,
        checkout_id: checkoutId,
        total: this.money(total),
        subtotal: this.money(subtotal),
        revenue: this.money(subtotal),
        shipping: this.money(shipping),
        tax: 0,
        currency: this.p.currency,
        products,
      },
    }, this.humanDwell());
    const order = s.out.slice(before).find((e) => e.message['event'] === 'Order Completed');
    if (order === undefined) return false;
    orders.push(order);
    return true;
  }

  human(i: number, orders: GenEvent[]): { events: GenEvent[]; widgets: GenEvent[]; human: Human; sessions: number } {
    const r = this.rng;
    const h: Human = {
      anonymousId: r.uuid(),
      userAgent: BROWSER_USER_AGENTS[r.weighted(BROWSER_WEIGHTS)]!,
      locale: r.pick(LOCALES),
      clientSessions: r.chance(this.p.clientSessionShare),
      userId: null,
      email: `shopper-${i}-${r.hex(6)}@example.com`,
      firstName: r.pick(['Ana', 'Ben', 'Chloé', 'Dmitri', 'Emma', 'Farid', 'Greta', 'Hiro', 'Inès', 'Jonas']),
    };
    const s = new Stream(this, h.anonymousId, 'human', h.userAgent, h.locale, r.uniform(this.p.start, this.p.end - MINUTE));
    const sessionCount = r.chance(0.7) ? 1 : r.chance(2 / 3) ? 2 : 3;
    let sessions = 0;
    for (let k = 0; k < sessionCount && !s.stopped; k++) {
      if (k > 0) {
        // A return visit: more than 30 minutes after the last event of the previous session.
        const lastTime = Math.max(...s.out.map((e) => e.time));
        s.t = lastTime + r.int(31, 80) * MINUTE + r.int(0, 59_999);
        if (s.t > this.p.end) break;
      }
      const before = s.out.length;
      this.humanSession(h, s, orders);
      if (s.out.length > before) sessions++;
    }
    return { events: s.out, widgets: s.widgets, human: h, sessions };
  }

  /** A crawler visit: many pages, quickly, across the catalogue; isbot knows its User-Agent. */
  crawler(): GenEvent[] {
    const r = this.rng;
    const ua = CRAWLER_USER_AGENTS[r.weighted(CRAWLER_WEIGHTS)]!;
    const s = new Stream(this, r.uuid(), 'crawler', ua, 'en-US', r.uniform(this.p.start, this.p.end));
    const n = 1 + r.geometric(6, 40);
    for (let i = 0; i < n && !s.stopped; i++) {
      const dwell = r.int(1, 12) * SECOND + r.int(0, 999);
      const k = r.next();
      if (k < 0.65) this.productPage(s, this.uniformProduct(), dwell);
      else if (k < 0.85) this.listingPage(s, r.pick(CATEGORIES), dwell);
      else this.homePage(s, dwell);
    }
    return s.out;
  }

  /** A stealth bot: a scraper with a browser User-Agent that never runs the beacon. */
  stealth(): GenEvent[] {
    const r = this.rng;
    const ua = r.pick(STEALTH_USER_AGENTS);
    const s = new Stream(this, r.uuid(), 'stealth_bot', ua, 'en-US', r.uniform(this.p.start, this.p.end));
    const n = 3 + r.geometric(14, 80);
    let next = r.int(0, this.catalogue.length - 1);
    for (let i = 0; i < n && !s.stopped; i++) {
      const dwell = r.int(500, 4000);
      const k = r.next();
      if (k < 0.8) {
        // Scrapers walk the catalogue.
        this.productPage(s, this.catalogue[next]!, dwell);
        next = (next + 1) % this.catalogue.length;
      } else if (k < 0.9) this.searchPage(s, dwell);
      else this.listingPage(s, r.pick(CATEGORIES), dwell);
    }
    return s.out;
  }

  /** A message that the collector or the pipeline refuses, next to a valid one of the same visitor. */
  invalidNear(e: GenEvent): GenEvent {
    const r = this.rng;
    const time = Math.min(this.p.end, e.time + r.int(200, 2000));
    const base = { anonymousId: e.anonymousId, timestamp: new Date(time).toISOString(), context: e.message['context'] };
    const p = this.uniformProduct();
    const k = r.next();
    let message: Record<string, unknown>;
    let invalid: { code: string; stage: 'collector' | 'pipeline' };
    if (k < 0.3) {
      message = { type: 'track', event: r.pick(UNKNOWN_EVENTS), messageId: this.messageId(), ...base, properties: { product_id: p.product_id } };
      invalid = { code: 'SHOP_ERR_UNKNOWN_EVENT', stage: 'collector' };
    } else if (k < 0.55) {
      message = { type: 'track', event: 'Product Viewed', ...base, properties: { ...this.productFields(p), currency: this.p.currency } };
      invalid = { code: 'SHOP_ERR_MISSING_MESSAGE_ID', stage: 'collector' };
    } else if (k < 0.85) {
      message = { type: 'track', event: 'Product Viewed', messageId: this.messageId(), ...base, properties: { ...this.productFields(p), price: r.pick(BAD_PRICES), currency: this.p.currency } };
      invalid = { code: 'SHOP_ERR_INVALID_MONEY', stage: 'pipeline' };
    } else {
      message = { type: 'track', event: 'Product Added', messageId: this.messageId(), ...base, properties: { ...this.productFields(p), quantity: 1, currency: 'EURO' } };
      invalid = { code: 'SHOP_ERR_INVALID_CURRENCY', stage: 'pipeline' };
    }
    return { merchantId: e.merchantId, anonymousId: e.anonymousId, cls: e.cls, message, time, sendAt: e.sendAt + (time - e.time), kind: 'invalid', invalid };
  }
}

function views(events: readonly GenEvent[]): number {
  let n = 0;
  for (const e of events) if (e.message['type'] === 'page' || e.message['event'] === 'Product Viewed') n++;
  return n;
}

/** Generates one merchant's traffic. */
export function generateMerchant(p: ModelParams): MerchantModel {
  const g = new Generator(p);
  const r = g.rng;
  const visitors: Record<string, VisitorClass> = {};
  const humanUserAgents = new Map<string, string>();
  const originals: GenEvent[] = [];
  const orders: GenEvent[] = [];
  const widgets: GenEvent[] = [];
  const stats: MerchantModelStats = { humanSessions: 0, orders: 0, humanViews: 0, botViews: 0, humanEvents: 0, crawlerEvents: 0, stealthEvents: 0, duplicates: 0, orderResends: 0, invalid: 0 };

  for (let i = 0; i < p.humans; i++) {
    const { events, widgets: w, human, sessions } = g.human(i, orders);
    if (events.length === 0) continue;
    widgets.push(...w);
    visitors[human.anonymousId] = 'human';
    humanUserAgents.set(human.anonymousId, human.userAgent);
    stats.humanSessions += sessions;
    stats.humanViews += views(events);
    stats.humanEvents += events.length;
    originals.push(...events);
  }
  stats.orders = orders.length;

  // Bots: enough to make `botShare` of all page and product views, exactly.
  const share = Math.min(Math.max(p.botShare, 0), 0.95);
  const target = Math.round((stats.humanViews * share) / (1 - share));
  while (stats.botViews < target) {
    const crawler = r.chance(0.55);
    let events = crawler ? g.crawler() : g.stealth();
    if (events.length === 0) continue;
    const remaining = target - stats.botViews;
    if (views(events) > remaining) {
      let seen = 0;
      let cut = 0;
      while (seen < remaining) {
        const m = events[cut++]!.message;
        if (m['type'] === 'page' || m['event'] === 'Product Viewed') seen++;
      }
      events = events.slice(0, cut);
    }
    visitors[events[0]!.anonymousId] = crawler ? 'crawler' : 'stealth_bot';
    stats.botViews += views(events);
    if (crawler) stats.crawlerEvents += events.length;
    else stats.stealthEvents += events.length;
    originals.push(...events);
  }

  // Delivery: out-of-order and late sends, exact re-sends, broken messages.
  const all: GenEvent[] = [];
  for (const e of originals) {
    const k = r.next();
    if (k < p.lateRate) e.sendAt = e.time + r.int(2 * MINUTE, 10 * MINUTE);
    else if (k < p.lateRate + p.outOfOrderRate) e.sendAt = e.time + r.int(5 * SECOND, 120 * SECOND);
    all.push(e);
    if (r.chance(p.duplicateRate)) {
      all.push({ ...e, sendAt: e.sendAt + r.int(SECOND, 10 * MINUTE), kind: 'duplicate' });
      stats.duplicates++;
    }
    if (r.chance(p.invalidRate)) {
      all.push(g.invalidNear(e));
      stats.invalid++;
    }
  }
  // Orders re-sent under a new messageId with the same order_id (a server retry, a webhook): at
  // least one per merchant with orders, so that every plan exercises the rule.
  if (orders.length > 0 && p.orderResendRate > 0) {
    const n = Math.max(1, Math.round(orders.length * p.orderResendRate));
    const chosen = r.shuffle([...orders]).slice(0, n);
    for (const o of chosen) {
      const time = Math.min(p.end, o.time + r.int(SECOND, 60 * SECOND));
      const message = { ...o.message, messageId: g.messageId(), timestamp: new Date(time).toISOString() };
      all.push({ ...o, message, time, sendAt: o.sendAt + r.int(MINUTE, 10 * MINUTE), kind: 'order_resend' });
      stats.orderResends++;
    }
  }
  // Widgets are sent at their time, never re-sent, delayed or broken: they are not in the draws above.
  all.push(...widgets);
  return { events: all, visitors, humanUserAgents, bundles: g.bundles, catalogue: g.catalogue, stats, widgets };
}
