/**
 * A simulated A/B experiment through the whole platform (embedded): shoppers who react to the
 * recommendations they are shown, following a hidden co-purchase structure (kits of complementary
 * products). The treatment shows "frequently bought together" from the live model, the control
 * popular products. Every shopper asks the recommendations API (which assigns the variant), is
 * shown the widget (Product List Viewed with the attribution token), may click a product that
 * completes its kit and buy it with the product it came for. The report must find the true effect:
 * a positive, significant lift on CTR and on revenue per visitor. Twenty A/A experiments over the
 * same shoppers (each splits them by its own hash) must flag at most 3 on the primary metric.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { startPlatform } from '../../src/platform.ts';
import { seededRandom, type ExperimentReport } from '../../src/experiments/index.ts';
import { tempDir } from '../helpers.ts';

const SERVER_KEY = 'sk_experiment_test_server_01';
const WRITE_KEY = 'wk_experiment_test_shop';
const READ_TOKEN = 'rt_experiment_test_shop';
const KITS = 40;
const KIT_SIZE = 5;
const SHOPPERS = 4_000;
const PRICE = 20;
const AA = 20;

const product = (kit: number, j: number) => `kit${kit}-p${j}`;
const kitOf = (id: string) => Number(/^kit(\d+)-/.exec(id)?.[1] ?? -1);

describe('a simulated experiment through the platform', () => {
  it('finds the true effect of the recommendations (CTR and revenue), and 20 A/A experiments stay quiet', { timeout: 300_000 }, async (tc) => {
    const t = tempDir();
    const now = Date.now();
    const platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger: pino({ level: 'warn' }),
      roles: ['collector', 'pipeline', 'recs'],
      config: {
        merchants: [{ id: 'shop', writeKey: WRITE_KEY, serverWriteKeys: [SERVER_KEY], readToken: READ_TOKEN, currency: 'EUR', rateLimit: { eventsPerSecond: 1e6, burst: 1e6 } }],
        topics: { partitions: 2 },
        recs: {
          experiments: [
            {
              id: 'recs-ab',
              merchant: 'shop',
              startsAt: new Date(now - 3_600_000).toISOString(),
              variants: [
                { name: 'control', share: 0.5, recommendations: 'popular' },
                { name: 'treatment', share: 0.5, recommendations: 'model' },
              ],
            },
            ...Array.from({ length: AA }, (_, i) => ({
              id: `aa-${i}`,
              merchant: 'shop',
              startsAt: new Date(now - 3_600_000).toISOString(),
              variants: [
                { name: 'a', share: 0.5 },
                { name: 'b', share: 0.5 },
              ],
            })),
          ],
        },
      },
    });
    try {
      let seq = 0;
      const post = async (events: Array<Record<string, unknown>>) => {
        const res = await fetch(`${platform.url}/v1/batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${SERVER_KEY}:`).toString('base64')}` },
          body: JSON.stringify({ batch: events }),
        });
        assert.equal(res.status, 200, await res.text());
      };
      const event = (visitor: string, at: number, e: Record<string, unknown>) => ({ ...e, anonymousId: visitor, messageId: `x-${seq++}`, timestamp: new Date(at).toISOString() });
      const order = (visitor: string, at: number, ids: string[]) =>
        event(visitor, at, { type: 'track', event: 'Order Completed', properties: { order_id: `o-${seq}`, currency: 'EUR', total: PRICE * ids.length, products: ids.map((id) => ({ product_id: id, price: PRICE, quantity: 1 })) } });

      // History (before the experiment starts): 600 orders of 2–3 products of one kit each.
      const r = seededRandom(20261126);
      const history: Array<Record<string, unknown>> = [];
      for (let i = 0; i < 600; i++) {
        const kit = Math.floor(r() * KITS);
        const ids = [...new Set(Array.from({ length: 2 + Math.floor(r() * 2) }, () => product(kit, Math.floor(r() * KIT_SIZE))))];
        history.push(order(`h${i}`, now - 2 * 3_600_000 + i * 1000, ids));
      }
      for (let i = 0; i < history.length; i += 200) await post(history.slice(i, i + 200));
      const recs = async (query: string) => {
        const res = await fetch(`${platform.url}/v1/merchants/shop/recommendations?${query}`, { headers: { authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}` } });
        assert.equal(res.status, 200, await res.clone().text());
        return (await res.json()) as { items: Array<{ product_id: string }>; attribution_token: string; experiment?: { id: string; variant: string } };
      };
      const deadline = Date.now() + 60_000;
      while ((await recs(`model=frequently-bought-together&product_id=${product(KITS - 1, 0)}&limit=4&fallback=false`)).items.length < 4) {
        assert.ok(Date.now() < deadline, 'the model learns the kits from the history');
        await new Promise((res) => setTimeout(res, 100));
      }

      // The shoppers.
      const variants = new Map<string, number>();
      let pending: Array<Record<string, unknown>> = [];
      for (let v = 0; v < SHOPPERS; v++) {
        const visitor = `shopper-${v}`;
        const kit = Math.floor(r() * KITS);
        const seen = product(kit, Math.floor(r() * KIT_SIZE));
        let at = now - 30 * 60_000 + v * 100;
        const events = [event(visitor, at, { type: 'track', event: 'Product Viewed', properties: { product_id: seen, price: PRICE, currency: 'EUR' } })];
        const answer = await recs(`model=frequently-bought-together&product_id=${seen}&visitor_id=${visitor}&experiment=recs-ab&limit=4`);
        variants.set(answer.experiment!.variant, (variants.get(answer.experiment!.variant) ?? 0) + 1);
        const shown = answer.items.map((i) => i.product_id);
        events.push(
          event(visitor, (at += 1000), {
            type: 'track',
            event: 'Product List Viewed',
            properties: { list_id: 'recs-pdp', currency: 'EUR', products: shown.map((id, position) => ({ product_id: id, price: PRICE, position })), attribution_token: answer.attribution_token },
          }),
        );
        // The hidden structure: a shopper clicks what completes its kit (40%), else rarely (2%).
        const complement = shown.find((id) => kitOf(id) === kit);
        let clicked: string | undefined;
        if (complement !== undefined ? r() < 0.4 : r() < 0.02) {
          clicked = complement ?? shown[0];
          if (clicked !== undefined) {
            events.push(event(visitor, (at += 1000), { type: 'track', event: 'Product Clicked', properties: { product_id: clicked, price: PRICE, currency: 'EUR', list_id: 'recs-pdp', attribution_token: answer.attribution_token } }));
          }
        }
        if (r() < 0.3) {
          const basket = [seen];
          if (clicked !== undefined && kitOf(clicked) === kit && r() < 0.9) basket.push(clicked);
          events.push(order(visitor, (at += 1000), basket));
        }
        pending.push(...events);
        if (pending.length >= 400) {
          await post(pending);
          pending = [];
        }
      }
      await post(pending);

      // The report, once every shopper is counted.
      const report = async (id: string) => {
        const res = await fetch(`${platform.url}/v1/merchants/shop/experiments/${id}/report`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
        assert.equal(res.status, 200, await res.clone().text());
        return (await res.json()) as ExperimentReport;
      };
      const reportDeadline = Date.now() + 60_000;
      let ab = await report('recs-ab');
      while (ab.variants.reduce((a, x) => a + x.visitors, 0) < SHOPPERS) {
        assert.ok(Date.now() < reportDeadline, `the report counts every shopper: ${ab.variants.map((x) => `${x.name} ${x.visitors}`).join(', ')}`);
        await new Promise((res) => setTimeout(res, 250));
        ab = await report('recs-ab');
      }
      const treatment = ab.variants.find((x) => x.name === 'treatment')!;
      const control = ab.variants.find((x) => x.name === 'control')!;
      assert.equal(treatment.visitors + control.visitors, SHOPPERS, 'the history (before startsAt) is not in the experiment');
      assert.deepEqual(
        [treatment.visitors, control.visitors],
        [variants.get('treatment'), variants.get('control')],
        'the report counts the variants the API assigned',
      );
      const ctr = treatment.vs_control!['ctr']!;
      const rpv = treatment.vs_control!['revenue_per_visitor']!;
      tc.diagnostic(
        `recs-ab: treatment ${treatment.visitors} visitors, control ${control.visitors}; CTR ${(ctr.value! * 100).toFixed(2)}% vs ${(ctr.control! * 100).toFixed(2)}% ` +
          `(lift ${(ctr.lift! * 100).toFixed(1)}%, 95% CI [${ctr.ci95!.map((x) => (x * 100).toFixed(1)).join(', ')}]%, p ${ctr.p_value!.toExponential(2)}); ` +
          `revenue/visitor ${(rpv.value! / 100).toFixed(2)} vs ${(rpv.control! / 100).toFixed(2)} EUR (lift ${(rpv.lift! * 100).toFixed(1)}%, 95% CI [${rpv.ci95!.map((x) => (x * 100).toFixed(1)).join(', ')}]%, p ${rpv.p_value!.toExponential(2)})`,
      );
      assert.ok(ctr.significant && ctr.lift! > 0, 'CTR: a positive, significant lift');
      assert.ok(rpv.significant && rpv.lift! > 0, 'revenue per visitor: a positive, significant lift');
      assert.ok(ctr.ci95![0]! > 0 && rpv.ci95![0]! > 0, 'both intervals exclude zero');
      const multi = treatment.vs_control!['multi_item_conversion']!;
      assert.ok(multi.lift! > 0, 'more orders of two or more items');

      // A/A: the same shoppers, split by other hashes.
      let flagged = 0;
      for (let i = 0; i < AA; i++) {
        const aa = await report(`aa-${i}`);
        assert.equal(aa.variants.reduce((a, x) => a + x.visitors, 0), SHOPPERS);
        if (aa.variants.find((x) => x.name === 'b')!.vs_control!['ctr']!.significant) flagged++;
      }
      tc.diagnostic(`A/A: ${flagged} of ${AA} experiments flagged a significant CTR difference (95% level: 1 expected)`);
      assert.ok(flagged <= 3, `${flagged} of ${AA} A/A experiments flagged`);
    } finally {
      await platform.close();
      t.cleanup();
    }
  });
});
