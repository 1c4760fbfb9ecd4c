/**
 * The analytics API's contract: bearer read tokens (401 unknown, 403 another merchant's), a 400 that
 * names the bad parameter, and the answer's shape. The numbers themselves are tested against the
 * simulator's truth end to end (test/e2e/truth.test.ts) and in test/cubes/store.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { analyticsRoutes } from '../../src/api/analytics.ts';
import { join } from 'node:path';
import { pino } from 'pino';
import { DuckDb, PostgresDb } from '../../src/cubes/db.ts';
import { CubeStore } from '../../src/cubes/store.ts';
import { startPlatform } from '../../src/platform.ts';
import { TEST_POSTGRES, tempDir, unique } from '../helpers.ts';
import { apiServer, readMerchant } from './fixture.ts';


describe('analytics API', () => {
  let app: FastifyInstance;
  let store: CubeStore;
  before(async () => {
    store = new CubeStore(await DuckDb.open(':memory:'));
    await store.init();
    app = await apiServer([readMerchant('shop-a', 'rt_a'), readMerchant('shop-b', 'rt_b')], (a, lookups) => analyticsRoutes(a, { store, ...lookups }));
  });
  after(async () => {
    await app.close();
    await store.close();
  });

  const get = (url: string, token?: string) => app.inject({ method: 'GET', url, headers: token === undefined ? {} : { authorization: `bearer ${token}` } });

  it('needs a read token: none or unknown is 401, another merchant’s is 403', async () => {
    assert.equal((await get('/v1/merchants/shop-a/metrics')).statusCode, 401);
    assert.equal((await get('/v1/merchants/shop-a/metrics', 'rt_nope')).statusCode, 401);
    const forbidden = await get('/v1/merchants/shop-a/metrics', 'rt_b');
    assert.equal(forbidden.statusCode, 403);
    assert.equal(forbidden.json().error.code, 'SHOP_ERR_FORBIDDEN');
  });

  it('a bad parameter is a 400 that names it', async () => {
    const cases: Array<[string, string]> = [
      ['granularity=week', 'granularity'],
      ['metrics=events,clicks', 'metrics'],
      ['group_by=planet', 'group_by'],
      ['filter=country', 'filter'],
      ['from=yesterday', 'from'],
      ['from=2026-11-26T10:00:00Z&to=2026-11-26T09:00:00Z', 'from'],
      ['metrics=visitors&group_by=event_type', 'metrics'],
      ['granularity=minute&from=2026-01-01&to=2026-11-01', 'from'],
      ['from=2026-02-30', 'from'],
      ['to=2026-11-26T25:00', 'to'],
      ['metrics=visitors&group_by=currency', 'metrics'],
      ['metrics=visitors&filter=currency:EUR', 'metrics'],
      ['filter=country:FR,country:DE', 'filter'],
    ];
    for (const [query, parameter] of cases) {
      const res = await get(`/v1/merchants/shop-a/metrics?${query}`, 'rt_a');
      assert.equal(res.statusCode, 400, query);
      assert.equal(res.json().error.code, 'SHOP_ERR_INVALID_PARAMETER', query);
      assert.match(res.json().error.message, new RegExp(`^${parameter}:`), query);
    }
    assert.equal((await get('/v1/merchants/shop-a/products/top?metric=clicks', 'rt_a')).statusCode, 400);
    assert.equal((await get('/v1/merchants/shop-a/products/top?limit=0', 'rt_a')).statusCode, 400);
  });

  it('answers with series, funnel steps and products', async () => {
    const metrics = await get('/v1/merchants/shop-a/metrics?from=2026-11-26&to=2026-11-27&granularity=hour&metrics=events,revenue', 'rt_a');
    assert.equal(metrics.statusCode, 200);
    // Dates and times without an offset are the merchant's (Paris: UTC+1 in November).
    assert.deepEqual(metrics.json(), { merchant: 'shop-a', timezone: 'Europe/Paris', granularity: 'hour', from: '2026-11-25T23:00:00.000Z', to: '2026-11-26T23:00:00.000Z', series: [] });
    const explicit = (await get('/v1/merchants/shop-a/metrics?from=2026-11-26T10:07:00Z&to=2026-11-26T12:00+01:00&granularity=minute', 'rt_a')).json();
    assert.deepEqual([explicit.from, explicit.to], ['2026-11-26T10:07:00.000Z', '2026-11-26T11:00:00.000Z']);
    const lower = await get('/v1/merchants/shop-a/metrics', 'rt_a');
    assert.equal(lower.statusCode, 200);
    const funnel = (await get('/v1/merchants/shop-a/funnel?from=2026-11-26&to=2026-11-27', 'rt_a')).json();
    assert.deepEqual(funnel.steps.map((s: { step: string }) => s.step), ['listing', 'product', 'cart', 'checkout', 'order']);
    const top = await get('/v1/merchants/shop-a/products/top?metric=revenue&limit=5', 'rt_a');
    assert.equal(top.statusCode, 200);
    assert.deepEqual(top.json().products, []);
  });
});

describe('analytics API of an api process started before any cubes process (PostgreSQL)', () => {
  it('answers from the empty store instead of failing on tables nobody has created yet', async () => {
    const t = tempDir();
    const schema = unique('api_first').replace(/[^a-z0-9_]/g, '_');
    const platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger: pino({ level: 'silent' }),
      roles: ['api'],
      config: {
        merchants: [{ id: 'shop', writeKey: 'wk_api_first_shop', readToken: 'rt_api_first_shop', currency: 'EUR' }],
        cubes: { store: 'postgres', postgresUrl: TEST_POSTGRES, postgresSchema: schema },
      },
    });
    try {
      const res = await fetch(`${platform.url}/v1/merchants/shop/metrics`, { headers: { authorization: 'bearer rt_api_first_shop' } });
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(((await res.json()) as { series: unknown[] }).series, []);
    } finally {
      await platform.close();
      const db = await PostgresDb.open(TEST_POSTGRES);
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await db.close();
      t.cleanup();
    }
  });
});
