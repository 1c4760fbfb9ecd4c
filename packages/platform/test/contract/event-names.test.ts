/**
 * Event names: Segment E-commerce v2 names exactly, their case- and separator-insensitive variants,
 * the v1 names they are aliased to, and nothing else.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CANONICAL_EVENT_NAMES, TRACK_EVENT_NAMES, canonicalEventName } from '../../src/contract/index.ts';
import { acceptAs, refuse, track, ingest } from './fixtures.ts';

/** The v1 names of https://segment.com/docs/connections/spec/ecommerce/ and the v2 spec's aliases. */
const LEGACY: ReadonlyArray<readonly [string, string]> = [
  ['Searched Products', 'Products Searched'],
  ['Viewed Product Category', 'Product List Viewed'],
  ['Clicked Product', 'Product Clicked'],
  ['Viewed Product', 'Product Viewed'],
  ['Added Product', 'Product Added'],
  ['Removed Product', 'Product Removed'],
  ['Viewed Cart', 'Cart Viewed'],
  ['Started Checkout', 'Checkout Started'],
  ['Started Order', 'Checkout Started'],
  ['Completed Order', 'Order Completed'],
];

function variants(name: string): string[] {
  const words = name.split(' ');
  return [
    name,
    name.toLowerCase(),
    name.toUpperCase(),
    words.join('_').toLowerCase(), // product_viewed
    words.join(''), // ProductViewed
    words.join('-').toUpperCase(), // PRODUCT-VIEWED
    words.map((w) => w.toLowerCase()).join('.'), // product.viewed
    `  ${name}  `,
    words.join('  '),
    words[0]!.toLowerCase() + words.slice(1).join(''), // productViewed
  ];
}

describe('canonical event names', () => {
  it('lists the nine commerce events, Page Viewed and Identify', () => {
    assert.deepEqual([...CANONICAL_EVENT_NAMES].sort(), [
      'Cart Viewed',
      'Checkout Started',
      'Identify',
      'Order Completed',
      'Page Viewed',
      'Product Added',
      'Product Clicked',
      'Product List Viewed',
      'Product Removed',
      'Product Viewed',
      'Products Searched',
    ]);
  });

  for (const name of TRACK_EVENT_NAMES) {
    it(`maps ${name} and its variants`, () => {
      for (const v of variants(name)) assert.equal(canonicalEventName(v), name, v);
    });
  }

  for (const [legacy, name] of LEGACY) {
    it(`maps the v1 name ${legacy} (and its variants) to ${name}`, () => {
      for (const v of variants(legacy)) assert.equal(canonicalEventName(v), name, v);
    });
  }

  it('knows no other name', () => {
    for (const raw of [
      '',
      'Page Viewed',
      'Identify',
      'Product Shared',
      'Order Refunded',
      'Order Cancelled',
      'Product List Filtered',
      'Checkout Step Viewed',
      'Promotion Viewed',
      'Product Viewedx',
      'Products Viewed',
      'Product Vieweds',
      'Viewed',
      'Produkt Viewed',
      'Product Viewéd',
      'x'.repeat(10_000),
      'Product Viewed'.repeat(10),
    ]) {
      assert.equal(canonicalEventName(raw), undefined, raw.slice(0, 40));
    }
  });

  it('normalizes a track call with any accepted spelling to the canonical name', () => {
    assert.equal(acceptAs('Product Viewed', track('product_viewed', { product_id: 'p1' })).event, 'Product Viewed');
    assert.equal(acceptAs('Order Completed', track('Completed Order', { order_id: 'o1' })).event, 'Order Completed');
    assert.equal(acceptAs('Product List Viewed', track('viewed product category', {})).event, 'Product List Viewed');
  });

  it('refuses any other track name with UNKNOWN_EVENT, naming what is accepted', () => {
    const r = refuse(track('Signed Up'), 'SHOP_ERR_UNKNOWN_EVENT', 'event');
    assert.match(r.message, /"Signed Up"/);
    for (const name of TRACK_EVENT_NAMES) assert.ok(r.message.includes(`"${name}"`), name);
    refuse(track('Page Viewed'), 'SHOP_ERR_UNKNOWN_EVENT', 'event');
  });

  it('refuses a track call without an event name as a schema error', () => {
    refuse(track('x', {}, { event: undefined }), 'SHOP_ERR_EVENT_SCHEMA', 'event');
    refuse(track('x', {}, { event: '' }), 'SHOP_ERR_EVENT_SCHEMA', 'event');
    refuse(track('x', {}, { event: 42 }), 'SHOP_ERR_EVENT_SCHEMA', 'event');
  });

  it('names page calls Page Viewed and identify calls Identify, whatever else they carry', () => {
    const ctx = ingest();
    assert.equal(acceptAs('Page Viewed', { type: 'page', messageId: 'p', anonymousId: 'a', event: 'Order Completed' }, ctx).type, 'page');
    assert.equal(acceptAs('Identify', { type: 'identify', messageId: 'i', userId: 'u', event: 'Product Viewed' }, ctx).type, 'identify');
  });
});
