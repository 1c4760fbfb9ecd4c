/**
 * Canonical event → Meta server event: each of the six forwarded events compared whole, money in
 * currencies of 0, 2 and 3 decimals, the identity fallback and its precedence, the events that are
 * not forwarded. Events are built by hand (the shape `events.filtered` carries); expected digests are
 * `sha()` over normalised strings written out by hand.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { CanonicalEvent, EventContext, EventOf, Product } from '../../src/contract/schema.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import {
  IDENTITY_USER_ID,
  META_EVENT_NAMES,
  identityTraitsOf,
  toServerEvent,
  type ServerEvent,
} from '../../src/capi/mapping.ts';
import { mergeTraits } from '../../src/capi/user-data.ts';

function sha(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Fixture builder

/** 2026-11-26T12:00:00.789Z: event_time is 1795694400 (seconds, rounded down). */
const T = Date.UTC(2026, 10, 26, 12, 0, 0, 789);
const T_SECONDS = 1795694400;
const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';
const FBC = 'fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890';
const FBP = 'fb.1.1596403881668.1116446470';

type Envelope = Omit<CanonicalEvent, 'type' | 'event'>;

function context(over: Partial<EventContext> = {}): EventContext {
  return {
    ip: '203.0.113.7',
    userAgent: UA,
    page: { url: 'https://shop.example/products/red-shoes', path: '/products/red-shoes', referrer: null, title: 'Red shoes', search: null },
    campaign: null,
    locale: 'fr-FR',
    timezone: 'Europe/Paris',
    country: 'FR',
    library: { name: 'analytics.js', version: '5.2.0' },
    traits: null,
    fbp: FBP,
    fbc: FBC,
    ...over,
  };
}

function envelope(over: Partial<Envelope> = {}): Envelope {
  return {
    v: 1,
    messageId: 'msg-1',
    merchantId: 'shop-a',
    visitorId: 'anon-1',
    anonymousId: 'anon-1',
    userId: null,
    sessionId: null,
    timestamp: T,
    originalTimestamp: T,
    sentAt: null,
    receivedAt: T + 250,
    context: context(),
    ...over,
  };
}

function product(over: Partial<Product> = {}): Product {
  return { product_id: null, sku: null, name: null, brand: null, category: null, variant: null, price: null, quantity: 1, position: null, url: null, image_url: null, coupon: null, ...over };
}

type ProductProps = EventOf<'Product Viewed'>['properties'];

function productProps(over: Partial<ProductProps> = {}): ProductProps {
  return { ...product(), cart_id: null, value: null, currency: 'EUR', ...over };
}

const build = {
  page(props: Partial<EventOf<'Page Viewed'>['properties']> = {}, env: Partial<Envelope> = {}): EventOf<'Page Viewed'> {
    return {
      ...envelope(env),
      type: 'page',
      event: 'Page Viewed',
      properties: { name: null, category: null, path: null, url: null, referrer: null, title: null, search: null, ...props },
    };
  },
  productViewed(props: Partial<ProductProps> = {}, env: Partial<Envelope> = {}): EventOf<'Product Viewed'> {
    return { ...envelope(env), type: 'track', event: 'Product Viewed', properties: productProps(props) };
  },
  productAdded(props: Partial<ProductProps> = {}, env: Partial<Envelope> = {}): EventOf<'Product Added'> {
    return { ...envelope(env), type: 'track', event: 'Product Added', properties: productProps(props) };
  },
  checkoutStarted(props: Partial<EventOf<'Checkout Started'>['properties']> = {}, env: Partial<Envelope> = {}): EventOf<'Checkout Started'> {
    return {
      ...envelope(env),
      type: 'track',
      event: 'Checkout Started',
      properties: {
        checkout_id: null,
        order_id: null,
        affiliation: null,
        value: null,
        revenue: null,
        shipping: null,
        tax: null,
        discount: null,
        coupon: null,
        currency: 'EUR',
        products: [],
        ...props,
      },
    };
  },
  orderCompleted(props: Partial<EventOf<'Order Completed'>['properties']> = {}, env: Partial<Envelope> = {}): EventOf<'Order Completed'> {
    return {
      ...envelope(env),
      type: 'track',
      event: 'Order Completed',
      properties: {
        order_id: 'order-1',
        checkout_id: null,
        affiliation: null,
        total: null,
        subtotal: null,
        revenue: null,
        shipping: null,
        tax: null,
        discount: null,
        coupon: null,
        currency: 'EUR',
        products: [],
        ...props,
      },
    };
  },
  productsSearched(props: Partial<EventOf<'Products Searched'>['properties']> = {}, env: Partial<Envelope> = {}): EventOf<'Products Searched'> {
    return { ...envelope(env), type: 'track', event: 'Products Searched', properties: { query: null, ...props } };
  },
  identify(traits: Record<string, unknown>, env: Partial<Envelope> = {}): EventOf<'Identify'> {
    return { ...envelope(env), type: 'identify', event: 'Identify', traits };
  },
};

function pipeline(event: CanonicalEvent): PipelineEvent {
  return {
    v: 1,
    event,
    enrichment: { device: { type: 'desktop', browser: 'Safari', os: 'macOS' }, trafficSource: 'direct', country: 'FR' },
    session: { id: 'anon-1:1', start: false, seq: 3 },
    bot: null,
    human: 'validated',
  };
}

function serverEvent(event: CanonicalEvent, identity: Record<string, unknown> | null = null): ServerEvent {
  const r = toServerEvent(pipeline(event), identity);
  if (!r.ok) assert.fail(`expected ${event.event} to be forwarded, got ${r.reason}`);
  return r.event;
}

/** user_data of an event with the default context and no traits or user id. */
const BASE_USER_DATA = { client_ip_address: '203.0.113.7', client_user_agent: UA, fbc: FBC, fbp: FBP };

// ---------------------------------------------------------------------------------------------

describe('META_EVENT_NAMES', () => {
  it('maps exactly the six forwarded canonical events to Meta standard events', () => {
    assert.deepEqual(META_EVENT_NAMES, {
      'Page Viewed': 'PageView',
      'Product Viewed': 'ViewContent',
      'Product Added': 'AddToCart',
      'Checkout Started': 'InitiateCheckout',
      'Order Completed': 'Purchase',
      'Products Searched': 'Search',
    });
  });
});

describe('the six forwarded events, whole', () => {
  it('Page Viewed → PageView: no custom_data; user_data from context.traits, the user id and the context', () => {
    const e = build.page(
      { url: 'https://shop.example/', path: '/' },
      {
        messageId: 'ajs-page-1',
        userId: 'User-7',
        context: context({
          page: { url: 'https://shop.example/?utm_source=fb', path: '/', referrer: null, title: 'Home', search: '?utm_source=fb' },
          traits: { email: ' Mary@Example.com ', firstName: 'Mary', address: { country: 'France' } },
        }),
      },
    );
    assert.deepEqual(serverEvent(e), {
      event_name: 'PageView',
      event_time: T_SECONDS,
      event_id: 'ajs-page-1',
      action_source: 'website',
      event_source_url: 'https://shop.example/?utm_source=fb',
      user_data: { em: sha('mary@example.com'), fn: sha('mary'), country: sha('fr'), external_id: sha('user-7'), ...BASE_USER_DATA },
    });
  });

  it('Product Viewed → ViewContent: the product, its price as value (EUR, 2 decimals)', () => {
    const e = build.productViewed({ product_id: 'p-1', sku: 'SKU-1', name: 'Red shoes', price: 1999, quantity: 1 }, { messageId: 'ajs-view-1' });
    assert.deepEqual(serverEvent(e), {
      event_name: 'ViewContent',
      event_time: T_SECONDS,
      event_id: 'ajs-view-1',
      action_source: 'website',
      event_source_url: 'https://shop.example/products/red-shoes',
      user_data: BASE_USER_DATA,
      custom_data: {
        value: 19.99,
        currency: 'EUR',
        content_ids: ['p-1'],
        contents: [{ id: 'p-1', quantity: 1, item_price: 19.99 }],
        content_type: 'product',
      },
    });
  });

  it('Product Added → AddToCart: price × quantity (JPY, no decimals), the sku when there is no product_id', () => {
    const e = build.productAdded({ sku: 'SKU-9', price: 1999, quantity: 3, currency: 'JPY', cart_id: 'cart-1' }, { messageId: 'ajs-add-1' });
    assert.deepEqual(serverEvent(e), {
      event_name: 'AddToCart',
      event_time: T_SECONDS,
      event_id: 'ajs-add-1',
      action_source: 'website',
      event_source_url: 'https://shop.example/products/red-shoes',
      user_data: BASE_USER_DATA,
      custom_data: {
        value: 5997,
        currency: 'JPY',
        content_ids: ['SKU-9'],
        contents: [{ id: 'SKU-9', quantity: 3, item_price: 1999 }],
        content_type: 'product',
      },
    });
  });

  it('Checkout Started → InitiateCheckout: revenue as value (KWD, 3 decimals), the lines, the item count', () => {
    const e = build.checkoutStarted(
      {
        revenue: 12345,
        value: 13000,
        currency: 'KWD',
        products: [
          product({ product_id: 'a', price: 1999, quantity: 2 }),
          product({ sku: 'b', price: 500, quantity: 1 }),
          product({ name: 'no id', price: 100, quantity: 1 }),
        ],
      },
      { messageId: 'ajs-checkout-1', context: context({ page: { url: 'https://shop.example/checkout', path: '/checkout', referrer: null, title: null, search: null } }) },
    );
    assert.deepEqual(serverEvent(e), {
      event_name: 'InitiateCheckout',
      event_time: T_SECONDS,
      event_id: 'ajs-checkout-1',
      action_source: 'website',
      event_source_url: 'https://shop.example/checkout',
      user_data: BASE_USER_DATA,
      custom_data: {
        value: 12.345,
        currency: 'KWD',
        contents: [
          { id: 'a', quantity: 2, item_price: 1.999 },
          { id: 'b', quantity: 1, item_price: 0.5 },
        ],
        content_type: 'product',
        num_items: 4,
      },
    });
  });

  it('Order Completed → Purchase: revenue as value, order_id, distinct content_ids, every line, the item count', () => {
    const e = build.orderCompleted(
      {
        order_id: 'order-42',
        revenue: 4999,
        total: 5999,
        subtotal: 4999,
        shipping: 700,
        tax: 300,
        products: [product({ product_id: 'p-1', price: 1999, quantity: 2 }), product({ product_id: 'p-2', price: 1001, quantity: 1 }), product({ product_id: 'p-1', quantity: 1 })],
      },
      {
        messageId: 'ajs-order-1',
        userId: 'u-1',
        context: context({
          page: { url: 'https://shop.example/thank-you', path: '/thank-you', referrer: null, title: null, search: null },
          traits: { email: 'John_Smith@gmail.com', phone: '+1 (650) 555-1212' },
        }),
      },
    );
    assert.deepEqual(serverEvent(e), {
      event_name: 'Purchase',
      event_time: T_SECONDS,
      event_id: 'ajs-order-1',
      action_source: 'website',
      event_source_url: 'https://shop.example/thank-you',
      user_data: {
        em: '62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f',
        ph: 'e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176',
        external_id: sha('u-1'),
        ...BASE_USER_DATA,
      },
      custom_data: {
        value: 49.99,
        currency: 'EUR',
        content_ids: ['p-1', 'p-2'],
        contents: [
          { id: 'p-1', quantity: 2, item_price: 19.99 },
          { id: 'p-2', quantity: 1, item_price: 10.01 },
          { id: 'p-1', quantity: 1 },
        ],
        content_type: 'product',
        num_items: 4,
        order_id: 'order-42',
      },
    });
  });

  it('Products Searched → Search: the query as search_string; no page, no event_source_url', () => {
    const e = build.productsSearched({ query: 'red shoes' }, { messageId: 'ajs-search-1', context: context({ page: null }) });
    assert.deepEqual(serverEvent(e), {
      event_name: 'Search',
      event_time: T_SECONDS,
      event_id: 'ajs-search-1',
      action_source: 'website',
      user_data: BASE_USER_DATA,
      custom_data: { search_string: 'red shoes' },
    });
  });
});

describe('money: minor units → the decimal value Meta takes, exactly', () => {
  const value = (currency: string, price: number): unknown => serverEvent(build.productViewed({ product_id: 'p', price, currency })).custom_data?.value;
  it('EUR (2 decimals), JPY (0), KWD (3), CLF (4)', () => {
    assert.equal(value('EUR', 1999), 19.99);
    assert.equal(value('EUR', 1), 0.01);
    assert.equal(value('EUR', 0), 0);
    assert.equal(value('JPY', 1999), 1999);
    assert.equal(value('KWD', 1999), 1.999);
    assert.equal(value('KWD', 1), 0.001);
    assert.equal(value('CLF', 12345), 1.2345);
    assert.equal(value('USD', 100000000000), 1000000000);
  });
  it('ViewContent/AddToCart: price × quantity, else the event value, else no value (currency still sent)', () => {
    assert.deepEqual(serverEvent(build.productAdded({ product_id: 'p', price: 250, quantity: 4 })).custom_data?.value, 10);
    const noPrice = serverEvent(build.productAdded({ product_id: 'p', value: 1500, quantity: 2 })).custom_data;
    assert.deepEqual(noPrice, { value: 15, currency: 'EUR', content_ids: ['p'], contents: [{ id: 'p', quantity: 2 }], content_type: 'product' });
    assert.deepEqual(serverEvent(build.productViewed({ name: 'no id, no price' })).custom_data, { currency: 'EUR' });
  });
  it('Purchase: revenue, else total, else the sum of the priced lines, else 0', () => {
    const order = (p: Partial<EventOf<'Order Completed'>['properties']>): unknown => serverEvent(build.orderCompleted(p)).custom_data?.value;
    assert.equal(order({ revenue: 4999, total: 5999 }), 49.99);
    assert.equal(order({ total: 5999 }), 59.99);
    assert.equal(order({ products: [product({ sku: 'a', price: 1000, quantity: 2 }), product({ sku: 'b', quantity: 5 })] }), 20);
    assert.equal(order({}), 0);
    assert.deepEqual(serverEvent(build.orderCompleted({ order_id: 'o-7' })).custom_data, { value: 0, currency: 'EUR', order_id: 'o-7' });
  });
  it('InitiateCheckout: revenue, else value, else the sum of the priced lines, else none', () => {
    const checkout = (p: Partial<EventOf<'Checkout Started'>['properties']>): unknown => serverEvent(build.checkoutStarted(p)).custom_data;
    assert.deepEqual(checkout({ value: 1234, currency: 'JPY' }), { value: 1234, currency: 'JPY' });
    assert.deepEqual(checkout({ products: [product({ product_id: 'a', price: 333, quantity: 3 })] }), {
      value: 9.99,
      currency: 'EUR',
      contents: [{ id: 'a', quantity: 3, item_price: 3.33 }],
      content_type: 'product',
      num_items: 3,
    });
    assert.deepEqual(checkout({}), { currency: 'EUR' });
  });
});

describe('the rest of the server event', () => {
  it('event_time: Unix seconds, rounded down', () => {
    assert.equal(serverEvent(build.page({}, { timestamp: 1_700_000_000_999 })).event_time, 1_700_000_000);
    assert.equal(serverEvent(build.page({}, { timestamp: 1_700_000_000_000 })).event_time, 1_700_000_000);
  });
  it('event_source_url: context.page.url, else a page call’s own url; only http(s) URLs', () => {
    const pageUrl = (e: CanonicalEvent): string | undefined => serverEvent(e).event_source_url;
    assert.equal(pageUrl(build.page({ url: 'https://shop.example/own' }, { context: context({ page: null }) })), 'https://shop.example/own');
    assert.equal(pageUrl(build.page({ url: 'https://shop.example/own' }, { context: context({ page: { url: 'about:blank', path: null, referrer: null, title: null, search: null } }) })), 'https://shop.example/own');
    assert.equal(pageUrl(build.productViewed({ url: 'https://shop.example/p' }, { context: context({ page: null }) })), undefined);
    assert.equal(pageUrl(build.page({ url: 'file:///tmp/x.html' }, { context: context({ page: null }) })), undefined);
  });
  it('a Products Searched without a query has no custom_data', () => {
    assert.equal('custom_data' in serverEvent(build.productsSearched({ query: null })), false);
  });
  it('a server-side event without IP, user agent or Meta cookies leaves them out', () => {
    const e = build.orderCompleted({}, { context: context({ ip: null, userAgent: null, fbc: null, fbp: null, page: null }) });
    assert.deepEqual(serverEvent(e).user_data, {});
  });
});

describe('identity: the latest identify fills what the event lacks', () => {
  const identify = build.identify(
    { email: 'mary@example.com', firstName: 'Mary', lastName: 'Smith', phone: '+33 6 12 34 56 78', address: { city: 'Paris', postalCode: '75018', country: 'FR' } },
    { userId: 'user-1', messageId: 'ajs-identify-1' },
  );

  it('identityTraitsOf: the identify traits and its user id; null for other events', () => {
    assert.deepEqual(identityTraitsOf(identify), {
      email: 'mary@example.com',
      firstName: 'Mary',
      lastName: 'Smith',
      phone: '+33 6 12 34 56 78',
      address: { city: 'Paris', postalCode: '75018', country: 'FR' },
      [IDENTITY_USER_ID]: 'user-1',
    });
    assert.equal(identityTraitsOf(build.page()), null);
    assert.equal(identityTraitsOf(build.orderCompleted({}, { userId: 'user-1', context: context({ traits: { email: 'a@b.co' } }) })), null);
  });
  it('identityTraitsOf: an anonymous identify keeps its traits; a client-sent "__userId" trait is not taken for the user id', () => {
    assert.deepEqual(identityTraitsOf(build.identify({ email: 'a@example.com', [IDENTITY_USER_ID]: 'spoof' })), { email: 'a@example.com' });
    assert.deepEqual(identityTraitsOf(build.identify({ [IDENTITY_USER_ID]: 'spoof' }, { userId: 'real' })), { [IDENTITY_USER_ID]: 'real' });
    assert.equal(identityTraitsOf(build.identify({})), null);
  });

  it("an anonymous event with no traits gets the identity's traits and user id", () => {
    const e = build.orderCompleted({ order_id: 'o-1', revenue: 1000 });
    assert.deepEqual(serverEvent(e, identityTraitsOf(identify)).user_data, {
      em: sha('mary@example.com'),
      ph: sha('33612345678'),
      fn: sha('mary'),
      ln: sha('smith'),
      ct: sha('paris'),
      zp: sha('75018'),
      country: sha('fr'),
      external_id: sha('user-1'),
      ...BASE_USER_DATA,
    });
  });

  it("the event's own traits win field by field, address included; the rest comes from the identity", () => {
    const e = build.productAdded(
      { product_id: 'p', price: 100 },
      { context: context({ traits: { email: 'mary.new@example.com', first_name: 'Marie', address: { city: 'Lyon' } } }) },
    );
    assert.deepEqual(serverEvent(e, identityTraitsOf(identify)).user_data, {
      em: sha('mary.new@example.com'),
      ph: sha('33612345678'),
      fn: sha('marie'),
      ln: sha('smith'),
      ct: sha('lyon'),
      zp: sha('75018'),
      country: sha('fr'),
      external_id: sha('user-1'),
      ...BASE_USER_DATA,
    });
  });

  it("the event's own user id wins; the same user's identity is still used", () => {
    const e = build.page({}, { userId: 'user-1' });
    assert.equal(serverEvent(e, identityTraitsOf(identify)).user_data.em, sha('mary@example.com'));
    assert.equal(serverEvent(e, identityTraitsOf(identify)).user_data.external_id, sha('user-1'));
  });

  it("another user's identity (a shared browser) is not used at all", () => {
    const e = build.page({}, { userId: 'user-2', context: context({ traits: { lastName: 'Jones' } }) });
    assert.deepEqual(serverEvent(e, identityTraitsOf(identify)).user_data, { ln: sha('jones'), external_id: sha('user-2'), ...BASE_USER_DATA });
  });

  it('an anonymous identify (no user id) still fills the traits of a later logged-in event', () => {
    const anonymous = identityTraitsOf(build.identify({ email: 'anon@example.com' }));
    const e = build.page({}, { userId: 'user-9' });
    assert.deepEqual(serverEvent(e, anonymous).user_data, { em: sha('anon@example.com'), external_id: sha('user-9'), ...BASE_USER_DATA });
  });

  it('successive identifies accumulate with mergeTraits, and the stored identity is never modified', () => {
    const first = identityTraitsOf(build.identify({ email: 'mary@example.com', phone: '+33612345678' }));
    const second = identityTraitsOf(build.identify({ email: 'mary@work.example' }, { userId: 'user-1' }));
    const stored = mergeTraits(first, second);
    const snapshot = structuredClone(stored);
    const u = serverEvent(build.page(), stored).user_data;
    assert.deepEqual(u, { em: sha('mary@work.example'), ph: sha('33612345678'), external_id: sha('user-1'), ...BASE_USER_DATA });
    assert.deepEqual(stored, snapshot);
  });
});

describe('events Meta gets none for', () => {
  it('Product List Viewed, Product Clicked, Product Removed, Cart Viewed and Identify are not forwarded', () => {
    const base = envelope();
    const others: CanonicalEvent[] = [
      { ...base, type: 'track', event: 'Product List Viewed', properties: { list_id: null, category: null, currency: 'EUR', products: [] } },
      { ...base, type: 'track', event: 'Product Clicked', properties: productProps({ product_id: 'p' }) },
      { ...base, type: 'track', event: 'Product Removed', properties: productProps({ product_id: 'p' }) },
      { ...base, type: 'track', event: 'Cart Viewed', properties: { cart_id: null, currency: 'EUR', products: [] } },
      build.identify({ email: 'mary@example.com' }, { userId: 'user-1' }),
    ];
    for (const e of others) assert.deepEqual(toServerEvent(pipeline(e), null), { ok: false, reason: 'not_forwarded' }, e.event);
  });
});
