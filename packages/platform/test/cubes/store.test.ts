/**
 * The cube store, the same tests on both databases: DuckDB (a file) and PostgreSQL (the server on
 * 127.0.0.1:5432, in a schema of its own that the test drops).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DuckDb, PostgresDb } from '../../src/cubes/db.ts';
import { HyperLogLog } from '../../src/cubes/hll.ts';
import { CubeBatch, bucketOf, sessionKey, type SessionState } from '../../src/cubes/model.ts';
import { metricsSeries } from '../../src/cubes/query.ts';
import { CubeStore } from '../../src/cubes/store.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import { TEST_POSTGRES, tempDir, unique } from '../helpers.ts';

const T0 = Date.UTC(2026, 10, 26, 10, 0, 0); // 11:00 in Paris

function event(over: { name?: string; visitor?: string; session?: string; start?: boolean; ts?: number; country?: string; total?: number; products?: Array<{ id: string; qty: number; price: number }> }): PipelineEvent {
  const name = over.name ?? 'Page Viewed';
  const products = (over.products ?? []).map((p) => ({ product_id: p.id, sku: null, name: null, brand: null, category: null, variant: null, price: p.price, quantity: p.qty, position: null, url: null, image_url: null, coupon: null }));
  const properties =
    name === 'Order Completed'
      ? { order_id: unique('o'), checkout_id: null, affiliation: null, total: over.total ?? null, subtotal: null, revenue: null, shipping: null, tax: null, discount: null, coupon: null, currency: 'EUR', products }
      : name === 'Product Viewed' || name === 'Product Added'
        ? { ...products[0]!, cart_id: null, value: null, currency: 'EUR' }
        : { name: null, category: null, path: null, url: null, referrer: null, title: null, search: null };
  return {
    v: 1,
    event: {
      v: 1,
      type: name === 'Page Viewed' ? 'page' : 'track',
      event: name,
      messageId: unique('m'),
      merchantId: 'shop-a',
      visitorId: over.visitor ?? 'v1',
      anonymousId: over.visitor ?? 'v1',
      userId: null,
      sessionId: null,
      timestamp: over.ts ?? T0,
      originalTimestamp: null,
      sentAt: null,
      receivedAt: over.ts ?? T0,
      context: { ip: null, userAgent: null, page: null, campaign: null, locale: null, timezone: null, country: over.country ?? 'FR', library: null, traits: null, fbp: null, fbc: null },
      properties,
    } as PipelineEvent['event'],
    enrichment: { device: { type: 'desktop', browser: null, os: null }, trafficSource: 'direct', country: over.country ?? 'FR' },
    session: { id: over.session ?? `${over.visitor ?? 'v1'}:s1`, start: over.start ?? false, seq: 1 },
    bot: null,
    human: 'validated',
  } as PipelineEvent;
}

async function commitAll(store: CubeStore, consumer: string, events: PipelineEvent[], sessions = new Map<string, SessionState>()): Promise<void> {
  const [position] = await store.positions(consumer, [{ topic: 'filtered', partition: 0 }]);
  const batch = new CubeBatch((k) => sessions.get(k));
  events.forEach((e, i) => {
    batch.addHuman(e, 0);
    batch.consumed('filtered', 0, position!.offset + i, position!.offset);
  });
  const sketches = new Map<string, Uint8Array>();
  for (const [k, ids] of batch.visitors) {
    const h = new HyperLogLog();
    for (const id of ids) h.add(id);
    sketches.set(k, h.serialize());
  }
  await store.commit(consumer, batch, sketches);
}

const stores: Array<{ name: string; open: () => Promise<{ store: CubeStore; cleanup: () => Promise<void> }> }> = [
  {
    name: 'duckdb',
    open: async () => {
      const t = tempDir();
      const store = new CubeStore(await DuckDb.open(join(t.dir, 'cubes.duckdb')));
      return { store, cleanup: async () => { await store.close(); t.cleanup(); } };
    },
  },
  {
    name: 'postgres',
    open: async () => {
      const schema = unique('cubes_test').replace(/[^a-z0-9_]/g, '_');
      const store = new CubeStore(await PostgresDb.open(TEST_POSTGRES, schema));
      return {
        store,
        cleanup: async () => {
          await store.db.query(`DROP SCHEMA ${schema} CASCADE`);
          await store.close();
        },
      };
    },
  },
];

for (const { name, open } of stores) {
  describe(`cube store (${name})`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    after(async () => {
      for (const c of cleanups) await c();
    });
    const fresh = async () => {
      const s = await open();
      cleanups.push(s.cleanup);
      await s.store.init();
      return s.store;
    };

    it('commits deltas and offsets together; a batch from a stale offset is refused and changes nothing', async () => {
      const store = await fresh();
      assert.deepEqual(await store.positions('c1', [{ topic: 'filtered', partition: 0 }]), [{ topic: 'filtered', partition: 0, offset: 0 }]);
      await commitAll(store, 'c1', [event({ start: true }), event({}), event({ name: 'Order Completed', total: 1234, products: [{ id: 'p1', qty: 2, price: 617 }] })]);
      assert.deepEqual(await store.positions('c1', [{ topic: 'filtered', partition: 0 }]), [{ topic: 'filtered', partition: 0, offset: 3 }]);
      // A batch that starts from a stale offset (a zombie writer's, from offset 0): refused, nothing applied twice.
      const zombie = new CubeBatch(() => undefined);
      zombie.addHuman(event({ start: true }), 0);
      zombie.consumed('filtered', 0, 0, 0);
      await assert.rejects(store.commit('c1', zombie, new Map()), { code: 'SHOP_ERR_CUBES_FENCED' });
      const series = await metricsSeries(store, {
        merchant: 'shop-a', timeZone: 'Europe/Paris', currency: 'EUR', from: T0 - 3_600_000, to: T0 + 3_600_000, granularity: 'hour',
        metrics: ['events', 'page_viewed', 'sessions', 'orders', 'revenue', 'items', 'visitors', 'conversion_rate', 'aov'], groupBy: [], filters: [],
      });
      assert.deepEqual(series, [
        { bucket: '2026-11-26T11:00:00+01:00', group: { currency: 'EUR' }, events: 3, page_viewed: 2, sessions: 1, orders: 1, revenue: 1234, items: 2, visitors: 1, conversion_rate: 1, aov: 1234 },
      ]);
    });

    it('rolls quarter hours up to days in the merchant time zone, across a daylight-saving change', async () => {
      const store = await fresh();
      // Paris leaves summer time on 2026-10-25 at 03:00 local (01:00 UTC): that local day has 25 hours.
      const day = Date.UTC(2026, 9, 24, 22, 0, 0); // 2026-10-25 00:00 in Paris (UTC+2)
      const events = [
        event({ ts: day - 60_000, visitor: 'a' }), // 2026-10-24 23:59 local
        event({ ts: day, visitor: 'b' }), // 00:00 local
        event({ ts: day + 24 * 3_600_000, visitor: 'c' }), // 23:00 local (UTC+1 now): still the 25th
        event({ ts: day + 25 * 3_600_000, visitor: 'd' }), // 2026-10-26 00:00 local
      ];
      await commitAll(store, 'c1', events);
      const series = await metricsSeries(store, {
        merchant: 'shop-a', timeZone: 'Europe/Paris', currency: 'EUR', from: day - 86_400_000, to: day + 3 * 86_400_000, granularity: 'day',
        metrics: ['events', 'visitors'], groupBy: [], filters: [],
      });
      assert.deepEqual(series.map((s) => [s.bucket, s.events, s.visitors]), [
        ['2026-10-24T00:00:00+02:00', 1, 1],
        ['2026-10-25T00:00:00+02:00', 2, 2],
        ['2026-10-26T00:00:00+01:00', 1, 1],
      ]);
    });

    it('hours across the autumn clock change: the repeated local hour is two buckets, each with its own offset', async () => {
      const store = await fresh();
      // Paris, 2026-10-25: 02:30 CEST is 00:30Z, 02:30 CET is 01:30Z.
      await commitAll(store, 'c1', [event({ ts: Date.UTC(2026, 9, 25, 0, 30), visitor: 'a' }), event({ ts: Date.UTC(2026, 9, 25, 1, 30), visitor: 'b' }), event({ ts: Date.UTC(2026, 9, 25, 1, 40), visitor: 'c' })]);
      const q = { merchant: 'shop-a', timeZone: 'Europe/Paris', currency: 'EUR', metrics: ['events' as const], groupBy: [], filters: [] };
      const hours = await metricsSeries(store, { ...q, from: Date.UTC(2026, 9, 24, 22), to: Date.UTC(2026, 9, 25, 4), granularity: 'hour' });
      assert.deepEqual(hours.map((s) => [s.bucket, s.events]), [['2026-10-25T02:00:00+02:00', 1], ['2026-10-25T02:00:00+01:00', 2]]);
      for (const s of hours) assert.equal(new Date(s.bucket).getTime() % 3_600_000, 0);
      // A half-hour zone: Kolkata is UTC+5:30; 00:30Z is 06:00 local.
      const kolkata = await metricsSeries(store, { ...q, timeZone: 'Asia/Kolkata', from: Date.UTC(2026, 9, 24, 22), to: Date.UTC(2026, 9, 25, 4), granularity: 'hour' });
      assert.deepEqual(kolkata.map((s) => [s.bucket, s.events]), [['2026-10-25T06:00:00+05:30', 1], ['2026-10-25T07:00:00+05:30', 2]]);
    });

    it('granularity all: one bucket over the range, visitors distinct over the whole range (not summed per minute)', async () => {
      const store = await fresh();
      const at = (m: number) => Date.UTC(2026, 10, 26, 10, m);
      // a and b in each of 4 minutes, c once: 9 events, 3 distinct visitors (per-minute sums would say 9).
      await commitAll(store, 'c1', [
        ...[0, 1, 2, 3].flatMap((m) => [event({ ts: at(m), visitor: 'a' }), event({ ts: at(m) + 10_000, visitor: 'b' })]),
        event({ ts: at(4), visitor: 'c' }),
        event({ ts: at(30), visitor: 'd' }),
      ]);
      const q = { merchant: 'shop-a', timeZone: 'Europe/Paris', currency: 'EUR', metrics: ['events' as const, 'visitors' as const], groupBy: [], filters: [] };
      const five = await metricsSeries(store, { ...q, from: at(0), to: at(5), granularity: 'all' });
      assert.deepEqual(five, [{ bucket: '2026-11-26T10:00:00.000Z', group: {}, events: 9, visitors: 3 }]);
      const minutes = await metricsSeries(store, { ...q, from: at(0), to: at(5), granularity: 'minute' });
      assert.equal(minutes.reduce((n, r) => n + r.visitors!, 0), 9, 'per minute they add up to more');
      // Beyond 2 days it reads quarter hours: same answer for whole quarters.
      const long = await metricsSeries(store, { ...q, from: at(0) - 3 * 86_400_000, to: at(45), granularity: 'all' });
      assert.deepEqual(long.map((r) => [r.events, r.visitors]), [[10, 4]]);
    });

    it('the funnel state of a session carries over to later batches: a step is counted once', async () => {
      const store = await fresh();
      await commitAll(store, 'c1', [event({ visitor: 'v1', start: true }), event({ visitor: 'v1', name: 'Product Viewed', products: [{ id: 'p1', qty: 1, price: 500 }] })]);
      const key = sessionKey('shop-a', 'v1', 'v1:s1');
      const states = await store.loadSessions([key]);
      assert.equal(states.get(key)?.mask, 0b10);
      await commitAll(store, 'c1', [event({ visitor: 'v1', name: 'Product Viewed', products: [{ id: 'p1', qty: 1, price: 500 }], ts: T0 + 60_000 }), event({ visitor: 'v1', name: 'Checkout Started', ts: T0 + 120_000 })], states);
      const [funnel] = await store.funnel('shop-a', bucketOf('q', T0), bucketOf('q', T0) + 1, [], []);
      assert.deepEqual(funnel, { group: {}, sessions: 1, steps: [0, 1, 0, 1, 0] });
    });

    it('client text in keys stays in its column (separators, NUL, very long ids)', async () => {
      const store = await fresh();
      await commitAll(store, 'c1', [
        event({ name: 'Product Viewed', products: [{ id: 'p\u0001EUR', qty: 1, price: 1 }] }),
        event({ name: 'Product Viewed', products: [{ id: 'p', qty: 1, price: 1 }] }),
        event({ name: 'Product Viewed', products: [{ id: 'nul\u0000id', qty: 1, price: 1 }] }),
        event({ name: 'Product Viewed', products: [{ id: 'x'.repeat(20_000), qty: 1, price: 1 }] }),
      ]);
      const top = await store.topProducts('shop-a', bucketOf('q', T0), bucketOf('q', T0) + 1, 'views', 10);
      assert.deepEqual(top.map((p) => [p.productId, p.views]).sort(), [['nulid', 1], ['p', 1], ['p\u0001EUR', 1], ['x'.repeat(256), 1]].sort());
    });

    it('groups and filters by dimension; the funnel counts a session once per step; top products', async () => {
      const store = await fresh();
      const s1 = [
        event({ visitor: 'v1', start: true, country: 'FR' }),
        event({ visitor: 'v1', name: 'Product Viewed', products: [{ id: 'p1', qty: 1, price: 500 }] }),
        event({ visitor: 'v1', name: 'Product Viewed', products: [{ id: 'p1', qty: 1, price: 500 }] }),
        event({ visitor: 'v1', name: 'Product Added', products: [{ id: 'p1', qty: 1, price: 500 }] }),
        event({ visitor: 'v1', name: 'Order Completed', total: 1500, products: [{ id: 'p1', qty: 1, price: 500 }, { id: 'p2', qty: 2, price: 500 }] }),
      ];
      const s2 = [event({ visitor: 'v2', start: true, country: 'DE' }), event({ visitor: 'v2', name: 'Product Viewed', country: 'DE', products: [{ id: 'p2', qty: 1, price: 500 }] })];
      await commitAll(store, 'c1', [...s1, ...s2]);
      const q = { merchant: 'shop-a', timeZone: 'UTC', currency: 'EUR', from: T0, to: T0 + 60_000, granularity: 'minute' as const };
      const byCountry = await metricsSeries(store, { ...q, metrics: ['events', 'product_viewed', 'sessions'], groupBy: ['country'], filters: [] });
      assert.deepEqual(byCountry.map((r) => [r.group['country'], r.events, r.product_viewed, r.sessions]).sort(), [['DE', 2, 1, 1], ['FR', 5, 2, 1]]);
      const de = await metricsSeries(store, { ...q, metrics: ['events'], groupBy: [], filters: [{ dimension: 'country', value: 'DE' }] });
      assert.deepEqual(de.map((r) => r.events), [2]);
      const [funnel] = await store.funnel('shop-a', bucketOf('q', T0), bucketOf('q', T0) + 1, [], []);
      assert.deepEqual(funnel, { group: {}, sessions: 2, steps: [0, 2, 1, 0, 1] });
      const top = await store.topProducts('shop-a', bucketOf('q', T0), bucketOf('q', T0) + 1, 'revenue', 10);
      assert.deepEqual(top, [
        { productId: 'p2', currency: 'EUR', views: 1, adds: 0, purchases: 2, revenue: 1000 },
        { productId: 'p1', currency: 'EUR', views: 2, adds: 1, purchases: 1, revenue: 500 },
      ]);
      // Sessions state is kept for the next batch: a later event of s1 does not count a step twice.
      const key = sessionKey('shop-a', 'v1', 'v1:s1');
      const states = await store.loadSessions([key]);
      assert.equal(states.get(key)?.mask, 0b10110);
    });

    it('prunes buckets beyond the retention', async () => {
      const store = await fresh();
      await commitAll(store, 'c1', [event({ ts: T0 - 20 * 86_400_000 }), event({ ts: T0 })]);
      await store.prune({ minuteMs: 14 * 86_400_000, quarterMs: 400 * 86_400_000, sessionMs: 2 * 86_400_000 }, T0);
      const q = { merchant: 'shop-a', timeZone: 'UTC', currency: 'EUR', metrics: ['events' as const], groupBy: [], filters: [] };
      assert.deepEqual((await metricsSeries(store, { ...q, from: T0 - 21 * 86_400_000, to: T0 - 19 * 86_400_000, granularity: 'hour' })).map((r) => r.events), [1]);
      assert.deepEqual(await metricsSeries(store, { ...q, from: T0 - 20 * 86_400_000 - 60_000, to: T0 - 20 * 86_400_000 + 60_000, granularity: 'minute' }), []);
    });
  });
}

describe('cube store (postgres), processes starting together', () => {
  it('opens one new schema and creates its tables from eight connections at once, without a catalogue conflict', async () => {
    // The roles of a deployment (cubes instances, api) open the same schema at the same moment;
    // PostgreSQL's IF NOT EXISTS alone fails one of them on pg_namespace's or pg_type's unique index.
    const schema = unique('cubes_race').replace(/[^a-z0-9_]/g, '_');
    const stores = await Promise.all(Array.from({ length: 8 }, async () => {
      const store = new CubeStore(await PostgresDb.open(TEST_POSTGRES, schema));
      await store.init();
      return store;
    }));
    try {
      const tables = await stores[0]!.db.query(`SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1`, [schema]);
      assert.equal(Number(tables[0]!['n']), 8);
    } finally {
      await stores[0]!.db.query(`DROP SCHEMA ${schema} CASCADE`);
      for (const s of stores) await s.close();
    }
  });
});
