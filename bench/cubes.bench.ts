/**
 * The cubes role (events.filtered + events.bots → cube store → analytics API), on the embedded log
 * and the default DuckDB store, through `startPlatform` (the real collector, pipeline, cubes writer
 * and API in one process).
 *
 *   node bench/cubes.bench.ts
 *   BENCH_HISTORY=200000 BENCH_RUNS=3 BENCH_RATES=2000,200 BENCH_PROBES=200 BENCH_QUERIES=200 node bench/cubes.bench.ts
 *
 * 1. Write throughput: BENCH_HISTORY pipeline events (7 days of a shop: ~20,000 visitors, weighted
 *    devices, countries, sources, ~3.5 events per session) are written straight to events.filtered
 *    before any writer runs. A `CubesWriter` with a fresh DuckDB file is timed from start() until it
 *    has committed them all; the reference is a plain reader of the same topic in the same run.
 *    Medians of BENCH_RUNS runs. Then the platform starts on the same log and its own writer absorbs
 *    the same backlog (timed until the API shows every event).
 * 2. Query latency: GET /v1/merchants/shop/metrics over that history (day × 7 days, hour × 1 day by
 *    device type, minute × 1 hour; without and with `visitors`, whose HyperLogLog sketches are
 *    merged at query time), BENCH_QUERIES rounds, interleaved, p50 and p99 of the HTTP round trip.
 *    Reference: `cubeStore.db.query('SELECT 1')` (the store's own round trip), same rounds.
 * 3. Freshness: validated visitors' events sent to the collector at each of BENCH_RATES events/s (merchant
 *    `bench`); meanwhile BENCH_PROBES probes, one at a time, 100 ms apart: an Order Completed of
 *    merchant `probe`, timed from the collector's 200 until GET …/probe/metrics (minute, orders),
 *    polled every 5 ms, counts it. Reference: the same probe's arrival in events.filtered
 *    (read_committed reader), as in bench/pipeline.bench.ts. The store's commits are timed (the
 *    store's `commit` is wrapped, observation only) to split the figure into its parts.
 */
import { Rng } from '../packages/platform/src/simulate/rng.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import type { Histogram } from 'prom-client';
import type { Log, ProducerRecord, TopicPartition } from '../packages/streams/src/index.ts';
import { openEmbeddedLog } from '../packages/streams/src/log/embedded/index.ts';
import { hashUserAgent } from '../packages/platform/src/contract/index.ts';
import { startPlatform, type Platform } from '../packages/platform/src/platform.ts';
import { ensurePlatformTopics, topicNames, type TopicNames } from '../packages/platform/src/topics.ts';
import type { PipelineEvent } from '../packages/platform/src/pipeline/topology.ts';
import { DuckDb } from '../packages/platform/src/cubes/db.ts';
import { CubeStore } from '../packages/platform/src/cubes/store.ts';
import { CubesWriter } from '../packages/platform/src/cubes/writer.ts';
import type { CubeBatch } from '../packages/platform/src/cubes/model.ts';
import { median, quantile, rawRead } from './common.ts';

const HISTORY = Number(process.env['BENCH_HISTORY'] ?? 200_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const RATES = (process.env['BENCH_RATES'] ?? '2000,200').split(',').map(Number);
const PROBES = Number(process.env['BENCH_PROBES'] ?? 200);
const QUERIES = Number(process.env['BENCH_QUERIES'] ?? 200);
const PARTITIONS = 4;
const DAY = 86_400_000;
const HOUR = 3_600_000;
const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';
const NAMES = ['Product Viewed', 'Product Viewed', 'Product List Viewed', 'Product Added', 'Checkout Started', 'Order Completed'];
const MERCHANTS = [
  { id: 'shop', writeKey: 'wk_bench_shop_key', readToken: 'rt_bench_shop_token', timezone: 'UTC', currency: 'USD' },
  { id: 'bench', writeKey: 'wk_bench_load_key', readToken: 'rt_bench_load_token', timezone: 'UTC', currency: 'USD' },
  { id: 'probe', writeKey: 'wk_bench_probe_key', readToken: 'rt_bench_probe_token', timezone: 'UTC', currency: 'USD' },
];
const LOAD_VISITORS = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;
const n0 = (x: number) => Math.round(x).toLocaleString('en-US');


function weighted<T>(r: () => number, choices: ReadonlyArray<readonly [T, number]>): T {
  const total = choices.reduce((a, [, w]) => a + w, 0);
  let x = r() * total;
  for (const [v, w] of choices) if ((x -= w) < 0) return v;
  return choices.at(-1)![0];
}

const DEVICES = [['desktop', 55], ['mobile', 40], ['tablet', 5]] as const;
const COUNTRIES = [['US', 40], ['GB', 12], ['DE', 10], ['FR', 10], ['CA', 8], ['ES', 5], ['IT', 5], ['NL', 5], [null, 5]] as const;
const SOURCES = [['direct', 35], ['organic_search', 30], ['paid', 15], ['social', 10], ['email', 5], ['referral', 5]] as const;
const PATH = ['Page Viewed', 'Product List Viewed', 'Product Viewed', 'Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed'];
const PATH_LENGTHS = [[1, 20], [2, 20], [3, 20], [4, 15], [5, 10], [6, 7], [7, 8]] as const;

function product(k: number) {
  return { product_id: `sku-${k}`, sku: null, name: `Product ${k}`, brand: 'Acme', category: 'Shoes', variant: null, price: 1999 + (k % 40) * 100, quantity: 1, position: null, url: null, image_url: null, coupon: null };
}

/** One pipeline event as the pipeline writes it to events.filtered. */
function pipelineEvent(i: number, name: string, visitor: string, session: string, seq: number, ts: number, v: { device: string; country: string | null; source: string; app: boolean }): PipelineEvent {
  const p = product(i % 300);
  const properties =
    name === 'Order Completed'
      ? { order_id: `ho-${i}`, checkout_id: null, affiliation: null, total: p.price + 500, subtotal: p.price, revenue: p.price, shipping: 500, tax: null, discount: null, coupon: null, currency: 'USD', products: [p] }
      : name === 'Checkout Started'
        ? { checkout_id: null, order_id: null, affiliation: null, value: p.price, revenue: null, shipping: null, tax: null, discount: null, coupon: null, currency: 'USD', products: [p] }
        : name === 'Product List Viewed'
          ? { list_id: null, category: 'Shoes', currency: 'USD', products: [p, product((i + 1) % 300), product((i + 2) % 300)] }
          : name === 'Page Viewed'
            ? { name: null, category: null, path: '/', url: 'https://shop.example/', referrer: null, title: 'Shop', search: null }
            : { ...p, cart_id: null, value: p.price, currency: 'USD' };
  const event = {
    v: 1,
    type: name === 'Page Viewed' ? 'page' : 'track',
    event: name,
    messageId: `h-${i}`,
    merchantId: 'shop',
    visitorId: visitor,
    anonymousId: visitor,
    userId: null,
    sessionId: null,
    timestamp: ts,
    originalTimestamp: ts,
    sentAt: ts,
    receivedAt: ts + 40,
    context: {
      ip: '203.0.113.7',
      userAgent: UA,
      page: { url: `https://shop.example/p/${i % 300}`, path: `/p/${i % 300}`, referrer: v.source === 'direct' ? null : 'https://www.google.com/', title: null, search: null },
      campaign: v.source === 'paid' ? { source: 'google', medium: 'cpc', name: 'winter', term: null, content: null } : null,
      locale: 'en-US',
      timezone: null,
      country: v.country,
      library: v.app ? { name: 'analytics-ios', version: '4.1' } : { name: 'analytics.js', version: '5' },
      traits: null,
      fbp: null,
      fbc: null,
    },
    properties,
  };
  return {
    v: 1,
    event: event as unknown as PipelineEvent['event'],
    enrichment: { device: { type: v.device as PipelineEvent['enrichment']['device']['type'], browser: 'Safari', os: 'macOS' }, trafficSource: v.source as PipelineEvent['enrichment']['trafficSource'], country: v.country },
    session: { id: session, start: seq === 1, seq },
    bot: null,
    human: 'validated',
  };
}

/** Writes `HISTORY` events of merchant `shop`, spread over the 7 days before `end`, to events.filtered, in time order. */
async function fillHistory(log: Log, topics: TopicNames, end: number): Promise<number> {
  // Seeded (mulberry32), so every run writes the same history.
  const seeded = new Rng(42);
  const r = () => seeded.next();
  const visitors = Array.from({ length: 20_000 }, () => {
    const app = r() < 0.1;
    return { device: app ? 'mobile' : weighted(r, DEVICES), country: weighted(r, COUNTRIES), app };
  });
  const events: Array<{ key: string; ts: number; p: PipelineEvent }> = [];
  const sessionsOf = new Map<number, number>();
  for (let i = 0; events.length < HISTORY; ) {
    const vi = Math.floor(r() * visitors.length);
    const v = visitors[vi]!;
    const s = (sessionsOf.get(vi) ?? 0) + 1;
    sessionsOf.set(vi, s);
    const source = weighted(r, SOURCES);
    const length = weighted(r, PATH_LENGTHS);
    let ts = end - 7 * DAY + Math.floor(r() * (7 * DAY - 15 * 60_000));
    for (let seq = 1; seq <= length && events.length < HISTORY; seq++, i++) {
      events.push({ key: `hv-${vi}`, ts, p: pipelineEvent(i, PATH[seq - 1]!, `hv-${vi}`, `hv-${vi}:${s}`, seq, ts, { ...v, source }) });
      ts += 20_000 + Math.floor(r() * 60_000);
    }
  }
  events.sort((a, b) => a.ts - b.ts);
  const producer = log.createProducer({ clientId: 'bench-history' });
  let bytes = 0;
  for (let i = 0; i < events.length; i += 2000) {
    const batch: ProducerRecord[] = events.slice(i, i + 2000).map((e) => {
      const value = Buffer.from(JSON.stringify(e.p));
      bytes += value.length;
      return { topic: topics.filtered, key: Buffer.from(e.key), value };
    });
    await producer.send(batch);
  }
  await producer.close();
  return bytes / events.length;
}

/** Validations of the load's visitors (merchant bench) and the probe's visitor (merchant probe), as the beacon writes them. */
async function validate(log: Log, topics: TopicNames): Promise<void> {
  const now = Date.now();
  const one = (merchantId: string, anonymousId: string, i: number): ProducerRecord => ({
    topic: topics.validations,
    key: Buffer.from(anonymousId),
    value: Buffer.from(JSON.stringify({ v: 1, merchantId, anonymousId, validatedAt: now - 1000, validUntil: now + DAY, tokenId: `t${i}`, uaHash: hashUserAgent(UA) })),
    timestamp: now - 1000,
  });
  const producer = log.createProducer({ clientId: 'bench-validations' });
  await producer.send([...Array.from({ length: LOAD_VISITORS }, (_, v) => one('bench', `load-${v}`, v)), one('probe', 'probe-visitor', LOAD_VISITORS)]);
  await producer.close();
}

/** A Segment message as a browser sends it (as in bench/pipeline.bench.ts). */
function message(i: number, name: string, visitor: string, at: number, orderId: string): Record<string, unknown> {
  const p = { product_id: `sku-${i % 300}`, name: `Product ${i % 300}`, brand: 'Acme', category: 'Shoes', price: 19.99 + (i % 40), quantity: 1 };
  return {
    type: 'track',
    event: name,
    anonymousId: visitor,
    timestamp: new Date(at).toISOString(),
    properties:
      name === 'Order Completed'
        ? { order_id: orderId, total: 59.97, revenue: 54.97, currency: 'USD', products: [p] }
        : name === 'Checkout Started'
          ? { value: 59.97, currency: 'USD', products: [p] }
          : { ...p, currency: 'USD' },
    context: { userAgent: UA, ip: '203.0.113.7', page: { url: `https://shop.example/p/${i % 300}?utm_source=google&utm_medium=cpc`, referrer: 'https://www.google.com/' }, library: { name: 'analytics.js', version: '5' } },
  };
}

/** Events/s a fresh writer (own DuckDB file, own consumer) absorbs from a backlog of `HISTORY` events in events.filtered. */
async function absorb(log: Log, topics: TopicNames): Promise<{ rate: number; commits: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cubes-store-'));
  const store = new CubeStore(await DuckDb.open(join(dir, 'cubes.duckdb')));
  const commits: number[] = [];
  let done = 0;
  const writer = new CubesWriter({ log, topics, store, logger: pino({ level: 'warn' }), consumer: `bench-cubes-${randomUUID().slice(0, 8)}`, onCommit: (n) => void (commits.push(n), (done += n)) });
  const t0 = performance.now();
  await writer.start();
  // The writer retries failures forever (logging them): give up if it stops making progress.
  let last = { done, at: performance.now() };
  while (done < HISTORY) {
    await sleep(10);
    if (done !== last.done) last = { done, at: performance.now() };
    else if (performance.now() - last.at > 60_000) throw new Error(`the cubes writer made no progress for 60 s (${done} of ${HISTORY} events committed)`);
  }
  const s = (performance.now() - t0) / 1000;
  await writer.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return { rate: HISTORY / s, commits };
}

async function api<T>(platform: Platform, token: string, path: string): Promise<T> {
  const res = await fetch(platform.url + path, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as T;
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

type Series = { series: Array<Record<string, unknown>> };
const total = (s: Series, metric: string) => s.series.reduce((a, row) => a + Number(row[metric] ?? 0), 0);
const iso = (t: number) => new Date(t).toISOString();

interface StoreCommit {
  start: number;
  end: number;
  size: number;
  probe: boolean;
}

/** Times the store's commits (observation only: the wrapped method is called as it is). */
function watchCommits(store: CubeStore): { commits: StoreCommit[]; on: (v: boolean) => void } {
  const commits: StoreCommit[] = [];
  let on = false;
  const commit = store.commit.bind(store);
  store.commit = async (consumer: string, batch: CubeBatch, sketches: ReadonlyMap<string, Uint8Array>) => {
    const start = performance.now();
    await commit(consumer, batch, sketches);
    if (on) {
      let probe = false;
      // Only merchant `probe` has that word in its rows' keys (whatever the key's format).
      for (const k of batch.events.keys()) if (k.includes('probe')) probe = true;
      commits.push({ start, end: performance.now(), size: batch.size, probe });
    }
  };
  return { commits, on: (v) => void (on = v) };
}

async function histogramTotals(platform: Platform): Promise<{ sum: number; count: number }> {
  const h = platform.registry.getSingleMetric('shopstream_cubes_commit_seconds') as Histogram | undefined;
  const values = h === undefined ? [] : (await h.get()).values;
  const pick = (suffix: string) => values.find((v) => v.metricName === `shopstream_cubes_commit_seconds_${suffix}`)?.value ?? 0;
  return { sum: pick('sum'), count: pick('count') };
}

interface Freshness {
  api: number[];
  filtered: number[];
  parts: { pipeline: number[]; batchWait: number[]; storeCommit: number[]; apiSeen: number[] };
  /** Round trips of the probe's API polls. */
  polls: number[];
  missed: number;
  loadRate: number;
  loadFailed: number;
  storeCommits: StoreCommit[];
  writerCommitMeanMs: number;
  loadVisible: boolean;
}

async function freshness(platform: Platform, watch: ReturnType<typeof watchCommits>, rate: number, probeBase: number): Promise<Freshness> {
  const { log, topics } = platform;
  const probeKey = MERCHANTS[2]!;
  const tps: TopicPartition[] = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: topics.filtered, partition }));
  const ends = await log.admin.listOffsets(tps, 'latest');
  const reader = log.createReader({ clientId: 'bench-tail' });
  reader.assign(ends.map((e) => ({ topic: e.topic, partition: e.partition, offset: e.offset })));
  const filteredAt = new Map<string, number>();
  let reading = true;
  const readLoop = (async () => {
    while (reading) {
      for (const r of await reader.poll(50)) {
        if (r.key?.toString() !== 'probe-visitor') continue;
        const id = (JSON.parse(r.value!.toString()) as PipelineEvent).event.messageId;
        filteredAt.set(id, performance.now());
      }
    }
  })();

  const runStart = Date.now();
  const window = `granularity=minute&from=${iso(runStart - 60 * 60_000)}&to=${iso(runStart + 60 * 60_000)}`;
  const probePath = `/v1/merchants/probe/metrics?${window}&metrics=orders`;
  const loadPath = `/v1/merchants/bench/metrics?${window}&metrics=events`;
  // Earlier rounds' events: the counts below start from these.
  const probeBefore = total(await api<Series>(platform, probeKey.readToken, probePath), 'orders');
  const loadBefore = total(await api<Series>(platform, MERCHANTS[1]!.readToken, loadPath), 'events');
  const batchUrl = `${platform.url}/v1/batch`;
  const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
  // The load: validated visitors of merchant bench, batches every 10 ms.
  let loading = true;
  let loadAcked = 0;
  let loadFailed = 0;
  let loadSeconds = 0;
  const loadLoop = (async () => {
    const perTick = Math.max(1, Math.round(rate / 100));
    const inflight = new Set<Promise<void>>();
    const t0 = performance.now();
    let i = 0;
    while (loading) {
      const batch = Array.from({ length: perTick }, () => {
        const n = i++;
        return { ...message(n, NAMES[n % NAMES.length]!, `load-${n % LOAD_VISITORS}`, Date.now(), `lo-${rate}-${n}`), messageId: `load-${rate}-${n}` };
      });
      const p = fetch(batchUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basic(MERCHANTS[1]!.writeKey) }, body: JSON.stringify({ batch }) })
        .then(async (res) => {
          await res.arrayBuffer();
          if (res.status === 200) loadAcked += batch.length;
          else loadFailed += batch.length;
        })
        .catch(() => void (loadFailed += batch.length));
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      await sleep(Math.max(0, t0 + (i / rate) * 1000 - performance.now()));
    }
    loadSeconds = (performance.now() - t0) / 1000;
    await Promise.all(inflight);
  })();

  await sleep(3000); // the load settles before the first probe
  const ackAt = new Map<string, number>();
  const apiAt = new Map<string, number>();
  const histBefore = await histogramTotals(platform);
  watch.commits.length = 0;
  watch.on(true);
  let missed = 0;
  const polls: number[] = [];
  for (let k = probeBase; k < probeBase + PROBES; k++) {
    const id = `probe-${k}`;
    const m = { ...message(k, 'Order Completed', 'probe-visitor', Date.now(), `probe-order-${k}`), messageId: id };
    const res = await fetch(batchUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: basic(probeKey.writeKey) }, body: JSON.stringify({ batch: [m] }) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`probe ${k}: collector answered ${res.status}`);
    const acked = performance.now();
    ackAt.set(id, acked);
    for (;;) {
      const t = performance.now();
      const orders = total(await api<Series>(platform, probeKey.readToken, probePath), 'orders');
      polls.push(performance.now() - t);
      if (orders >= probeBefore + k - probeBase + 1) {
        apiAt.set(id, performance.now());
        break;
      }
      if (performance.now() - acked > 10_000) {
        missed++;
        break;
      }
      await sleep(5);
    }
    await sleep(100);
  }
  watch.on(false);
  const histAfter = await histogramTotals(platform);
  loading = false;
  await loadLoop;
  // Every acknowledged load event must reach the API.
  let loadVisible = false;
  for (const deadline = performance.now() + 15_000; performance.now() < deadline; await sleep(100)) {
    if (total(await api<Series>(platform, MERCHANTS[1]!.readToken, loadPath), 'events') === loadBefore + loadAcked) {
      loadVisible = true;
      break;
    }
  }
  await sleep(200);
  reading = false;
  await readLoop;
  await reader.close();

  const probeCommits = watch.commits.filter((c) => c.probe);
  const out: Freshness = {
    api: [],
    filtered: [],
    parts: { pipeline: [], batchWait: [], storeCommit: [], apiSeen: [] },
    polls,
    missed,
    loadRate: loadAcked / loadSeconds,
    loadFailed,
    storeCommits: [...watch.commits],
    writerCommitMeanMs: histAfter.count > histBefore.count ? ((histAfter.sum - histBefore.sum) / (histAfter.count - histBefore.count)) * 1000 : NaN,
    loadVisible,
  };
  for (const [id, acked] of ackAt) {
    const seen = apiAt.get(id);
    const filtered = filteredAt.get(id);
    if (seen === undefined || filtered === undefined) continue;
    // An event can be read before its 200 is seen (the reader is quick): count those as 0.
    out.api.push(Math.max(0, seen - acked));
    out.filtered.push(Math.max(0, filtered - acked));
    const c = probeCommits.find((x) => x.end > acked);
    if (c === undefined) continue;
    out.parts.pipeline.push(Math.max(0, filtered - acked));
    out.parts.batchWait.push(c.start - filtered);
    out.parts.storeCommit.push(c.end - c.start);
    out.parts.apiSeen.push(seen - c.end);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const dataDir = mkdtempSync(join(tmpdir(), 'bench-cubes-'));
const log = await openEmbeddedLog({ dir: join(dataDir, 'log'), fsync: true, retentionCheckIntervalMs: 0 });
const topics = topicNames();
await ensurePlatformTopics(log, { partitions: PARTITIONS });
const end = Math.floor(Date.now() / HOUR) * HOUR;
const recordBytes = await fillHistory(log, topics, end);
await validate(log, topics);
console.log(
  `cubes bench: embedded log (fsync on), DuckDB store, ${PARTITIONS} partitions; history ${n0(HISTORY)} events (~${n0(recordBytes)} B) over 7 days; ` +
    `median of ${RUNS} runs; ${n0(QUERIES)} query rounds; freshness at ${RATES.map(n0).join(', ')} events/s with ${PROBES} probes each`,
);

// 1. Write throughput: a fresh writer catching up on the backlog, against a raw read of the topic.
const raw: number[] = [];
const writes: number[] = [];
let batchSizes: number[] = [];
for (let run = 0; run < RUNS; run++) {
  raw.push(await rawRead(log, topics.filtered, PARTITIONS, HISTORY));
  const w = await absorb(log, topics);
  writes.push(w.rate);
  batchSizes = w.commits;
  process.stderr.write(`  run ${run + 1}/${RUNS}: raw read ${n0(raw.at(-1)!)}/s, cubes writer ${n0(w.rate)}/s (${w.commits.length} commits, median ${n0(median(w.commits))} events)\n`);
}

// The platform on the same log: its own writer absorbs the same backlog.
const t0 = performance.now();
const platform = await startPlatform({
  log,
  dataDir,
  port: 0,
  host: '127.0.0.1',
  logger: pino({ level: 'warn' }),
  config: { merchants: MERCHANTS, topics: { partitions: PARTITIONS } },
});
const shop = MERCHANTS[0]!;
const allPath = `/v1/merchants/shop/metrics?granularity=day&metrics=events&from=${iso(end - 8 * DAY)}&to=${iso(end + DAY)}`;
while (total(await api<Series>(platform, shop.readToken, allPath), 'events') < HISTORY) {
  if (performance.now() - t0 > 30 * 60_000) throw new Error('the platform did not absorb the history within 30 minutes');
  await sleep(50);
}
const platformAbsorb = (performance.now() - t0) / 1000;
process.stderr.write(`  platform start → ${n0(HISTORY)} events visible in the API: ${platformAbsorb.toFixed(1)} s\n`);

// 2. Query latency, interleaved rounds, against the store's own round trip.
const base = '/v1/merchants/shop/metrics';
const VIS = 'events,sessions,orders,revenue,visitors';
const queries: Array<{ name: string; path: string }> = [
  { name: 'day × 7 days', path: `${base}?granularity=day&from=${iso(end - 7 * DAY)}&to=${iso(end)}` },
  { name: 'day × 7 days, with visitors', path: `${base}?granularity=day&from=${iso(end - 7 * DAY)}&to=${iso(end)}&metrics=${VIS}` },
  { name: 'hour × 1 day by device_type', path: `${base}?granularity=hour&from=${iso(end - DAY)}&to=${iso(end)}&group_by=device_type` },
  { name: 'hour × 1 day by device_type, with visitors', path: `${base}?granularity=hour&from=${iso(end - DAY)}&to=${iso(end)}&group_by=device_type&metrics=${VIS}` },
  { name: 'minute × 1 hour', path: `${base}?granularity=minute&from=${iso(end - HOUR)}&to=${iso(end)}` },
  { name: 'minute × 1 hour, with visitors', path: `${base}?granularity=minute&from=${iso(end - HOUR)}&to=${iso(end)}&metrics=${VIS}` },
];
const store = platform.cubeStore!;
const select1: number[] = [];
const healthz: number[] = [];
const lat = queries.map(() => [] as number[]);
const rowsOf = queries.map(() => 0);
for (let round = -20; round < QUERIES; round++) {
  let t = performance.now();
  await store.db.query('SELECT 1');
  if (round >= 0) select1.push(performance.now() - t);
  t = performance.now();
  await (await fetch(`${platform.url}/healthz`)).arrayBuffer();
  if (round >= 0) healthz.push(performance.now() - t);
  for (const [i, q] of queries.entries()) {
    t = performance.now();
    const s = await api<Series>(platform, shop.readToken, q.path);
    if (round >= 0) lat[i]!.push(performance.now() - t);
    rowsOf[i] = s.series.length;
  }
}
const weekEvents = total(await api<Series>(platform, shop.readToken, queries[0]!.path), 'events');
const sketchRows = Number((await store.db.query(`SELECT count(*) AS n FROM cube_visitors_q WHERE merchant = 'shop'`))[0]!['n']);
process.stderr.write(`  queries done (the 7-day query counts ${n0(weekEvents)} events; ${n0(sketchRows)} quarter-hour sketch rows)\n`);

// 3. Freshness under load, at each rate.
const watch = watchCommits(store);
const fresh: Array<{ rate: number; f: Freshness }> = [];
for (const [i, rate] of RATES.entries()) {
  fresh.push({ rate, f: await freshness(platform, watch, rate, i * PROBES) });
  process.stderr.write(`  freshness at ${n0(rate)} events/s: p50 ${ms(quantile(fresh.at(-1)!.f.api, 0.5))}, p99 ${ms(quantile(fresh.at(-1)!.f.api, 0.99))}\n`);
}
await platform.close();
await log.close();
rmSync(dataDir, { recursive: true, force: true });

const rows: string[] = [];
const r = median(raw);
const w = median(writes);
rows.push(`| raw read of events.filtered (reference) | ${n0(r)} events/s | | 1.00 |`);
rows.push(`| cubes writer catching up on ${n0(HISTORY)} events (fresh DuckDB file) | ${n0(w)} events/s | raw read | ${(w / r).toFixed(3)} |`);
rows.push(`| platform start → the same backlog visible in the API | ${platformAbsorb.toFixed(1)} s (${n0(HISTORY / platformAbsorb)} events/s) | raw read | ${(HISTORY / platformAbsorb / r).toFixed(3)} |`);
const s50 = quantile(select1, 0.5);
rows.push(`| store round trip, \`SELECT 1\` (reference) p50 / p99 | ${ms(s50)} / ${ms(quantile(select1, 0.99))} | | 1.0 |`);
rows.push(`| HTTP round trip, GET /healthz p50 / p99 | ${ms(quantile(healthz, 0.5))} / ${ms(quantile(healthz, 0.99))} | SELECT 1 | ${(quantile(healthz, 0.5) / s50).toFixed(1)} |`);
for (const [i, q] of queries.entries()) {
  const l = lat[i]!;
  rows.push(`| query ${q.name} (${rowsOf[i]} rows) p50 / p99 | ${ms(quantile(l, 0.5))} / ${ms(quantile(l, 0.99))} | SELECT 1 | ${(quantile(l, 0.5) / s50).toFixed(1)} |`);
}
const p = (xs: number[]) => `${ms(quantile(xs, 0.5))} / ${ms(quantile(xs, 0.99))}`;
for (const { rate, f } of fresh) {
  const a50 = quantile(f.api, 0.5);
  const a99 = quantile(f.api, 0.99);
  const r50 = quantile(f.filtered, 0.5);
  const r99 = quantile(f.filtered, 0.99);
  rows.push(`| at ${n0(rate)} events/s: collector 200 → events.filtered (reference) p50 / p99 | ${p(f.filtered)} | | 1.0 / 1.0 |`);
  rows.push(`| at ${n0(rate)} events/s: **freshness**, collector 200 → visible in the API, p50 / p99 (${f.api.length} probes) | ${p(f.api)} | 200 → events.filtered | ${(a50 / r50).toFixed(1)} / ${(a99 / r99).toFixed(1)} |`);
}

console.log('\n| measure | figure | reference | ratio |\n|---|---|---|---|');
for (const row of rows) console.log(row);

for (const { rate, f } of fresh) {
  const sizes = f.storeCommits.map((c) => c.size);
  const durs = f.storeCommits.map((c) => c.end - c.start);
  const gaps = f.storeCommits.slice(1).map((c, i) => c.start - f.storeCommits[i]!.end);
  console.log(`\nfreshness at ${n0(rate)} events/s, where the time goes (p50 / p99 per probe):`);
  console.log(`  collector 200 → events.filtered (pipeline)                    ${p(f.parts.pipeline)}`);
  console.log(`  events.filtered → store commit starts (batch, sketch merge)   ${p(f.parts.batchWait)}`);
  console.log(`  store commit (one DuckDB transaction)                        ${p(f.parts.storeCommit)}`);
  console.log(`  commit done → the API poll sees it                           ${p(f.parts.apiSeen)}   (one API poll round trip: ${p(f.polls)})`);
  console.log(
    `  during the probes: ${f.storeCommits.length} store commits of ${n0(median(sizes))} events (median); store commit p50 / p99 ${p(durs)}, max ${ms(Math.max(...durs))}; ` +
      `gap between commits ${p(gaps)}; writer commit (shopstream_cubes_commit_seconds, incl. sketch merge) mean ${ms(f.writerCommitMeanMs)}`,
  );
  console.log(`  load: ${n0(f.loadRate)} events/s acknowledged, ${f.loadFailed} failed; all acknowledged load events in the API at the end: ${f.loadVisible ? 'yes' : 'NO'}; probes missed (>10 s): ${f.missed}`);
  console.log(`  raw freshness (ms): ${f.api.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`  raw events.filtered (ms): ${f.filtered.map((x) => x.toFixed(0)).join(' ')}`);
}
console.log(`\ncatch-up commits of the last writer run: ${batchSizes.length}, median ${n0(median(batchSizes))} events, max ${n0(Math.max(...batchSizes))}`);
console.log(`raw: writer ${writes.map(n0).join(', ')} events/s; raw read ${raw.map(n0).join(', ')} events/s`);
console.log('\ntargets: freshness p99 < 1 s');
