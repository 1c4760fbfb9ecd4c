/**
 * A storefront simulator: shoppers who browse, view products, add to cart, check out and order,
 * sending Segment messages as analytics.js would. It keeps the truth of what it sent (events per
 * name, orders, revenue in minor units), so that downstream figures can be checked against it.
 *
 * Deterministic for a given seed. Bots and the beacon are added by the pipeline's simulator work.
 */
import { Rng } from './rng.ts';

export interface SimulatorOptions {
  seed?: number;
  /** Visitors in the population. Default 500. */
  visitors?: number;
  /** Products in the catalogue. Default 200. */
  products?: number;
  currency?: string;
  now?: () => number;
}

export interface SimulatorTruth {
  events: Record<string, number>;
  orders: number;
  /** Sum of order totals, in minor units. */
  revenueMinor: number;
}

interface Visitor {
  id: string;
  userId: string | null;
  step: number;
  cart: Array<{ product_id: string; name: string; price: number; quantity: number }>;
  sessionStart: number;
  ua: string;
}

const USER_AGENTS = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
  // A crawler that announces itself (every fifth visitor).
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
];

/** True for the simulated visitors that are crawlers (they never run the beacon). */
export function isSimulatedCrawler(userAgent: string): boolean {
  return userAgent.includes('Googlebot');
}
const SOURCES = ['utm_source=google&utm_medium=cpc', 'utm_source=newsletter&utm_medium=email', 'utm_source=instagram&utm_medium=social', '', '', ''];
const CATEGORIES = ['Shoes', 'Bags', 'Jackets', 'Hats'];

export class StorefrontSimulator {
  private readonly rng: Rng;
  private readonly visitors: Visitor[];
  private readonly productCount: number;
  private readonly currency: string;
  private readonly now: () => number;
  private seq = 0;
  readonly truth: SimulatorTruth = { events: {}, orders: 0, revenueMinor: 0 };

  constructor(options: SimulatorOptions = {}) {
    this.rng = new Rng(options.seed ?? 1);
    this.productCount = options.products ?? 200;
    this.currency = options.currency ?? 'EUR';
    this.now = options.now ?? Date.now;
    this.visitors = Array.from({ length: options.visitors ?? 500 }, (_, i) => ({
      id: `anon-${i.toString(36)}-${(this.rand() * 1e9).toString(36).slice(0, 6)}`,
      userId: null,
      step: 0,
      cart: [],
      sessionStart: 0,
      ua: USER_AGENTS[i % USER_AGENTS.length]!,
    }));
  }

  /** A pseudo-random number in [0, 1). */
  private rand(): number {
    return this.rng.next();
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)]!;
  }

  private product(): { product_id: string; name: string; category: string; price: number } {
    const n = Math.floor(this.rand() ** 2 * this.productCount);
    return { product_id: `sku-${n}`, name: `Product ${n}`, category: CATEGORIES[n % CATEGORIES.length]!, price: 9.9 + (n % 40) * 2.5 };
  }

  /** The next `n` messages, from random visitors advancing through their sessions. */
  next(n: number): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (let i = 0; i < n; i++) out.push(this.step(this.pick(this.visitors)));
    return out;
  }

  private message(v: Visitor, type: 'track' | 'page' | 'identify', fields: Record<string, unknown>, path: string): Record<string, unknown> {
    const now = new Date(this.now()).toISOString();
    const query = v.step <= 1 ? SOURCES[this.visitors.indexOf(v) % SOURCES.length]! : '';
    return {
      type,
      messageId: `sim-${this.seq++}-${Math.floor(this.rand() * 1e12).toString(36)}`,
      anonymousId: v.id,
      ...(v.userId !== null && { userId: v.userId }),
      timestamp: now,
      sentAt: now,
      context: {
        userAgent: v.ua,
        page: { url: `https://demo.shopstream.dev${path}${query ? `?${query}` : ''}`, path, referrer: v.step <= 1 && query.includes('google') ? 'https://www.google.com/' : '' },
        library: { name: 'analytics.js', version: 'next-1.70.0' },
        locale: 'fr-FR',
      },
      ...fields,
    };
  }

  private count(name: string): void {
    this.truth.events[name] = (this.truth.events[name] ?? 0) + 1;
  }

  private step(v: Visitor): Record<string, unknown> {
    const r = this.rand();
    if (v.step === 0 || r < 0.05) {
      v.step = 1;
      v.cart = [];
      v.sessionStart = this.now();
      this.count('Page Viewed');
      return this.message(v, 'page', { name: 'Home', properties: { title: 'Demo shop' } }, '/');
    }
    if (v.step === 1 || (v.step === 2 && r < 0.5)) {
      v.step = 2;
      const category = this.pick(CATEGORIES);
      this.count('Product List Viewed');
      return this.message(v, 'track', { event: 'Product List Viewed', properties: { list_id: category.toLowerCase(), category } }, `/c/${category.toLowerCase()}`);
    }
    if (v.step === 2 || (v.step === 3 && r < 0.6)) {
      v.step = 3;
      const p = this.product();
      this.count('Product Viewed');
      return this.message(v, 'track', { event: 'Product Viewed', properties: { ...p, currency: this.currency } }, `/p/${p.product_id}`);
    }
    if (v.step === 3 && r < 0.85) {
      const p = this.product();
      const item = { product_id: p.product_id, name: p.name, price: p.price, quantity: 1 + Math.floor(this.rand() * 2) };
      v.cart.push(item);
      v.step = 4;
      this.count('Product Added');
      return this.message(v, 'track', { event: 'Product Added', properties: { ...item, currency: this.currency } }, `/p/${p.product_id}`);
    }
    if (v.step === 3) {
      v.step = 2;
      this.count('Products Searched');
      return this.message(v, 'track', { event: 'Products Searched', properties: { query: this.pick(['red shoes', 'bag', 'winter jacket']) } }, '/search');
    }
    if (v.step === 4 && r < 0.5) {
      v.step = 5;
      this.count('Checkout Started');
      return this.message(v, 'track', { event: 'Checkout Started', properties: { value: this.cartTotal(v) / 100, currency: this.currency, products: v.cart } }, '/checkout');
    }
    if (v.step === 4) {
      v.step = 3;
      this.count('Cart Viewed');
      return this.message(v, 'track', { event: 'Cart Viewed', properties: { products: v.cart } }, '/cart');
    }
    if (v.step === 5 && v.userId === null) {
      v.userId = `user-${v.id}`;
      this.count('Identify');
      return this.message(v, 'identify', { userId: v.userId, traits: { email: `${v.id}@example.com` } }, '/checkout');
    }
    // Order Completed.
    const total = this.cartTotal(v);
    const order = { order_id: `o-${this.seq}`, total: total / 100, revenue: total / 100, currency: this.currency, products: v.cart };
    this.truth.orders++;
    this.truth.revenueMinor += total;
    this.count('Order Completed');
    v.step = 0;
    v.cart = [];
    return this.message(v, 'track', { event: 'Order Completed', properties: order }, '/checkout/done');
  }

  private cartTotal(v: Visitor): number {
    // Minor units, summed exactly.
    return v.cart.reduce((a, i) => a + Math.round(i.price * 100) * i.quantity, 0);
  }
}
