/**
 * The event contract's hot path: `normalizeEvent` on already-parsed Segment messages, a realistic
 * mix of what analytics.js and @segment/analytics-node send (product views and adds, page views,
 * searches, carts, checkouts, orders with products, identifies; about 500 bytes of JSON each).
 * Also `normalizeEvent` + `encodeCanonicalEvent` (what the collector does per event), and
 * `parseCanonicalEvent` (what a pipeline stage does per record).
 *
 * Reference, measured in the same run over the same messages: `JSON.parse(JSON.stringify(m))`, a
 * deep copy through JSON, the least any mapping that reads every field and builds a new object must
 * cost. Each figure is the median of BENCH_RUNS rounds.
 *
 *   node bench/contract.bench.ts            BENCH_EVENTS=20000 BENCH_RUNS=7
 */
import { encodeCanonicalEvent, normalizeEvent, parseCanonicalEvent } from '../packages/platform/src/contract/index.ts';
import type { IngestContext } from '../packages/platform/src/contract/index.ts';
import { median } from './common.ts';

const N = Number(process.env.BENCH_EVENTS ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);

const receivedAt = Date.UTC(2026, 10, 26, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();
const ua = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';

function browserContext(i: number, path: string): Record<string, unknown> {
  return {
    library: { name: 'analytics.js', version: 'next-1.70.0' },
    page: { path, referrer: i % 3 ? 'https://www.google.com/' : '', search: i % 4 ? '' : '?utm_source=news&utm_medium=email', title: 'Runner 2 – Shop', url: `https://shop.example${path}${i % 4 ? '' : '?utm_source=news&utm_medium=email'}` },
    userAgent: ua,
    locale: 'en-US',
    timezone: 'Europe/Paris',
  };
}

function product(i: number): Record<string, unknown> {
  return { product_id: `sku-${i % 500}`, sku: `R2-${i % 500}`, name: 'Runner 2', brand: 'Acme', category: 'Shoes', variant: '42', price: 89.9 + (i % 7), quantity: 1 + (i % 3), url: `https://shop.example/p/${i % 500}`, image_url: `https://cdn.shop.example/p/${i % 500}.jpg` };
}

function message(i: number): Record<string, unknown> {
  const t = receivedAt - 800 - (i % 50);
  const base = { messageId: `ajs-next-${i}-5f0c1a2b3c4d5e6f`, anonymousId: `0b7d${i % 5000}-4f6b-4c1e-9d1b-2a3c4d5e6f70`, timestamp: iso(t), sentAt: iso(t + 700), writeKey: 'wk_live_3f9a', integrations: {}, _metadata: { bundled: ['Segment.io'], unbundled: [] } };
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
      return { ...base, type: 'track', event: 'Product Viewed', properties: { ...product(i), currency: 'EUR' }, context: browserContext(i, `/p/${i % 500}`) };
    case 3:
    case 4:
      return { ...base, type: 'page', name: 'Product', category: 'Shoes', properties: { path: `/p/${i % 500}`, referrer: '', search: '', title: 'Runner 2 – Shop', url: `https://shop.example/p/${i % 500}` }, context: browserContext(i, `/p/${i % 500}`) };
    case 5:
      return { ...base, type: 'track', event: 'Product Added', properties: { ...product(i), cart_id: `cart-${i % 900}`, currency: 'EUR' }, context: browserContext(i, `/p/${i % 500}`) };
    case 6:
      return { ...base, type: 'track', event: 'Products Searched', properties: { query: 'trail running shoes' }, context: browserContext(i, '/search') };
    case 7:
      return { ...base, type: 'track', event: 'Cart Viewed', properties: { cart_id: `cart-${i % 900}`, products: [product(i), product(i + 1)] }, context: browserContext(i, '/cart') };
    case 8:
      return {
        ...base,
        userId: `user-${i % 3000}`,
        type: 'track',
        event: 'Order Completed',
        properties: { order_id: `order-${i}`, checkout_id: `co-${i}`, total: 189.8, revenue: 179.8, shipping: 10, tax: 31.63, currency: 'EUR', products: [product(i), product(i + 1)] },
        context: { library: { name: '@segment/analytics-node', version: '3.1.0' }, ip: '203.0.113.9' },
        _metadata: { nodeVersion: 'v22.23.3', jsRuntime: 'node' },
      };
    default:
      return { ...base, userId: `user-${i % 3000}`, type: 'identify', traits: { email: `jane${i}@example.com`, firstName: 'Jane', lastName: 'Doe' }, context: browserContext(i, '/account') };
  }
}

const messages = Array.from({ length: N }, (_, i) => message(i));
const ctx: IngestContext = { merchantId: 'shop-a', defaultCurrency: 'EUR', receivedAt, requestIp: '198.51.100.20', requestUserAgent: ua, cdnCountry: 'FR' };
const encoded = messages.map((m) => {
  const r = normalizeEvent(m, ctx);
  if (!r.ok) throw new Error(`bench message refused: ${r.reason.message}`);
  return encodeCanonicalEvent(r.event);
});
const avgBytes = Math.round(messages.reduce((n, m) => n + JSON.stringify(m).length, 0) / N);

let sink = 0;
function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return N / ((performance.now() - t0) / 1000);
}
const reference = () => time(() => { for (const m of messages) sink += (JSON.parse(JSON.stringify(m)) as object) === m ? 1 : 0; });
const normalize = () => time(() => { for (const m of messages) sink += normalizeEvent(m, ctx).ok ? 1 : 0; });
const normalizeEncode = () => time(() => {
  for (const m of messages) {
    const r = normalizeEvent(m, ctx);
    if (r.ok) sink += encodeCanonicalEvent(r.event).length;
  }
});
const parse = () => time(() => { for (const b of encoded) sink += parseCanonicalEvent(b).ok ? 1 : 0; });

// Warm up every path (JIT), then measure the rounds interleaved so noise hits them alike.
for (let i = 0; i < 3; i++) { reference(); normalize(); normalizeEncode(); parse(); }
const results = { reference: [] as number[], normalize: [] as number[], normalizeEncode: [] as number[], parse: [] as number[] };
for (let run = 0; run < RUNS; run++) {
  results.reference.push(reference());
  results.normalize.push(normalize());
  results.normalizeEncode.push(normalizeEncode());
  results.parse.push(parse());
}
if (sink === 0) throw new Error('nothing measured');

const ref = median(results.reference);
const row = (label: string, xs: number[]) => {
  const m = median(xs);
  console.log(`| ${label} | ${Math.round(m).toLocaleString('en-US')} | ${(1e6 / m).toFixed(2)} µs | ${(m / ref).toFixed(2)} |`);
};
console.log(`event contract: ${N.toLocaleString('en-US')} Segment messages (mix of 7 kinds, ${avgBytes} bytes of JSON on average), median of ${RUNS} rounds, Node ${process.version}`);
console.log('| workload | events/s | per event | ratio to reference |\n|---|---|---|---|');
row('JSON.parse(JSON.stringify(m)) (reference)', results.reference);
row('normalizeEvent', results.normalize);
row('normalizeEvent + encodeCanonicalEvent', results.normalizeEncode);
row('parseCanonicalEvent (ajv-validated)', results.parse);
