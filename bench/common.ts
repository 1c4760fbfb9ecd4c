/** What every benchmark shares: medians and quantiles, a raw-read reference, and the wait for a streams application to commit to the end of its input. */
import type { Log, StreamsApp, TopicPartition } from '../packages/streams/src/index.ts';

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** Records/s of a plain reader reading `n` records of a topic's `partitions` from the start (the reference of the throughput benches). Checks they average at least `minBytes`. */
export async function rawRead(log: Log, topic: string, partitions: number, n: number, minBytes = 0): Promise<number> {
  const reader = log.createReader({ clientId: 'bench-raw' });
  reader.assign(Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0 })));
  const t0 = performance.now();
  let read = 0;
  let bytes = 0;
  while (read < n) {
    const recs = await reader.poll(1000);
    read += recs.length;
    for (const r of recs) bytes += r.value?.length ?? 0;
  }
  const s = (performance.now() - t0) / 1000;
  await reader.close();
  if (bytes < n * minBytes) throw new Error('raw read returned short records');
  return read / s;
}

/** The sum of the end offsets of `tps` (measure it before a timed run starts). */
export async function endTotal(log: Log, tps: readonly TopicPartition[]): Promise<number> {
  return (await log.admin.listOffsets(tps, 'latest')).reduce((a, e) => a + e.offset, 0);
}

/** Waits until the group's committed offsets over `tps` add up to `total`; fails fast when `app` stopped on an error. */
export async function untilCommitted(log: Log, groupId: string, tps: readonly TopicPartition[], total: number, app?: StreamsApp, onProgress?: (committed: number) => void): Promise<void> {
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const committed = (await log.admin.committedOffsets(groupId, tps)).reduce((a, c) => a + c.offset, 0);
    onProgress?.(committed);
    if (committed >= total) return;
    if (app?.state === 'error') throw app.error();
  }
}

/**
 * The young generation the bench runs with, for its header: the platform's launchers (`npm start`,
 * `npm run shopstream`, the `shopstream` bin, `npm run bench:*`) give V8 `--max-semi-space-size=64`
 * (docs/configuration.md, "Memory"); `node bench/….ts` alone runs with V8's default, 16 MB.
 */
export function youngGeneration(): string {
  const args = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)];
  const flag = args.filter((a) => a.startsWith('--max-semi-space-size=')).at(-1);
  const mb = flag === undefined ? undefined : Number(flag.split('=')[1]);
  return mb === undefined ? "semi-space V8's default (16 MB; the platform runs with 64: npm run bench:… or node --max-semi-space-size=64)" : `semi-space ${mb} MB`;
}

/** The benches' browser user agent (a validated shopper's). */
export const BENCH_UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';
const NAMES = ['Product Viewed', 'Product Viewed', 'Product List Viewed', 'Product Added', 'Checkout Started', 'Order Completed'];

/** A ~700 B Segment e-commerce track message as a browser sends it; event i cycles through the funnel. */
export function segmentMessage(i: number, visitor: string, at: number, ua = BENCH_UA): Record<string, unknown> {
  const name = NAMES[i % NAMES.length]!;
  const product = { product_id: `sku-${i % 300}`, name: `Product ${i % 300}`, brand: 'Acme', category: 'Shoes', price: 19.99 + (i % 40), quantity: 1 };
  return {
    type: 'track',
    event: name,
    messageId: `m-${i}`,
    anonymousId: visitor,
    timestamp: new Date(at).toISOString(),
    properties:
      name === 'Order Completed'
        ? { order_id: `o-${i}`, total: 59.97, revenue: 54.97, currency: 'USD', products: [product] }
        : name === 'Checkout Started'
          ? { value: 59.97, currency: 'USD', products: [product] }
          : { ...product, currency: 'USD' },
    context: { userAgent: ua, ip: '203.0.113.7', page: { url: `https://shop.example/p/${i % 300}?utm_source=google&utm_medium=cpc`, referrer: 'https://www.google.com/' }, library: { name: 'analytics.js', version: '5' } },
  };
}

let profiles = 0;
/**
 * Runs `fn`; with BENCH_PROFILE=<dir> set, under the CPU profiler, writing `<dir>/<name>-<n>.cpuprofile`
 * (only the measured part, not the bench's setup).
 */
export async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = process.env['BENCH_PROFILE'];
  if (dir === undefined || dir === '') return fn();
  const { Session } = await import('node:inspector/promises');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  // BENCH_PROFILE_KIND=heap: V8's sampling heap profiler (where the bytes are allocated) instead of the CPU profiler.
  const heap = process.env['BENCH_PROFILE_KIND'] === 'heap';
  if (heap) await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  else {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  try {
    return await fn();
  } finally {
    const profile = heap ? (await session.post('HeapProfiler.stopSampling')).profile : (await session.post('Profiler.stop')).profile;
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/${name}-${++profiles}.${heap ? 'heapprofile' : 'cpuprofile'}`, JSON.stringify(profile));
    session.disconnect();
  }
}
