/**
 * `npm start`: runs Shopstream embedded (no servers) with demo traffic.
 *
 * The platform (collector, merchants, beacon, pipeline) runs on the embedded log in `.data/`, with
 * a demo merchant. A storefront simulator sends Segment batches to the collector over HTTP, as a
 * shop's analytics.js would, and its human visitors pass the beacon (crawlers do not). The cubes
 * role keeps the analytics (served at /v1/merchants/demo/…), and the home page is the merchant
 * dashboard (packages/dashboard, built here when missing or stale), signed in as the demo merchant.
 * The capi role forwards the demo shop's events to a local stand-in of Meta's Graph API
 * (packages/meta-sim, started here), so the dashboard's Meta delivery figures move too. The recs
 * role keeps the demo shop's recommendations up to date.
 *
 *   PORT=8080 SHOPSTREAM_DATA=.data DEMO_RATE=200 npm start
 *   npm start -- --no-demo          (the platform and the demo merchant, without demo traffic)
 */
import { resolve } from 'node:path';
import { pino } from 'pino';
import { ensureDashboardBuilt } from '../packages/dashboard/build.ts';
import { startPlatform, type Platform } from '../packages/platform/src/platform.ts';
import { StorefrontSimulator, isSimulatedCrawler } from '../packages/platform/src/simulate/storefront.ts';
import { isPlatformError } from '../packages/platform/src/errors.ts';
import { startMetaSim } from '../packages/meta-sim/src/index.ts';

const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'info' });
const port = Number(process.env['PORT'] ?? 8080);
const dataDir = resolve(process.env['SHOPSTREAM_DATA'] ?? '.data');
const rate = Number(process.env['DEMO_RATE'] ?? 200);
const demoTraffic = !process.argv.slice(2).includes('--no-demo');

const DEMO = { id: 'demo', writeKey: 'wk_demo_storefront', readToken: 'rt_demo_dashboard', timezone: 'Europe/Paris', currency: 'EUR' };
const simulator = new StorefrontSimulator({ seed: Date.now() % 100000, currency: DEMO.currency });
let sent = 0;
let refused = 0;

try {
  await ensureDashboardBuilt();
} catch (err) {
  console.error(`The dashboard could not be built (the platform starts anyway; / says how to build it): ${(err as Error).message}`);
}

// Meta's stand-in: it validates every server event like the Graph API and keeps only counters.
const META = { pixelId: 'demo-pixel', accessToken: 'demo-capi-token' };
const meta = await startMetaSim({ latencyMs: 30, record: false, pixels: [META] });

let platform: Platform;
try {
  platform = await startPlatform({
    config: { merchants: [{ ...DEMO, meta: META }], meta: { baseUrl: meta.url } },
    dataDir,
    port,
    logger,
    // Only this demo signs the dashboard in by itself, as the demo merchant.
    dashboard: { demo: { merchant: DEMO.id, readToken: DEMO.readToken, timezone: DEMO.timezone, currency: DEMO.currency } },
    routes: (app) => {
      app.get('/api/demo', async () => ({ sent, refused, truth: simulator.truth }));
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

console.log(`\nShopstream is running embedded (data in ${dataDir}): collector, pipeline, cubes and analytics API, lake, Meta forwarder, recommendations${demoTraffic ? `, with demo traffic (${rate} events/s)` : ''}.`);
console.log(`  Open          ${platform.url}/   (the dashboard, signed in as the demo merchant)`);
console.log(`  Merchant      ${DEMO.id} (${DEMO.timezone}, ${DEMO.currency})   write key ${DEMO.writeKey}   read token ${DEMO.readToken}`);
console.log(`  Collector     ${platform.url}/v1/batch   (Segment-compatible; HTTP Basic with the write key)`);
console.log(`  Analytics     curl -H 'Authorization: Bearer ${DEMO.readToken}' '${platform.url}/v1/merchants/${DEMO.id}/metrics?granularity=minute&metrics=events,orders,revenue'`);
console.log(`  Status        curl -H 'Authorization: Bearer ${DEMO.readToken}' '${platform.url}/v1/merchants/${DEMO.id}/status'   (pipeline health, from the metrics)`);
console.log(`  Recs          curl -u ${DEMO.writeKey}: '${platform.url}/v1/merchants/${DEMO.id}/recommendations?model=frequently-bought-together&product_id=sku-0'   (the demo's best seller; docs/recommendations.md)`);
console.log(`  Meta CAPI     the demo shop's events go to a local stand-in of Meta's Graph API at ${meta.url} (stats: ${meta.url}/_sim/stats); docs/meta-capi.md`);
console.log(`  Metrics       ${platform.url}/metrics`);
console.log('Ctrl-C to stop; the next start goes on from where this one stopped.\n');

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('stopping: committing and closing …');
  clearInterval(traffic);
  await platform.close();
  await meta.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
