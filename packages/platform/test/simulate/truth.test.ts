/**
 * The truth module on its own (hand-made inputs, rule by rule), and the truth of plans recomputed
 * independently here from the messages sent: refusals by the real contract, de-duplication, isbot,
 * beacons and sessions written out again.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isbot } from 'isbot';
import { normalizeEvent } from '../../src/contract/index.ts';
import { planSimulation } from '../../src/simulate/plan.ts';
import { computeTruth, hourOf, type TruthEvent } from '../../src/simulate/truth.ts';
import { END, MERCHANTS, merchantOfKey } from './fixture.ts';

const SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const T0 = Date.UTC(2026, 0, 15, 9, 0, 0);
const MIN = 60_000;

let n = 0;
function ev(visitor: string, at: number, fields: Record<string, unknown> = {}, context: Record<string, unknown> = {}): TruthEvent {
  return {
    merchantId: 'm',
    message: { type: 'track', event: 'Product Viewed', messageId: `id-${n++}`, anonymousId: visitor, timestamp: new Date(at).toISOString(), properties: { product_id: 'p1', price: 10 }, context: { userAgent: SAFARI, ...context }, ...fields },
  };
}
const order = (visitor: string, at: number, orderId: string, total: number) => ev(visitor, at, { event: 'Order Completed', properties: { order_id: orderId, total, currency: 'EUR' } });
const truthOf = (events: TruthEvent[], validated: string[] = ['h']) =>
  computeTruth({ merchants: [{ id: 'm', currency: 'EUR' }], events, validated: validated.map((anonymousId) => ({ merchantId: 'm', anonymousId })) });

describe('computeTruth', () => {
  it('counts a visitor validated by the beacon as human, a known bot UA and an unvalidated visitor as bots', () => {
    const t = truthOf([ev('h', T0), ev('crawler', T0, {}, { userAgent: GOOGLEBOT }), ev('stealth', T0), ev('h', T0 + 1000, {}, { userAgent: GOOGLEBOT })], ['h', 'crawler']);
    assert.equal(t.merchants['m']!.humanEvents, 1);
    assert.deepEqual(t.merchants['m']!.botsByReason, { user_agent: 2, not_validated: 1 });
    assert.deepEqual(t.filtered['m'], { 'Product Viewed': { [hourOf(T0)]: 1 } });
    assert.deepEqual(t.bots['m'], { 'Product Viewed': { [hourOf(T0)]: 3 } });
  });

  it('drops a re-sent messageId, and a re-sent order_id under a new messageId; sums revenue in minor units', () => {
    const a = order('h', T0, 'o-1', 19.99);
    const t = truthOf([a, a, order('h', T0 + 5, 'o-1', 19.99), order('h', T0 + 10, 'o-2', 0.1), order('stealth', T0, 'o-3', 5)], ['h']);
    assert.equal(t.duplicatesDropped, 1);
    assert.equal(t.orderResendsDropped, 1);
    assert.equal(t.merchants['m']!.orders, 2);
    assert.equal(t.merchants['m']!.revenueMinor, 1999 + 10);
  });

  it('counts invalid messages by code and stage, and nowhere else', () => {
    const bad = { ...ev('h', T0), invalid: { code: 'SHOP_ERR_INVALID_MONEY', stage: 'pipeline' as const } };
    const t = truthOf([bad, ev('h', T0 + 1)]);
    assert.deepEqual(t.rejected, { SHOP_ERR_INVALID_MONEY: 1 });
    assert.deepEqual(t.rejectedByStage, { collector: {}, pipeline: { SHOP_ERR_INVALID_MONEY: 1 } });
    assert.equal(t.merchants['m']!.humanEvents, 1);
    assert.equal(t.merchants['m']!.sessions, 1);
  });

  it('sessionizes as the pipeline: 30 min of event-time inactivity, late events, client session ids', () => {
    const t = truthOf([
      ev('h', T0),
      ev('h', T0 + 20 * MIN),
      ev('h', T0 + 10 * MIN), // out of order: same session
      ev('h', T0 + 50 * MIN + 1), // 30 min + 1 ms after the latest: a new session
      ev('h', T0 + 52 * MIN, {}, { sessionId: 'c1' }), // a client id: a new session
      ev('h', T0 + 53 * MIN, {}, { sessionId: 'c1' }),
      ev('h', T0 + 54 * MIN, {}, { sessionId: 'c2' }), // another client id: new
      ev('h', T0 + 55 * MIN, {}, { sessionId: 'c1' }), // back to c1: new again (the pipeline keeps one session per visitor)
      ev('h', T0 + 56 * MIN), // no client id after a client session: new
      ev('h', T0 + 86 * MIN), // exactly 30 min later: same session
    ]);
    assert.equal(t.merchants['m']!.sessions, 6);
  });

  it('lets dropped duplicates leave sessions alone', () => {
    const first = ev('h', T0);
    const t = truthOf([first, ev('h', T0 + 40 * MIN), first]);
    assert.equal(t.merchants['m']!.sessions, 2);
  });
});

/** The pipeline's rules, written out again from docs/pipeline.md and topology.ts, for a plan. */
function recompute(seed: number) {
  const { actions, truth } = planSimulation({ seed, merchants: MERCHANTS, visitorsPerMerchant: 300, endTime: END });
  const byKey = merchantOfKey();
  const validated = new Set<string>();
  const seen = new Set<string>();
  const orders = new Set<string>();
  const sessions = new Map<string, { last: number; n: number; client: string | null }>();
  const per: Record<string, { filtered: number; bots: number; sessions: number; orders: number; revenue: number; rejected: Record<string, number> }> = {};
  const hours: Record<string, Record<string, number>> = {};
  for (const m of MERCHANTS) per[m.id] = { filtered: 0, bots: 0, sessions: 0, orders: 0, revenue: 0, rejected: {} };
  for (const a of actions) {
    const merchant = byKey.get(a.writeKey)!;
    if (a.kind === 'beacon') {
      validated.add(`${merchant.id}/${a.anonymousId}`);
      continue;
    }
    for (const m of a.body.batch) {
      const p = per[merchant.id]!;
      const r = normalizeEvent(m, { merchantId: merchant.id, defaultCurrency: merchant.currency, receivedAt: END + 1000 });
      if (!r.ok) {
        p.rejected[r.reason.code] = (p.rejected[r.reason.code] ?? 0) + 1;
        continue;
      }
      const e = r.event;
      if (seen.has(`${merchant.id}/${e.messageId}`)) continue;
      seen.add(`${merchant.id}/${e.messageId}`);
      if (e.event === 'Order Completed') {
        if (orders.has(`${merchant.id}/${e.properties.order_id}`)) continue;
        orders.add(`${merchant.id}/${e.properties.order_id}`);
      }
      const s = sessions.get(e.visitorId);
      let start: boolean;
      if (e.sessionId !== null) start = !(s !== undefined && s.client === e.sessionId);
      else start = s === undefined || s.client !== null || e.timestamp - s.last > 30 * MIN;
      sessions.set(e.visitorId, start ? { last: e.timestamp, n: 1, client: e.sessionId } : { last: Math.max(s!.last, e.timestamp), n: s!.n + 1, client: e.sessionId });
      const human = !isbot(e.context.userAgent ?? '') && validated.has(`${merchant.id}/${e.anonymousId}`);
      const k = `${human ? 'filtered' : 'bots'}/${merchant.id}/${e.event}`;
      (hours[k] ??= {})[hourOf(e.timestamp)] = (hours[k]![hourOf(e.timestamp)] ?? 0) + 1;
      if (!human) {
        p.bots++;
        continue;
      }
      p.filtered++;
      if (start) p.sessions++;
      if (e.event === 'Order Completed') {
        p.orders++;
        p.revenue += e.properties.total ?? 0;
      }
    }
  }
  return { truth, per, hours };
}

describe('the truth of a plan, recomputed independently', () => {
  for (const seed of [3, 99]) {
    it(`seed ${seed}`, () => {
      const { truth, per, hours } = recompute(seed);
      for (const m of MERCHANTS) {
        const t = truth.merchants[m.id]!;
        const p = per[m.id]!;
        assert.deepEqual(
          { filtered: t.humanEvents, bots: t.botEvents, sessions: t.sessions, orders: t.orders, revenue: t.revenueMinor, rejected: t.rejected },
          { filtered: p.filtered, bots: p.bots, sessions: p.sessions, orders: p.orders, revenue: p.revenue, rejected: p.rejected },
          m.id,
        );
        assert.equal(t.currency, m.currency);
        for (const [which, counts] of [['filtered', truth.filtered], ['bots', truth.bots]] as const) {
          for (const [name, byHour] of Object.entries(counts[m.id]!)) assert.deepEqual(byHour, hours[`${which}/${m.id}/${name}`], `${which} ${m.id} ${name}`);
          const names = Object.keys(hours).filter((k) => k.startsWith(`${which}/${m.id}/`)).map((k) => k.split('/')[2]);
          assert.deepEqual(names.sort(), Object.keys(counts[m.id]!).sort());
        }
        // The pipeline's sessions are the sessions the model generated.
        assert.equal(t.sessions, truth.generated[m.id]!.humanSessions);
        assert.equal(t.orders, truth.generated[m.id]!.orders);
      }
    });
  }
});
