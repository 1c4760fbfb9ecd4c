/**
 * `npm start`: runs Shopstream embedded (no servers) with demo traffic.
 *
 * The platform (collector, merchants, beacon, pipeline) runs on the embedded log in `.data/`, with
 * a demo merchant. A storefront simulator sends Segment batches to the collector over HTTP, as a
 * shop's analytics.js would, and its human visitors pass the beacon (crawlers do not). The cubes
 * role keeps the analytics (served at /v1/merchants/demo/…). Until the dashboard lands, the home
 * page shows human events per type and minute (from
 * events.filtered) and bot events per reason (from events.bots), counted by a small topology.
 *
 *   PORT=8080 SHOPSTREAM_DATA=.data DEMO_RATE=200 npm start
 *   npm start -- --no-demo          (the platform and the demo merchant, without demo traffic)
 */
import { resolve } from 'node:path';
import { pino } from 'pino';
import { StreamsApp, StreamsBuilder, Serdes, TimeWindows } from '@shopstream/streams';
import type { Windowed } from '@shopstream/streams';
import { startPlatform, type Platform } from '../packages/platform/src/platform.ts';
import type { PipelineEvent } from '../packages/platform/src/pipeline/topology.ts';
import { StorefrontSimulator, isSimulatedCrawler } from '../packages/platform/src/simulate/storefront.ts';
import { isPlatformError } from '../packages/platform/src/errors.ts';

const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'info' });
const port = Number(process.env['PORT'] ?? 8080);
const dataDir = resolve(process.env['SHOPSTREAM_DATA'] ?? '.data');
const rate = Number(process.env['DEMO_RATE'] ?? 200);
const demoTraffic = !process.argv.slice(2).includes('--no-demo');

const DEMO = { id: 'demo', writeKey: 'wk_demo_storefront', readToken: 'rt_demo_dashboard', timezone: 'Europe/Paris', currency: 'EUR' };
const COUNTS_TOPIC = 'demo.event-counts';

// Latest counts, read back from the output topic of the topology below.
const counts = new Map<string, number>();
const simulator = new StorefrontSimulator({ seed: Date.now() % 100000, currency: DEMO.currency });
let sent = 0;
let refused = 0;

let platform: Platform;
try {
  platform = await startPlatform({
    config: { merchants: [DEMO] },
    dataDir,
    port,
    logger,
    routes: (app) => {
      app.get('/api/demo', async () => ({
        sent,
        refused,
        truth: simulator.truth,
        counts: Object.fromEntries([...counts].sort().slice(-80)),
      }));
      app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(page()));
    },
  });
} catch (err) {
  if ((err as { code?: string }).code === 'EADDRINUSE') {
    console.error(`Port ${port} is in use. Set PORT to a free port, e.g. PORT=8081 npm start`);
  } else if (isPlatformError(err) || (err as { code?: string }).code === 'SHOP_ERR_LOG_LOCKED') {
    console.error(`${(err as Error).message}\nIf the data folder is damaged or from an older version, start over with: rm -rf ${dataDir}`);
  } else {
    console.error(err);
  }
  process.exit(1);
}

await platform.log.admin.createTopics([{ name: COUNTS_TOPIC, partitions: 1 }]);
const b = new StreamsBuilder();
const human = b.stream<string, PipelineEvent>(platform.topics.filtered, { keySerde: Serdes.string(), valueSerde: Serdes.json<PipelineEvent>() }).mapValues((e): string => e.event.event);
b.stream<string, PipelineEvent>(platform.topics.bots, { keySerde: Serdes.string(), valueSerde: Serdes.json<PipelineEvent>() })
  .mapValues((e): string => `bot (${e.bot?.reason ?? '?'})`)
  .merge(human)
  .groupBy((_visitor, name) => name, { name: 'by-event', keySerde: Serdes.string(), valueSerde: Serdes.string() })
  .windowedBy(TimeWindows.ofSizeAndGrace(60_000, 5_000))
  .count({ name: 'event-counts' })
  .toStream()
  .map((w: Windowed<string>, n) => ({ key: `${new Date(w.start).toISOString().slice(11, 16)} ${w.key}`, value: n }))
  .to(COUNTS_TOPIC, { valueSerde: Serdes.long() });
const app = new StreamsApp(b.build(), {
  applicationId: 'demo-counts',
  log: platform.log,
  stateDir: resolve(dataDir, 'state'),
  logger,
  onError: (err) => logger.error({ err }, `the demo topology stopped. To start over: rm -rf ${dataDir}`),
});
await app.start();
const reader = platform.log.createReader();
reader.assign([{ topic: COUNTS_TOPIC, partition: 0, offset: 0 }]);
let reading = true;
const readLoop = (async () => {
  while (reading) {
    const records = await reader.poll(500).catch(() => []);
    for (const r of records) counts.set(r.key!.toString(), Serdes.long().deserialize(r.value)!);
  }
})();

// Demo traffic: Segment batches over HTTP, as storefronts send them. Each human visitor runs the
// beacon once (challenge, then validate, with its own user agent), as beacon.js does in a browser.
const validated = new Set<string>();
function runBeacon(anonymousId: string, userAgent: string): void {
  validated.add(anonymousId);
  const q = `writeKey=${DEMO.writeKey}&anonymousId=${encodeURIComponent(anonymousId)}`;
  fetch(`${platform.url}/v1/beacon/challenge?${q}`, { headers: { 'user-agent': userAgent } })
    .then((r) => r.json() as Promise<{ token: string }>)
    .then(({ token }) =>
      fetch(`${platform.url}/v1/beacon/validate`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'user-agent': userAgent },
        body: JSON.stringify({ writeKey: DEMO.writeKey, anonymousId, token }),
      }),
    )
    .catch((err: unknown) => logger.warn({ err }, 'demo beacon failed'));
}
const auth = `Basic ${Buffer.from(`${DEMO.writeKey}:`).toString('base64')}`;
const perTick = Math.max(1, Math.round(rate / 10));
const traffic = setInterval(() => {
  if (!demoTraffic) return;
  const batch = simulator.next(perTick);
  for (const m of batch) {
    const id = m['anonymousId'] as string;
    const ua = (m['context'] as { userAgent: string }).userAgent;
    if (!validated.has(id) && !isSimulatedCrawler(ua)) runBeacon(id, ua);
  }
  fetch(`${platform.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body: JSON.stringify({ batch, sentAt: new Date().toISOString() }) })
    .then(async (res) => {
      if (res.status === 200) sent += batch.length;
      else refused += batch.length;
      await res.arrayBuffer();
    })
    .catch((err: unknown) => logger.warn({ err }, 'demo traffic request failed'));
}, 100);

console.log(`\nShopstream is running embedded (data in ${dataDir}): collector, pipeline, cubes and analytics API${demoTraffic ? `, with demo traffic (${rate} events/s)` : ''}.`);
console.log(`  Open          ${platform.url}/`);
console.log(`  Merchant      ${DEMO.id} (${DEMO.timezone}, ${DEMO.currency})   write key ${DEMO.writeKey}   read token ${DEMO.readToken}`);
console.log(`  Collector     ${platform.url}/v1/batch   (Segment-compatible; HTTP Basic with the write key)`);
console.log(`  Analytics     curl -H 'Authorization: Bearer ${DEMO.readToken}' '${platform.url}/v1/merchants/${DEMO.id}/metrics?granularity=minute&metrics=events,orders,revenue'`);
console.log(`  Metrics       ${platform.url}/metrics`);
console.log('Ctrl-C to stop; the next start goes on from where this one stopped.\n');

function page(): string {
  const rows = [...counts]
    .sort()
    .reverse()
    .slice(0, 40)
    .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${v}</td></tr>`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><meta name="viewport" content="width=device-width">
<title>Shopstream (embedded)</title></head><body style="font-family:system-ui;max-width:48rem;margin:2rem auto;padding:0 1rem">
<h1>Shopstream, embedded</h1>
<p>Demo storefront: ${sent} events accepted by the collector${refused ? `, ${refused} refused` : ''}. Topology <b>${app.state}</b>.
<a href="/metrics">Prometheus metrics</a> · <a href="/api/demo">JSON</a> · <a href="/readyz">readiness</a></p>
<p>Send your own: <code>curl -u ${DEMO.writeKey}: ${platform.url}/v1/track -d '{"messageId":"m1","anonymousId":"me","event":"Product Viewed","properties":{"product_id":"p1","price":19.99}}'</code></p>
<p>Human events (events.filtered) per type, and bot events (events.bots) per reason; a visitor's events wait up to 30 s for its beacon validation.</p>
<table aria-label="Events per type per minute (UTC)"><thead><tr><th align="left">minute (UTC) · event</th><th align="left">events</th></tr></thead><tbody>${rows}</tbody></table></body></html>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('stopping: committing and closing …');
  clearInterval(traffic);
  reading = false;
  await readLoop;
  await reader.close();
  await app.close();
  await platform.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
