/**
 * Real commerce traffic: the UCI "Online Retail" data set (541,909 line items of a UK online
 * retailer, 2010-12-01 to 2011-12-09; /work/shared/data/online-retail) turned into Segment
 * `Order Completed` messages, one per invoice, and an independent reference computed with DuckDB
 * SQL over the same CSV. See docs/online-retail.md.
 *
 * The converter sends every invoice as it is (cancellations, zero and negative quantities, negative
 * prices included): the event contract decides what is refused, and `retailReference` applies the
 * same rules in SQL, so that converter + contract can be checked against plain SQL.
 */
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { parse } from 'csv-parse';
import { DuckDBInstance } from '@duckdb/node-api';

// ---- countries ---------------------------------------------------------------------------------

/**
 * Every `Country` of the data set → ISO 3166-1 alpha-2, or null when the name is no country.
 * The data set's own spellings: EIRE is Ireland, RSA South Africa, USA the United States.
 */
export const RETAIL_COUNTRIES: Readonly<Record<string, string | null>> = Object.freeze({
  Australia: 'AU',
  Austria: 'AT',
  Bahrain: 'BH',
  Belgium: 'BE',
  Brazil: 'BR',
  Canada: 'CA',
  // Jersey (JE) and Guernsey (GG) are two ISO 3166 entities; the data does not say which, so no code
  // rather than a wrong one for half of them.
  'Channel Islands': null,
  Cyprus: 'CY',
  'Czech Republic': 'CZ',
  Denmark: 'DK',
  EIRE: 'IE',
  // Not a country: the retailer's label for an EU customer of unknown country.
  'European Community': null,
  Finland: 'FI',
  France: 'FR',
  Germany: 'DE',
  Greece: 'GR',
  'Hong Kong': 'HK',
  Iceland: 'IS',
  Israel: 'IL',
  Italy: 'IT',
  Japan: 'JP',
  Lebanon: 'LB',
  Lithuania: 'LT',
  Malta: 'MT',
  Netherlands: 'NL',
  Norway: 'NO',
  Poland: 'PL',
  Portugal: 'PT',
  RSA: 'ZA',
  'Saudi Arabia': 'SA',
  Singapore: 'SG',
  Spain: 'ES',
  Sweden: 'SE',
  Switzerland: 'CH',
  USA: 'US',
  'United Arab Emirates': 'AE',
  'United Kingdom': 'GB',
  Unspecified: null,
});

/** The names of the data set that deliberately have no country code. */
export const RETAIL_COUNTRYLESS: readonly string[] = Object.freeze(
  Object.keys(RETAIL_COUNTRIES).filter((name) => RETAIL_COUNTRIES[name] === null),
);

/**
 * The ISO 3166-1 alpha-2 code of a `Country` of the data set; null for the names that are no
 * country (`RETAIL_COUNTRYLESS`: Channel Islands, European Community, Unspecified) and for any name
 * the data set does not have.
 */
export function retailCountryCode(name: string): string | null {
  return Object.hasOwn(RETAIL_COUNTRIES, name) ? RETAIL_COUNTRIES[name]! : null;
}

// ---- Europe/London time ------------------------------------------------------------------------

let londonFormat: Intl.DateTimeFormat | undefined;

/** The Europe/London wall-clock time of an instant, `YYYY-MM-DD HH:MM:SS` (Intl, the tz database). */
export function utcToLondon(ms: number): string {
  londonFormat ??= new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/London',
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  const p: Record<string, string> = {};
  for (const part of londonFormat.formatToParts(ms)) p[part.type] = part.value;
  return `${p['year']!.padStart(4, '0')}-${p['month']}-${p['day']} ${p['hour']}:${p['minute']}:${p['second']}`;
}

/** `YYYY-MM-DD HH:MM:SS` read as if it were UTC, epoch ms; NaN when it is not such a time. */
function wallMs(local: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local);
  if (m === null) return NaN;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  // Refuse days and times that do not exist (2011-02-30, 24:00) rather than roll them over.
  if (back.getUTCDate() !== d || back.getUTCMonth() !== mo - 1 || h > 23 || mi > 59 || s > 59) return NaN;
  return ms;
}

/** London's offset from UTC at an instant, ms (0 in GMT, 3,600,000 in BST). */
function londonOffset(utcMs: number): number {
  const whole = Math.floor(utcMs / 1000) * 1000;
  return wallMs(utcToLondon(whole)) - whole;
}

/**
 * Epoch ms (UTC) of a Europe/London wall-clock time `YYYY-MM-DD HH:MM:SS` (the data set's
 * `InvoiceDate`). The offset is the one London had at that instant: GMT in winter, BST (UTC+1)
 * from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October.
 * A time that happened twice (01:xx on the October change) is the earlier one (BST); a time that
 * never happened (01:xx on the March change) is read with the offset before the change, i.e. one
 * hour later in BST, as Temporal's "compatible" disambiguation does. The data set has neither.
 * @throws Error when `local` is not such a time.
 */
export function londonToUtcMs(local: string): number {
  const wall = wallMs(local);
  if (Number.isNaN(wall)) throw new Error(`${JSON.stringify(local)} is not a local time YYYY-MM-DD HH:MM:SS.`);
  const before = londonOffset(wall - 86_400_000);
  const after = londonOffset(wall + 86_400_000);
  const fits = [before, after].filter((o) => londonOffset(wall - o) === o);
  if (fits.length === 0) return wall - before; // in the spring gap
  return wall - Math.max(...fits); // the earlier instant when it is ambiguous
}

// ---- invoices ----------------------------------------------------------------------------------

export interface RetailLine {
  stockCode: string;
  /** null when the file has none. */
  description: string | null;
  quantity: number;
  /** GBP, the decimal string exactly as in the file ("2.55", "0.001", "-11062.06"). */
  unitPrice: string;
}

export interface RetailInvoice {
  invoiceNo: string;
  /** `CustomerID` without its ".0" ("17850.0" → "17850"); null for a guest checkout. */
  customerId: string | null;
  /** The data set's `Country` name. */
  country: string;
  countryCode: string | null;
  /**
   * The invoice's local time (Europe/London), `YYYY-MM-DD HH:MM:SS`: the earliest `InvoiceDate` of
   * its lines (43 invoices have lines a minute apart).
   */
  invoiceDate: string;
  /** `invoiceDate` as epoch ms (UTC). */
  timestampMs: number;
  /** In file order, repeated lines kept. */
  lines: RetailLine[];
}

interface CsvRow {
  InvoiceNo: string;
  StockCode: string;
  Description: string;
  Quantity: string;
  InvoiceDate: string;
  UnitPrice: string;
  CustomerID: string;
  Country: string;
}

/** "17850.0" → "17850"; "" → null; anything else as it is. */
export function normalizeCustomerId(raw: string): string | null {
  const s = raw.trim();
  if (s === '') return null;
  return /^\d+\.0+$/.test(s) ? s.slice(0, s.indexOf('.')) : s;
}

/**
 * The invoices of the gzipped CSV, in the order of their first line. Streams the file through
 * csv-parse; an invoice's lines are not always contiguous (542806 is interleaved with another
 * invoice), so invoices are grouped in memory (about 26,000 of them) and yielded at the end.
 * @throws Error on a quantity that is not a whole number or a country or customer that changes within an invoice.
 */
export async function* readRetailInvoices(path: string): AsyncGenerator<RetailInvoice> {
  const parser = createReadStream(path).pipe(createGunzip()).pipe(parse({ columns: true }));
  const invoices = new Map<string, RetailInvoice>();
  for await (const row of parser as AsyncIterable<CsvRow>) {
    if (!/^-?\d+$/.test(row.Quantity)) throw new Error(`Invoice ${row.InvoiceNo}: the quantity ${JSON.stringify(row.Quantity)} is not a whole number.`);
    const line: RetailLine = {
      stockCode: row.StockCode,
      description: row.Description === '' ? null : row.Description,
      quantity: Number(row.Quantity),
      unitPrice: row.UnitPrice,
    };
    const inv = invoices.get(row.InvoiceNo);
    if (inv === undefined) {
      invoices.set(row.InvoiceNo, {
        invoiceNo: row.InvoiceNo,
        customerId: normalizeCustomerId(row.CustomerID),
        country: row.Country,
        countryCode: retailCountryCode(row.Country),
        invoiceDate: row.InvoiceDate,
        timestampMs: NaN, // set once the earliest date is known
        lines: [line],
      });
      continue;
    }
    if (inv.country !== row.Country || inv.customerId !== normalizeCustomerId(row.CustomerID)) {
      throw new Error(`Invoice ${row.InvoiceNo} has lines of different customers or countries.`);
    }
    if (row.InvoiceDate < inv.invoiceDate) inv.invoiceDate = row.InvoiceDate;
    inv.lines.push(line);
  }
  for (const inv of invoices.values()) {
    inv.timestampMs = londonToUtcMs(inv.invoiceDate);
    yield inv;
  }
}

// ---- exact decimal arithmetic ------------------------------------------------------------------

/** A decimal string as an integer and a scale: "-11062.06" → { units: -1106206n, scale: 2 }. */
function parseDecimal(s: string): { units: bigint; scale: number } {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) throw new Error(`${JSON.stringify(s)} is not a decimal number.`);
  const frac = m[3] ?? '';
  const units = BigInt((m[2] || '0') + frac);
  return { units: m[1] === '-' ? -units : units, scale: frac.length };
}

/** An integer at a scale as the shortest decimal string: (15300n, 3) → "15.3", (0n, 3) → "0". */
function formatDecimal(units: bigint, scale: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0');
  let s = digits;
  if (scale > 0) s = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`.replace(/0+$/, '').replace(/\.$/, '');
  return negative && s !== '0' ? `-${s}` : s;
}

/**
 * Σ quantity × unitPrice of the lines, exactly (integer arithmetic on the decimal strings), as the
 * shortest decimal string: "15.3", "0.001", "-22.5", "0". Not rounded: the contract rounds it.
 */
export function invoiceTotal(lines: readonly RetailLine[]): string {
  const parsed = lines.map((l) => ({ q: BigInt(l.quantity), ...parseDecimal(l.unitPrice) }));
  const scale = parsed.reduce((m, p) => Math.max(m, p.scale), 0);
  let sum = 0n;
  for (const p of parsed) sum += p.q * p.units * 10n ** BigInt(scale - p.scale);
  return formatDecimal(sum, scale);
}

// ---- the Segment message -----------------------------------------------------------------------

export interface RetailEventOptions {
  /** `context.library.version`; default "3.1.0". The name is always "analytics-node", a server library. */
  libraryVersion?: string;
}

export const RETAIL_LIBRARY_NAME = 'analytics-node';
export const RETAIL_LIBRARY_VERSION = '3.1.0';

export interface RetailProduct {
  product_id: string;
  sku: string;
  /** Left out when the line has no description. */
  name?: string;
  /** GBP as in the file, a string: the contract converts it to pence exactly. */
  price: string;
  quantity: number;
}

/** A Segment Spec track message for POST /v1/batch or /v1/import. */
export interface RetailOrderEvent {
  type: 'track';
  event: 'Order Completed';
  messageId: string;
  anonymousId: string;
  userId?: string;
  /** ISO 8601 in UTC with milliseconds. */
  timestamp: string;
  context: {
    library: { name: string; version: string };
    location?: { country: string };
  };
  properties: {
    order_id: string;
    currency: 'GBP';
    /** Σ quantity × price of the lines, exactly, as a decimal string. */
    total: string;
    products: RetailProduct[];
  };
}

/**
 * The invoice as one Segment `Order Completed` track message, exactly as it is: every line is a
 * product (postage, manual adjustments and bank charges too), cancellations and negative prices
 * included. Money is sent as the decimal strings of the file, and `total` is their exact sum, so
 * that the contract's conversion to pence is the only rounding. No `sentAt`: the message's
 * timestamp is the event time, not corrected for a client clock.
 */
export function invoiceToOrderEvent(inv: RetailInvoice, opts: RetailEventOptions = {}): RetailOrderEvent {
  const products: RetailProduct[] = inv.lines.map((l) =>
    l.description === null
      ? { product_id: l.stockCode, sku: l.stockCode, price: l.unitPrice, quantity: l.quantity }
      : { product_id: l.stockCode, sku: l.stockCode, name: l.description, price: l.unitPrice, quantity: l.quantity },
  );
  const library = { name: RETAIL_LIBRARY_NAME, version: opts.libraryVersion ?? RETAIL_LIBRARY_VERSION };
  const event: RetailOrderEvent = {
    type: 'track',
    event: 'Order Completed',
    messageId: `online-retail-${inv.invoiceNo}`,
    anonymousId: inv.customerId === null ? `guest-${inv.invoiceNo}` : `customer-${inv.customerId}`,
    timestamp: new Date(inv.timestampMs).toISOString(),
    context: inv.countryCode === null ? { library } : { library, location: { country: inv.countryCode } },
    properties: { order_id: inv.invoiceNo, currency: 'GBP', total: invoiceTotal(inv.lines), products },
  };
  if (inv.customerId !== null) {
    // Key order as a client would write it (it decides the bytes, which the collector measures).
    return {
      type: event.type,
      event: event.event,
      messageId: event.messageId,
      anonymousId: event.anonymousId,
      userId: inv.customerId,
      timestamp: event.timestamp,
      context: event.context,
      properties: event.properties,
    };
  }
  return event;
}

// ---- the reference, in SQL ---------------------------------------------------------------------

/** The largest message the collector takes (`Limits.eventBytes`, Segment's 32 KiB). */
export const RETAIL_MAX_MESSAGE_BYTES = 32 * 1024;

export interface RetailDay {
  /** ISO 3166-1 alpha-2; null for the invoices of a countryless name. */
  countryCode: string | null;
  /** The invoices' local date in Europe/London, `YYYY-MM-DD`. */
  day: string;
  /** Accepted invoices (Order Completed events). */
  orders: number;
  /** Σ quantity of the accepted invoices' lines. */
  items: number;
  /** Σ `properties.total` of the accepted invoices in pence: each invoice's exact sum rounded half away from zero. */
  revenueMinor: number;
  /** Refused invoices. */
  rejected: number;
  /** Refused invoices by the contract's code; only codes with at least one. */
  rejectedByCode: Record<string, number>;
}

function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * The reference SQL over the CSV at `path` (see docs/online-retail.md, which quotes it): one row per
 * (country code, London day) with accepted orders, items and revenue in pence, and refused
 * invoices by code, applying the policy the contract enforces.
 */
export function retailReferenceSql(path: string, opts: RetailEventOptions = {}): string {
  const countries = Object.entries(RETAIL_COUNTRIES)
    .map(([name, code]) => `(${sqlString(name)}, ${code === null ? 'NULL' : sqlString(code)})`)
    .join(', ');
  const library = `{"name":${JSON.stringify(RETAIL_LIBRARY_NAME)},"version":${JSON.stringify(opts.libraryVersion ?? RETAIL_LIBRARY_VERSION)}}`;
  return `
WITH
countries(country, country_code) AS (VALUES ${countries}),
src AS (
  SELECT row_number() OVER () AS line_no, *
  FROM read_csv(${sqlString(path)}, header = true, all_varchar = true)
),
lines AS (
  SELECT line_no, InvoiceNo AS invoice_no, StockCode AS stock_code, Description AS description,
         CAST(Quantity AS BIGINT) AS quantity, UnitPrice AS unit_price,
         CAST(UnitPrice AS DECIMAL(18, 3)) AS price, InvoiceDate AS invoice_date,
         regexp_replace(CustomerID, '^(\\d+)\\.0+$', '\\1') AS customer_id, Country AS country
  FROM src
),
-- Each product as JSON.stringify writes it (its bytes count towards the 32 KiB of the message),
-- and whether the contract refuses it: a price below 0 once rounded to pence, a quantity below 1.
products AS (
  SELECT *,
         strlen('{"product_id":' || to_json(stock_code)::VARCHAR || ',"sku":' || to_json(stock_code)::VARCHAR
                || coalesce(',"name":' || to_json(description)::VARCHAR, '')
                || ',"price":' || to_json(unit_price)::VARCHAR || ',"quantity":' || CAST(quantity AS VARCHAR) || '}') AS product_bytes,
         round(price, 2) < 0 AS bad_price,
         quantity < 1 AS bad_quantity
  FROM lines
),
invoices AS (
  SELECT invoice_no, min(invoice_date) AS invoice_date, any_value(customer_id) AS customer_id,
         any_value(country) AS country, count(*) AS line_count, sum(quantity) AS items,
         sum(quantity * price) AS total, sum(product_bytes) AS products_bytes,
         -- The first refused product decides the code: its price is read before its quantity.
         arg_min(CASE WHEN bad_price THEN 'SHOP_ERR_INVALID_MONEY' ELSE 'SHOP_ERR_EVENT_SCHEMA' END, line_no)
           FILTER (WHERE bad_price OR bad_quantity) AS product_code
  FROM products
  GROUP BY invoice_no
),
messages AS (
  SELECT i.*, c.country_code,
         strftime(timezone('Europe/London', CAST(i.invoice_date AS TIMESTAMP)) AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.000Z') AS timestamp_iso,
         rtrim(rtrim(CAST(i.total AS VARCHAR), '0'), '.') AS total_text
  FROM invoices i LEFT JOIN countries c USING (country)
),
sized AS (
  SELECT *,
         strlen('{"type":"track","event":"Order Completed","messageId":' || to_json('online-retail-' || invoice_no)::VARCHAR
                || ',"anonymousId":' || to_json(CASE WHEN customer_id IS NULL THEN 'guest-' || invoice_no ELSE 'customer-' || customer_id END)::VARCHAR
                || coalesce(',"userId":' || to_json(customer_id)::VARCHAR, '')
                || ',"timestamp":' || to_json(timestamp_iso)::VARCHAR
                || ',"context":{"library":${library}' || coalesce(',"location":{"country":' || to_json(country_code)::VARCHAR || '}', '') || '}'
                || ',"properties":{"order_id":' || to_json(invoice_no)::VARCHAR || ',"currency":"GBP","total":' || to_json(total_text)::VARCHAR
                || ',"products":[]}}')
           + products_bytes + (line_count - 1) AS message_bytes
  FROM messages
),
decided AS (
  SELECT *,
         CASE
           WHEN message_bytes > ${RETAIL_MAX_MESSAGE_BYTES} THEN 'SHOP_ERR_EVENT_TOO_LARGE' -- the collector
           WHEN round(total, 2) < 0 THEN 'SHOP_ERR_INVALID_MONEY'     -- the pipeline: properties.total
           ELSE product_code                                         -- then properties.products[i]
         END AS code
  FROM sized
)
SELECT country_code,
       substr(invoice_date, 1, 10) AS day,
       count(*) FILTER (WHERE code IS NULL) AS orders,
       CAST(coalesce(sum(items) FILTER (WHERE code IS NULL), 0) AS BIGINT) AS items,
       CAST(coalesce(sum(CAST(round(total, 2) * 100 AS BIGINT)) FILTER (WHERE code IS NULL), 0) AS BIGINT) AS revenue_minor,
       count(*) FILTER (WHERE code IS NOT NULL) AS rejected,
       count(*) FILTER (WHERE code = 'SHOP_ERR_EVENT_TOO_LARGE') AS rejected_too_large,
       count(*) FILTER (WHERE code = 'SHOP_ERR_INVALID_MONEY') AS rejected_invalid_money,
       count(*) FILTER (WHERE code = 'SHOP_ERR_EVENT_SCHEMA') AS rejected_event_schema
FROM decided
GROUP BY ALL
ORDER BY day, country_code NULLS FIRST`;
}

const REJECTED_COLUMNS: ReadonlyArray<[string, string]> = [
  ['rejected_too_large', 'SHOP_ERR_EVENT_TOO_LARGE'],
  ['rejected_invalid_money', 'SHOP_ERR_INVALID_MONEY'],
  ['rejected_event_schema', 'SHOP_ERR_EVENT_SCHEMA'],
];

/**
 * The reference, computed independently of the converter and the contract with DuckDB SQL over the
 * CSV (`retailReferenceSql`): per (country code, London day), sorted by day then country (null first).
 * Only the country table is shared with the converter.
 */
export async function retailReference(path: string, opts: RetailEventOptions = {}): Promise<RetailDay[]> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    try {
      const reader = await connection.runAndReadAll(retailReferenceSql(path, opts));
      return reader.getRowObjects().map((r) => {
        const rejectedByCode: Record<string, number> = {};
        for (const [column, code] of REJECTED_COLUMNS) {
          const n = Number(r[column] as bigint);
          if (n > 0) rejectedByCode[code] = n;
        }
        return {
          countryCode: (r['country_code'] as string | null) ?? null,
          day: r['day'] as string,
          orders: Number(r['orders'] as bigint),
          items: Number(r['items'] as bigint),
          revenueMinor: Number(r['revenue_minor'] as bigint),
          rejected: Number(r['rejected'] as bigint),
          rejectedByCode,
        };
      });
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}
