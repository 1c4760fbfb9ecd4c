/**
 * The truth against the real pipeline: a plan's actions go through the collector's envelope check
 * and the pipeline topology (TopologyTestDriver, no broker, no network), as the collector would
 * write them (record timestamp = receivedAt, validations when the beacon runs), and what comes out
 * of events.filtered, events.bots and events.rejected must be exactly the truth.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planSimulation } from '../../src/simulate/plan.ts';
import { END, MERCHANTS } from './fixture.ts';
import { hourCounts as countHours, throughPipeline } from './pipeline.ts';

function runThroughPipeline(seed: number, visitors = 60) {
  const { actions, truth } = planSimulation({ seed, merchants: MERCHANTS, visitorsPerMerchant: visitors, products: 60, hours: 2, endTime: END });
  return { truth, ...throughPipeline(actions, MERCHANTS, END) };
}

const hourCounts = (events: Parameters<typeof countHours>[0]) => countHours(events, MERCHANTS);

describe('the truth matches the real pipeline topology', () => {
  for (const seed of [7, 8]) {
    it(`seed ${seed}: events.filtered, events.bots, events.rejected, sessions, orders and revenue`, () => {
      const r = runThroughPipeline(seed);
      assert.ok(r.truth.totals.humanEvents > 500 && r.truth.totals.botEvents > 200 && r.truth.totals.orders > 0, 'a plan of some size');
      assert.deepEqual(hourCounts(r.filtered), r.truth.filtered);
      assert.deepEqual(hourCounts(r.bots), r.truth.bots);
      assert.deepEqual(r.collectorRejected, r.truth.rejectedByStage.collector);
      const pipelineRejected: Record<string, number> = {};
      for (const x of r.rejected) pipelineRejected[x.code] = (pipelineRejected[x.code] ?? 0) + 1;
      assert.deepEqual(pipelineRejected, r.truth.rejectedByStage.pipeline);
      for (const m of MERCHANTS) {
        const human = r.filtered.filter((e) => e.event.merchantId === m.id);
        const orders = human.map((e) => e.event).filter((e) => e.event === 'Order Completed');
        const t = r.truth.merchants[m.id]!;
        assert.equal(human.filter((e) => e.session.start).length, t.sessions, `${m.id} sessions`);
        // Independent of the pipeline's session rule: the sessions the model generated.
        assert.equal(human.filter((e) => e.session.start).length, r.truth.generated[m.id]!.humanSessions, `${m.id} sessions as generated`);
        assert.equal(new Set(orders.map((e) => e.properties.order_id)).size, t.orders, `${m.id} orders`);
        assert.equal(orders.length, t.orders, `${m.id}: each order once`);
        assert.equal(orders.reduce((a, e) => a + (e.properties.total ?? 0), 0), t.revenueMinor, `${m.id} revenue`);
        const botReasons = { user_agent: 0, not_validated: 0 };
        for (const e of r.bots) if (e.event.merchantId === m.id) botReasons[e.bot!.reason]++;
        assert.deepEqual(botReasons, t.botsByReason, `${m.id} bot reasons`);
      }
      // Every human event was decided human by a validation, none by luck of timing.
      assert.ok(r.filtered.every((e) => e.human === 'validated' || e.human === 'released'));
      // No message id twice on the output topics: the duplicates and re-sent orders appear nowhere.
      const ids = [...r.filtered, ...r.bots].map((e) => e.event.messageId);
      assert.equal(new Set(ids).size, ids.length);
      assert.ok(r.truth.duplicates > 0 && r.truth.orderResends > 0, 'the plan exercised both de-duplications');
    });
  }
});
