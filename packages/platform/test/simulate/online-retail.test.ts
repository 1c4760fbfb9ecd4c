/**
 * The Online Retail data set (docs/online-retail.md) through the platform's real contract, checked
 * against an independent DuckDB SQL reference: converter + contract + policy = SQL.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { DuckDBInstance } from '@duckdb/node-api';
import { Limits } from '../../src/collector/server.ts';
import { checkEnvelope, encodeCanonicalEvent, MAX_EVENT_BYTES, normalizeRawRecord, rawRecordHeaders } from '../../src/contract/index.ts';
import type { EventOf, IngestContext } from '../../src/contract/index.ts';
import {
  RETAIL_COUNTRIES,
  RETAIL_COUNTRYLESS,
  RETAIL_MAX_MESSAGE_BYTES,
  invoiceToOrderEvent,
  invoiceTotal,
  londonToUtcMs,
  normalizeCustomerId,
  readRetailInvoices,
  retailCountryCode,
  retailReference,
  utcToLondon,
} from '../../src/simulate/online-retail.ts';
import type { RetailDay, RetailInvoice, RetailLine } from '../../src/simulate/online-retail.ts';
import { RETAIL_DATA } from '../../src/recs/eval/online-retail.ts';

const DATA = RETAIL_DATA;
const DAY = 86_400_000;

/** The import: received the day after the last invoice, by a collector and pipeline configured for history. */
const LIMITS = { maxFutureMs: 3_600_000, maxPastMs: 400 * DAY };
const CTX: IngestContext = {
  merchantId: 'online-retail',
  defaultCurrency: 'GBP',
  receivedAt: Date.UTC(2011, 11, 10, 0, 0, 0),
  // The importer's request: a server library, so none of these may become the shopper's.
  requestIp: '203.0.113.9',
  requestUserAgent: 'online-retail-import/1.0',
  cdnCountry: 'NL',
  ...LIMITS,
};

const invoices: RetailInvoice[] = [];
let readMs = 0;
/** Started before the CSV is read: DuckDB works on its own threads meanwhile. */
let reference: Promise<{ days: RetailDay[]; ms: number }>;

before(async () => {
  const t0 = performance.now();
  reference = retailReference(DATA).then((days) => ({ days, ms: performance.now() - t0 }));
  reference.catch(() => {}); // awaited (and reported) by the test that uses it
  for await (const inv of readRetailInvoices(DATA)) invoices.push(inv);
  readMs = performance.now() - t0;
});

function byNo(no: string): RetailInvoice {
  const inv = invoices.find((i) => i.invoiceNo === no);
  assert.ok(inv, `invoice ${no} is in the file`);
  return inv;
}

const line = (quantity: number, unitPrice: string): RetailLine => ({ stockCode: 'X', description: null, quantity, unitPrice });

describe('online retail: reading the file', () => {
  it('groups the 541,909 lines into 25,900 invoices, an interleaved one included', (t) => {
    t.diagnostic(`read and grouped in ${readMs.toFixed(0)} ms`);
    assert.equal(invoices.length, 25_900);
    assert.equal(
      invoices.reduce((n, i) => n + i.lines.length, 0),
      541_909,
    );
    assert.equal(new Set(invoices.map((i) => i.invoiceNo)).size, invoices.length);
    // 542806's lines are split in two runs around another invoice, a minute apart.
    const split = byNo('542806');
    assert.equal(split.lines.length, 39);
    assert.equal(split.invoiceDate, '2011-02-01 11:19:00');
  });

  it('maps every country name of the file to an ISO code, or lists it as countryless', () => {
    const names = new Set(invoices.map((i) => i.country));
    assert.equal(names.size, 38);
    for (const name of names) {
      const code = retailCountryCode(name);
      assert.ok((code !== null && /^[A-Z]{2}$/.test(code)) || RETAIL_COUNTRYLESS.includes(name), `${name} → ${code}`);
    }
    // The table has no name the file lacks.
    assert.deepEqual(Object.keys(RETAIL_COUNTRIES).sort(), [...names].sort());
    assert.deepEqual([retailCountryCode('EIRE'), retailCountryCode('USA'), retailCountryCode('RSA'), retailCountryCode('United Kingdom')], ['IE', 'US', 'ZA', 'GB']);
    assert.deepEqual([...RETAIL_COUNTRYLESS].sort(), ['Channel Islands', 'European Community', 'Unspecified']);
    assert.equal(retailCountryCode('Atlantis'), null);
  });

  it('normalises customer ids', () => {
    assert.equal(normalizeCustomerId('17850.0'), '17850');
    assert.equal(normalizeCustomerId(''), null);
    assert.equal(byNo('536365').customerId, '17850');
    assert.equal(byNo('536414').customerId, null);
  });
});

describe('online retail: Europe/London time', () => {
  it('converts winter (GMT) and summer (BST) invoices to UTC', () => {
    const cases: Array<[string, string, string]> = [
      ['536365', '2010-12-01 08:26:00', '2010-12-01T08:26:00.000Z'], // GMT
      ['547834', '2011-03-27 10:16:00', '2011-03-27T09:16:00.000Z'], // the first morning of BST
      ['573153', '2011-10-28 07:39:00', '2011-10-28T06:39:00.000Z'], // the last days of BST
      ['573416', '2011-10-31 08:29:00', '2011-10-31T08:29:00.000Z'], // GMT again
    ];
    for (const [no, local, utc] of cases) {
      const inv = byNo(no);
      assert.equal(inv.invoiceDate, local);
      assert.equal(new Date(inv.timestampMs).toISOString(), utc, no);
      assert.equal(invoiceToOrderEvent(inv).timestamp, utc);
      assert.equal(utcToLondon(inv.timestampMs), local);
    }
  });

  it('disambiguates the hours that do not exist or happen twice', () => {
    assert.equal(new Date(londonToUtcMs('2011-03-27 01:30:00')).toISOString(), '2011-03-27T01:30:00.000Z'); // never happened: 02:30 BST
    assert.equal(new Date(londonToUtcMs('2011-10-30 01:30:00')).toISOString(), '2011-10-30T00:30:00.000Z'); // twice: the BST one
    assert.equal(new Date(londonToUtcMs('2011-10-30 02:00:00')).toISOString(), '2011-10-30T02:00:00.000Z');
    assert.throws(() => londonToUtcMs('2011-02-30 10:00:00'));
  });

  it('agrees with DuckDB (ICU time zones) on every invoice', async () => {
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    const rows = (
      await c.runAndReadAll(`
        SELECT InvoiceNo AS no, epoch_ms(timezone('Europe/London', CAST(min(InvoiceDate) AS TIMESTAMP))) AS ms
        FROM read_csv('${DATA}', header = true, all_varchar = true) GROUP BY InvoiceNo`)
    ).getRowObjects();
    c.closeSync();
    db.closeSync();
    const sql = new Map(rows.map((r) => [r['no'] as string, Number(r['ms'] as bigint)]));
    assert.equal(sql.size, invoices.length);
    for (const inv of invoices) assert.equal(inv.timestampMs, sql.get(inv.invoiceNo), inv.invoiceNo);
  });
});

describe('online retail: the Order Completed message', () => {
  it('sums the total exactly, in integers', () => {
    assert.equal(invoiceTotal([line(3, '2.55'), line(1, '0.001')]), '7.651');
    assert.equal(invoiceTotal([line(3, '0.1'), line(7, '0.2')]), '1.7');
    assert.equal(invoiceTotal([line(-12, '2.1')]), '-25.2');
    assert.equal(invoiceTotal([line(5, '0')]), '0');
    assert.equal(invoiceTotal([line(1, '-11062.06')]), '-11062.06');
  });

  it('carries the invoice as it is', () => {
    const e = invoiceToOrderEvent(byNo('536365'));
    assert.deepEqual(
      { ...e, properties: { ...e.properties, products: e.properties.products.slice(0, 1) } },
      {
        type: 'track',
        event: 'Order Completed',
        messageId: 'online-retail-536365',
        anonymousId: 'customer-17850',
        userId: '17850',
        timestamp: '2010-12-01T08:26:00.000Z',
        context: { library: { name: 'analytics-node', version: '3.1.0' }, location: { country: 'GB' } },
        properties: {
          order_id: '536365',
          currency: 'GBP',
          total: '139.12',
          products: [{ product_id: '85123A', sku: '85123A', name: 'WHITE HANGING HEART T-LIGHT HOLDER', price: '2.55', quantity: 6 }],
        },
      },
    );
    const guest = invoiceToOrderEvent(byNo('536414'));
    assert.equal(guest.anonymousId, 'guest-536414');
    assert.equal('userId' in guest, false);
    assert.deepEqual(guest.properties.products[0], { product_id: '22139', sku: '22139', price: '0.0', quantity: 56 }); // no description
    assert.deepEqual(invoiceToOrderEvent(byNo('536365'), { libraryVersion: '9.9.9' }).context.library, { name: 'analytics-node', version: '9.9.9' });
  });
});

type Outcome =
  | { ok: true; event: EventOf<'Order Completed'> }
  | { ok: false; stage: 'collector' | 'pipeline'; code: string; path: string | undefined };

/** What the collector then the pipeline do with one message of a /v1/import batch. */
function ingest(message: unknown): Outcome {
  // The collector: the envelope, then the size of the message's bytes as sent.
  const env = checkEnvelope(message, CTX);
  if (!env.ok) return { ok: false, stage: 'collector', code: env.reason.code, path: env.reason.path };
  const value = Buffer.from(JSON.stringify(message));
  if (value.length > Limits.eventBytes) return { ok: false, stage: 'collector', code: 'SHOP_ERR_EVENT_TOO_LARGE', path: undefined };
  // The pipeline: the events.raw record (message bytes + the request's facts) through the contract.
  const r = normalizeRawRecord({ value, headers: rawRecordHeaders(CTX, undefined) }, LIMITS);
  if (!r.ok) return { ok: false, stage: 'pipeline', code: r.reason.code, path: r.reason.path };
  assert.equal(r.event.event, 'Order Completed');
  return { ok: true, event: r.event as EventOf<'Order Completed'> };
}

const key = (countryCode: string | null, day: string) => `${day} ${countryCode ?? '--'}`;

describe('online retail: converter + contract = SQL', () => {
  it('runs every invoice through the contract and matches the DuckDB reference exactly', async (t) => {
    assert.equal(RETAIL_MAX_MESSAGE_BYTES, Limits.eventBytes);
    const t0 = performance.now();
    const days = new Map<string, RetailDay>();
    const dayOf = (countryCode: string | null, d: string): RetailDay => {
      const k = key(countryCode, d);
      let r = days.get(k);
      if (r === undefined) days.set(k, (r = { countryCode, day: d, orders: 0, items: 0, revenueMinor: 0, rejected: 0, rejectedByCode: {} }));
      return r;
    };
    const reasons = new Map<string, number>();
    const messageIds = new Set<string>();
    const orderIds = new Set<string>();
    let perUnitRoundingDiffers = 0;
    let canonicalTooLarge = 0;
    let maxMessageBytes = 0;

    for (const inv of invoices) {
      const message = invoiceToOrderEvent(inv);
      maxMessageBytes = Math.max(maxMessageBytes, Buffer.byteLength(JSON.stringify(message)));
      const out = ingest(message);
      if (!out.ok) {
        // A refused invoice counts on its own country and local day.
        const r = dayOf(inv.countryCode, inv.invoiceDate.slice(0, 10));
        r.rejected++;
        r.rejectedByCode[out.code] = (r.rejectedByCode[out.code] ?? 0) + 1;
        const where = out.path === undefined ? '' : ` at ${out.path.replace(/\[\d+\]/, '[i]')}`;
        const reason = `${out.stage} ${out.code}${where}`;
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        continue;
      }
      // Aggregated from the canonical event only: its country, its time in London, its amounts.
      const e = out.event;
      messageIds.add(e.messageId);
      orderIds.add(e.properties.order_id);
      assert.equal(e.context.ip, null);
      assert.equal(e.context.userAgent, null);
      assert.equal(e.properties.currency, 'GBP');
      assert.notEqual(e.properties.total, null);
      const r = dayOf(e.context.country, utcToLondon(e.timestamp).slice(0, 10));
      r.orders++;
      let items = 0;
      let perUnit = 0;
      for (const p of e.properties.products) {
        items += p.quantity;
        perUnit += p.quantity * p.price!;
      }
      r.items += items;
      r.revenueMinor += e.properties.total!;
      if (perUnit !== e.properties.total) perUnitRoundingDiffers++;
      if (encodeCanonicalEvent(e).length > MAX_EVENT_BYTES) canonicalTooLarge++;
    }
    const contractMs = performance.now() - t0;

    const { days: expected, ms: sqlMs } = await reference;
    const actual = [...days.values()].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : (a.countryCode ?? '') < (b.countryCode ?? '') ? -1 : 1));

    const total = (rows: RetailDay[], f: (r: RetailDay) => number) => rows.reduce((n, r) => n + f(r), 0);
    const accepted = total(actual, (r) => r.orders);
    const rejected = total(actual, (r) => r.rejected);
    t.diagnostic(`invoices ${invoices.length}: accepted ${accepted}, rejected ${rejected}`);
    for (const [reason, n] of [...reasons].sort((a, b) => b[1] - a[1])) t.diagnostic(`  rejected ${n}: ${reason}`);
    t.diagnostic(`accepted: ${total(actual, (r) => r.items)} items, ${total(actual, (r) => r.revenueMinor)} pence; ${actual.length} (country, day) rows`);
    t.diagnostic(`largest message ${maxMessageBytes} bytes; accepted events whose canonical encoding exceeds ${MAX_EVENT_BYTES} bytes: ${canonicalTooLarge}`);
    t.diagnostic(`accepted invoices whose Σ price(pence) × quantity differs from total: ${perUnitRoundingDiffers}`);
    t.diagnostic(`timing: read ${readMs.toFixed(0)} ms, SQL reference ${sqlMs.toFixed(0)} ms (concurrently), convert + contract ${contractMs.toFixed(0)} ms`);

    // The pipeline's de-duplication has nothing to drop.
    assert.equal(messageIds.size, accepted);
    assert.equal(orderIds.size, accepted);
    assert.equal(accepted + rejected, invoices.length);
    // Only the policy's refusals: no envelope (time, identity) refusal.
    assert.deepEqual(new Set([...reasons.keys()].map((r) => r.replace(/ at .*/, ''))), new Set(['collector SHOP_ERR_EVENT_TOO_LARGE', 'pipeline SHOP_ERR_INVALID_MONEY', 'pipeline SHOP_ERR_EVENT_SCHEMA']));

    assert.equal(actual.length, expected.length);
    for (let i = 0; i < expected.length; i++) assert.deepEqual(actual[i], expected[i], `row ${i}: ${key(expected[i]!.countryCode, expected[i]!.day)}`);
    assert.equal(rejected, total(expected, (r) => r.rejected));
  });
});
