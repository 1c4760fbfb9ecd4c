/**
 * Real data, end to end: the Online Retail data set (541,909 line items, 25,900 invoices) is sent
 * through the collector as Order Completed events (a merchant's backend, with a server write key),
 * and the analytics API's orders, items and revenue per country per day must equal plain SQL over
 * the CSV (DuckDB, computed independently in src/simulate/online-retail.ts `retailReference`). The
 * invoices the contract refuses (docs/online-retail.md) must be in events.rejected, by code.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { pino } from 'pino';
import { readTopic } from '@shopstream/streams/testing';
import { startPlatform } from '../../src/platform.ts';
import { invoiceToOrderEvent, readRetailInvoices, retailReference, type RetailDay } from '../../src/simulate/online-retail.ts';
import { tempDir } from '../helpers.ts';
import { RETAIL_DATA } from '../../src/recs/eval/online-retail.ts';

// The data set's one location (as for the recommendation evaluation and the contract test), wherever the repository is cloned.
const DATA = RETAIL_DATA;
const SERVER_KEY = 'sk_online_retail_backend_key_0001';
const READ_TOKEN = 'rt_online_retail_reader';
const YEARS = 365.25 * 86_400_000;
/** Requests are at most 500 KB; keep a margin for the JSON around the events. */
const MAX_BATCH_BYTES = 450_000;

describe('Online Retail replayed through the collector = SQL over the CSV', { skip: existsSync(DATA) ? false : `no data set at ${DATA}` }, () => {
  it('orders, items and revenue per country per day, and the refusals by code', { timeout: 600_000 }, async (tc) => {
    const t = tempDir();
    const started = Date.now();
    const referencePromise = retailReference(DATA);
    const platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger: pino({ level: 'warn' }),
      // What this test checks: collector → pipeline → cubes = SQL over the CSV.
      roles: ['collector', 'pipeline', 'cubes'],
      config: {
        merchants: [
          {
            id: 'retail',
            writeKey: 'wk_online_retail_storefront',
            serverWriteKeys: [SERVER_KEY],
            readToken: READ_TOKEN,
            timezone: 'Europe/London',
            currency: 'GBP',
            rateLimit: { eventsPerSecond: 1_000_000, burst: 1_000_000 },
          },
        ],
        // The data set is from 2010–2011: accept event times that far back.
        collector: { maxPastMs: Math.round(20 * YEARS) },
        // And keep buckets that old (retention counts from now).
        cubes: { minuteRetentionDays: 20 * 366, quarterRetentionDays: 20 * 366 },
        topics: { partitions: 4 },
      },
    });
    try {
      const auth = `Basic ${Buffer.from(`${SERVER_KEY}:`).toString('base64')}`;
      let batch: string[] = [];
      let bytes = 0;
      let sent = 0;
      let requests = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const res = await fetch(`${platform.url}/v1/import`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: `{"batch":[${batch.join(',')}]}` });
        assert.equal(res.status, 200, await res.clone().text());
        requests++;
        batch = [];
        bytes = 0;
      };
      for await (const invoice of readRetailInvoices(DATA)) {
        const json = JSON.stringify(invoiceToOrderEvent(invoice));
        if (bytes + json.length + 1 > MAX_BATCH_BYTES || batch.length >= 2_500) await flush();
        if (json.length + 20 > MAX_BATCH_BYTES) {
          // Larger than a request: alone, it is refused as too large, like any oversized event.
          const res = await fetch(`${platform.url}/v1/import`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: `{"batch":[${json}]}` });
          requests++;
          assert.ok(res.status === 200 || res.status === 400, `oversized invoice: ${res.status}`);
          sent++;
          continue;
        }
        batch.push(json);
        bytes += json.length + 1;
        sent++;
      }
      await flush();
      const sentAt = Date.now();
      const reference = (await referencePromise).filter((d) => d.orders > 0);
      const wantOrders = reference.reduce((a, d) => a + d.orders, 0);

      const query = async () => {
        const url = `${platform.url}/v1/merchants/retail/metrics?${new URLSearchParams({ from: '2010-11-01', to: '2012-01-01', granularity: 'day', metrics: 'orders,items,revenue', group_by: 'country' })}`;
        const res = await fetch(url, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
        assert.equal(res.status, 200, await res.clone().text());
        return ((await res.json()) as { series: Array<{ bucket: string; group: Record<string, string>; orders: number; items: number; revenue: number }> }).series;
      };
      let series = await query();
      const deadline = Date.now() + 120_000;
      while (series.reduce((a, r) => a + r.orders, 0) < wantOrders && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000));
        series = await query();
      }
      const apiOrders = series.reduce((a, r) => a + r.orders, 0);
      if (apiOrders !== wantOrders) {
        const metrics = (await platform.registry.getMetricsAsJSON()).filter((m) => /decisions|cubes_events|collector_events|rejected/.test(m.name));
        tc.diagnostic(`API orders ${apiOrders} of ${wantOrders}; ${JSON.stringify(metrics.map((m) => [m.name, m.values.map((v) => [v.labels, v.value])]))}`);
      }
      tc.diagnostic(`${sent} invoices in ${requests} requests, sent in ${((sentAt - started) / 1000).toFixed(1)} s; API complete ${((Date.now() - sentAt) / 1000).toFixed(1)} s later`);

      const key = (country: string, day: string) => `${country}|${day}`;
      const got = new Map(series.map((r) => [key(r.group['country']!, r.bucket.slice(0, 10)), { orders: r.orders, items: r.items, revenue: r.revenue }]));
      const want = new Map(reference.map((d: RetailDay) => [key(d.countryCode ?? '', d.day), { orders: d.orders, items: d.items, revenue: d.revenueMinor }]));
      assert.equal(got.size, want.size, 'country-days');
      assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...want].sort()));
      for (const r of series) assert.match(r.bucket, /T00:00:00\+0[01]:00$/, 'day buckets start at midnight in London');

      // Every refused invoice is kept, with its code.
      const wantRejected: Record<string, number> = {};
      for (const d of await referencePromise) for (const [code, n] of Object.entries(d.rejectedByCode)) wantRejected[code] = (wantRejected[code] ?? 0) + n;
      const rejectedTotal = Object.values(wantRejected).reduce((a, b) => a + b, 0);
      const rejected = await readTopic(platform.log, platform.topics.rejected, (rs) => rs.length >= rejectedTotal, 60_000);
      const byCode: Record<string, number> = {};
      for (const r of rejected) {
        const code = (JSON.parse(r.value!.toString('utf8')) as { code: string }).code;
        byCode[code] = (byCode[code] ?? 0) + 1;
      }
      assert.deepEqual(byCode, wantRejected);
      tc.diagnostic(`orders ${wantOrders}, refused ${JSON.stringify(byCode)}`);
    } finally {
      await platform.close();
      t.cleanup();
    }
  });
});
