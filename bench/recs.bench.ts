/**
 * Recommendations: freshness and serving latency, with background traffic of `BENCH_RATE` events/s
 * (sessions of product views and orders of a 2,000-product catalogue, sent with a server write key),
 * in two deployments:
 *
 * - `embedded`, one process: every role on one event loop (collector, pipeline, the recs topology
 *   and the API), as `npm start` runs them.
 * - `kafka`, the serving deployment: this process runs collector, pipeline and the recs topology on
 *   Kafka; a second process, `shopstream api`, runs no topology and answers from the recs topics it
 *   tails. Requests and freshness probes go to that process.
 *
 * Figures, per deployment:
 * - Freshness: a probe order of two products never seen before goes through the collector; the
 *   time from its 200 until "frequently bought together" for the first product answers the second.
 *   Reference in the same run: the time from the same 200 until the order is on events.filtered
 *   (what the pipeline alone takes). Target: p99 < 1 s.
 * - Latency: GET /recommendations at a fixed 1,000 requests/s (autocannon in another process, 16
 *   connections) for known products, while the background traffic goes on, then again once it has
 *   stopped. References in the same run: GET /healthz at the same rate on the same server, and first,
 *   alone on the machine, a bare Fastify server answering a constant (the harness's floor). Target:
 *   p99 < 10 ms. In the embedded deployment the bench also prints its own process's event-loop
 *   delay (the stream processing's commits and GC pauses are what requests wait behind).
 *
 *   npm run bench:recs    (BENCH_RATE=500 BENCH_PROBES=100 BENCH_SECONDS=10 BENCH_LOGS=embedded,kafka;
 *                          kafka needs a broker: npm run kafka:start; KAFKA_BOOTSTRAP=127.0.0.1:9092)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { startPlatform, type Platform } from '../packages/platform/src/platform.ts';
import type { ShopstreamConfig } from '../packages/platform/src/config.ts';
import type { PipelineEvent } from '../packages/platform/src/pipeline/topology.ts';
import { quantile } from './common.ts';

const RATE = Number(process.env['BENCH_RATE'] ?? 500);
const PROBES = Number(process.env['BENCH_PROBES'] ?? 100);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
const LOGS = (process.env['BENCH_LOGS'] ?? 'embedded,kafka').split(',');
const BOOTSTRAP = process.env['KAFKA_BOOTSTRAP'] ?? '127.0.0.1:9092';
const SERVER_KEY = 'sk_bench_recs_server_key_01';
const WRITE_KEY = 'wk_bench_recs_storefront';
const READ_TOKEN = 'rt_bench_recs_shop';
const CATALOGUE = 2_000;
const PARTITIONS = 4;
const ROOT = resolve(import.meta.dirname, '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (x: number) => `${x.toFixed(1)} ms`;

const merchants = [{ id: 'shop', writeKey: WRITE_KEY, serverWriteKeys: [SERVER_KEY], readToken: READ_TOKEN, currency: 'EUR', rateLimit: { eventsPerSecond: 1e6, burst: 1e6 } }];
const product = (i: number) => `sku-${i % CATALOGUE}`;

/** The `shopstream api` process: no topology, the recs topics tailed into memory. */
async function startApiProcess(config: ShopstreamConfig, dir: string): Promise<{ child: ChildProcess; url: string }> {
  const configFile = join(dir, 'api.json');
  writeFileSync(configFile, JSON.stringify(config));
  const nodeArgs = process.env['BENCH_API_NODE_ARGS']?.split(' ').filter((a) => a !== '') ?? [];
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'packages/platform/bin/shopstream.ts'), 'api', '--config', configFile, '--port', '0', '--data-dir', join(dir, 'api')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const url = /recommendations: (http:\/\/[^/\s]+)\//.exec(out)?.[1];
    if (url !== undefined) return { child, url };
    if (child.exitCode !== null) throw new Error(`shopstream api exited: ${out}`);
    if (Date.now() > deadline) throw new Error(`shopstream api did not start: ${out}`);
    await sleep(50);
  }
}

async function run(kind: 'embedded' | 'kafka'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shopstream-bench-recs-'));
  const prefix = `bench-recs-${Date.now().toString(36)}.`;
  const config: ShopstreamConfig = {
    merchants,
    topics: { partitions: PARTITIONS, ...(kind === 'kafka' && { prefix }) },
    ...(kind === 'kafka' && { kafka: { brokers: [BOOTSTRAP] } }),
  } as ShopstreamConfig;
  let platform: Platform | undefined;
  let api: { child: ChildProcess; url: string } | undefined;
  try {
    platform = await startPlatform({
      dataDir: dir,
      port: 0,
      logger: pino({ level: 'warn' }),
      roles: ['collector', 'pipeline', 'recs'],
      config,
    });
    const p = platform;
    if (kind === 'kafka') api = await startApiProcess(config, dir);
    const serving = api?.url ?? p.url;
    const deployment = kind === 'embedded' ? 'embedded, one process (collector + pipeline + recs topology + API)' : 'Kafka, `shopstream api` process (no topology) beside collector + pipeline + recs topology';

    const auth = `Basic ${Buffer.from(`${SERVER_KEY}:`).toString('base64')}`;
    let seq = 0;
    const post = (batch: Array<Record<string, unknown>>) =>
      fetch(`${p.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body: JSON.stringify({ batch }) });
    const visitorEvents = (v: number): Array<Record<string, unknown>> => {
      const base = (v * 7919) % CATALOGUE;
      const views = [0, 1, 2, 3].map((k) => ({ type: 'track', event: 'Product Viewed', anonymousId: `v${v}`, properties: { product_id: product(base + k * 13), price: 10, currency: 'EUR' } }));
      const order = { type: 'track', event: 'Order Completed', anonymousId: `v${v}`, properties: { order_id: `o${v}`, currency: 'EUR', total: 20, products: [product(base), product(base + 13)].map((id) => ({ product_id: id, price: 10, quantity: 1 })) } };
      return [...views, order].map((e) => ({ ...e, messageId: `b-${seq++}`, timestamp: new Date().toISOString() }));
    };

    // Warm up: 3,000 visitors' sessions, so the models know the catalogue.
    for (let v = 0; v < 3_000; v += 100) {
      const res = await post(Array.from({ length: 100 }, (_, k) => visitorEvents(v + k)).flat());
      await res.arrayBuffer();
    }
    // Background traffic at RATE events/s (5 events per visitor).
    let loading = true;
    const load = (async () => {
      let v = 3_000;
      const t0 = performance.now();
      let sent = 0;
      while (loading) {
        const batch = Array.from({ length: 10 }, () => visitorEvents(v++)).flat();
        void post(batch).then((r) => r.arrayBuffer(), () => undefined);
        sent += batch.length;
        await sleep(Math.max(0, t0 + (sent / RATE) * 1000 - performance.now()));
      }
    })();

    // Freshness probes.
    const tps = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: p.topics.filtered, partition }));
    const reader = p.log.createReader({ clientId: 'bench-recs-tail' });
    reader.assign((await p.log.admin.listOffsets(tps, 'latest')).map((e) => ({ ...e })));
    const onFiltered = new Map<string, number>();
    let tailing = true;
    const tail = (async () => {
      while (tailing) {
        for (const r of await reader.poll(20)) {
          if (r.key?.toString().startsWith('probe-') !== true) continue;
          onFiltered.set((JSON.parse(r.value!.toString()) as PipelineEvent).event.messageId, performance.now());
        }
      }
    })();
    const fresh: number[] = [];
    const pipeline: number[] = [];
    const readKey = { authorization: `Bearer ${READ_TOKEN}` };
    for (let i = 0; i < PROBES; i++) {
      const [a, b] = [`new-${i}-a`, `new-${i}-b`];
      const id = `probe-order-${i}`;
      const res = await post([{ type: 'track', event: 'Order Completed', anonymousId: `probe-${i}`, messageId: id, timestamp: new Date().toISOString(), properties: { order_id: id, currency: 'EUR', total: 20, products: [a, b].map((x) => ({ product_id: x, price: 10, quantity: 1 })) } }]);
      await res.arrayBuffer();
      const t0 = performance.now();
      for (;;) {
        const r = await fetch(`${serving}/v1/merchants/shop/recommendations?model=frequently-bought-together&product_id=${a}&limit=3&fallback=false`, { headers: readKey });
        const body = (await r.json()) as { items: Array<{ product_id: string }> };
        if (body.items.some((x) => x.product_id === b)) break;
        if (performance.now() - t0 > 10_000) throw new Error(`probe ${i} not visible after 10 s`);
        await sleep(2);
      }
      fresh.push(performance.now() - t0);
      const seen = onFiltered.get(id);
      if (seen !== undefined) pipeline.push(seen - t0);
      await sleep(50 + ((i * 37) % 100));
    }
    tailing = false;
    await tail;
    await reader.close();
    const p99 = quantile(fresh, 0.99);
    const ref99 = quantile(pipeline, 0.99);
    console.log(
      `[${kind}] recs freshness (collector 200 → in the answers), ${PROBES} probes at ${RATE} events/s, ${deployment}: p50 ${ms(quantile(fresh, 0.5))}, p99 ${ms(p99)} ` +
        `(${(p99 / ref99).toFixed(1)}× the pipeline's p99 ${ms(ref99)} to events.filtered, p50 ${ms(quantile(pipeline, 0.5))}); target p99 < 1,000 ms`,
    );

    // Serving latency at 1,000 requests/s.
    const paths = Array.from({ length: 500 }, (_, i) => `/v1/merchants/shop/recommendations?model=${i % 2 === 0 ? 'frequently-bought-together' : 'others-you-may-like'}&product_id=${product(i * 7)}&limit=10`);
    const at = (list: readonly string[]) => fixedRate(serving, list);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const health = await at(['/healthz']);
    const recs = await at(paths);
    loop.disable();
    console.log(
      `[${kind}] recs API at ${Math.round(recs.rps).toLocaleString('en')} requests/s (fixed 1,000/s from another process, ${SECONDS} s, 16 connections, with the ${RATE} events/s going on), ${deployment}: p50 ${recs.p50} ms, p99 ${recs.p99} ms ` +
        `(/healthz on the same server: p50 ${health.p50} ms, p99 ${health.p99} ms); target p99 < 10 ms; models hold ${p.recs!.table.size.entries.toLocaleString('en')} entries; ` +
        `the event-loop delay of the bench's process (collector, pipeline, recs topology${kind === 'embedded' ? ', API' : ''}) p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`,
    );
    loading = false;
    await load;
    // The same, once the background traffic has stopped: what serving costs when the process (and
    // the machine's 2 cores) are not shared with the stream processing.
    await sleep(2_000);
    const healthQuiet = await at(['/healthz']);
    const recsQuiet = await at(paths);
    console.log(
      `[${kind}] recs API at ${Math.round(recsQuiet.rps).toLocaleString('en')} requests/s, no background traffic (models as loaded), ${deployment}: p50 ${recsQuiet.p50} ms, p99 ${recsQuiet.p99} ms ` +
        `(/healthz: p50 ${healthQuiet.p50} ms, p99 ${healthQuiet.p99} ms); target p99 < 10 ms`,
    );
  } finally {
    if (api !== undefined && api.child.exitCode === null) {
      api.child.kill('SIGTERM');
      await new Promise((r) => api!.child.once('exit', r));
    }
    if (platform !== undefined) {
      if (kind === 'kafka') {
        const names = (await platform.log.admin.listTopics()).filter((n) => n.startsWith(prefix));
        await platform.close();
        const { connectKafkaLog } = await import('../packages/streams/src/log/kafka/index.ts');
        const log = await connectKafkaLog({ bootstrapServers: [BOOTSTRAP], clientId: 'bench-recs-clean' });
        await log.admin.deleteTopics(names).catch(() => {});
        await log.close();
      } else await platform.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** p50/p99 of a fixed 1,000 requests/s of GET `list` paths against `url` (autocannon in its own process). */
async function fixedRate(url: string, list: readonly string[]): Promise<{ p50: number; p99: number; rps: number }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'http-load.ts'), url, '1000', String(SECONDS), `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`, ...list], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  await new Promise((r) => child.once('exit', r));
  const r = JSON.parse(out) as { p50: number; p99: number; rps: number; non2xx: number; errors: number };
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${r.non2xx} non-2xx, ${r.errors} errors`);
  return r;
}

/** The harness's floor: the same load against a bare Fastify server that answers a constant, alone on the machine. */
async function floor(): Promise<void> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'bare-server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += String(d);
        const m = /READY (\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', () => reject(new Error(`bare server exited: ${out}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    await fixedRate(url, ['/healthz']); // warm-up (JIT of both sides)
    const r = await fixedRate(url, ['/healthz']);
    console.log(`[floor] bare Fastify answering a constant, alone, at ${Math.round(r.rps).toLocaleString('en')} requests/s: p50 ${r.p50} ms, p99 ${r.p99} ms (what this harness and machine give with no application behind the route)`);
  } finally {
    child.kill('SIGTERM');
  }
}

await floor();
for (const kind of ['embedded', 'kafka'] as const) if (LOGS.includes(kind)) await run(kind);
