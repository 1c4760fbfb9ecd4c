/**
 * The Meta forwarder (packages/platform/src/capi/forwarder.ts): events/s from capi.outbox (embedded
 * log) to a local Graph API stand-in (@shopstream/meta-sim, in its own process) that answers after
 * 50 ms, first with every request accepted, then with 5% of them failing with a 500 (retried).
 *
 * Reference, measured in the same run: the same events, already cut into 1,000-event request bodies,
 * POSTed to the same server with the same number of requests in flight by a bare fetch loop (no
 * log, no offsets, no acknowledged-id store, no retries): what the HTTP path alone allows here.
 *
 *   npm run bench:capi            (BENCH_EVENTS=200000 BENCH_RUNS=3 BENCH_PIXELS=4)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openEmbeddedLog } from '../packages/streams/src/log/embedded/index.ts';
import { CapiForwarder } from '../packages/platform/src/capi/forwarder.ts';
import { CAPI_HEADERS } from '../packages/platform/src/capi/outbox.ts';
import type { Merchant } from '../packages/platform/src/merchants/model.ts';
import { ensurePlatformTopics, topicNames } from '../packages/platform/src/topics.ts';
import { BENCH_UA, median } from './common.ts';

const N = Number(process.env['BENCH_EVENTS'] ?? 200_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const PIXELS = Number(process.env['BENCH_PIXELS'] ?? 4);
const LATENCY_MS = 50;
const IN_FLIGHT = 32;
const BATCH = 1000;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const merchantIds = Array.from({ length: PIXELS }, (_, i) => `m${i}`);
const merchants = new Map<string, Merchant>(
  merchantIds.map((id) => [id, { id, writeKeys: [], revokedWriteKeys: [], readTokens: [], timezone: 'UTC', currency: 'EUR', meta: { pixelId: `px-${id}`, accessToken: `token-${id}` }, createdAt: 0, updatedAt: 0 }]),
);

/** A Purchase or ViewContent server event as the capi topology writes it (~600 B). */
function serverEvent(i: number, at: number): string {
  return JSON.stringify({
    event_name: i % 4 === 0 ? 'Purchase' : 'ViewContent',
    event_time: Math.floor(at / 1000),
    event_id: `e-${i}`,
    action_source: 'website',
    event_source_url: `https://shop.example/products/sku-${i % 300}`,
    user_data: { em: [sha(`shopper${i % 5000}@example.com`)], external_id: [sha(`user-${i % 5000}`)], client_ip_address: '203.0.113.7', client_user_agent: BENCH_UA, fbp: `fb.1.1700000000000.${1000 + (i % 5000)}` },
    custom_data: { value: 19.99 + (i % 40), currency: 'EUR', content_ids: [`sku-${i % 300}`], contents: [{ id: `sku-${i % 300}`, quantity: 1, item_price: 19.99 }], content_type: 'product', num_items: 1 },
  });
}

async function startSim(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'meta-sim-server.ts'), String(LATENCY_MS), ...merchantIds.map((id) => `px-${id}:token-${id}`)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('READY ') && resolve(l.slice(6)));
    child.once('exit', (code) => reject(new Error(`meta-sim exited with ${code}`)));
  });
  return { url, stop: () => new Promise((r) => (child.once('exit', () => r()), child.kill('SIGTERM'))) };
}

async function control(url: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/_sim/${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return (await res.json()) as Record<string, unknown>;
}

/** The reference: pre-built 1,000-event bodies, IN_FLIGHT requests at a time. */
async function direct(url: string, events: readonly string[], failing: boolean): Promise<number> {
  await control(url, 'reset', {});
  if (failing) await control(url, 'faults', { kind: 'server_error', probability: 0.05 });
  const bodies: Array<{ pixel: string; body: string }> = [];
  for (let i = 0; i < events.length; i += BATCH) {
    const id = merchantIds[(i / BATCH) % PIXELS]!;
    bodies.push({ pixel: `px-${id}`, body: `{"data":[${events.slice(i, i + BATCH).join(',')}],"access_token":"token-${id}"}` });
  }
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < bodies.length) {
        const b = bodies[next++]!;
        for (;;) {
          const res = await fetch(`${url}/v21.0/${b.pixel}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b.body });
          await res.arrayBuffer();
          if (res.status === 200) break;
        }
      }
    }),
  );
  return events.length / ((performance.now() - t0) / 1000);
}

async function forward(url: string, failing: boolean): Promise<{ rate: number; inFlightMax: number; retried: number }> {
  await control(url, 'reset', {});
  if (failing) await control(url, 'faults', { kind: 'server_error', probability: 0.05 });
  const dir = mkdtempSync(join(tmpdir(), 'shopstream-bench-capi-'));
  const log = await openEmbeddedLog({ dir, fsync: true });
  try {
    const topics = topicNames('bench.');
    await ensurePlatformTopics(log, { prefix: 'bench.', partitions: 4 });
    const producer = log.createProducer();
    const at = Date.now() - 60_000;
    for (let i = 0; i < N; i += 10_000) {
      await producer.send(
        Array.from({ length: Math.min(10_000, N - i) }, (_, k) => {
          const n = i + k;
          const m = merchantIds[n % PIXELS]!;
          return {
            topic: topics.capiOutbox,
            key: Buffer.from(`v:${m}:visitor-${n % 20_000}`),
            value: Buffer.from(serverEvent(n, at)),
            headers: [
              [CAPI_HEADERS.merchant, Buffer.from(m)],
              [CAPI_HEADERS.eventId, Buffer.from(`e-${n}`)],
              [CAPI_HEADERS.eventTime, Buffer.from(String(at))],
            ] as const,
          };
        }),
      );
    }
    await producer.close();
    const f = new CapiForwarder({ log, topics, groupId: 'bench-capi', merchants: { byId: (id) => merchants.get(id) }, baseUrl: url, maxInFlight: IN_FLIGHT, retryBaseMs: 50, retryMaxMs: 1_000 });
    const t0 = performance.now();
    await f.start();
    const tps = [0, 1, 2, 3].map((partition) => ({ topic: topics.capiOutbox, partition }));
    for (;;) {
      await new Promise((r) => setTimeout(r, 10));
      const committed = await log.admin.committedOffsets('bench-capi', tps);
      if (committed.reduce((a, c) => a + c.offset, 0) >= N) break;
    }
    const rate = N / ((performance.now() - t0) / 1000);
    await f.close();
    const stats = (await control(url, 'stats')) as { eventsAccepted: number; inFlightMax: number; byOutcome: Record<string, number> };
    if (stats.eventsAccepted < N) throw new Error(`Meta accepted ${stats.eventsAccepted} of ${N}`);
    return { rate, inFlightMax: stats.inFlightMax, retried: stats.byOutcome['server_error'] ?? 0 };
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sim = await startSim();
try {
  const events = Array.from({ length: N }, (_, i) => serverEvent(i, Date.now() - 60_000));
  for (const failing of [false, true]) {
    const refs: number[] = [];
    const rates: number[] = [];
    let inFlightMax = 0;
    let retried = 0;
    for (let run = 0; run < RUNS; run++) {
      refs.push(await direct(sim.url, events, failing));
      const r = await forward(sim.url, failing);
      rates.push(r.rate);
      inFlightMax = Math.max(inFlightMax, r.inFlightMax);
      retried += r.retried;
    }
    const rate = median(rates);
    const ref = median(refs);
    console.log(
      `capi forwarder, ${LATENCY_MS} ms answers${failing ? ', 5% of requests failing (500, retried)' : ''}: ${Math.round(rate).toLocaleString('en')} events/s ` +
        `(median of ${RUNS}; ${(rate / ref).toFixed(2)} of a bare fetch loop's ${Math.round(ref).toLocaleString('en')}/s; ${PIXELS} pixels, up to ${IN_FLIGHT} requests in flight, ${inFlightMax} seen at once by Meta` +
        `${failing ? `, ${retried} failed requests retried` : ''}); target 20,000`,
    );
  }
} finally {
  await sim.stop();
}
