/**
 * The shape of the traffic on a large plan: conversion, bot share, duplicates, invalid messages,
 * Zipf popularity, bundles in co-purchases; and the form of what is sent (times, user agents,
 * money, batches, lanes, beacons first).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isbot } from 'isbot';
import { normalizeEvent, type IngestContext } from '../../src/contract/index.ts';
import { minorUnits } from '../../src/contract/money.ts';
import { currencyExponent } from '../../src/contract/currencies.ts';
import { laneOf, planSimulation, type GroundTruth, type SimAction } from '../../src/simulate/plan.ts';
import { END, MERCHANTS, merchantOfKey, sentMessages } from './fixture.ts';

let plan: { actions: SimAction[]; truth: GroundTruth };
let messages: ReturnType<typeof sentMessages>;
const HOURS = 3;

describe('simulation shape (large plan)', () => {
  before(() => {
    plan = planSimulation({ seed: 2024, merchants: MERCHANTS, visitorsPerMerchant: 2500, endTime: END, hours: HOURS });
    messages = sentMessages(plan.actions);
  });

  it('converts 2–3% of human sessions', () => {
    const { sessions, orders, conversion } = plan.truth.totals;
    assert.ok(sessions > 8000, `${sessions} sessions`);
    assert.ok(conversion >= 0.02 && conversion <= 0.03, `conversion ${conversion} (${orders}/${sessions})`);
    // Several sessions per visitor, sometimes.
    assert.ok(sessions > plan.truth.totals.visitors.human * 1.1);
  });

  it('makes 40% of page and product views bot views, by crawlers and stealth bots', () => {
    assert.ok(Math.abs(plan.truth.totals.botViewShare - 0.4) < 0.005, `bot share ${plan.truth.totals.botViewShare}`);
    const v = plan.truth.totals.visitors;
    assert.ok(v.crawler > 100 && v.stealth_bot > 100, JSON.stringify(v));
    for (const m of Object.values(plan.truth.merchants)) {
      assert.ok(m.botsByReason.user_agent > 0 && m.botsByReason.not_validated > 0);
    }
    // Bots never order.
    for (const byEvent of Object.values(plan.truth.bots)) {
      assert.equal(byEvent['Order Completed'], undefined);
      assert.equal(byEvent['Checkout Started'], undefined);
    }
  });

  it('re-sends about 1% of messages and breaks about 0.5%', () => {
    const n = plan.truth.totals.messages;
    const dup = plan.truth.duplicates / n;
    const bad = plan.truth.totals.invalid / n;
    assert.ok(dup > 0.008 && dup < 0.012, `duplicates ${dup}`);
    assert.ok(bad > 0.0035 && bad < 0.0065, `invalid ${bad}`);
    const rejected = Object.values(plan.truth.rejected).reduce((a, b) => a + b, 0);
    assert.equal(rejected, plan.truth.totals.invalid);
    for (const code of ['SHOP_ERR_UNKNOWN_EVENT', 'SHOP_ERR_MISSING_MESSAGE_ID', 'SHOP_ERR_INVALID_MONEY', 'SHOP_ERR_INVALID_CURRENCY']) {
      assert.ok((plan.truth.rejected[code] ?? 0) > 0, code);
    }
    assert.ok(plan.truth.orderResends >= MERCHANTS.length);
    // Duplicates are exact: the same messageId with the same content.
    const seen = new Map<string, string>();
    let repeats = 0;
    for (const { message } of messages) {
      const id = message['messageId'];
      if (typeof id !== 'string') continue;
      const text = JSON.stringify(message);
      if (seen.has(id)) {
        assert.equal(text, seen.get(id));
        repeats++;
      } else seen.set(id, text);
    }
    assert.equal(repeats, plan.truth.duplicates);
  });

  it('skews product views to popular products (Zipf): the top 10% get most human views', () => {
    for (const m of MERCHANTS) {
      const human = new Set(Object.entries(plan.truth.visitors[m.id]!).filter(([, c]) => c === 'human').map(([id]) => id));
      const views = new Map<string, number>();
      for (const { merchantId, message } of messages) {
        if (merchantId !== m.id || message['event'] !== 'Product Viewed' || !human.has(message['anonymousId'] as string)) continue;
        const id = (message['properties'] as { product_id: string }).product_id;
        views.set(id, (views.get(id) ?? 0) + 1);
      }
      const counts = [...views.values()].sort((a, b) => b - a);
      const total = counts.reduce((a, b) => a + b, 0);
      const top = counts.slice(0, 30).reduce((a, b) => a + b, 0);
      assert.ok(top / total > 0.5, `${m.id}: top 10% of products have ${((top / total) * 100).toFixed(1)}% of views`);
    }
  });

  it('hides bundles that show in co-purchases', () => {
    for (const m of MERCHANTS) {
      const bundles = plan.truth.bundles[m.id]!;
      const bundleOf = new Map<string, number>();
      bundles.forEach((b, i) => b.forEach((p) => bundleOf.set(p, i)));
      assert.equal(bundleOf.size, 300, 'every product is in one bundle');
      assert.ok(bundles.every((b) => b.length >= 3 && b.length <= 7));
      let pairs = 0;
      let same = 0;
      for (const { merchantId, message } of messages) {
        if (merchantId !== m.id || message['event'] !== 'Order Completed') continue;
        const ids = [...new Set((message['properties'] as { products: Array<{ product_id: string }> }).products.map((p) => p.product_id))];
        for (let i = 0; i < ids.length; i++) {
          for (let j = i + 1; j < ids.length; j++) {
            pairs++;
            if (bundleOf.get(ids[i]!) === bundleOf.get(ids[j]!)) same++;
          }
        }
      }
      // By chance, about 1.3% of pairs would share a bundle.
      assert.ok(pairs > 20 && same / pairs > 0.5, `${m.id}: ${same}/${pairs} co-purchased pairs in one bundle`);
    }
  });

  it('sends messages the contract accepts, except exactly the invalid ones, with event times in the window and no sentAt', () => {
    const byKey = merchantOfKey();
    const start = END - HOURS * 3_600_000;
    let refused = 0;
    for (const a of plan.actions) {
      if (a.kind !== 'batch') continue;
      assert.ok(a.body.batch.length <= 50);
      assert.deepEqual(Object.keys(a.body), ['batch']);
      const merchant = byKey.get(a.writeKey)!;
      const ctx: IngestContext = { merchantId: merchant.id, defaultCurrency: merchant.currency, receivedAt: END + 60_000 };
      for (const m of a.body.batch) {
        assert.equal(m['sentAt'], undefined);
        const t = Date.parse(m['timestamp'] as string);
        assert.ok(t >= start && t <= END, `time ${String(m['timestamp'])}`);
        assert.equal(typeof (m['context'] as { userAgent?: unknown }).userAgent, 'string');
        const r = normalizeEvent(m, ctx);
        if (!r.ok) {
          refused++;
          continue;
        }
        // Event time is exactly the timestamp sent: no skew correction.
        assert.equal(r.event.timestamp, t);
      }
    }
    assert.equal(refused, plan.truth.totals.invalid);
  });

  it('sends money that the contract reads back exactly', () => {
    for (const { merchantId, message } of messages) {
      if (message['event'] !== 'Order Completed') continue;
      const currency = MERCHANTS.find((m) => m.id === merchantId)!.currency;
      const p = message['properties'] as { total: number; subtotal: number; shipping: number; products: Array<{ price: number; quantity: number }> };
      const e = currencyExponent(currency)!;
      const lines = p.products.reduce((a, x) => a + minorUnits(x.price, e) * x.quantity, 0);
      assert.equal(minorUnits(p.subtotal, e), lines);
      assert.equal(minorUnits(p.total, e), lines + minorUnits(p.shipping, e));
      if (e === 0) assert.ok(Number.isInteger(p.total));
    }
  });

  it('gives crawlers user agents isbot knows, and humans and stealth bots browser ones', () => {
    const classes = new Map<string, string>();
    for (const [id, byId] of Object.entries(plan.truth.visitors)) for (const [v, c] of Object.entries(byId)) classes.set(`${id}/${v}`, c);
    for (const { merchantId, message } of messages) {
      const c = classes.get(`${merchantId}/${String(message['anonymousId'])}`);
      const ua = (message['context'] as { userAgent: string }).userAgent;
      assert.equal(isbot(ua), c === 'crawler', `${c}: ${ua}`);
    }
  });

  it('runs each human beacon before its first batch, in the same lane; bots never run it', () => {
    const byKey = merchantOfKey();
    const beaconAt = new Map<string, { index: number; lane: number; ua: string }>();
    const firstBatch = new Map<string, number>();
    plan.actions.forEach((a, index) => {
      const merchantId = byKey.get(a.writeKey)!.id;
      if (a.kind === 'beacon') {
        assert.equal(plan.truth.visitors[merchantId]![a.anonymousId], 'human');
        assert.ok(!beaconAt.has(`${merchantId}/${a.anonymousId}`), 'one beacon per visitor');
        beaconAt.set(`${merchantId}/${a.anonymousId}`, { index, lane: a.lane, ua: a.userAgent });
        assert.equal(a.lane, laneOf(merchantId, a.anonymousId, 4));
        return;
      }
      for (const m of a.body.batch) {
        const v = `${merchantId}/${String(m['anonymousId'])}`;
        assert.equal(a.lane, laneOf(merchantId, String(m['anonymousId']), 4), 'a batch holds visitors of its lane only');
        if (!firstBatch.has(v)) firstBatch.set(v, index);
        const b = beaconAt.get(v);
        if (plan.truth.visitors[merchantId]![String(m['anonymousId'])] === 'human') {
          assert.ok(b !== undefined && b.index < firstBatch.get(v)!, `beacon before the first batch of ${v}`);
          assert.equal(b.ua, (m['context'] as { userAgent: string }).userAgent);
        } else {
          assert.equal(b, undefined);
        }
      }
    });
    assert.equal(beaconAt.size, plan.truth.totals.visitors.human);
  });

  it('delivers some of a visitor messages out of event-time order', () => {
    const last = new Map<string, number>();
    let outOfOrder = 0;
    for (const { merchantId, message } of messages) {
      const v = `${merchantId}/${String(message['anonymousId'])}`;
      const t = Date.parse(message['timestamp'] as string);
      if ((last.get(v) ?? -Infinity) > t) outOfOrder++;
      last.set(v, Math.max(t, last.get(v) ?? -Infinity));
    }
    assert.ok(outOfOrder / messages.length > 0.01, `${outOfOrder} out of order`);
  });
});
