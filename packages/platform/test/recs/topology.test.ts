/**
 * The recs topology through the test driver: orders, cart adds and sessions become the models'
 * entries on recs.model (counts exact, nothing counted twice), popularity per merchant, and each
 * visitor's recent views and purchases on recs.visitors; merchants never mix.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Serdes } from '@shopstream/streams';
import { TopologyTestDriver } from '@shopstream/streams/testing';
import { normalizeEvent, type IngestContext } from '../../src/contract/index.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import { coEstimate, TOTAL_KEY, type CoItemState } from '../../src/recs/cooccurrence.ts';
import { DEFAULT_FBT, FbtModel } from '../../src/recs/models.ts';
import { popularTop, type PopularityState } from '../../src/recs/popularity.ts';
import { modelKey, popularKey, recsTopology, visitorKey, type VisitorRecent } from '../../src/recs/topology.ts';
import { topicNames } from '../../src/topics.ts';

const T = topicNames();
const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
let seq = 0;

function filtered(message: Record<string, unknown>, merchantId = 'shop', session = 's1', at = NOW): PipelineEvent {
  const ctx: IngestContext = { merchantId, defaultCurrency: 'EUR', receivedAt: at + 1000 };
  const r = normalizeEvent({ messageId: `m-${seq++}`, anonymousId: 'v1', timestamp: new Date(at).toISOString(), ...message }, ctx);
  assert.ok(r.ok, JSON.stringify(r));
  return { v: 1, event: r.event, enrichment: {} as PipelineEvent['enrichment'], session: { id: session, start: false, seq: 1 }, bot: null, human: 'validated' };
}
const order = (ids: string[], extra: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Order Completed',
  properties: { order_id: `o-${seq}`, currency: 'EUR', total: 10, products: ids.map((id) => ({ product_id: id, price: 5, quantity: 1 })) },
  ...extra,
});
const product = (event: string, id: string, extra: Record<string, unknown> = {}) => ({ type: 'track', event, properties: { product_id: id, price: 5, currency: 'EUR' }, ...extra });

function setup() {
  const driver = new TopologyTestDriver(recsTopology(T), { wallClockMs: NOW });
  const input = driver.createInputTopic(T.filtered, Serdes.string(), Serdes.json<PipelineEvent>());
  const model = driver.createOutputTopic(T.recsModel, Serdes.string(), Serdes.json<CoItemState | PopularityState>());
  const visitors = driver.createOutputTopic(T.recsVisitors, Serdes.string(), Serdes.json<VisitorRecent>());
  const send = (pe: PipelineEvent) => input.pipeInput(pe.event.visitorId, pe, pe.event.receivedAt);
  /** The latest value per key (what compaction keeps and the table holds). */
  const latest = () => {
    const out = new Map<string, CoItemState | PopularityState>();
    for (const r of model.readRecordsToList()) out.set(r.key!, r.value!);
    return out;
  };
  return { send, latest, visitors };
}

describe('recs topology', () => {
  it('orders: every pair of an order, once, both directions; popularity; the same counts as the model in memory', () => {
    const t = setup();
    const orders = [['a', 'b', 'c'], ['a', 'b'], ['b', 'd'], ['a', 'b', 'b']];
    const reference = new FbtModel();
    for (const ids of orders) {
      t.send(filtered(order(ids)));
      reference.order(ids, NOW);
    }
    const m = t.latest();
    const f = (id: string) => m.get(modelKey('f', 'shop', id)) as CoItemState;
    assert.equal(f('a').n, 3);
    assert.equal(coEstimate(f('a'), 'b', DEFAULT_FBT.co.capacity).count, 3);
    assert.equal(coEstimate(f('b'), 'd', DEFAULT_FBT.co.capacity).count, 1);
    assert.equal(coEstimate(f('d'), 'a', DEFAULT_FBT.co.capacity).count, 0);
    assert.equal(f(TOTAL_KEY).n, 4);
    for (const id of ['a', 'b', 'c', 'd', TOTAL_KEY]) assert.deepEqual(f(id), reference.get(id), `entry ${id} = the in-memory model's`);
    const pop = m.get(popularKey('shop')) as PopularityState;
    assert.deepEqual(popularTop(pop, 2).map((p) => p.id), ['b', 'a']);
  });

  it('carts: a product added pairs with the cart; the cart is per session and ends with the order', () => {
    const t = setup();
    t.send(filtered(product('Product Added', 'x')));
    t.send(filtered(product('Product Added', 'y')));
    t.send(filtered(product('Product Added', 'z', { anonymousId: 'v2' }), 'shop', 's9'));
    const m = t.latest();
    const f = (id: string) => m.get(modelKey('f', 'shop', id)) as CoItemState;
    assert.equal(coEstimate(f('x'), 'y', 50).count, DEFAULT_FBT.cartWeight);
    assert.equal(coEstimate(f('y'), 'x', 50).count, DEFAULT_FBT.cartWeight);
    assert.equal(coEstimate(f('z'), 'x', 50).count, 0, 'another session is another cart');
  });

  it('sessions: views pair with the previous products with a weight that falls with distance; merchants never mix', () => {
    const t = setup();
    for (const id of ['p1', 'p2', 'p3']) t.send(filtered(product('Product Viewed', id)));
    t.send(filtered(product('Product Viewed', 'p1'), 'other-shop'));
    const m = t.latest();
    const o = (id: string) => m.get(modelKey('o', 'shop', id)) as CoItemState;
    assert.equal(coEstimate(o('p3'), 'p2', 50).count, 1);
    assert.equal(coEstimate(o('p3'), 'p1', 50).count, 0.5);
    assert.equal(coEstimate(o('p1'), 'p3', 50).count, 0.5);
    assert.equal((m.get(modelKey('o', 'other-shop', 'p1')) as CoItemState).nb.length, 0);
  });

  it("keeps each visitor's recent views and purchases", () => {
    const t = setup();
    t.send(filtered(product('Product Viewed', 'p1')));
    t.send(filtered(product('Product Viewed', 'p2')));
    t.send(filtered(order(['p2', 'p9'])));
    const last = t.visitors.readRecordsToList().at(-1)!;
    assert.equal(last.key, visitorKey('shop', 'v1'));
    assert.deepEqual(last.value, { views: [['p1', NOW], ['p2', NOW]], bought: [['p2', NOW], ['p9', NOW]] });
  });
});
