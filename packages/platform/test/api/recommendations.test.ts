/**
 * The recommendations API on a running platform (embedded): orders and views sent through the
 * collector reach the models and the answers; popular products fill in (and say so) when a model
 * knows too little, unless the fallback is off; a visitor's recent views personalise "others you
 * may like" and what they just bought is left out; keys and parameters are checked with codes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { startPlatform, type Platform } from '../../src/platform.ts';
import { tempDir } from '../helpers.ts';

const SERVER_KEY = 'sk_recs_test_server_key_0123';
const WRITE_KEY = 'wk_recs_test_storefront';

describe('recommendations API', () => {
  let platform: Platform;
  const t = tempDir();
  before(async () => {
    platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger: pino({ level: 'warn' }),
      roles: ['collector', 'pipeline', 'recs'],
      config: {
        merchants: [
          { id: 'shop', writeKey: WRITE_KEY, serverWriteKeys: [SERVER_KEY], readToken: 'rt_recs_test_shop', currency: 'EUR' },
          { id: 'other', writeKey: 'wk_recs_test_other', readToken: 'rt_recs_test_other', currency: 'EUR' },
        ],
      },
    });
  });
  after(async () => {
    await platform.close();
    t.cleanup();
  });

  let seq = 0;
  /** Sends events with the server key (trusted: no beacon wait), as a merchant's backend would. */
  async function send(events: Array<Record<string, unknown>>): Promise<void> {
    const batch = events.map((e) => ({ messageId: `rt-${seq++}`, timestamp: new Date().toISOString(), ...e }));
    const res = await fetch(`${platform.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${SERVER_KEY}:`).toString('base64')}` },
      body: JSON.stringify({ batch }),
    });
    assert.equal(res.status, 200, await res.text());
  }
  let orders = 0;
  const order = (visitor: string, ids: string[]) => ({
    type: 'track',
    event: 'Order Completed',
    anonymousId: visitor,
    properties: { order_id: `o-${orders++}`, currency: 'EUR', total: 10, products: ids.map((id) => ({ product_id: id, price: 5, quantity: 1 })) },
  });
  const view = (visitor: string, id: string) => ({ type: 'track', event: 'Product Viewed', anonymousId: visitor, properties: { product_id: id, price: 5, currency: 'EUR' } });
  const get = (query: string, key = WRITE_KEY, merchant = 'shop') =>
    fetch(`${platform.url}/v1/merchants/${merchant}/recommendations?${query}`, { headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` } });
  async function until(query: string, cond: (body: Record<string, unknown> & { items: Array<{ product_id: string; score: number; popular?: boolean }> }) => boolean) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const body = (await (await get(query)).json()) as Record<string, unknown> & { items: Array<{ product_id: string; score: number; popular?: boolean }> };
      if (cond(body)) return body;
      if (Date.now() > deadline) assert.fail(`timed out; last answer ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('frequently bought together: co-purchased products, best first, with an attribution token', async () => {
    // Other baskets: the camping products are then a clear group (some scorings, log-likelihood for
    // one, score only pairs seen together more often than their counts alone predict).
    const others = Array.from({ length: 8 }, (_, i) => order(`w${i}`, [`cup-${i}`, `plate-${i}`]));
    await send([order('v1', ['tent', 'pegs', 'lamp']), order('v2', ['tent', 'pegs']), order('v3', ['tent', 'stove']), order('v4', ['pegs', 'mallet']), ...others]);
    // The orders reach the model through the pipeline's four partitions, each at its own pace: the
    // answers on the way there are partial (before v2's order, pegs ranks last), so wait for the
    // answer that all the orders give (the wait fails if it never comes).
    const body = await until('model=frequently-bought-together&product_id=tent&limit=3', (b) => b.fallback === false && b.items.map((i) => i.product_id).join() === 'pegs,lamp,stove');
    // pegs: bought with the tent twice; lamp and stove once each (equal scores: by id).
    assert.deepEqual(body.items.map((i) => i.product_id), ['pegs', 'lamp', 'stove']);
    assert.ok(body.items[0]!.score > body.items[1]!.score);
    assert.ok(body.items.every((i) => i.score > 0 && i.popular === undefined));
    assert.match(String(body['attribution_token']), /^f\.[0-9a-z]+\.[A-Za-z0-9_-]{8}$/);
    assert.equal(body['known_products'], 1);
  });

  it('falls back to popular products when the model knows too little, and says so; the fallback can be turned off', async () => {
    const top2 = (b: { items: Array<{ product_id: string }> }) => new Set(b.items.slice(0, 2).map((i) => i.product_id));
    const body = await until('model=frequently-bought-together&product_id=unknown-sku&limit=3', (b) => b.items.length === 3 && top2(b).has('tent') && top2(b).has('pegs'));
    assert.equal(body.fallback, true);
    assert.ok(body.items.every((i) => i.popular === true));
    assert.deepEqual(top2(body), new Set(['tent', 'pegs']), 'the most bought (3 orders each) first');
    // With the default limit (10), the model's 3 answers are filled up with popular products.
    const filled = (await (await get('model=frequently-bought-together&product_id=tent')).json()) as { items: Array<{ product_id: string; popular?: boolean }>; fallback: boolean };
    assert.deepEqual(filled.items.slice(0, 3).map((i) => [i.product_id, i.popular ?? false]), [['pegs', false], ['lamp', false], ['stove', false]]);
    assert.ok(filled.fallback && filled.items.slice(3).every((i) => i.popular === true));
    const off = (await (await get('model=frequently-bought-together&product_id=unknown-sku&limit=3&fallback=false')).json()) as { items: unknown[]; fallback: boolean };
    assert.deepEqual([off.items.length, off.fallback], [0, false]);
  });

  it("others you may like: personalised by the visitor's recent views; what the visitor just bought is left out", async () => {
    await send([view('s1', 'boots'), view('s1', 'socks'), view('s2', 'boots'), view('s2', 'laces'), view('s3', 'hat'), view('s3', 'scarf')]);
    const plain = await until('model=others-you-may-like&product_id=hat', (b) => b.items.some((i) => i.product_id === 'scarf'));
    assert.equal(plain.items.some((i) => i.product_id === 'boots'), false);
    // Visitor s9 viewed boots, and bought socks.
    await send([view('s9', 'boots'), order('s9', ['socks'])]);
    const personal = await until('model=others-you-may-like&product_id=hat&visitor_id=s9', (b) => b['personalised'] === true && b.items.some((i) => i.product_id === 'laces'));
    assert.equal(personal.items.some((i) => i.product_id === 'socks'), false, 'bought: left out');
    assert.ok(personal.items.some((i) => i.product_id === 'scarf'));
  });

  it('keys: a write key or a read token of the merchant; another merchant gets 403; parameters are checked', async () => {
    assert.equal((await get('model=frequently-bought-together&product_id=tent', 'wk_unknown_key_123')).status, 401);
    assert.equal((await get('model=frequently-bought-together&product_id=tent', 'wk_recs_test_other')).status, 403);
    const bearer = await fetch(`${platform.url}/v1/merchants/shop/recommendations?model=frequently-bought-together&product_id=tent`, { headers: { authorization: 'Bearer rt_recs_test_shop' } });
    assert.equal(bearer.status, 200);
    // Experiment reports are business figures: the read token only, never the public write key.
    assert.equal((await fetch(`${platform.url}/v1/merchants/shop/experiments`, { headers: { authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}` } })).status, 401);
    assert.equal((await fetch(`${platform.url}/v1/merchants/shop/experiments`, { headers: { authorization: 'Bearer rt_recs_test_shop' } })).status, 200);
    for (const [query, parameter] of [
      ['product_id=tent', 'model'],
      ['model=nope&product_id=tent', 'model'],
      ['model=frequently-bought-together', 'product_id'],
      ['model=frequently-bought-together&product_id=tent&limit=0', 'limit'],
      ['model=frequently-bought-together&product_id=tent&fallback=maybe', 'fallback'],
    ]) {
      const res = await get(query!);
      assert.equal(res.status, 400, query);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'SHOP_ERR_INVALID_PARAMETER');
      assert.ok(body.error.message.startsWith(`${parameter}:`), body.error.message);
    }
  });
});
