/**
 * The `recs` option: shoppers who react to the recommendations they are shown (react.ts). The plan
 * (a widget after each human product view, the rest of the traffic unchanged), the reaction (pure,
 * following the bundles, accepted by the contract), the settled truth against the real pipeline,
 * runSimulation against a fake recommendations API, and the command.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeEvent, type IngestContext } from '../../src/contract/index.ts';
import { simulateCommand } from '../../src/simulate/cli.ts';
import { laneOf, planSimulation, settleTruth, type GroundTruth, type SimAction, type SimulationOptions, type SimulationPlan } from '../../src/simulate/plan.ts';
import { DEFAULT_RECS, expandBatch, react, WIDGET_SPAN_MS, type PlannedWidget, type RecsAnswer, type WidgetOutcome } from '../../src/simulate/react.ts';
import { runSimulation } from '../../src/simulate/run.ts';
import { END, MERCHANTS, sentMessages, startFakeApi, type FakeApi } from './fixture.ts';
import { hourCounts, throughPipeline } from './pipeline.ts';

const OPTIONS: SimulationOptions = { seed: 5, merchants: MERCHANTS, visitorsPerMerchant: 80, products: 60, hours: 2, endTime: END };

type Batch = Extract<SimAction, { kind: 'batch' }>;
const batches = (actions: readonly SimAction[]) => actions.filter((a): a is Batch => a.kind === 'batch');
const widgetsOf = (plan: SimulationPlan) => plan.recs!.widgets;
const time = (m: Record<string, unknown>) => Date.parse(String(m['timestamp']));

/** An answer of the API showing these products. */
const answer = (ids: readonly string[], variant?: string): RecsAnswer => ({
  items: ids.map((product_id) => ({ product_id })),
  attribution_token: 'f.tok.abc',
  ...(variant !== undefined && { experiment: { id: 'recs-x', variant } }),
});

/** A product of the slot's bundle, and products of no bundle of it. */
function complementsOf(w: PlannedWidget): { mates: string[]; others: string[] } {
  const bundle = w.slot.shop.bundleOf.get(w.slot.productId)!;
  const mates = bundle.filter((id) => id !== w.slot.productId);
  const others = [...w.slot.shop.products.keys()].filter((id) => !bundle.includes(id));
  return { mates, others };
}

describe('the recs option: the plan', () => {
  let off: SimulationPlan;
  let on: SimulationPlan;
  before(() => {
    off = planSimulation(OPTIONS);
    on = planSimulation({ ...OPTIONS, recs: true });
  });

  it('is off by default: no widgets, no recs in the params or the truth', () => {
    assert.equal(off.recs, undefined);
    assert.ok(off.actions.every((a) => !('widgets' in a)));
    assert.ok(!('recs' in off.truth) && !('recs' in off.truth.params) && !('catalogueSeed' in off.truth.params));
  });

  it('leaves the rest of the traffic as it is: the same actions and truth, plus widgets', () => {
    const strip = (a: SimAction): SimAction => (a.kind === 'batch' ? { kind: a.kind, lane: a.lane, writeKey: a.writeKey, body: a.body } : a);
    assert.deepEqual(on.actions.map(strip), off.actions);
    const { recs, params, ...rest } = on.truth;
    const { params: paramsOff, ...restOff } = off.truth;
    assert.deepEqual(rest, restOff, 'before the run, the truth covers the messages that do not depend on the API');
    assert.deepEqual({ ...params, recs: undefined }, { ...paramsOff, recs: undefined });
    assert.deepEqual(params.recs, { ...DEFAULT_RECS, experiment: null });
    assert.equal(recs!.settled, false);
    assert.ok(widgetsOf(on).length > 500, `${widgetsOf(on).length} widgets`);
  });

  it('puts a widget after each human product view that ends inside the window, in the visitor lane, after its beacon', () => {
    const classes = new Map<string, string>();
    for (const [m, byId] of Object.entries(on.truth.visitors)) for (const [id, c] of Object.entries(byId)) classes.set(`${m}|${id}`, c);
    // The product views of humans (valid, once each), by merchant|visitor|product.
    const views = new Map<string, number[]>();
    const seen = new Set<string>();
    let expected = 0;
    for (const { merchantId, message: m } of sentMessages(on.actions)) {
      if (m['event'] !== 'Product Viewed' || typeof m['messageId'] !== 'string' || seen.has(m['messageId'])) continue;
      const p = m['properties'] as Record<string, unknown>;
      if (typeof p['price'] !== 'number' || classes.get(`${merchantId}|${String(m['anonymousId'])}`) !== 'human') continue;
      seen.add(m['messageId']);
      const key = `${merchantId}|${String(m['anonymousId'])}|${String(p['product_id'])}`;
      views.set(key, [...(views.get(key) ?? []), time(m)]);
      if (time(m) + WIDGET_SPAN_MS <= END) expected++;
    }
    assert.equal(widgetsOf(on).length, expected, 'one widget per human product view');
    const beaconAt = new Map<string, number>();
    on.actions.forEach((a, i) => {
      if (a.kind === 'beacon') beaconAt.set(`${a.writeKey}|${a.anonymousId}`, i);
    });
    const ids: number[] = [];
    on.actions.forEach((a, i) => {
      if (a.kind !== 'batch' || a.widgets === undefined) return;
      let last = -1;
      for (const w of a.widgets) {
        ids.push(w.id);
        assert.ok(w.at >= last && w.at <= a.body.batch.length);
        last = w.at;
        const s = w.slot;
        assert.equal(classes.get(`${s.merchantId}|${s.anonymousId}`), 'human');
        assert.equal(a.lane, laneOf(s.merchantId, s.anonymousId, 4));
        assert.equal(MERCHANTS.find((m) => m.id === s.merchantId)!.writeKey, a.writeKey);
        assert.ok(beaconAt.get(`${a.writeKey}|${s.anonymousId}`)! < i, 'the beacon first');
        const at = views.get(`${s.merchantId}|${s.anonymousId}|${s.productId}`) ?? [];
        assert.ok(
          at.some((t) => s.time - t >= 300 && s.time - t <= 1500),
          'the exposure 0.3–1.5 s after the product view',
        );
        assert.ok(s.time + WIDGET_SPAN_MS <= END + 1500);
      }
    });
    assert.deepEqual(ids, widgetsOf(on).map((w) => w.id));
    assert.deepEqual(ids, [...ids.keys()], 'numbered in send order');
  });

  it('is deterministic for a seed, without Math.random', () => {
    const random = Math.random;
    Math.random = () => {
      throw new Error('the simulator must not use Math.random');
    };
    try {
      const a = planSimulation({ ...OPTIONS, recs: { experiment: 'recs-x' } });
      const b = planSimulation({ ...OPTIONS, recs: { experiment: 'recs-x' } });
      assert.deepEqual(a, b);
      const ans = (w: PlannedWidget) => answer([...complementsOf(w).mates, ...complementsOf(w).others].slice(0, 4), 'treatment');
      assert.deepEqual(
        widgetsOf(a).map((w) => react(w, ans(w))),
        widgetsOf(b).map((w) => react(w, ans(w))),
      );
      const c = planSimulation({ ...OPTIONS, seed: 6, recs: true });
      assert.notDeepEqual(widgetsOf(c).map((w) => w.slot.seed), widgetsOf(a).map((w) => w.slot.seed));
    } finally {
      Math.random = random;
    }
  });

  it('keeps the shop with a catalogue seed, whatever the seed', () => {
    const a = planSimulation({ ...OPTIONS, seed: 1, catalogueSeed: 77 });
    const b = planSimulation({ ...OPTIONS, seed: 2, catalogueSeed: 77 });
    assert.deepEqual(a.truth.bundles, b.truth.bundles);
    assert.notDeepEqual(a.truth.visitors, b.truth.visitors);
    assert.notDeepEqual(planSimulation({ ...OPTIONS, seed: 1 }).truth.bundles, planSimulation({ ...OPTIONS, seed: 2 }).truth.bundles);
    assert.equal(a.truth.params.catalogueSeed, 77);
  });
});

describe('the recs option: the reaction', () => {
  const plan = planSimulation({ ...OPTIONS, merchants: [MERCHANTS[0]!], recs: true });
  const w = widgetsOf(plan)[0]!;
  const { mates, others } = complementsOf(w);
  const ctx: IngestContext = { merchantId: w.slot.merchantId, defaultCurrency: 'EUR', receivedAt: END + 60_000 };

  it('shows nothing without an answer, or with an empty one', () => {
    const failed = react(w, null, 'HTTP 500');
    assert.deepEqual(failed.messages, []);
    assert.equal(failed.error, 'HTTP 500');
    assert.deepEqual(react(w, answer([])).messages, []);
    assert.deepEqual(react(w, answer([w.slot.productId])).messages, [], 'the viewed product is never shown');
  });

  it('sends the exposure, the click and the purchase as the contract reads them', () => {
    // Find a seed that clicks the complement and buys it.
    let o: WidgetOutcome | undefined;
    for (let seed = 0; o === undefined; seed++) {
      const x = react({ id: 0, slot: { ...w.slot, seed } }, answer([mates[0]!, others[0]!, others[1]!, 'not-in-the-shop'], 'treatment'));
      if (x.order !== null) o = x;
    }
    assert.equal(o.variant, 'treatment');
    assert.equal(o.complements, 1);
    assert.equal(o.clicked, mates[0]);
    assert.equal(o.clickedComplement, true);
    assert.deepEqual(o.messages.map((m) => m['event']), ['Product List Viewed', 'Product Clicked', 'Product Added', 'Product Added', 'Order Completed']);
    const events = o.messages.map((m) => {
      const r = normalizeEvent(m, ctx);
      assert.ok(r.ok, JSON.stringify(r));
      return r.event;
    });
    const [exposure, click, , , order] = events as Array<Record<string, unknown> & { properties: Record<string, unknown> }>;
    assert.equal(exposure!.properties['list_id'], 'recs-pdp');
    assert.deepEqual((exposure!.properties['extra'] as Record<string, unknown>)['attribution_token'], 'f.tok.abc');
    const shown = exposure!.properties['products'] as Array<{ product_id: string; position: number; price: number | null }>;
    assert.deepEqual(shown.map((p) => [p.product_id, p.position]), [[mates[0], 1], [others[0], 2], [others[1], 3], ['not-in-the-shop', 4]]);
    assert.equal(shown[3]!.price, null);
    assert.deepEqual(click!.properties['extra'], { list_id: 'recs-pdp', attribution_token: 'f.tok.abc' });
    const viewed = w.slot.shop.products.get(w.slot.productId)!;
    const bought = w.slot.shop.products.get(mates[0]!)!;
    const subtotal = viewed.priceMinor + bought.priceMinor;
    const total = subtotal + (subtotal >= 7500 ? 0 : 490);
    assert.equal(order!.properties['total'], total);
    assert.deepEqual((order!.properties['products'] as Array<{ product_id: string }>).map((p) => p.product_id), [viewed.product_id, bought.product_id]);
    assert.deepEqual(o.order, { orderId: order!.properties['order_id'], totalMinor: total });
    // The visitor's context and times within the product page's time.
    for (const m of o.messages) {
      assert.equal(m['anonymousId'], w.slot.anonymousId);
      assert.equal(m['context'], w.slot.context);
      assert.ok(time(m) >= w.slot.time && time(m) < w.slot.time + WIDGET_SPAN_MS - 300, String(m['timestamp']));
    }
    assert.ok(o.messages.every((m, i) => i === 0 || time(m) > time(o.messages[i - 1]!)));
    assert.equal(new Set(o.messages.map((m) => m['messageId'])).size, o.messages.length);
  });

  it('is a function of the slot and the answer only', () => {
    const a = answer([mates[0]!, others[0]!]);
    assert.deepEqual(react(w, a), react(w, structuredClone(a)));
    assert.notDeepEqual(react(w, a).messages, react({ ...w, slot: { ...w.slot, seed: w.slot.seed + 1 } }, a).messages);
  });

  it('follows the bundles: complements are clicked and bought far more often', () => {
    const n = 20_000;
    const rate = (ids: string[]) => {
      let clicks = 0;
      let complementClicks = 0;
      let orders = 0;
      for (let seed = 0; seed < n; seed++) {
        const o = react({ id: seed, slot: { ...w.slot, seed, n: seed } }, answer(ids));
        if (o.clicked !== null) clicks++;
        if (o.clickedComplement) complementClicks++;
        if (o.order !== null) orders++;
      }
      return { clicks: clicks / n, complementClicks: complementClicks / n, orders: orders / n };
    };
    const near = (x: number, p: number, what: string) => assert.ok(Math.abs(x - p) <= 4 * Math.sqrt((p * (1 - p)) / n), `${what}: ${x} against ${p}`);
    const { clickComplement: c, clickOther: o, buyComplement: bc, buyOther: bo } = DEFAULT_RECS;
    // A complement first: it catches the eye with probability c; else one of the three others may.
    const withComplement = rate([mates[0]!, others[0]!, others[1]!, others[2]!]);
    near(withComplement.complementClicks, c, 'complement clicks');
    near(withComplement.clicks, 1 - (1 - c) * (1 - o) ** 3, 'clicks');
    near(withComplement.orders, c * bc + (1 - c) * (1 - (1 - o) ** 3) * bo, 'orders');
    const without = rate([others[0]!, others[1]!, others[2]!, others[3]!]);
    near(without.clicks, 1 - (1 - o) ** 4, 'clicks without a complement');
    assert.equal(without.complementClicks, 0);
    assert.ok(withComplement.clicks > 4 * without.clicks && withComplement.orders > 10 * without.orders);
  });
});

describe('the recs option: the settled truth against the real pipeline topology', () => {
  it('counts the widgets messages as they were sent (answers, failures, empty lists)', () => {
    const plan = planSimulation({ ...OPTIONS, seed: 9, visitorsPerMerchant: 60, recs: { experiment: 'recs-x' } });
    // A fake API: complements first for even ids, shop products for odd ones; some fail, some are empty.
    const outcomes = new Map<number, WidgetOutcome>();
    for (const w of widgetsOf(plan)) {
      const { mates, others } = complementsOf(w);
      let o: WidgetOutcome;
      if (w.id % 10 === 3) o = react(w, null, 'HTTP 503');
      else if (w.id % 10 === 7) o = react(w, answer([], 'control'));
      else o = react(w, answer(w.id % 2 === 0 ? [...mates, ...others].slice(0, 4) : others.slice(w.id % 20, (w.id % 20) + 4), w.id % 2 === 0 ? 'treatment' : 'control'));
      outcomes.set(w.id, o);
    }
    const truth = settleTruth(plan, [...outcomes.values()]);
    const r = throughPipeline(plan.actions, MERCHANTS, END, (a) => expandBatch(a.body.batch, a.widgets, (id) => outcomes.get(id)));
    assert.deepEqual(hourCounts(r.filtered, MERCHANTS), truth.filtered);
    assert.deepEqual(hourCounts(r.bots, MERCHANTS), truth.bots);
    assert.deepEqual(r.collectorRejected, truth.rejectedByStage.collector);
    for (const m of MERCHANTS) {
      const human = r.filtered.filter((e) => e.event.merchantId === m.id).map((e) => e.event);
      const orders = human.filter((e) => e.event === 'Order Completed');
      const t = truth.merchants[m.id]!;
      assert.equal(r.filtered.filter((e) => e.event.merchantId === m.id && e.session.start).length, t.sessions, `${m.id} sessions`);
      assert.equal(t.sessions, truth.generated[m.id]!.humanSessions, 'widgets start no session');
      assert.equal(orders.length, t.orders, `${m.id} orders`);
      assert.equal(orders.reduce((a, e) => a + (e.properties.total ?? 0), 0), t.revenueMinor, `${m.id} revenue`);
      const recs = truth.recs!.merchants[m.id]!;
      const widgetLists = human.filter((e) => e.event === 'Product List Viewed' && e.properties.list_id === 'recs-pdp');
      assert.equal(widgetLists.length, recs.exposures, `${m.id} exposures`);
      assert.equal(human.filter((e) => e.event === 'Product Clicked').length, recs.clicks, `${m.id} clicks`);
      assert.equal(orders.filter((e) => String(e.properties.order_id).includes('-w')).length, recs.orders, `${m.id} orders from a click`);
      assert.ok(recs.exposures > 0 && recs.clicks > 0 && recs.orders > 0, JSON.stringify(recs));
      assert.equal(recs.byVariant['treatment']!.exposures + recs.byVariant['control']!.exposures, recs.exposures);
      assert.ok(recs.byVariant['treatment']!.complementClicks > recs.byVariant['control']!.complementClicks);
    }
    assert.equal(truth.recs!.settled, true);
    assert.equal(truth.recs!.failed, [...outcomes.values()].filter((o) => o.error !== undefined).length);
    assert.equal(truth.totals.messages, plan.truth.totals.messages + [...outcomes.values()].reduce((a, o) => a + o.messages.length, 0));
    assert.ok(truth.totals.orders > plan.truth.totals.orders);
    // Nothing sent for the widgets: the counts of the plan.
    const none = settleTruth(plan, []);
    assert.deepEqual({ ...none, recs: undefined }, { ...plan.truth, recs: undefined });
    assert.throws(() => settleTruth(plan, [outcomes.get(0)!, outcomes.get(0)!]), /two outcomes/);
  });
});

describe('the recs option: runSimulation and the command against a fake API', () => {
  let api: FakeApi;
  let base: string;
  let batchesReceived: Array<Array<Record<string, unknown>>> = [];
  let asked: Array<{ merchant: string; query: URLSearchParams; authorization: string | undefined; userAgent: string | undefined }> = [];
  let fail: (query: URLSearchParams) => boolean = () => false;

  before(async () => {
    api = await startFakeApi((r, res, req) => {
      const recs = /^\/v1\/merchants\/([^/]+)\/recommendations$/.exec(r.path);
      if (r.path === '/v1/beacon/challenge') res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}');
      else if (r.path === '/v1/beacon/validate') res.writeHead(204).end();
      else if (r.path === '/v1/batch') {
        batchesReceived.push((JSON.parse(r.body) as { batch: Array<Record<string, unknown>> }).batch);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
      } else if (recs !== null) {
        const q = r.query;
        asked.push({ merchant: decodeURIComponent(recs[1]!), query: q, authorization: req.headers.authorization, userAgent: req.headers['user-agent'] });
        if (fail(q)) {
          res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"code":"SHOP_ERR_INVALID_PARAMETER","message":"no"}}');
          return;
        }
        const n = Number(q.get('product_id')!.slice(2));
        const items = [1, 2, 3, 4].map((k) => ({ product_id: `p-${String(((n + k - 1) % 30) + 1).padStart(4, '0')}`, score: 1 / k }));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ model: q.get('model'), items, attribution_token: `f.${q.get('visitor_id')}`, ...(q.has('experiment') && { experiment: { id: q.get('experiment'), variant: n % 2 === 0 ? 'a' : 'b' } }) }));
      } else res.writeHead(404).end();
    });
    base = api.base;
  });

  after(() => api.close());

  const small: SimulationOptions = { seed: 3, merchants: [MERCHANTS[0]!], visitorsPerMerchant: 30, products: 30, hours: 1, endTime: END, lanes: 2 };

  it('asks the API for each widget before sending it, and sends the reactions in their place', async () => {
    batchesReceived = [];
    asked = [];
    const plan = planSimulation({ ...small, recs: { experiment: 'recs-x', model: 'others-you-may-like', limit: 3 } });
    const failing = widgetsOf(plan)[2]!.slot;
    fail = (q) => q.get('visitor_id') === failing.anonymousId && q.get('product_id') === failing.productId;
    const run = await runSimulation(plan.actions, { baseUrl: base, concurrency: 2 });
    assert.equal(run.failures, 0, run.errors.join('; '));
    assert.equal(run.widgets.length, widgetsOf(plan).length);
    assert.equal(asked.length, widgetsOf(plan).length, 'one request per widget');
    assert.ok(run.recsFailures >= 1 && run.recsFailures === run.widgets.filter((o) => o.error !== undefined).length);
    for (const x of asked) {
      assert.equal(x.merchant, 'shop-a');
      assert.equal(x.authorization, `Basic ${Buffer.from(`${MERCHANTS[0]!.writeKey}:`).toString('base64')}`, 'the public write key');
      assert.equal(x.query.get('model'), 'others-you-may-like');
      assert.equal(x.query.get('limit'), '3');
      assert.equal(x.query.get('experiment'), 'recs-x');
      assert.ok(plan.truth.visitors['shop-a']![x.query.get('visitor_id')!] === 'human');
      assert.match(x.userAgent ?? '', /^Mozilla/);
    }
    // What the collector received is exactly the plan's batches with the reactions in place.
    const byId = new Map(run.widgets.map((o) => [o.id, o]));
    const expected = batches(plan.actions).map((a) => expandBatch(a.body.batch, a.widgets, (id) => byId.get(id)));
    const key = (b: ReadonlyArray<Record<string, unknown>>) => JSON.stringify(b);
    assert.deepEqual(batchesReceived.map(key).sort(), expected.map(key).sort());
    const exposures = batchesReceived.flat().filter((m) => m['event'] === 'Product List Viewed' && (m['properties'] as Record<string, unknown>)['list_id'] === 'recs-pdp');
    assert.equal(exposures.length, run.widgets.filter((o) => o.shown.length > 0).length);
    assert.ok(exposures.every((m) => ((m['properties'] as { products: unknown[] }).products.length === 3)));
    assert.ok(run.widgets.every((o) => o.error !== undefined || o.variant === (Number(o.productId.slice(2)) % 2 === 0 ? 'a' : 'b')));
    const truth = settleTruth(plan, run.widgets);
    assert.equal(truth.totals.messages, batchesReceived.flat().length);
    assert.equal(truth.recs!.failed, run.recsFailures);
  });

  it('stops asking after failures in a row, and sends the rest without widgets', async () => {
    batchesReceived = [];
    asked = [];
    fail = () => true;
    const plan = planSimulation({ ...small, recs: true });
    const run = await runSimulation(plan.actions, { baseUrl: base, concurrency: 1 });
    assert.equal(run.failures, 0);
    assert.equal(asked.length, 5);
    assert.equal(run.recsFailures, widgetsOf(plan).length);
    assert.ok(run.errors.some((e) => /gave up asking for recommendations/.test(e)));
    assert.deepEqual(settleTruth(plan, run.widgets).filtered, plan.truth.filtered);
    assert.equal(batchesReceived.flat().length, plan.truth.totals.messages);
  });

  it('shopstream simulate --recs --experiment: asks, reacts, and writes the settled truth after the run', async () => {
    fail = () => false;
    const dir = mkdtempSync(join(tmpdir(), 'sim-recs-'));
    try {
      const out: string[] = [];
      const err: string[] = [];
      const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
      const args = ['--url', base, '--write-key', MERCHANTS[0]!.writeKey, '--merchant-id', 'shop-a', '--currency', 'EUR', '--seed', '4', '--visitors', '20', '--products', '30', '--hours', '1', '--end-time', new Date(END).toISOString()];
      const dry = join(dir, 'dry.json');
      assert.equal(await simulateCommand([...args, '--experiment', 'recs-x', '--catalogue-seed', '8', '--truth', dry, '--dry-run'], io), 0, err.join('\n'));
      const planned = JSON.parse(readFileSync(dry, 'utf8')) as GroundTruth;
      assert.equal(planned.recs!.settled, false);
      assert.deepEqual(planned.params.recs, { ...DEFAULT_RECS, experiment: 'recs-x' });
      assert.equal(planned.params.catalogueSeed, 8);
      assert.match(err.join('\n'), /without the widgets/);

      const file = join(dir, 'truth.json');
      out.length = 0;
      assert.equal(await simulateCommand([...args, '--recs', '--recs-limit', '2', '--truth', file], io), 0, err.join('\n'));
      const truth = JSON.parse(readFileSync(file, 'utf8')) as GroundTruth;
      assert.equal(truth.recs!.settled, true);
      assert.equal(truth.params.recs!.limit, 2);
      assert.equal(truth.recs!.merchants['shop-a']!.answered, truth.recs!.merchants['shop-a']!.widgets);
      assert.match(out.join('\n'), /recs: shop-a: \d+ widgets, \d+ answered, \d+ exposures/);

      for (const bad of [['--recs-model', 'bogus', '--recs'], ['--recs-limit', '3'], ['--recs', '--recs-limit', '0'], ['--catalogue-seed', 'x']]) {
        err.length = 0;
        assert.equal(await simulateCommand([...args, ...bad], io), 2, bad.join(' '));
        assert.ok(err.length > 0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
