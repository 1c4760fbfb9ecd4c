/**
 * encodeCanonicalEvent → parseCanonicalEvent round trips for every event name, and what the
 * ajv-compiled reader refuses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CANONICAL_EVENT_NAMES, MAX_EVENT_BYTES, checkEventSize, encodeCanonicalEvent, normalizeEvent, parseCanonicalEvent } from '../../src/contract/index.ts';
import type { CanonicalEvent } from '../../src/contract/index.ts';
import { accept, assertSentence, ingest, track } from './fixtures.ts';

const PRODUCT = { product_id: 'p1', sku: 'S1', name: 'Runner 2 – “Édition” 🏃', price: 89.9, quantity: 2, color: 'red' };
const CONTEXT = { ip: '203.0.113.5', userAgent: 'UA', page: { url: 'https://s.example/?utm_source=a' }, library: { name: 'analytics.js', version: '1' }, traits: { email: 'a@b.c' }, fbp: 'fb.1.1.1' };

/** One accepted event of every canonical name. */
function everyEvent(): CanonicalEvent[] {
  const c = { context: CONTEXT };
  return [
    accept(track('Products Searched', { query: 'shoes' }, c)),
    accept(track('Product List Viewed', { list_id: 'l', category: 'Shoes', products: [PRODUCT, PRODUCT] }, c)),
    accept(track('Product Clicked', { ...PRODUCT, position: 3 }, c)),
    accept(track('Product Viewed', { ...PRODUCT, currency: 'JPY', value: 180 }, c)),
    accept(track('Product Added', { ...PRODUCT, cart_id: 'c1' }, c)),
    accept(track('Product Removed', { ...PRODUCT, cart_id: 'c1' }, c)),
    accept(track('Cart Viewed', { cart_id: 'c1', products: [PRODUCT] }, c)),
    accept(track('Checkout Started', { checkout_id: 'k', value: 10, revenue: 9, products: [PRODUCT], coupon: 'X' }, c)),
    accept(track('Order Completed', { order_id: 'o1', total: 27.5, discount: 1, currency: 'KWD', products: [PRODUCT], payment: 'card' }, { ...c, userId: 'u1' })),
    accept({ type: 'page', messageId: 'p', anonymousId: 'a', name: 'Home', properties: { url: 'https://s.example/', x: 1 }, ...c }),
    accept({ type: 'identify', messageId: 'i', userId: 'u', traits: { email: 'a@b.c', plan: 'pro' }, ...c }),
  ];
}

function refuseRecord(record: unknown, code: string, path?: string): string {
  const r = parseCanonicalEvent(typeof record === 'string' ? Buffer.from(record) : Buffer.from(JSON.stringify(record)));
  if (r.ok) assert.fail(`expected ${code} for ${JSON.stringify(record).slice(0, 80)}`);
  assert.equal(r.reason.code, code, r.reason.message);
  if (path !== undefined) assert.equal(r.reason.path, path, r.reason.message);
  assertSentence(r.reason.message);
  return r.reason.message;
}

describe('encode and parse', () => {
  it('round-trips an event of every canonical name', () => {
    const events = everyEvent();
    assert.deepEqual(events.map((e) => e.event).sort(), [...CANONICAL_EVENT_NAMES].sort());
    for (const e of events) {
      const buf = encodeCanonicalEvent(e);
      const r = parseCanonicalEvent(buf);
      assert.ok(r.ok, r.ok ? '' : r.reason.message);
      assert.deepEqual(r.event, e);
      // Strings and Uint8Arrays that are views into a larger buffer read the same.
      const big = Buffer.concat([Buffer.from('xxxx'), buf]);
      assert.deepEqual(parseCanonicalEvent(big.subarray(4)), r);
      assert.deepEqual(parseCanonicalEvent(buf.toString('utf8')), r);
    }
  });

  it('encodes UTF-8 JSON', () => {
    const e = everyEvent()[2]!;
    const buf = encodeCanonicalEvent(e);
    assert.equal(buf.toString('utf8'), JSON.stringify(e));
    assert.ok(buf.toString('utf8').includes('🏃'));
  });

  it('refuses what is not a canonical event v1, saying where', () => {
    const [searched, , clicked, , , , , , order] = everyEvent() as [CanonicalEvent, CanonicalEvent, CanonicalEvent, CanonicalEvent, CanonicalEvent, CanonicalEvent, CanonicalEvent, CanonicalEvent, CanonicalEvent];
    refuseRecord('{"v":1,', 'SHOP_ERR_EVENT_SCHEMA');
    refuseRecord('[]', 'SHOP_ERR_EVENT_SCHEMA');
    refuseRecord('null', 'SHOP_ERR_EVENT_SCHEMA');
    assert.match(refuseRecord({ ...searched, v: 2 }, 'SHOP_ERR_EVENT_SCHEMA', 'v'), /version 1/);
    refuseRecord({ ...searched, event: 'Signed Up' }, 'SHOP_ERR_EVENT_SCHEMA', 'event');
    const { messageId: _, ...noId } = searched;
    assert.match(refuseRecord(noId, 'SHOP_ERR_EVENT_SCHEMA', 'messageId'), /messageId/);
    assert.match(refuseRecord({ ...searched, surprise: 1 }, 'SHOP_ERR_EVENT_SCHEMA'), /"surprise"/);
    refuseRecord({ ...searched, type: 'page' }, 'SHOP_ERR_EVENT_SCHEMA', 'type');
    refuseRecord({ ...searched, timestamp: 1.5 }, 'SHOP_ERR_EVENT_SCHEMA', 'timestamp');
    refuseRecord({ ...searched, context: { ...searched.context, ip: 7 } }, 'SHOP_ERR_EVENT_SCHEMA', 'context.ip');
    if (clicked.event !== 'Product Clicked' || order.event !== 'Order Completed') throw new Error('order of everyEvent changed');
    refuseRecord({ ...clicked, properties: { ...clicked.properties, price: 18.99 } }, 'SHOP_ERR_EVENT_SCHEMA', 'properties.price');
    refuseRecord({ ...clicked, properties: { ...clicked.properties, currency: 'usd' } }, 'SHOP_ERR_EVENT_SCHEMA', 'properties.currency');
    refuseRecord({ ...clicked, properties: { ...clicked.properties, quantity: 0 } }, 'SHOP_ERR_EVENT_SCHEMA', 'properties.quantity');
    refuseRecord({ ...order, properties: { ...order.properties, order_id: '' } }, 'SHOP_ERR_EVENT_SCHEMA', 'properties.order_id');
    const products = order.properties.products.map((p) => ({ ...p, price: -1 }));
    refuseRecord({ ...order, properties: { ...order.properties, products } }, 'SHOP_ERR_EVENT_SCHEMA', 'properties.products[0].price');
  });

  it(`refuses records larger than ${MAX_EVENT_BYTES} bytes with EVENT_TOO_LARGE`, () => {
    const n = normalizeEvent(track('Product Viewed', { description: 'x'.repeat(MAX_EVENT_BYTES) }), ingest());
    assert.ok(n.ok, 'normalizeEvent does not measure size: whoever encodes does');
    const buf = encodeCanonicalEvent(n.event);
    assert.ok(buf.length > MAX_EVENT_BYTES);
    const r = parseCanonicalEvent(buf);
    assert.ok(!r.ok);
    assert.equal(r.reason.code, 'SHOP_ERR_EVENT_TOO_LARGE');
    const size = checkEventSize(buf);
    assert.equal(size?.code, 'SHOP_ERR_EVENT_TOO_LARGE');
    assertSentence(size!.message);
    assert.equal(checkEventSize(encodeCanonicalEvent(everyEvent()[0]!)), undefined);
    assert.equal(checkEventSize(Buffer.alloc(100), 99)?.code, 'SHOP_ERR_EVENT_TOO_LARGE');
  });
});
