/**
 * normalizeEvent: identity, type, context, sessions, typed properties per event, extras, and the
 * reasons it gives when it refuses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeEvent, campaignFromUrl, MAX_ID_LENGTH } from '../../src/contract/index.ts';
import { PlatformErrors } from '../../src/errors.ts';
import { RECEIVED_AT, accept, acceptAs, assertSentence, ingest, refuse, track } from './fixtures.ts';

const UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';

describe('identity', () => {
  it('keys a visitor by anonymousId, else by "user:" + userId', () => {
    const anon = accept(track('Product Viewed', {}, { anonymousId: 'a-1', userId: undefined }));
    assert.deepEqual([anon.visitorId, anon.anonymousId, anon.userId], ['a-1', 'a-1', null]);
    const both = accept(track('Product Viewed', {}, { anonymousId: 'a-1', userId: 'u-1' }));
    assert.deepEqual([both.visitorId, both.anonymousId, both.userId], ['a-1', 'a-1', 'u-1']);
    const user = accept(track('Product Viewed', {}, { anonymousId: undefined, userId: 'u-1' }));
    assert.deepEqual([user.visitorId, user.anonymousId, user.userId], ['user:u-1', null, 'u-1']);
    // analytics.js sends "userId": null before identify; an empty anonymousId is no id either.
    const nulls = accept(track('Product Viewed', {}, { anonymousId: '', userId: 'u-2' }));
    assert.deepEqual([nulls.visitorId, nulls.anonymousId], ['user:u-2', null]);
    assert.equal(accept(track('Product Viewed', {}, { userId: null })).userId, null);
  });

  it('turns whole-number ids into strings, and refuses other types with EVENT_SCHEMA', () => {
    const e = accept(track('Product Viewed', {}, { anonymousId: undefined, userId: 12345, messageId: 987 }));
    assert.deepEqual([e.userId, e.visitorId, e.messageId], ['12345', 'user:12345', '987']);
    refuse(track('Product Viewed', {}, { userId: 1.5 }), 'SHOP_ERR_EVENT_SCHEMA', 'userId');
    refuse(track('Product Viewed', {}, { userId: 2 ** 60 }), 'SHOP_ERR_EVENT_SCHEMA', 'userId');
    refuse(track('Product Viewed', {}, { anonymousId: { id: 1 } }), 'SHOP_ERR_EVENT_SCHEMA', 'anonymousId');
    refuse(track('Product Viewed', {}, { anonymousId: true }), 'SHOP_ERR_EVENT_SCHEMA', 'anonymousId');
    refuse(track('Product Viewed', {}, { messageId: ['m'] }), 'SHOP_ERR_EVENT_SCHEMA', 'messageId');
  });

  it(`refuses ids longer than ${MAX_ID_LENGTH} characters`, () => {
    accept(track('Product Viewed', {}, { anonymousId: 'a'.repeat(MAX_ID_LENGTH), userId: 'u'.repeat(MAX_ID_LENGTH) }));
    refuse(track('Product Viewed', {}, { anonymousId: 'a'.repeat(MAX_ID_LENGTH + 1) }), 'SHOP_ERR_EVENT_SCHEMA', 'anonymousId');
    refuse(track('Product Viewed', {}, { messageId: 'm'.repeat(MAX_ID_LENGTH + 1) }), 'SHOP_ERR_EVENT_SCHEMA', 'messageId');
  });

  it('refuses a message without anonymousId and userId with MISSING_IDENTITY', () => {
    refuse(track('Product Viewed', {}, { anonymousId: undefined }), 'SHOP_ERR_MISSING_IDENTITY');
    refuse(track('Product Viewed', {}, { anonymousId: null, userId: '' }), 'SHOP_ERR_MISSING_IDENTITY');
  });

  it('refuses a message without messageId with MISSING_MESSAGE_ID', () => {
    for (const messageId of [undefined, null, '']) refuse(track('Product Viewed', {}, { messageId }), 'SHOP_ERR_MISSING_MESSAGE_ID', 'messageId');
  });

  it('copies the merchant from the ingest context and marks the version', () => {
    const e = accept(track('Product Viewed'), ingest({ merchantId: 'shop-b' }));
    assert.equal(e.merchantId, 'shop-b');
    assert.equal(e.v, 1);
  });
});

describe('type', () => {
  it('takes the type from the message, else from the endpoint', () => {
    assert.equal(accept({ messageId: 'm', anonymousId: 'a', event: 'Product Viewed' }, ingest(), 'track').event, 'Product Viewed');
    assert.equal(accept({ messageId: 'm', anonymousId: 'a', name: 'Home' }, ingest(), 'page').event, 'Page Viewed');
    assert.equal(accept({ messageId: 'm', userId: 'u', traits: {} }, ingest(), 'identify').event, 'Identify');
    assert.equal(accept({ type: 'page', messageId: 'm', anonymousId: 'a' }, ingest(), 'page').type, 'page');
  });

  it('refuses a batch message without type, and a type the endpoint contradicts', () => {
    refuse({ messageId: 'm', anonymousId: 'a', event: 'Product Viewed' }, 'SHOP_ERR_EVENT_SCHEMA', 'type');
    const r = refuse({ type: 'page', messageId: 'm', anonymousId: 'a' }, 'SHOP_ERR_EVENT_SCHEMA', 'type', ingest(), 'track');
    assert.match(r.message, /track endpoint/);
    refuse({ type: 7, messageId: 'm', anonymousId: 'a' }, 'SHOP_ERR_EVENT_SCHEMA', 'type');
  });

  it('refuses screen, group and alias calls, and made-up types, with UNSUPPORTED_TYPE', () => {
    for (const type of ['screen', 'group', 'alias', 'Track', 'event', '']) {
      refuse({ type, messageId: 'm', anonymousId: 'a', userId: 'u', groupId: 'g', previousId: 'p' }, 'SHOP_ERR_UNSUPPORTED_TYPE', 'type');
    }
  });

  it('refuses what is not a JSON object', () => {
    for (const m of [null, undefined, 'track', 42, [], [track('Product Viewed')]]) {
      const r = normalizeEvent(m, ingest());
      assert.ok(!r.ok);
      assert.equal(r.reason.code, 'SHOP_ERR_EVENT_SCHEMA');
      assertSentence(r.reason.message);
    }
  });
});

describe('context', () => {
  it('keeps the standard fields of the message context', () => {
    const e = accept(
      track('Product Viewed', {}, {
        context: {
          ip: '203.0.113.5',
          userAgent: UA,
          locale: 'fr-FR',
          timezone: 'Europe/Paris',
          location: { country: 'fr', city: 'Lyon' },
          library: { name: 'analytics.js', version: 'next-1.70.0' },
          page: { url: 'https://shop.example/p/1', path: '/p/1', referrer: 'https://www.google.com/', title: 'Runner', search: '' },
          campaign: { source: 'news', medium: 'email', name: 'spring', term: 'shoes', content: 'hero' },
          traits: { email: 'Jane@Example.com', phone: '+33 6 12 34 56 78' },
          fbp: 'fb.1.1596403881668.1116446470',
          fbc: 'fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890',
          device: { type: 'ios' },
          app: { name: 'ignored' },
        },
      }),
    );
    assert.deepEqual(e.context, {
      ip: '203.0.113.5',
      userAgent: UA,
      page: { url: 'https://shop.example/p/1', path: '/p/1', referrer: 'https://www.google.com/', title: 'Runner', search: null },
      campaign: { source: 'news', medium: 'email', name: 'spring', term: 'shoes', content: 'hero' },
      locale: 'fr-FR',
      timezone: 'Europe/Paris',
      country: 'FR',
      library: { name: 'analytics.js', version: 'next-1.70.0' },
      traits: { email: 'Jane@Example.com', phone: '+33 6 12 34 56 78' },
      fbp: 'fb.1.1596403881668.1116446470',
      fbc: 'fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890',
    });
  });

  it('falls back to the request IP, User-Agent and CDN country for browser messages', () => {
    const ctx = ingest({ requestIp: '198.51.100.7', requestUserAgent: UA, cdnCountry: 'de' });
    const e = accept(track('Product Viewed', {}, { context: { library: { name: 'analytics.js', version: '1' } } }), ctx);
    assert.deepEqual([e.context.ip, e.context.userAgent, e.context.country], ['198.51.100.7', UA, 'DE']);
    const bare = accept(track('Product Viewed'), ctx);
    assert.deepEqual([bare.context.ip, bare.context.userAgent, bare.context.country], ['198.51.100.7', UA, 'DE']);
    const own = accept(track('Product Viewed', {}, { context: { ip: '203.0.113.1', userAgent: 'X', location: { country: 'United States' } } }), ctx);
    assert.deepEqual([own.context.ip, own.context.userAgent, own.context.country], ['203.0.113.1', 'X', 'United States']);
  });

  it("does not take a server library's request IP, User-Agent or CDN country for the shopper's", () => {
    const ctx = ingest({ requestIp: '10.0.0.5', requestUserAgent: 'analytics-node-next/latest', cdnCountry: 'US' });
    for (const library of [{ name: '@segment/analytics-node', version: '3.1.0' }, { name: 'analytics-python', version: '2.3.2' }, 'analytics-ruby']) {
      const e = accept(track('Order Completed', { order_id: 'o' }, { context: { library } }), ctx);
      assert.deepEqual([e.context.ip, e.context.userAgent, e.context.country], [null, null, null], JSON.stringify(library));
    }
    const server = accept(track('Order Completed', { order_id: 'o' }, { channel: 'server' }), ctx);
    assert.equal(server.context.ip, null);
    // What the server forwards from the shopper's request is kept.
    const fwd = accept(track('Order Completed', { order_id: 'o' }, { context: { library: { name: '@segment/analytics-node' }, ip: '203.0.113.9', userAgent: UA } }), ctx);
    assert.deepEqual([fwd.context.ip, fwd.context.userAgent], ['203.0.113.9', UA]);
  });

  it("normalizes countries: alpha-2 upper-cased, Cloudflare's XX dropped, other text kept", () => {
    const country = (c: unknown, cdn?: string) => accept(track('Product Viewed', {}, { context: { location: { country: c } } }), ingest({ cdnCountry: cdn })).context.country;
    assert.equal(country('fr'), 'FR');
    assert.equal(country('Fr'), 'FR');
    assert.equal(country('United States'), 'United States');
    assert.equal(country(undefined, 'gb'), 'GB');
    assert.equal(country(undefined, 'XX'), null);
    assert.equal(country(undefined, 'T1'), 'T1');
    assert.equal(country(undefined, ''), null);
    assert.equal(country('it', 'DE'), 'IT');
  });

  it('reads old libraries that name themselves with a bare string', () => {
    assert.deepEqual(accept(track('Product Viewed', {}, { context: { library: 'analytics-ios' } })).context.library, { name: 'analytics-ios', version: null });
  });

  it('has null page, campaign, library and traits when the message says nothing of them', () => {
    const c = accept(track('Product Viewed')).context;
    assert.deepEqual(c, { ip: null, userAgent: null, page: null, campaign: null, locale: null, timezone: null, country: null, library: null, traits: null, fbp: null, fbc: null });
  });

  it('merges a batch context field by field; the message context wins', () => {
    const ctx = ingest({
      batchContext: { ip: '198.51.100.1', locale: 'de-DE', library: { name: 'batch-lib', version: '1' }, page: { url: 'https://batch.example/', title: 'Batch' }, campaign: { source: 'batch', medium: 'cpc' } },
    });
    const e = accept(track('Product Viewed', {}, { context: { ip: '203.0.113.2', page: { url: 'https://shop.example/p' }, campaign: { source: 'mine' } } }), ctx);
    assert.equal(e.context.ip, '203.0.113.2');
    assert.equal(e.context.locale, 'de-DE');
    assert.deepEqual(e.context.library, { name: 'batch-lib', version: '1' });
    assert.deepEqual(e.context.page, { url: 'https://shop.example/p', path: null, referrer: null, title: 'Batch', search: null });
    assert.deepEqual(e.context.campaign, { source: 'mine', medium: 'cpc', name: null, term: null, content: null });
    const alone = accept(track('Product Viewed'), ctx);
    assert.equal(alone.context.ip, '198.51.100.1');
  });

  it('refuses context fields of the wrong type with EVENT_SCHEMA and their path', () => {
    refuse(track('Product Viewed', {}, { context: 'browser' }), 'SHOP_ERR_EVENT_SCHEMA', 'context');
    refuse(track('Product Viewed', {}, { context: [] }), 'SHOP_ERR_EVENT_SCHEMA', 'context');
    refuse(track('Product Viewed', {}, { context: { page: 'https://x' } }), 'SHOP_ERR_EVENT_SCHEMA', 'context.page');
    refuse(track('Product Viewed', {}, { context: { page: { url: {} } } }), 'SHOP_ERR_EVENT_SCHEMA', 'context.page.url');
    refuse(track('Product Viewed', {}, { context: { userAgent: false } }), 'SHOP_ERR_EVENT_SCHEMA', 'context.userAgent');
    refuse(track('Product Viewed', {}, { context: { traits: 'jane' } }), 'SHOP_ERR_EVENT_SCHEMA', 'context.traits');
    refuse(track('Product Viewed', {}, { context: { location: [] } }), 'SHOP_ERR_EVENT_SCHEMA', 'context.location');
    refuse(track('Product Viewed', {}, { context: { campaign: 'spring' } }), 'SHOP_ERR_EVENT_SCHEMA', 'context.campaign');
    refuse(track('Product Viewed'), 'SHOP_ERR_EVENT_SCHEMA', 'batch.context', ingest({ batchContext: 'x' }));
  });

  it('keeps context.traits as given, for the Conversions API stage to hash', () => {
    const traits = { email: ' Jane@Example.COM ', address: { city: 'Paris', postalCode: '75001' } };
    assert.deepEqual(accept(track('Product Viewed', {}, { context: { traits } })).context.traits, traits);
  });
});

describe('campaign from the page URL', () => {
  it('reads utm_* query parameters when context.campaign is absent', () => {
    const e = accept(track('Product Viewed', {}, { context: { page: { url: 'https://shop.example/p/1?utm_source=google&utm_medium=cpc&utm_campaign=spring%20sale&utm_term=running+shoes&utm_content=ad%2B1&x=1#top' } } }));
    assert.deepEqual(e.context.campaign, { source: 'google', medium: 'cpc', name: 'spring sale', term: 'running shoes', content: 'ad+1' });
  });

  it('reads them from context.page.search when there is no URL', () => {
    assert.deepEqual(accept(track('Product Viewed', {}, { context: { page: { search: '?utm_source=news' } } })).context.campaign, { source: 'news', medium: null, name: null, term: null, content: null });
    assert.equal(accept(track('Product Viewed', {}, { context: { page: { search: 'utm_medium=email' } } })).context.campaign?.medium, 'email');
  });

  it('prefers context.campaign to the URL', () => {
    const e = accept(track('Product Viewed', {}, { context: { campaign: { source: 'given' }, page: { url: 'https://s.example/?utm_source=url' } } }));
    assert.equal(e.context.campaign?.source, 'given');
  });

  it('handles the edge cases of query strings', () => {
    assert.equal(campaignFromUrl('https://s.example/p'), null);
    assert.equal(campaignFromUrl('https://s.example/p?a=1&b=2'), null);
    assert.equal(campaignFromUrl('https://s.example/utm_source/p?a=1'), null);
    assert.equal(campaignFromUrl('https://s.example/p#?utm_source=frag'), null);
    assert.equal(campaignFromUrl('https://s.example/p?utm_source=&utm_medium'), null);
    assert.equal(campaignFromUrl('https://s.example/p?x=1#utm_source=frag'), null);
    assert.equal(campaignFromUrl('https://s.example/p?utm_source=a&utm_source=b')?.source, 'a');
    assert.equal(campaignFromUrl('https://s.example/p?utm_source=%E0%A4%A')?.source, '%E0%A4%A');
    assert.equal(campaignFromUrl('https://s.example/p?utm_source=caf%C3%A9')?.source, 'café');
    assert.equal(campaignFromUrl('https://s.example/p?UTM_SOURCE=x'), null);
    assert.equal(campaignFromUrl('https://s.example/p?utm_sourcex=x&utm_id=7'), null);
    assert.equal(campaignFromUrl('?utm_campaign=a=b')?.name, 'a=b');
  });

  it('takes linear time on long hostile query strings', () => {
    const url = `https://s.example/?${'utm_&'.repeat(20_000)}utm_source=x`;
    const t0 = performance.now();
    assert.equal(campaignFromUrl(url)?.source, 'x');
    assert.ok(performance.now() - t0 < 500);
  });
});

describe('sessions', () => {
  it('takes context.sessionId, else properties.session_id, else none', () => {
    assert.equal(accept(track('Product Viewed', {}, { context: { sessionId: 's-1' } })).sessionId, 's-1');
    assert.equal(accept(track('Product Viewed', { session_id: 1714566600 })).sessionId, '1714566600');
    assert.equal(accept(track('Product Viewed')).sessionId, null);
    const page = acceptAs('Page Viewed', { type: 'page', messageId: 'm', anonymousId: 'a', properties: { session_id: 's-2' } });
    assert.equal(page.sessionId, 's-2');
    assert.equal(page.properties.extra, undefined);
  });

  it('keeps a different properties.session_id in extra instead of losing it', () => {
    const e = acceptAs('Product Viewed', track('Product Viewed', { session_id: 'p' }, { context: { sessionId: 'c' } }));
    assert.equal(e.sessionId, 'c');
    assert.deepEqual(e.properties.extra, { session_id: 'p' });
    assert.equal(acceptAs('Product Viewed', track('Product Viewed', { session_id: 'c' }, { context: { sessionId: 'c' } })).properties.extra, undefined);
  });
});

const FULL_PRODUCT = {
  product_id: '507f1f77bcf86cd799439011',
  sku: 'G-32',
  category: 'Games',
  name: 'Monopoly: 3rd Edition',
  brand: 'Hasbro',
  variant: '200 pieces',
  price: 18.99,
  quantity: 1,
  coupon: 'MAYDEALS',
  position: 3,
  url: 'https://www.example.com/product/path',
  image_url: 'https://www.example.com/product/path.jpg',
};
const CANONICAL_PRODUCT = { ...FULL_PRODUCT, price: 1899 };

describe('properties, per event (the examples of the Segment E-commerce v2 spec)', () => {
  it('Products Searched: query', () => {
    assert.deepEqual(acceptAs('Products Searched', track('Products Searched', { query: 'blue roses' })).properties, { query: 'blue roses' });
    assert.deepEqual(acceptAs('Products Searched', track('Products Searched', { query: 42 })).properties, { query: '42' });
    // The spec allows an object query: it is kept, in extra.
    const structured = acceptAs('Products Searched', track('Products Searched', { query: { color: 'blue' } }));
    assert.deepEqual(structured.properties, { query: null, extra: { query: { color: 'blue' } } });
  });

  it('Product List Viewed: list_id, category, products', () => {
    const e = acceptAs('Product List Viewed', track('Product List Viewed', { list_id: 'hot_deals_1', category: 'Deals', products: [{ product_id: '507f', sku: '45790-32', name: 'Monopoly: 3rd Edition', price: 19, position: 1, category: 'Games' }] }));
    assert.deepEqual(e.properties, {
      list_id: 'hot_deals_1',
      category: 'Deals',
      currency: 'EUR',
      products: [{ product_id: '507f', sku: '45790-32', name: 'Monopoly: 3rd Edition', brand: null, category: 'Games', variant: null, price: 1900, quantity: 1, position: 1, url: null, image_url: null, coupon: null }],
    });
  });

  for (const name of ['Product Viewed', 'Product Added', 'Product Removed', 'Product Clicked'] as const) {
    it(`${name}: one product's fields at the top level, cart_id, value, currency`, () => {
      const e = acceptAs(name, track(name, { cart_id: 'skdjsidjsdkdj29j', ...FULL_PRODUCT, currency: 'usd', value: 18.99 }));
      assert.deepEqual(e.properties, { ...CANONICAL_PRODUCT, cart_id: 'skdjsidjsdkdj29j', value: 1899, currency: 'USD' });
    });
  }

  it('product fields: numbers become strings, quantity defaults to 1, digit strings are read', () => {
    const e = acceptAs('Product Added', track('Product Added', { product_id: 9714107479, sku: 42, quantity: '3', position: '0' }));
    assert.deepEqual([e.properties.product_id, e.properties.sku, e.properties.quantity, e.properties.position], ['9714107479', '42', 3, 0]);
    assert.equal(acceptAs('Product Added', track('Product Added', {})).properties.quantity, 1);
    assert.equal(acceptAs('Product Added', track('Product Added', { quantity: null })).properties.quantity, 1);
  });

  it('refuses a quantity that is not a whole number of at least 1, and a bad position', () => {
    for (const quantity of [0, -1, 1.5, '1.5', 'two', true, {}]) refuse(track('Product Added', { quantity }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.quantity');
    for (const position of [-1, 2.5, 'top']) refuse(track('Product Clicked', { position }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.position');
    refuse(track('Cart Viewed', { products: [{}, { quantity: 0 }] }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.products[1].quantity');
  });

  it('refuses text fields of the wrong type', () => {
    refuse(track('Product Viewed', { name: { en: 'Runner' } }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.name');
    refuse(track('Product Viewed', { brand: true }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.brand');
    refuse(track('Cart Viewed', { cart_id: ['c'] }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.cart_id');
  });

  it('Cart Viewed: cart_id, products', () => {
    const e = acceptAs('Cart Viewed', track('Cart Viewed', { cart_id: 'd92jd29jd92jd29j92d92jd', products: [FULL_PRODUCT, { product_id: '505b', price: 3, position: 2 }] }));
    assert.equal(e.properties.cart_id, 'd92jd29jd92jd29j92d92jd');
    assert.deepEqual(e.properties.products[0], CANONICAL_PRODUCT);
    assert.deepEqual([e.properties.products[1]!.price, e.properties.products[1]!.position], [300, 2]);
    assert.deepEqual(acceptAs('Cart Viewed', track('Cart Viewed', {})).properties.products, []);
  });

  it('Checkout Started: ids, every amount, coupon, products', () => {
    const e = acceptAs(
      'Checkout Started',
      track('Checkout Started', { checkout_id: 'c1', order_id: '50314b8e9bcf000000000000', affiliation: 'Google Store', value: 30, revenue: 25.0, shipping: 3, tax: 2, discount: 2.5, coupon: 'hasbros', currency: 'USD', products: [{ product_id: '507f', price: 19, quantity: 1 }, { product_id: '505b', price: 3, quantity: 2 }] }),
    );
    const { products, ...rest } = e.properties;
    assert.deepEqual(rest, { checkout_id: 'c1', order_id: '50314b8e9bcf000000000000', affiliation: 'Google Store', value: 3000, revenue: 2500, shipping: 300, tax: 200, discount: 250, coupon: 'hasbros', currency: 'USD' });
    assert.deepEqual(products.map((p) => [p.price, p.quantity]), [[1900, 1], [300, 2]]);
  });

  it('Order Completed: order_id (required), every amount, products', () => {
    const e = acceptAs(
      'Order Completed',
      track('Order Completed', { checkout_id: 'fksdjfsdjfisjf9sdfjsd9f', order_id: '50314b8e9bcf000000000000', affiliation: 'Google Store', total: 27.5, subtotal: 22.5, revenue: 25.0, shipping: 3, tax: 2, discount: 2.5, coupon: 'hasbros', currency: 'USD', products: [FULL_PRODUCT] }),
    );
    const { products, ...rest } = e.properties;
    assert.deepEqual(rest, { order_id: '50314b8e9bcf000000000000', checkout_id: 'fksdjfsdjfisjf9sdfjsd9f', affiliation: 'Google Store', total: 2750, subtotal: 2250, revenue: 2500, shipping: 300, tax: 200, discount: 250, coupon: 'hasbros', currency: 'USD' });
    assert.deepEqual(products, [CANONICAL_PRODUCT]);
    assert.equal(acceptAs('Order Completed', track('Order Completed', { order_id: 1001 })).properties.order_id, '1001');
  });

  it('refuses an Order Completed without order_id with EVENT_SCHEMA', () => {
    for (const order_id of [undefined, null, '']) {
      const r = refuse(track('Order Completed', { order_id, total: 10 }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.order_id');
      assert.match(r.message, /order_id/);
    }
  });

  it('Page Viewed: name and category of the call, the page from properties or context.page', () => {
    const e = acceptAs('Page Viewed', {
      type: 'page',
      messageId: 'm',
      anonymousId: 'a',
      name: 'Product',
      category: 'Shoes',
      properties: { path: '/p/1', url: 'https://shop.example/p/1', referrer: '', title: 'Runner', search: '?q=1', category: 'Shoes', brand: 'Acme' },
      context: { page: { path: '/p/1', url: 'https://shop.example/p/1?from=ctx', title: 'Runner' } },
    });
    assert.deepEqual(e.properties, { name: 'Product', category: 'Shoes', path: '/p/1', url: 'https://shop.example/p/1', referrer: null, title: 'Runner', search: '?q=1', extra: { brand: 'Acme' } });
    assert.equal(e.context.page?.url, 'https://shop.example/p/1?from=ctx');
    // A server library's page call has the page in properties only: it fills context.page too.
    const server = acceptAs('Page Viewed', { type: 'page', messageId: 'm', anonymousId: 'a', properties: { name: 'Home', url: 'https://shop.example/?utm_source=x' } });
    assert.deepEqual([server.properties.name, server.context.page?.url, server.context.campaign?.source], ['Home', 'https://shop.example/?utm_source=x', 'x']);
    // analytics.js sends only context.page for a bare page(): properties are filled from it.
    const bare = acceptAs('Page Viewed', { type: 'page', messageId: 'm', anonymousId: 'a', context: { page: { path: '/', url: 'https://shop.example/', title: 'Home' } } });
    assert.deepEqual(bare.properties, { name: null, category: null, path: '/', url: 'https://shop.example/', referrer: null, title: 'Home', search: null });
    refuse({ type: 'page', messageId: 'm', anonymousId: 'a', name: { x: 1 } }, 'SHOP_ERR_EVENT_SCHEMA', 'name');
  });

  it('Identify: traits as given, no properties', () => {
    const traits = { email: 'peter@example.com', name: 'Peter Gibbons', plan: 'premium', logins: 5, address: { city: 'Austin' } };
    const e = acceptAs('Identify', { type: 'identify', messageId: 'm', userId: '97980cfea0067', traits, properties: { ignored: true } });
    assert.deepEqual(e.traits, traits);
    assert.equal('properties' in e, false);
    assert.deepEqual(acceptAs('Identify', { type: 'identify', messageId: 'm', userId: 'u' }).traits, {});
    refuse({ type: 'identify', messageId: 'm', userId: 'u', traits: 'vip' }, 'SHOP_ERR_EVENT_SCHEMA', 'traits');
  });

  it('refuses properties that are not an object', () => {
    for (const properties of ['not an object', [], 42, true]) refuse(track('Product Viewed', properties as never), 'SHOP_ERR_EVENT_SCHEMA', 'properties');
    refuse({ type: 'page', messageId: 'm', anonymousId: 'a', properties: [] }, 'SHOP_ERR_EVENT_SCHEMA', 'properties');
  });

  it('refuses products that are not an array of objects, with the path of the bad one', () => {
    refuse(track('Order Completed', { order_id: 'o', products: { product_id: 'p' } }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.products');
    refuse(track('Cart Viewed', { products: [{ product_id: 'p' }, 'p2'] }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.products[1]');
    refuse(track('Cart Viewed', { products: [null] }), 'SHOP_ERR_EVENT_SCHEMA', 'properties.products[0]');
  });
});

describe('extra', () => {
  it('keeps properties the contract does not name, as sent, at the event and the product level', () => {
    const e = acceptAs(
      'Order Completed',
      track('Order Completed', { order_id: 'o', payment_method: 'card', gift: true, tags: ['a', 'b'], nested: { deep: { n: 1 } }, products: [{ product_id: 'p', color: 'red', sizes: [42, 43] }] }),
    );
    assert.deepEqual(e.properties.extra, { payment_method: 'card', gift: true, tags: ['a', 'b'], nested: { deep: { n: 1 } } });
    assert.deepEqual(e.properties.products[0]!.extra, { color: 'red', sizes: [42, 43] });
  });

  it('has no extra when there is nothing extra', () => {
    const e = acceptAs('Product Viewed', track('Product Viewed', FULL_PRODUCT));
    assert.equal('extra' in e.properties, false);
  });

  it('keeps a "__proto__" property as data, without touching any prototype', () => {
    const m = JSON.parse('{"type":"track","event":"Product Viewed","messageId":"m","anonymousId":"a","properties":{"__proto__":{"polluted":true},"ok":1}}') as unknown;
    const e = acceptAs('Product Viewed', m);
    const extra = e.properties.extra!;
    assert.equal(Object.getPrototypeOf(extra), Object.prototype);
    assert.deepEqual(Object.keys(extra), ['__proto__', 'ok']);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.match(JSON.stringify(e), /"__proto__":\{"polluted":true\}/);
  });

  it('drops Segment plumbing: integrations, _metadata, writeKey, options', () => {
    const e = accept(track('Product Viewed', {}, { integrations: { All: true }, _metadata: { bundled: [] }, writeKey: 'wk_secret_123', options: {}, version: 2, channel: 'client' }));
    const text = JSON.stringify(e);
    for (const gone of ['integrations', '_metadata', 'wk_secret_123', 'options', 'channel']) assert.ok(!text.includes(gone), gone);
  });
});

describe('refusal reasons', () => {
  it('are sentences with an event-level code from the catalogue', () => {
    const eventLevel = new Set(
      [
        PlatformErrors.EVENT_SCHEMA, PlatformErrors.EVENT_TOO_LARGE, PlatformErrors.MISSING_MESSAGE_ID, PlatformErrors.MISSING_IDENTITY,
        PlatformErrors.UNSUPPORTED_TYPE, PlatformErrors.UNKNOWN_EVENT, PlatformErrors.TIMESTAMP_FUTURE, PlatformErrors.TIMESTAMP_PAST,
        PlatformErrors.INVALID_TIMESTAMP, PlatformErrors.INVALID_MONEY, PlatformErrors.INVALID_CURRENCY,
      ].map((s) => s.code as string),
    );
    const seen = new Set<string>();
    for (const m of fuzzMessages(3_000, 7)) {
      const r = normalizeEvent(m, ingest());
      if (r.ok) continue;
      assert.ok(eventLevel.has(r.reason.code), r.reason.code);
      assertSentence(r.reason.message);
      seen.add(r.reason.code);
    }
    assert.ok(seen.size >= 8, [...seen].join(' '));
  });
});

describe('robustness', () => {
  it('never throws, and every accepted event matches the schema (random messages)', () => {
    let accepted = 0;
    for (const m of fuzzMessages(5_000, 42)) {
      const r = normalizeEvent(m, ingest({ batchContext: m === null ? undefined : { locale: 'en' } }));
      if (r.ok) {
        accept(m, ingest({ batchContext: { locale: 'en' } }));
        accepted++;
      }
    }
    assert.ok(accepted > 500, String(accepted));
  });

  it('does not keep state from one call to the next', () => {
    const jpy = acceptAs('Product Viewed', track('Product Viewed', { price: 100, currency: 'JPY' }));
    const eur = acceptAs('Product Viewed', track('Product Viewed', { price: 100 }));
    refuse(track('Product Viewed', { price: 'x', currency: 'KWD' }), 'SHOP_ERR_INVALID_MONEY');
    const again = acceptAs('Product Viewed', track('Product Viewed', { price: 100 }));
    assert.deepEqual([jpy.properties.price, eur.properties.price, again.properties.price, again.properties.currency], [100, 10000, 10000, 'EUR']);
  });

  it('does not change the message', () => {
    const m = track('Order Completed', { order_id: 'o', total: '10.5', products: [{ price: 1, extra_field: 1 }] }, { context: { page: { url: 'https://s.example/?utm_source=a' } } });
    const before = JSON.stringify(m);
    accept(m);
    assert.equal(JSON.stringify(m), before);
  });
});

/** Random Segment-like messages, good and bad, from a seeded generator. */
function* fuzzMessages(n: number, seed: number): Generator<unknown> {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const scalars = [undefined, null, '', 'x', 0, 1, -1, 1.5, 1e21, NaN, true, [], {}, '19.99', 'abc', 12345, '2024-05-01T12:00:00Z'];
  const names = ['Product Viewed', 'product_added', 'Order Completed', 'Cart Viewed', 'Checkout Started', 'Products Searched', 'Product List Viewed', 'Removed Product', 'Clicked Product', 'Nope', ''];
  const value = (): unknown => (rand() < 0.7 ? pick(scalars) : rand() < 0.5 ? { a: pick(scalars) } : [pick(scalars)]);
  for (let i = 0; i < n; i++) {
    const good = rand() < 0.5;
    const props: Record<string, unknown> = {};
    for (const k of ['order_id', 'price', 'quantity', 'currency', 'products', 'total', 'discount', 'query', 'name', 'session_id', 'custom']) {
      if (rand() < 0.4) props[k] = good ? ({ order_id: 'o1', price: 9.99, quantity: 2, currency: pick(['USD', 'jpy', 'KWD']), products: [{ price: 1.25 }], total: '10.50', discount: -1, query: 'q', name: 'n', session_id: 's', custom: { a: 1 } } as Record<string, unknown>)[k] : value();
    }
    const m: Record<string, unknown> = {
      type: good ? pick(['track', 'track', 'page', 'identify']) : pick(['track', 'page', 'identify', 'screen', undefined, 3]),
      event: good ? pick(names.slice(0, 9)) : pick(names),
      messageId: good ? `m-${i}` : pick(['', null, `m-${i}`, 7, {}]),
      anonymousId: good ? `a-${i % 10}` : value(),
      userId: rand() < 0.5 ? value() : undefined,
      properties: good || rand() < 0.6 ? props : value(),
      traits: rand() < 0.5 ? { email: 'e' } : value(),
      context: good ? { page: { url: 'https://s.example/?utm_source=a' }, library: { name: 'analytics.js' } } : rand() < 0.5 ? { ip: value(), page: value(), campaign: value(), traits: value() } : value(),
      timestamp: good ? new Date(RECEIVED_AT - 1000).toISOString() : value(),
      sentAt: good ? new Date(RECEIVED_AT - 100).toISOString() : rand() < 0.5 ? undefined : value(),
    };
    yield rand() < 0.02 ? value() : m;
  }
}
