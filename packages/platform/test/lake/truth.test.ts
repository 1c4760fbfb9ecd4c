/**
 * `shopstream query` = the simulator's truth. The traffic simulator (planSimulation: two merchants,
 * two hours across midnight UTC, bots, re-sends, order re-sends, invalid messages) is sent over HTTP
 * to a platform process running the collector and the lake roles (embedded log). Then, through
 * `queryLake` over the lake's files:
 *
 *   - raw events per merchant = what the truth says reached events.raw: the events it classifies
 *     (human + bot) + the exact re-sends + the order re-sends + the messages the pipeline refuses
 *     (the collector's refusals never reach events.raw);
 *   - the refused ones per merchant = the truth's pipeline-stage refusals;
 *   - per merchant per day, the events left after removing re-sends (first messageId, then first
 *     order_id of Order Completed, in arrival order) = the truth's human + bot events of that day.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { queryLake } from '../../src/lake/query.ts';
import { startPlatform } from '../../src/platform.ts';
import { planSimulation } from '../../src/simulate/plan.ts';
import { runSimulation } from '../../src/simulate/run.ts';
import { topicNames } from '../../src/topics.ts';
import { tempDir, unique } from '../helpers.ts';

describe('shopstream query = the simulator truth (embedded log)', () => {
  it('raw events per merchant, refusals, and events per merchant per day', { timeout: 180_000 }, async (tc) => {
    const t = tempDir('shopstream-lake-truth-');
    const prefix = `${unique('tr')}.`;
    const dataDir = join(t.dir, 'data');
    const merchants = [
      { id: 'shop-a', writeKey: 'wk_lake_truth_shop_a', readToken: 'rt_lake_truth_shop_a', currency: 'EUR' },
      { id: 'shop-b', writeKey: 'wk_lake_truth_shop_b', readToken: 'rt_lake_truth_shop_b', currency: 'JPY' },
    ];
    const { actions, truth } = planSimulation({ seed: 20261127, merchants, visitorsPerMerchant: 80, hours: 2, endTime: Date.UTC(2026, 10, 22, 1, 0, 0) });
    const platform = await startPlatform({
      config: { merchants, dataDir, topics: { prefix, partitions: 2 }, beacon: { secrets: ['a-lake-truth-test-secret-of-32-characters-or-more'] }, lake: { rotateScheduleIntervalMs: 0 } },
      dataDir,
      port: 0,
      host: '127.0.0.1',
      roles: ['collector', 'lake'],
      dashboard: false,
      logger: pino({ level: 'silent' }),
    });
    try {
      const result = await runSimulation(actions, { baseUrl: platform.url, concurrency: 4 });
      assert.equal(result.failures, 0);
      const raw = topicNames(prefix).raw;
      const ends = await platform.log.admin.listOffsets([0, 1].map((partition) => ({ topic: raw, partition })), 'latest');
      const total = ends.reduce((a, e) => a + e.offset, 0);
      const deadline = Date.now() + 60_000;
      while (platform.lake!.positions().reduce((a, p) => a + p.offset, 0) < total) {
        if (Date.now() > deadline) throw new Error('the lake sink did not catch up');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await platform.close(); // the sink cuts its open segments
    }
    try {
      const collectorCodes = new Set(Object.keys(truth.rejectedByStage.collector));
      assert.ok(Object.keys(truth.rejectedByStage.pipeline).every((c) => !collectorCodes.has(c)), 'each code belongs to one stage');
      const wantRaw: Record<string, number> = {};
      const wantRefused: Record<string, number> = {};
      const wantDays: Record<string, number> = {};
      for (const m of merchants) {
        const mc = truth.merchants[m.id]!;
        const g = truth.generated[m.id]!;
        const refused = Object.entries(mc.rejected).reduce((a, [code, n]) => a + (collectorCodes.has(code) ? 0 : n), 0);
        wantRefused[m.id] = refused;
        wantRaw[m.id] = mc.humanEvents + mc.botEvents + g.duplicates + g.orderResends + refused;
        for (const counts of [truth.filtered[m.id] ?? {}, truth.bots[m.id] ?? {}]) {
          for (const byHour of Object.values(counts)) {
            for (const [hour, n] of Object.entries(byHour)) wantDays[`${m.id}|${hour.slice(0, 10)}`] = (wantDays[`${m.id}|${hour.slice(0, 10)}`] ?? 0) + n;
          }
        }
      }
      const perMerchant = await queryLake({
        dir: dataDir,
        prefix,
        sql: 'SELECT merchant, count(*)::INTEGER AS n, (count(*) FILTER (WHERE reject_code IS NOT NULL))::INTEGER AS refused FROM events GROUP BY ALL ORDER BY ALL',
      });
      assert.deepEqual(Object.fromEntries(perMerchant.rows.map(([m, n]) => [m, n])), wantRaw, 'raw events per merchant');
      assert.deepEqual(Object.fromEntries(perMerchant.rows.map(([m, , r]) => [m, r])), wantRefused, 'refused per merchant');
      const perDay = await queryLake({
        dir: dataDir,
        prefix,
        sql: `WITH ev AS (
                SELECT merchant, dt, message_id, event, json_extract_string(payload, '$.properties.order_id') AS order_id, "partition", "offset"
                FROM events WHERE reject_code IS NULL),
              first_message AS (SELECT * FROM ev QUALIFY row_number() OVER (PARTITION BY merchant, message_id ORDER BY "partition", "offset") = 1),
              first_order AS (SELECT * FROM first_message QUALIFY event <> 'Order Completed' OR row_number() OVER (PARTITION BY merchant, event, order_id ORDER BY "partition", "offset") = 1)
              SELECT merchant, dt::VARCHAR AS day, count(*)::INTEGER AS n FROM first_order GROUP BY ALL ORDER BY ALL`,
      });
      const gotDays = Object.fromEntries(perDay.rows.map(([m, d, n]) => [`${m}|${d}`, n]));
      assert.equal(Object.keys(wantDays).length, 4, 'two merchants × two days');
      assert.deepEqual(gotDays, wantDays, 'events per merchant per day');
      tc.diagnostic(`raw per merchant ${JSON.stringify(wantRaw)}; per merchant and day ${JSON.stringify(wantDays)}`);
    } finally {
      t.cleanup();
    }
  });
});
