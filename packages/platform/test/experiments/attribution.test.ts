import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeEvent, orderAmount, type CanonicalEvent } from '../../src/contract/index.ts';
import { isPlatformError, PlatformErrors } from '../../src/errors.ts';
import {
  DEFAULT_ATTRIBUTION,
  applyEvent,
  attributionConfig,
  eventRole,
  newVisitorState,
  visitorSummary,
  type AttributionConfig,
  type VisitorState,
} from '../../src/experiments/attribution.ts';
import { assignVariant, type Experiment } from '../../src/experiments/assign.ts';
import { buildReport } from '../../src/experiments/report.ts';

const T0 = Date.UTC(2025, 5, 1, 12);
const MIN = 60_000;
const CONFIG = attributionConfig({ currency: 'USD' });
let seq = 0;

/** A Segment track message through the real normalizer: the canonical event the topology sees. */
function ev(event: string, properties: Record<string, unknown>, t: number, visitor = 'v1'): CanonicalEvent {
  const r = normalizeEvent(
    { type: 'track', event, anonymousId: visitor, messageId: `m-${++seq}`, timestamp: new Date(t).toISOString(), properties },
    { merchantId: 'shop', defaultCurrency: 'USD', receivedAt: t },
  );
  assert.ok(r.ok, JSON.stringify(r));
  return r.event;
}

const product = (id: string, price = 10, quantity = 1) => ({ product_id: id, price, quantity });
const recsList = (ids: string[], t: number, extra: Record<string, unknown> = {}) =>
  ev('Product List Viewed', { list_id: 'recs-pdp', attribution_token: 'tok-1', products: ids.map((id) => product(id)), ...extra }, t);
const order = (id: string, lines: unknown[], t: number, extra: Record<string, unknown> = {}) => ev('Order Completed', { order_id: id, products: lines, ...extra }, t);

function fold(events: CanonicalEvent[], config: AttributionConfig = CONFIG, state: VisitorState = newVisitorState('treatment')): VisitorState {
  return events.reduce((s, e) => applyEvent(s, e, config), state);
}

function deepFreeze<T>(x: T): T {
  if (x !== null && typeof x === 'object') {
    for (const v of Object.values(x)) deepFreeze(v);
    Object.freeze(x);
  }
  return x;
}

test('attributionConfig fills in defaults and refuses bad values with SHOP_ERR_INVALID_PARAMETER', () => {
  assert.deepEqual({ ...CONFIG, widgetListIds: [...CONFIG.widgetListIds] }, { currency: 'USD', ...DEFAULT_ATTRIBUTION, widgetListIds: [] });
  assert.equal(CONFIG.windowMs, 3_600_000);
  assert.equal(CONFIG.maxShown, 200);
  const bad: [Record<string, unknown>, string][] = [
    [{ currency: 'usd' }, 'currency'],
    [{ currency: 'USD', windowMs: 0 }, 'windowMs'],
    [{ currency: 'USD', windowMs: 1.5 }, 'windowMs'],
    [{ currency: 'USD', maxShown: 0 }, 'maxShown'],
    [{ currency: 'USD', latenessMs: -1 }, 'latenessMs'],
    [{ currency: 'USD', widgetPrefix: '' }, 'widgetPrefix'],
    [{ currency: 'USD', widgetListIds: [''] }, 'widgetListIds'],
    [{ currency: 'USD', widgetPrefix: null }, 'widgetListIds'],
  ];
  for (const [options, field] of bad) {
    assert.throws(
      () => attributionConfig(options as Parameters<typeof attributionConfig>[0]),
      (err: unknown) => isPlatformError(err, PlatformErrors.INVALID_PARAMETER) && err.details['field'] === field,
      field,
    );
  }
});

test('exposure: a recommendation list view with an attribution token and products', () => {
  assert.equal(eventRole(recsList(['p1'], T0), CONFIG), 'exposure');
  // No token, not a widget, no products: not exposures.
  assert.equal(eventRole(ev('Product List Viewed', { list_id: 'recs-pdp', products: [product('p1')] }, T0), CONFIG), null);
  assert.equal(eventRole(ev('Product List Viewed', { list_id: 'shoes', attribution_token: 't', products: [product('p1')] }, T0), CONFIG), null);
  assert.equal(eventRole(ev('Product List Viewed', { list_id: 'recs-pdp', attribution_token: 't', products: [] }, T0), CONFIG), null);
  assert.equal(eventRole(ev('Product List Viewed', { list_id: 'recs-pdp', attribution_token: '', products: [product('p1')] }, T0), CONFIG), null);
  // A configured widget id.
  const configured = attributionConfig({ currency: 'USD', widgetPrefix: null, widgetListIds: ['home-carousel'] });
  assert.equal(eventRole(ev('Product List Viewed', { list_id: 'home-carousel', attribution_token: 't', products: [product('p1')] }, T0), configured), 'exposure');
  assert.equal(eventRole(recsList(['p1'], T0), configured), null);

  const s = fold([recsList(['p1', 'p2'], T0), recsList(['p2', 'p3'], T0 + MIN)]);
  assert.equal(s.exposures, 2);
  assert.equal(s.firstExposureAt, T0);
  assert.deepEqual(s.shown, [['p1', T0], ['p2', T0 + MIN], ['p3', T0 + MIN]]);
  // An exposure that arrives late (earlier timestamp) moves the first exposure back, not a product's last time.
  const late = applyEvent(s, recsList(['p3'], T0 - MIN), CONFIG);
  assert.equal(late.firstExposureAt, T0 - MIN);
  assert.deepEqual(late.shown, s.shown);
  assert.equal(late.lastEventAt, T0 + MIN);
});

test('click: a product click with the token, or with the list_id of a widget; plain clicks do not count', () => {
  const withToken = ev('Product Clicked', { product_id: 'p9', attribution_token: 'tok-1' }, T0);
  const withList = ev('Product Clicked', { product_id: 'p9', list_id: 'recs-cart' }, T0);
  const plain = ev('Product Clicked', { product_id: 'p9', list_id: 'search' }, T0);
  assert.equal(eventRole(withToken, CONFIG), 'click');
  assert.equal(eventRole(withList, CONFIG), 'click');
  assert.equal(eventRole(plain, CONFIG), null);
  assert.equal(eventRole(ev('Product Viewed', { product_id: 'p9', attribution_token: 't' }, T0), CONFIG), null);
  const s0 = newVisitorState('treatment');
  assert.equal(applyEvent(s0, plain, CONFIG), s0, 'an irrelevant event returns the same state');
  const s = fold([withToken, withList]);
  assert.equal(s.clicks, 2);
  assert.deepEqual(s.shown, [['p9', T0]], 'a clicked recommendation was shown');
  const sum = visitorSummary(s);
  assert.equal(sum.engaged, true);
  assert.equal(sum.exposed, false);
});

test('order: revenue, items, multi-item, and attribution of lines shown within the window before the order', () => {
  const s = fold([
    recsList(['p1', 'p2'], T0),
    recsList(['p3'], T0 + 30 * MIN),
    // p1 shown 60 min before (at the edge: counted), p3 30 min before, p4 never shown; 2 units of p3.
    order('o1', [product('p1', 10, 1), product('p3', 25.5, 2), product('p4', 5, 1)], T0 + 60 * MIN, { total: 70, revenue: 66 }),
  ]);
  assert.equal(s.orders, 1);
  assert.equal(s.revenue, 7000, 'total, in cents');
  assert.equal(s.multiItemOrders, 1);
  assert.equal(s.attributedOrders, 1);
  assert.equal(s.attributedItems, 3, 'p1 ×1 and p3 ×2');
  assert.equal(s.attributedRevenue, 1000 + 2 * 2550);
  // One millisecond later p1 is out of the window.
  const later = fold([recsList(['p1'], T0), order('o2', [product('p1', 10)], T0 + 60 * MIN + 1)]);
  assert.equal(later.attributedItems, 0);
  assert.equal(later.attributedOrders, 0);
  assert.equal(later.multiItemOrders, 0, 'one item');
  // Shown after the order (out of order arrival): not attributed.
  const after = fold([order('o3', [product('p1', 10)], T0), recsList(['p1'], T0 + MIN)]);
  assert.equal(after.attributedItems, 0);
  // A longer window, configured.
  const day = attributionConfig({ currency: 'USD', windowMs: 24 * 60 * MIN });
  assert.equal(fold([recsList(['p1'], T0), order('o4', [product('p1', 10)], T0 + 5 * 60 * MIN)], day).attributedItems, 1);
});

test('order money: total, else revenue, else the lines (the contract’s orderAmount, which the cubes use too); attributed money capped at the order', () => {
  const cases = [
    order('a', [product('p1', 10, 2)], T0, { total: 25, revenue: 20 }),
    order('b', [product('p1', 10, 2)], T0, { revenue: 20 }),
    order('c', [product('p1', 10, 2), { product_id: 'p2', quantity: 3 }], T0),
  ];
  assert.deepEqual(cases.map((e) => orderAmount(e as never)), [2500, 2000, 2000]);
  // A discount makes the order worth less than its lines: the attributed money is capped.
  const s = fold([recsList(['p1'], T0), order('d', [product('p1', 10, 2)], T0 + MIN, { total: 15 })]);
  assert.equal(s.revenue, 1500);
  assert.equal(s.attributedRevenue, 1500);
  // A line without a price counts as an item and attributes no money; a line without an id cannot be attributed.
  const noPrice = fold([recsList(['p2'], T0), order('e', [{ product_id: 'p2', quantity: 1 }, { name: 'gift card', price: 5, quantity: 1 }], T0 + MIN)]);
  assert.equal(noPrice.attributedItems, 1);
  assert.equal(noPrice.attributedRevenue, 0);
  assert.equal(noPrice.multiItemOrders, 1);
  // sku is the key when product_id is missing.
  const bySku = fold([ev('Product List Viewed', { list_id: 'recs-x', attribution_token: 't', products: [{ sku: 'SKU-1', price: 3 }] }, T0), order('f', [{ sku: 'SKU-1', price: 3, quantity: 1 }], T0 + MIN)]);
  assert.equal(bySku.attributedItems, 1);
});

test('orders in another currency are counted but not summed; an order sent twice counts once', () => {
  const s = fold([
    recsList(['p1'], T0),
    order('o1', [product('p1', 10, 2)], T0 + MIN, { currency: 'EUR' }),
    order('o2', [product('p1', 10)], T0 + 2 * MIN),
  ]);
  assert.equal(s.otherCurrencyOrders, 1);
  assert.equal(s.orders, 1);
  assert.equal(s.revenue, 1000);
  assert.equal(s.multiItemOrders, 0);
  const again = applyEvent(s, order('o2', [product('p1', 10)], T0 + 3 * MIN), CONFIG);
  assert.equal(again, s, 'a repeated order id changes nothing');
  assert.equal(applyEvent(s, order('o1', [product('p1', 10)], T0 + 3 * MIN, { currency: 'EUR' }), CONFIG), s);
  // The memory of order ids is bounded.
  const few = attributionConfig({ currency: 'USD', maxOrderIds: 2 });
  const many = fold(['a', 'b', 'c'].map((id, i) => order(id, [product('p1')], T0 + i)), few);
  assert.deepEqual(many.orderIds, ['b', 'c']);
  assert.equal(many.orders, 3);
});

test('the state is bounded: at most maxShown products, the most recently shown kept', () => {
  const events = Array.from({ length: 50 }, (_, i) => recsList(Array.from({ length: 10 }, (_, j) => `p${i * 10 + j}`), T0 + i * 1000));
  const s = fold(events);
  assert.equal(s.shown.length, 200);
  assert.equal(s.shown[0]![0], 'p300', 'the 300 oldest are gone');
  assert.equal(s.shown[199]![0], 'p499');
  // Re-showing an old product keeps one entry, with its latest time, at the end.
  const again = applyEvent(s, recsList(['p300'], T0 + 60_000), CONFIG);
  assert.equal(again.shown.length, 200);
  assert.deepEqual(again.shown[199], ['p300', T0 + 60_000]);
  assert.equal(again.shown.filter(([k]) => k === 'p300').length, 1);
  // A smaller bound, configured.
  assert.equal(fold(events, attributionConfig({ currency: 'USD', maxShown: 7 })).shown.length, 7);
});

test('products no order can use any more are dropped (window + lateness behind the newest event)', () => {
  const s = fold([recsList(['p1', 'p2'], T0), recsList(['p3'], T0 + 60 * MIN + 15 * MIN)]);
  assert.deepEqual(s.shown.map(([k]) => k), ['p1', 'p2', 'p3'], 'exactly at the horizon: kept');
  const s2 = applyEvent(s, ev('Product Clicked', { product_id: 'p3', attribution_token: 't' }, T0 + 76 * MIN), CONFIG);
  assert.deepEqual(s2.shown.map(([k]) => k), ['p3']);
  // An order up to latenessMs late still finds what was shown within its window.
  const lateOrder = fold([recsList(['p1'], T0), recsList(['p9'], T0 + 70 * MIN), order('late', [product('p1')], T0 + 59 * MIN)]);
  assert.equal(lateOrder.attributedItems, 1);
});

test('the update is pure and the state is plain JSON: a round trip through JSON changes nothing', () => {
  const events = [
    recsList(['p1', 'p2'], T0),
    ev('Product Clicked', { product_id: 'p2', attribution_token: 'tok-1' }, T0 + MIN),
    order('o1', [product('p2', 12.5, 1), product('p7', 3, 1)], T0 + 2 * MIN),
    recsList(['p5'], T0 + 3 * MIN),
    order('o2', [product('p5', 8, 1)], T0 + 4 * MIN, { currency: 'JPY' }),
    order('o3', [product('p5', 8, 1)], T0 + 5 * MIN),
  ];
  let s = deepFreeze(newVisitorState('treatment'));
  let viaJson = newVisitorState('treatment');
  for (const e of events) {
    s = deepFreeze(applyEvent(s, e, CONFIG)); // would throw if the rule wrote into its input
    viaJson = JSON.parse(JSON.stringify(applyEvent(viaJson, e, CONFIG))) as VisitorState;
    assert.deepEqual(viaJson, s);
  }
  assert.deepEqual(visitorSummary(s), {
    exposed: true,
    engaged: true,
    exposures: 2,
    clicks: 1,
    orders: 2,
    revenue: 1250 + 300 + 800,
    multiItemOrders: 1,
    attributedOrders: 2,
    attributedRevenue: 1250 + 800,
    attributedItems: 2,
    otherCurrencyOrders: 1,
  });
  assert.ok(JSON.stringify(s).length < 1000);
});

test('from events to a report: assignment, per-visitor state, summaries, buildReport', () => {
  const experiment: Experiment = { id: 'recs-e2e', variants: [{ name: 'control', share: 0.5 }, { name: 'treatment', share: 0.5 }] };
  const states = new Map<string, VisitorState>();
  for (let i = 0; i < 400; i++) {
    const visitor = `visitor-${i}`;
    const variant = assignVariant(experiment, visitor);
    let s = newVisitorState(variant);
    const t = T0 + i * 1000;
    s = applyEvent(s, ev('Product List Viewed', { list_id: 'recs-pdp', attribution_token: `tok-${i}`, products: [product('p1'), product('p2')] }, t, visitor), CONFIG);
    // Treatment visitors click every 4th time, control visitors every 10th.
    if (i % (variant === 'treatment' ? 4 : 10) === 0) s = applyEvent(s, ev('Product Clicked', { product_id: 'p1', attribution_token: `tok-${i}` }, t + 1000, visitor), CONFIG);
    if (i % 3 === 0) s = applyEvent(s, order(`o-${i}`, [product('p1', 20), product('p3', 5)], t + 2000), CONFIG);
    states.set(visitor, s);
  }
  const report = buildReport(experiment, [...states.values()].map((s) => ({ variant: s.variant, ...visitorSummary(s) })), { currency: 'USD' });
  const [control, treatment] = report.variants;
  assert.equal(control!.visitors + treatment!.visitors, 400);
  assert.equal(control!.exposed, control!.visitors);
  assert.ok(treatment!.metrics.ctr! > control!.metrics.ctr!);
  assert.equal(control!.metrics.aov, 2500);
  assert.equal(treatment!.totals.attributed_revenue, treatment!.totals.orders * 2000, 'only p1 was shown');
  assert.equal(treatment!.totals.multi_item_orders, treatment!.totals.orders);
});
