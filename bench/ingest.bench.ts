/**
 * Collector ingest throughput: batches of 100 Segment events over loopback HTTP (autocannon) into
 * the embedded log, fsync on. The reference, measured in the same run, is the same Fastify server
 * and body decoding with a route that parses the batch and discards it (the ceiling of the HTTP
 * layer on this machine). Each server runs in its own process; rounds alternate between the two;
 * figures are medians.
 *
 *   node bench/ingest.bench.ts            (BENCH_ROUNDS=3 BENCH_SECONDS=8 BENCH_CONNECTIONS=16)
 *   BENCH_PROFILE=<dir>                   a CPU profile of each server under load (start-up and shutdown left out)
 *
 * Also measured, in the same rounds: a floor (bench/ingest-server.ts `floor`): the ceiling's route plus
 * the least durable work a collector writing one record per event must do (cut the body into events,
 * append them to the embedded log with fsync, answer once durable), with no authentication, checks or
 * headers. Its ratio to the ceiling bounds what any such collector can reach on this machine.
 * BENCH_FLOOR_BODY=1 makes the floor append each body whole, as one record (see ingest-server.ts).
 *
 * Prints events/s accepted, p99 latency, and the ratio of the collector to the ceiling; per round, the
 * cores kept busy by the server and by the load generator (this process), which share the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { median } from './common.ts';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 8);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 16);
const BATCH = 100;
const WRITE_KEY = 'wk_bench_write_key';

const names = ['Product Viewed', 'Product Viewed', 'Product Viewed', 'Product List Viewed', 'Product Added', 'Checkout Started', 'Order Completed'];

function event(i: number): Record<string, unknown> {
  const name = names[i % names.length]!;
  const product = { product_id: `sku-${i % 500}`, sku: `SKU-${i % 500}`, name: `Product ${i % 500}`, brand: 'Acme', category: 'Shoes', price: 19.99 + (i % 50), quantity: 1 + (i % 3) };
  const now = new Date().toISOString();
  const properties: Record<string, unknown> =
    name === 'Order Completed'
      ? { order_id: `o-${i}`, total: 59.97, revenue: 54.97, shipping: 5, currency: 'USD', products: [product, { ...product, product_id: 'sku-2' }] }
      : name === 'Product List Viewed'
        ? { list_id: 'shoes', category: 'Shoes', products: [product] }
        : name === 'Checkout Started'
          ? { value: 59.97, currency: 'USD', products: [product] }
          : { ...product, currency: 'USD' };
  return {
    type: 'track',
    event: name,
    messageId: randomUUID(),
    anonymousId: `anon-${i % 5000}`,
    properties,
    context: {
      userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15',
      ip: '203.0.113.10',
      page: { url: `https://shop.example/p/${i % 500}?utm_source=google&utm_medium=cpc`, path: `/p/${i % 500}`, referrer: 'https://www.google.com/' },
      library: { name: 'analytics.js', version: '5.0.0' },
    },
    timestamp: now,
  };
}

const bodies = Array.from({ length: 40 }, (_, b) => JSON.stringify({ batch: Array.from({ length: BATCH }, (_, i) => event(b * BATCH + i)), sentAt: new Date().toISOString() }));
const avgBytes = Math.round(bodies.reduce((a, b) => a + b.length, 0) / bodies.length);

async function startServer(mode: string): Promise<{ port: number; child: ChildProcess; stop: () => Promise<string> }> {
  const nodeArgs = process.env['BENCH_SERVER_NODE_ARGS']?.split(' ').filter((a) => a !== '') ?? [];
  const child = spawn(process.execPath, [...nodeArgs, 'bench/ingest-server.ts', mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearInterval(t);
        resolve(Number(m[1]));
      }
    }, 20);
    child.on('exit', (code) => reject(new Error(`${mode} server exited with ${code}`)));
  });
  const stop = () =>
    new Promise<string>((resolve) => {
      child.on('exit', () => resolve(out));
      child.kill('SIGTERM');
    });
  return { port, child, stop };
}

interface Round {
  eventsPerS: number;
  p99Ms: number;
  non2xx: number;
  /** Cores kept busy during the load (all threads), by the server and by this process (the load generator); undefined without /proc. */
  serverCores: number | undefined;
  loadCores: number;
}

/** CPU seconds a process has used, all threads (Linux /proc; clock ticks of 1/100 s), or undefined. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

async function load(port: number, pid: number): Promise<Round> {
  let n = 0;
  const server0 = cpuSeconds(pid);
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: CONNECTIONS,
    duration: SECONDS,
    requests: [
      {
        method: 'POST',
        path: '/v1/batch',
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}` },
        setupRequest: (req) => ({ ...req, body: bodies[n++ % bodies.length] }),
      },
    ],
  });
  const wall = (performance.now() - t0) / 1000;
  const server1 = cpuSeconds(pid);
  const own = process.cpuUsage(own0);
  return {
    eventsPerS: (result['2xx'] * BATCH) / result.duration,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx + result.errors,
    serverCores: server0 === undefined || server1 === undefined ? undefined : (server1 - server0) / wall,
    loadCores: (own.user + own.system) / 1e6 / wall,
  };
}


const MODES = ['ceiling', 'floor', 'collector'] as const;
const results: Record<(typeof MODES)[number], Round[]> = { ceiling: [], floor: [], collector: [] };
let recordsChecked = 0;
let accepted = 0;
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of MODES) {
    const s = await startServer(mode);
    const round = await load(s.port, s.child.pid!);
    const out = await s.stop();
    results[mode].push(round);
    if (mode === 'collector') {
      recordsChecked += Number(/RECORDS (\d+)/.exec(out)?.[1] ?? 0);
      accepted += Math.round(round.eventsPerS * SECONDS);
    }
    const cores = `${round.serverCores === undefined ? '' : `server ${round.serverCores.toFixed(2)} cores, `}load generator ${round.loadCores.toFixed(2)} cores`;
    console.log(`round ${r + 1} ${mode.padEnd(9)} ${Math.round(round.eventsPerS).toLocaleString('en')} events/s  p99 ${round.p99Ms} ms  non-2xx ${round.non2xx}  (${cores})`);
  }
}

const ceiling = median(results.ceiling.map((x) => x.eventsPerS));
const collector = median(results.collector.map((x) => x.eventsPerS));
const floor = median(results.floor.map((x) => x.eventsPerS));
console.log(`\ningest, batches of ${BATCH} events (~${Math.round(avgBytes / BATCH)} B/event), ${CONNECTIONS} connections, ${SECONDS} s x ${ROUNDS} rounds`);
console.log(`ceiling (parse and discard): ${Math.round(ceiling).toLocaleString('en')} events/s, p99 ${median(results.ceiling.map((x) => x.p99Ms))} ms`);
console.log(`floor (parse, cut, one durable record per event, nothing else): ${Math.round(floor).toLocaleString('en')} events/s, p99 ${median(results.floor.map((x) => x.p99Ms))} ms, ratio ${(floor / ceiling).toFixed(2)}`);
console.log(`collector (embedded log, fsync): ${Math.round(collector).toLocaleString('en')} events/s, p99 ${median(results.collector.map((x) => x.p99Ms))} ms`);
console.log(`ratio collector/ceiling: ${(collector / ceiling).toFixed(2)}  (targets: >= 50,000 events/s and >= 0.70)`);
console.log(`records in events.raw: ${recordsChecked.toLocaleString('en')} (acknowledged: ~${accepted.toLocaleString('en')})`);
