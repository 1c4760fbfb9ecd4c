/**
 * A simulated A/B experiment through the whole platform (embedded), driven by the traffic simulator
 * (src/simulate, its `recs` option): shoppers who react to the recommendations they are shown,
 * following the simulator's hidden co-purchase structure (its bundles).
 *
 * First a history: shoppers of the same shops (the same catalogue seed) before the experiment
 * starts, from which the model learns. Then the experiment's shoppers: every product page asks the
 * recommendations API for "frequently bought together" with the visitor's id and the experiment
 * (which assigns the variant: the treatment shows the live model, the control popular products),
 * sends the widget's exposure, and may click a product that completes its bundle and buy it with
 * the product viewed. The report must find the true effect (a positive, significant lift on CTR and
 * on revenue per visitor) and count exactly what the simulator's settled truth says was sent.
 * Twenty A/A experiments over the same shoppers (each splits them by its own hash) must flag at most
 * 3 on the primary metric.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { startPlatform } from '../../src/platform.ts';
import { assignVariant, type Experiment, type ExperimentReport } from '../../src/experiments/index.ts';
import { planSimulation, runSimulation, settleTruth } from '../../src/simulate/index.ts';
import { tempDir } from '../helpers.ts';

const WRITE_KEY = 'wk_experiment_test_shop';
const READ_TOKEN = 'rt_experiment_test_shop';
const SHOP = { id: 'shop', writeKey: WRITE_KEY, currency: 'EUR' };
const HOUR = 3_600_000;
/** The shop: the same catalogue, popularity and bundles in the history and in the experiment. */
const CATALOGUE_SEED = 20261126;
const PRODUCTS = 100;
/** Human visitors of the history (before the experiment) and of the experiment. */
const HISTORY_VISITORS = 600;
const VISITORS = 1500;
const BOT_SHARE = 0.1;
/** Lanes, and as many workers: each sends its visitors in order, asking the API before each batch. */
const LANES = 8;
const AA = 20;

describe('a simulated experiment through the platform', () => {
  it('finds the true effect of the recommendations (CTR and revenue), counts what was sent, and 20 A/A experiments stay quiet', { timeout: 300_000 }, async (tc) => {
    const started = Date.now();
    const t = tempDir();
    const now = Date.now();
    const startsAt = now - HOUR;
    const ab: Experiment = { id: 'recs-ab', variants: [{ name: 'control', share: 0.5 }, { name: 'treatment', share: 0.5 }] };
    const platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger: pino({ level: 'warn' }),
      roles: ['collector', 'pipeline', 'recs'],
      config: {
        merchants: [{ id: SHOP.id, writeKey: WRITE_KEY, readToken: READ_TOKEN, currency: SHOP.currency, rateLimit: { eventsPerSecond: 1e6, burst: 1e6 } }],
        topics: { partitions: 2 },
        recs: {
          experiments: [
            {
              id: ab.id,
              merchant: SHOP.id,
              startsAt: new Date(startsAt).toISOString(),
              variants: [
                { name: 'control', share: 0.5, recommendations: 'popular' },
                { name: 'treatment', share: 0.5, recommendations: 'model' },
              ],
            },
            ...Array.from({ length: AA }, (_, i) => ({
              id: `aa-${i}`,
              merchant: SHOP.id,
              startsAt: new Date(startsAt).toISOString(),
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
      // The history: two hours of the shop's traffic before the experiment starts (no widgets).
      const history = planSimulation({ seed: 1, catalogueSeed: CATALOGUE_SEED, merchants: [SHOP], visitorsPerMerchant: HISTORY_VISITORS, products: PRODUCTS, botShare: BOT_SHARE, lanes: LANES, hours: 2, endTime: startsAt - 60_000 });
      const h = await runSimulation(history.actions, { baseUrl: platform.url, concurrency: LANES });
      assert.equal(h.failures, 0, h.errors.join('; '));
      const tHistory = Date.now();

      // The experiment: an hour of other shoppers of the same shop, who are shown recommendations.
      const plan = planSimulation({ seed: 2, catalogueSeed: CATALOGUE_SEED, merchants: [SHOP], visitorsPerMerchant: VISITORS, products: PRODUCTS, botShare: BOT_SHARE, lanes: LANES, hours: 1, endTime: now, recs: { experiment: ab.id } });
      assert.deepEqual(plan.truth.bundles, history.truth.bundles, 'the same shop');
      assert.equal(plan.truth.window.start, startsAt);
      const run = await runSimulation(plan.actions, { baseUrl: platform.url, concurrency: LANES });
      assert.equal(run.failures, 0, run.errors.join('; '));
      assert.equal(run.recsFailures, 0, run.errors.join('; '));
      assert.equal(run.widgets.length, plan.recs!.widgets.length, 'every widget asked the API');
      const tRun = Date.now();
      const truth = settleTruth(plan, run.widgets);
      const recs = truth.recs!.merchants[SHOP.id]!;
      const humans = Object.entries(truth.visitors[SHOP.id]!)
        .filter(([, c]) => c === 'human')
        .map(([id]) => id);
      for (const w of run.widgets) assert.equal(w.variant, assignVariant(ab, w.anonymousId), 'the API assigns by the visitor hash');
      const expected = { control: 0, treatment: 0 } as Record<string, number>;
      for (const id of humans) expected[assignVariant(ab, id)]!++;

      // The report, once every shopper and everything they did is counted.
      const report = async (id: string) => {
        const res = await fetch(`${platform.url}/v1/merchants/${SHOP.id}/experiments/${id}/report`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
        assert.equal(res.status, 200, await res.clone().text());
        return (await res.json()) as ExperimentReport;
      };
      const sum = (r: ExperimentReport, f: (v: ExperimentReport['variants'][number]) => number) => r.variants.reduce((a, v) => a + f(v), 0);
      const counted = (r: ExperimentReport) => ({
        visitors: sum(r, (v) => v.visitors),
        exposures: sum(r, (v) => v.totals.exposures),
        clicks: sum(r, (v) => v.totals.clicks),
        orders: sum(r, (v) => v.totals.orders),
        revenue: sum(r, (v) => v.totals.revenue),
      });
      const sent = { visitors: humans.length, exposures: recs.exposures, clicks: recs.clicks, orders: truth.merchants[SHOP.id]!.orders, revenue: truth.merchants[SHOP.id]!.revenueMinor };
      const deadline = Date.now() + 60_000;
      let r = await report(ab.id);
      while (JSON.stringify(counted(r)) !== JSON.stringify(sent) && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 250));
        r = await report(ab.id);
      }
      const tReport = Date.now();
      tc.diagnostic(`timing: history ${((tHistory - started) / 1000).toFixed(1)} s (${h.events} events), experiment ${((tRun - tHistory) / 1000).toFixed(1)} s (${run.events} events, ${run.widgets.length} widgets), report ${((tReport - tRun) / 1000).toFixed(1)} s`);
      assert.deepEqual(counted(r), sent, "the report counts exactly the simulator's truth: visitors, exposures, clicks, orders, revenue");
      const treatment = r.variants.find((x) => x.name === 'treatment')!;
      const control = r.variants.find((x) => x.name === 'control')!;
      assert.deepEqual({ control: control.visitors, treatment: treatment.visitors }, expected, 'the report counts the variants the API assigns');
      for (const v of [control, treatment]) {
        const byVariant = recs.byVariant[v.name]!;
        assert.deepEqual([v.totals.exposures, v.totals.clicks], [byVariant.exposures, byVariant.clicks], `${v.name}: exposures and clicks as sent`);
      }

      const ctr = treatment.vs_control!['ctr']!;
      const rpv = treatment.vs_control!['revenue_per_visitor']!;
      const tr = recs.byVariant['treatment']!;
      const co = recs.byVariant['control']!;
      tc.diagnostic(
        `widgets: ${recs.widgets} (treatment ${tr.exposures} exposures, ${tr.withComplement} with a complement, ${tr.clicks} clicks, ${tr.orders} orders from a click; ` +
          `control ${co.exposures}, ${co.withComplement}, ${co.clicks}, ${co.orders}); ${truth.merchants[SHOP.id]!.orders} orders in all`,
      );
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
        assert.equal(sum(aa, (v) => v.visitors), humans.length);
        if (aa.variants.find((x) => x.name === 'b')!.vs_control!['ctr']!.significant) flagged++;
      }
      tc.diagnostic(`A/A: ${flagged} of ${AA} experiments flagged a significant CTR difference (95% level: 1 expected); ${((Date.now() - started) / 1000).toFixed(1)} s`);
      assert.ok(flagged <= 3, `${flagged} of ${AA} A/A experiments flagged`);
    } finally {
      await platform.close();
      t.cleanup();
    }
  });
});
