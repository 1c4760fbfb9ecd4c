/**
 * What real Segment sources send arrives intact: the messages @segment/analytics-node builds (taken
 * from the real client through its `httpClient` option, so nothing leaves the process), and an
 * analytics.js payload as documented.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Analytics } from '@segment/analytics-node';
import type { HTTPClientRequest } from '@segment/analytics-node';
import { encodeCanonicalEvent, normalizeEvent } from '../../src/contract/index.ts';
import type { CanonicalEvent, EventOf } from '../../src/contract/index.ts';
import { accept, ingest } from './fixtures.ts';

type Json = Record<string, unknown>;

/** Runs `calls` against a real Analytics client and returns the /v1/batch bodies it would have POSTed. */
async function captureBatches(calls: (a: Analytics) => void): Promise<Array<{ url: string; body: Json }>> {
  const requests: HTTPClientRequest[] = [];
  const analytics = new Analytics({
    writeKey: 'wk_test_secret',
    flushAt: 50,
    flushInterval: 60_000,
    maxRetries: 0,
    httpClient: {
      makeRequest: (req: HTTPClientRequest) => {
        requests.push(req);
        return Promise.resolve({ status: 200, statusText: 'OK' });
      },
    },
  });
  const errors: unknown[] = [];
  analytics.on('error', (err) => errors.push(err));
  calls(analytics);
  await analytics.closeAndFlush({ timeout: 5_000 });
  assert.deepEqual(errors, []);
  return requests.map((r) => ({ url: r.url, body: JSON.parse(r.body) as Json }));
}

describe('@segment/analytics-node', () => {
  it('track, page and identify arrive with every field intact', async () => {
    const when = new Date(Date.now() - 90_000);
    const batches = await captureBatches((a) => {
      a.track({
        anonymousId: 'anon-sdk-1',
        userId: 'user-42',
        event: 'Order Completed',
        timestamp: when,
        properties: {
          order_id: 'order-1001',
          checkout_id: 'co-7',
          total: 127.5,
          revenue: 120.0,
          shipping: 7.5,
          tax: 20.42,
          discount: 5,
          coupon: 'SPRING',
          currency: 'EUR',
          payment_method: 'card',
          products: [
            { product_id: 'sku-1', sku: 'R2-42', name: 'Runner 2', brand: 'Acme', category: 'Shoes', variant: '42', price: 60, quantity: 2, url: 'https://shop.example/p/1', image_url: 'https://cdn.shop.example/1.jpg' },
            { product_id: 'sku-9', name: 'Socks', price: 0.1 + 0.2, quantity: 1, color: 'blue' },
          ],
        },
        context: {
          ip: '203.0.113.5',
          userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36',
          locale: 'fr-FR',
          timezone: 'Europe/Paris',
          page: { url: 'https://shop.example/checkout/done?utm_source=google&utm_medium=cpc&utm_campaign=spring', path: '/checkout/done', referrer: 'https://shop.example/checkout', title: 'Thank you' },
          traits: { email: 'jane@example.com', phone: '+33612345678' },
          location: { country: 'fr' },
          fbp: 'fb.1.1596403881668.1116446470',
          sessionId: 'sess-9',
        },
      });
      a.track({ anonymousId: 'anon-sdk-2', event: 'Product Added', properties: { product_id: 'sku-3', price: 1500, quantity: 3, currency: 'JPY', cart_id: 'cart-1' } });
      a.page({ anonymousId: 'anon-sdk-1', name: 'Runner 2', category: 'Shoes', properties: { url: 'https://shop.example/p/runner-2?utm_source=news', path: '/p/runner-2', title: 'Runner 2', referrer: 'https://www.google.com/' } });
      a.identify({ anonymousId: 'anon-sdk-1', userId: 'user-42', traits: { email: 'jane@example.com', firstName: 'Jane', address: { city: 'Paris' } } });
    });

    // The client POSTs /v1/batch with the write key and ONE sentAt for the whole batch.
    assert.equal(batches.length, 1);
    const { url, body } = batches[0]!;
    assert.match(url, /\/v1\/batch$/);
    assert.equal(typeof body['sentAt'], 'string');
    const messages = body['batch'] as Json[];
    assert.equal(messages.length, 4);
    for (const m of messages) {
      assert.equal(m['sentAt'], undefined, 'no per-message sentAt');
      assert.equal(typeof m['timestamp'], 'string');
    }

    const sentAt = Date.parse(body['sentAt'] as string);
    const receivedAt = sentAt + 35; // same clock, 35 ms on the wire
    const ctx = ingest({ receivedAt, batchSentAt: body['sentAt'], requestIp: '10.1.2.3', requestUserAgent: 'analytics-node-next/latest', cdnCountry: 'US' });
    const events: CanonicalEvent[] = messages.map((m) => accept(m, ctx));

    for (const [i, m] of messages.entries()) {
      const e = events[i]!;
      const mc = m['context'] as Json;
      assert.equal(e.messageId, m['messageId']);
      assert.match(e.messageId, /^node-next-\d+-/);
      assert.equal(e.type, m['type']);
      assert.equal(e.anonymousId, m['anonymousId'] ?? null);
      assert.equal(e.userId, m['userId'] ?? null);
      assert.equal(e.merchantId, 'shop-a');
      assert.equal(e.visitorId, (m['anonymousId'] as string | undefined) ?? `user:${String(m['userId'])}`);
      assert.equal(e.originalTimestamp, Date.parse(m['timestamp'] as string));
      assert.equal(e.sentAt, sentAt);
      assert.equal(e.receivedAt, receivedAt);
      assert.equal(e.timestamp, receivedAt - (sentAt - Date.parse(m['timestamp'] as string)));
      assert.deepEqual(e.context.library, mc['library']);
      assert.equal(e.context.library?.name, '@segment/analytics-node');
      // A server library's request describes the merchant's server, not the shopper.
      assert.equal(e.context.ip, (mc['ip'] as string | undefined) ?? null);
      assert.equal(e.context.userAgent, (mc['userAgent'] as string | undefined) ?? null);
      const text = encodeCanonicalEvent(e).toString('utf8');
      for (const gone of ['wk_test_secret', '_metadata', 'nodeVersion', 'integrations', '10.1.2.3', 'analytics-node-next']) assert.ok(!text.includes(gone), gone);
    }
    // The call time survives the trip: the SDK's clock is the server's here.
    assert.equal(events[0]!.timestamp, when.getTime() + 35);

    const order = events[0] as EventOf<'Order Completed'>;
    assert.equal(order.event, 'Order Completed');
    assert.equal(order.sessionId, 'sess-9');
    assert.deepEqual(order.context, {
      ip: '203.0.113.5',
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36',
      page: { url: 'https://shop.example/checkout/done?utm_source=google&utm_medium=cpc&utm_campaign=spring', path: '/checkout/done', referrer: 'https://shop.example/checkout', title: 'Thank you', search: null },
      campaign: { source: 'google', medium: 'cpc', name: 'spring', term: null, content: null },
      locale: 'fr-FR',
      timezone: 'Europe/Paris',
      country: 'FR',
      library: (messages[0]!['context'] as Json)['library'] as never,
      traits: { email: 'jane@example.com', phone: '+33612345678' },
      fbp: 'fb.1.1596403881668.1116446470',
      fbc: null,
    });
    assert.deepEqual(order.properties, {
      order_id: 'order-1001',
      checkout_id: 'co-7',
      affiliation: null,
      total: 12750,
      subtotal: null,
      revenue: 12000,
      shipping: 750,
      tax: 2042,
      discount: 500,
      coupon: 'SPRING',
      currency: 'EUR',
      products: [
        { product_id: 'sku-1', sku: 'R2-42', name: 'Runner 2', brand: 'Acme', category: 'Shoes', variant: '42', price: 6000, quantity: 2, position: null, url: 'https://shop.example/p/1', image_url: 'https://cdn.shop.example/1.jpg', coupon: null },
        { product_id: 'sku-9', sku: null, name: 'Socks', brand: null, category: null, variant: null, price: 30, quantity: 1, position: null, url: null, image_url: null, coupon: null, extra: { color: 'blue' } },
      ],
      extra: { payment_method: 'card' },
    });

    const added = events[1] as EventOf<'Product Added'>;
    assert.equal(added.event, 'Product Added');
    assert.deepEqual([added.properties.price, added.properties.quantity, added.properties.currency, added.properties.cart_id], [1500, 3, 'JPY', 'cart-1']);
    assert.deepEqual([added.context.ip, added.context.userAgent, added.context.country], [null, null, null]);

    const page = events[2] as EventOf<'Page Viewed'>;
    assert.equal(page.event, 'Page Viewed');
    // The SDK copies category into properties too; it is not an extra.
    assert.deepEqual(page.properties, { name: 'Runner 2', category: 'Shoes', path: '/p/runner-2', url: 'https://shop.example/p/runner-2?utm_source=news', referrer: 'https://www.google.com/', title: 'Runner 2', search: null });
    assert.equal(page.context.campaign?.source, 'news');

    const identify = events[3] as EventOf<'Identify'>;
    assert.equal(identify.event, 'Identify');
    assert.deepEqual(identify.traits, { email: 'jane@example.com', firstName: 'Jane', address: { city: 'Paris' } });
  });

  it("a single call's message (no batch sentAt) keeps the SDK's timestamp", async () => {
    const [batch] = await captureBatches((a) => a.track({ userId: 'u-7', event: 'Product Viewed', properties: { product_id: 'p' } }));
    const m = (batch!.body['batch'] as Json[])[0]!;
    const receivedAt = Date.parse(m['timestamp'] as string) + 5;
    const e = accept(m, ingest({ receivedAt }), 'track');
    assert.deepEqual([e.timestamp, e.sentAt, e.visitorId], [Date.parse(m['timestamp'] as string), null, 'user:u-7']);
  });

  it('refuses what the SDK can send but Shopstream does not take, with a clear reason', async () => {
    const [batch] = await captureBatches((a) => {
      a.screen({ userId: 'u', name: 'Home' });
      a.group({ userId: 'u', groupId: 'g' });
      a.alias({ userId: 'u', previousId: 'a' });
      a.track({ userId: 'u', event: 'Signed Up' });
    });
    const codes = (batch!.body['batch'] as Json[]).map((m) => {
      const r = normalizeEvent(m, ingest({ batchSentAt: batch!.body['sentAt'] }));
      return r.ok ? 'ok' : r.reason.code;
    });
    assert.deepEqual(codes, ['SHOP_ERR_UNSUPPORTED_TYPE', 'SHOP_ERR_UNSUPPORTED_TYPE', 'SHOP_ERR_UNSUPPORTED_TYPE', 'SHOP_ERR_UNKNOWN_EVENT']);
  });
});

describe('analytics.js', () => {
  it('a browser payload as Segment documents it arrives intact', () => {
    // The shape of https://segment.com/docs/connections/spec/common/ (fields of a real analytics.js
    // call: userId null before identify, context.page and campaign, per-message sentAt, _metadata).
    const message = {
      anonymousId: '507f191e810c19729de860ea',
      context: {
        campaign: { name: 'TPS Innovation Newsletter', source: 'Newsletter', medium: 'email', term: 'tps reports', content: 'image link' },
        ip: '8.8.8.8',
        library: { name: 'analytics.js', version: '2.11.1' },
        locale: 'en-US',
        location: { city: 'San Francisco', country: 'United States', latitude: 40.2964197, longitude: -76.9411617 },
        page: { path: '/academy/', referrer: '', search: '', title: 'Analytics Academy', url: 'https://segment.com/academy/' },
        timezone: 'Europe/Amsterdam',
        userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 9_1 like Mac OS X) AppleWebKit/601.1.46 (KHTML, like Gecko) Version/9.0 Mobile/13B143 Safari/601.1',
        screen: { width: 320, height: 568, density: 2 },
      },
      integrations: { All: true, Mixpanel: false, Salesforce: false },
      messageId: 'ajs-1927dbe0bfa3380e80647d673440ba63',
      sentAt: '2015-12-10T04:08:31.581Z',
      timestamp: '2015-12-10T04:08:31.577Z',
      type: 'track',
      event: 'Product Viewed',
      properties: { product_id: '507f1f77bcf86cd799439011', price: 18.99, currency: 'usd' },
      userId: null,
      writeKey: 'wk_browser_secret',
      _metadata: { bundled: ['Segment.io'], unbundled: [] },
    };
    const e = accept(message, ingest({ receivedAt: Date.parse('2015-12-10T04:08:31.909Z'), maxPastMs: Infinity, requestIp: '8.8.4.4' })) as EventOf<'Product Viewed'>;
    assert.equal(new Date(e.timestamp).toISOString(), '2015-12-10T04:08:31.905Z');
    assert.deepEqual([e.visitorId, e.userId, e.messageId], ['507f191e810c19729de860ea', null, 'ajs-1927dbe0bfa3380e80647d673440ba63']);
    assert.deepEqual(e.context.campaign, message.context.campaign);
    assert.deepEqual(e.context.page, { path: '/academy/', referrer: null, search: null, title: 'Analytics Academy', url: 'https://segment.com/academy/' });
    assert.deepEqual([e.context.ip, e.context.country, e.context.locale, e.context.timezone], ['8.8.8.8', 'United States', 'en-US', 'Europe/Amsterdam']);
    assert.deepEqual([e.properties.product_id, e.properties.price, e.properties.currency], ['507f1f77bcf86cd799439011', 1899, 'USD']);
    assert.ok(!encodeCanonicalEvent(e).toString().includes('wk_browser_secret'));
  });
});
