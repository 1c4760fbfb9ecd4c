/**
 * The dashboard end to end, in a real browser (Debian's chromium, driven by playwright-core): the
 * platform runs embedded with demo traffic from the storefront simulator, the page signs the demo
 * merchant in, its live figures grow while events flow, its orders and revenue equal the analytics
 * API's, a foreign token is refused, it loads in under a second and weighs under 500 KB sent.
 * Screenshots of every view (laptop and phone widths) go to tmp/dashboard-screenshots/
 * (SHOPSTREAM_SCREENSHOTS to change).
 *
 * @shopstream-test alone — it asserts wall-clock load times, so `npm test` runs it on an idle machine.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { pino } from 'pino';
import type { Log } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { startPlatform, type Platform } from '../../platform/src/platform.ts';
import { StorefrontSimulator, isSimulatedCrawler } from '../../platform/src/simulate/storefront.ts';
import { ensureDashboardBuilt } from '../build.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = resolve(process.env['SHOPSTREAM_SCREENSHOTS'] ?? join(ROOT, 'tmp/dashboard-screenshots'));
const DEMO = { id: 'demo', writeKey: 'wk_demo_e2e_storefront', readToken: 'rt_demo_e2e_dashboard', timezone: 'Europe/Paris', currency: 'EUR' };
const OTHER = { id: 'other-shop', writeKey: 'wk_other_e2e_storefront', readToken: 'rt_other_e2e_dashboard', timezone: 'America/New_York', currency: 'USD' };
const VIEWS = ['now', 'trends', 'funnel', 'products', 'bots', 'experiments', 'pipeline'] as const;
const RATE = 120; // events per second

/** Demo traffic as `npm start` sends it: Segment batches over HTTP, each human visitor passing the beacon once. */
class Traffic {
  private readonly simulator = new StorefrontSimulator({ seed: 42, visitors: 60, currency: DEMO.currency });
  private readonly validated = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<Promise<unknown>>();
  sent = 0;
  private readonly url: string;
  constructor(url: string) {
    this.url = url;
  }
  start(): void {
    const auth = `Basic ${Buffer.from(`${DEMO.writeKey}:`).toString('base64')}`;
    this.timer = setInterval(() => {
      const batch = this.simulator.next(RATE / 10);
      for (const m of batch) {
        const id = m['anonymousId'] as string;
        const ua = (m['context'] as { userAgent: string }).userAgent;
        if (!this.validated.has(id) && !isSimulatedCrawler(ua)) this.beacon(id, ua);
      }
      this.track(
        fetch(`${this.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body: JSON.stringify({ batch, sentAt: new Date().toISOString() }) }).then(async (res) => {
          await res.arrayBuffer();
          if (res.status === 200) this.sent += batch.length;
        }),
      );
    }, 100);
  }
  private beacon(anonymousId: string, userAgent: string): void {
    this.validated.add(anonymousId);
    const q = `writeKey=${DEMO.writeKey}&anonymousId=${encodeURIComponent(anonymousId)}`;
    this.track(
      fetch(`${this.url}/v1/beacon/challenge?${q}`, { headers: { 'user-agent': userAgent } })
        .then((r) => r.json() as Promise<{ token: string }>)
        .then(({ token }) =>
          fetch(`${this.url}/v1/beacon/validate`, { method: 'POST', headers: { 'content-type': 'text/plain', 'user-agent': userAgent }, body: JSON.stringify({ writeKey: DEMO.writeKey, anonymousId, token }) }),
        )
        .then((r) => r.arrayBuffer()),
    );
  }
  private track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }
  /** Stops sending and waits for the requests in flight. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.pending]);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What the callbacks run in the page use of the browser. This file is type-checked without the DOM
 * library, so they read `globalThis as unknown as Browserish` (the cast is erased: they run as is).
 */
interface Browserish {
  document: { querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null; documentElement: { scrollWidth: number } };
  innerWidth: number;
  performance: {
    getEntriesByType(type: string): Array<{ name: string; startTime: number; duration: number; loadEventEnd: number }>;
    getEntriesByName(name: string): Array<{ startTime: number }>;
  };
}

async function api<T>(platform: Platform, path: string, token = DEMO.readToken, merchant = DEMO.id): Promise<{ status: number; body: T }> {
  const res = await fetch(`${platform.url}/v1/merchants/${merchant}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as T };
}

/** The API's orders and revenue (minor units, in the shop's currency) for the page's own range. */
async function apiToday(platform: Platform, from: string, to: string): Promise<{ orders: number; revenue: number }> {
  const q = new URLSearchParams({ granularity: 'day', from, to, metrics: 'orders,revenue' });
  const { status, body } = await api<{ series: Array<{ group: Record<string, string>; orders?: number; revenue?: number }> }>(platform, `/metrics?${q}`);
  assert.equal(status, 200);
  let orders = 0;
  let revenue = 0;
  for (const r of body.series) {
    orders += r.orders ?? 0;
    if ((r.group['currency'] ?? DEMO.currency) === DEMO.currency) revenue += r.revenue ?? 0;
  }
  return { orders, revenue };
}

const kpi = (page: Page, id: string) => page.locator(`#kpi-${id}-value`);
async function kpiValue(page: Page, id: string): Promise<number> {
  return Number(await kpi(page, id).getAttribute('data-value'));
}

/** Screenshots every view; at a phone's width, also checks that none is wider than the screen. */
async function shootAll(page: Page, suffix: string, checkWidth = false): Promise<string[]> {
  const files: string[] = [];
  for (const view of VIEWS) {
    await page.click(`nav a[data-view="${view}"]`);
    await page.waitForSelector(`section#${view}`);
    // Each view's data has arrived when its "Loading…" placeholders are gone.
    await page.waitForFunction((v) => {
      const { document } = globalThis as unknown as Browserish;
      const s = document.querySelector(`section#${v}`);
      return s !== null && !s.textContent!.includes('Loading…') && document.querySelector('main')!.getAttribute('aria-busy') === 'false';
    }, view);
    await sleep(view === 'now' ? 300 : 150);
    if (checkWidth) {
      const widths = await page.evaluate(() => {
        const g = globalThis as unknown as Browserish;
        return { page: g.document.documentElement.scrollWidth, screen: g.innerWidth };
      });
      assert.ok(widths.page <= widths.screen + 1, `${view}: no horizontal scrolling at ${widths.screen} px (the page is ${widths.page} px wide)`);
    }
    const file = join(SHOTS, `${view}${suffix}.png`);
    await page.screenshot({ path: file, fullPage: true });
    files.push(file);
  }
  return files;
}

describe('the merchant dashboard, in a browser', { timeout: 120_000 }, () => {
  let dir: string;
  let log: Log;
  let platform: Platform;
  let traffic: Traffic;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  before(async () => {
    if (!existsSync(CHROMIUM)) assert.fail(`${CHROMIUM} is missing: run infra/browser/install.sh (it installs Debian's chromium)`);
    await ensureDashboardBuilt({ log: (line) => console.log(line) });
    mkdirSync(SHOTS, { recursive: true });
    dir = mkdtempSync(join(tmpdir(), 'shopstream-dashboard-'));
    log = await openEmbeddedLog({ dir: join(dir, 'log'), fsync: false, defaultPartitions: 1, retentionCheckIntervalMs: 0 });
    platform = await startPlatform({
      log,
      dataDir: dir,
      port: 0,
      logger: pino({ level: 'warn' }),
      config: { merchants: [DEMO, OTHER], pipeline: { graceMs: 3_000 }, beacon: { secrets: ['a-dashboard-e2e-secret-of-32-characters-or-more'] } },
      dashboard: { demo: { merchant: DEMO.id, readToken: DEMO.readToken, timezone: DEMO.timezone, currency: DEMO.currency } },
      // Without Meta forwarding: the pipeline view must then say it is not running (the demo shops have no pixel anyway).
      roles: ['collector', 'pipeline', 'cubes', 'lake'],
    });
    traffic = new Traffic(platform.url);
    traffic.start();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    page = await context.newPage();
    page.on('pageerror', (err) => console.error('page error:', err));
  });

  after(async () => {
    await traffic?.stop();
    await browser?.close();
    await platform?.close();
    await log?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('signs the demo merchant in at once, loads in under 1 s and sends under 500 KB', async () => {
    // Let some traffic in first, so the first figures are not all zeros.
    await sleep(1_500);
    const sizes: Array<Promise<{ url: string; bytes: number; api: boolean }>> = [];
    page.on('requestfinished', (req) => {
      sizes.push(req.sizes().then((s) => ({ url: req.url(), bytes: s.responseBodySize + s.responseHeadersSize, api: new URL(req.url()).pathname.startsWith('/v1/') })));
    });
    const started = Date.now();
    await page.goto(`${platform.url}/`, { waitUntil: 'load' });
    await page.waitForSelector('section#now[data-live="1"]');
    const wall = Date.now() - started;
    const timing = await page.evaluate(() => {
      const { performance } = globalThis as unknown as Browserish;
      const nav = performance.getEntriesByType('navigation')[0]!;
      const live = performance.getEntriesByName('shopstream:first-live')[0];
      const calls = performance.getEntriesByType('resource').map((r) => `${new URL(r.name).pathname.replace(/^\/v1\/merchants\/[^/]+/, '')} ${r.startTime.toFixed(0)}+${r.duration.toFixed(0)}`);
      return { load: nav.loadEventEnd - nav.startTime, live: live?.startTime ?? Number.NaN, calls };
    });
    console.log(`requests (start+duration, ms): ${timing.calls.join(', ')}`);
    await sleep(300);
    const all = await Promise.all(sizes);
    const assets = all.filter((s) => !s.api);
    const assetBytes = assets.reduce((a, s) => a + s.bytes, 0);
    const apiBytes = all.filter((s) => s.api).reduce((a, s) => a + s.bytes, 0);
    console.log(
      `dashboard load: navigation → load event ${timing.load.toFixed(0)} ms, → first live figures ${timing.live.toFixed(0)} ms (${wall} ms wall clock); ` +
        `assets ${(assetBytes / 1024).toFixed(1)} KB sent compressed in ${assets.length} responses (${assets.map((s) => `${new URL(s.url).pathname} ${(s.bytes / 1024).toFixed(1)} KB`).join(', ')}), API ${(apiBytes / 1024).toFixed(1)} KB`,
    );
    assert.ok(timing.load < 1_000, `the page loads in under 1 s (${timing.load} ms)`);
    assert.ok(timing.live < 1_000, `the first live figures show in under 1 s (${timing.live} ms)`);
    assert.ok(assetBytes < 500 * 1024, `the page's assets weigh under 500 KB sent (${assetBytes} bytes)`);
    assert.ok(assets.some((s) => s.url.endsWith('.js')), 'the script was measured');
    assert.equal(await page.locator('#shop-name').textContent(), DEMO.id);
    assert.equal(await page.evaluate(() => JSON.parse(sessionStorage.getItem('shopstream.session') ?? '{}').merchant), DEMO.id);
  });

  it('the live figures grow while events flow', async () => {
    const first = { orders: await kpiValue(page, 'orders'), revenue: await kpiValue(page, 'revenue') };
    const deadline = Date.now() + 25_000;
    let now = first;
    let rate = 0;
    while (Date.now() < deadline) {
      await sleep(1_000);
      now = { orders: await kpiValue(page, 'orders'), revenue: await kpiValue(page, 'revenue') };
      rate = await kpiValue(page, 'events-rate');
      if (now.orders > first.orders && now.revenue > first.revenue && rate > 0) break;
    }
    assert.ok(rate > 0, `events per second shown (${rate})`);
    assert.ok(now.orders > first.orders, `orders grew (${first.orders} → ${now.orders})`);
    assert.ok(now.revenue > first.revenue, `revenue grew (${first.revenue} → ${now.revenue})`);
    assert.ok((await kpiValue(page, 'visitors')) > 0, 'visitors shown');
  });

  it('saves a screenshot of every view, at a laptop’s width and a phone’s', async () => {
    const files = await shootAll(page, '');
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'en-US' });
    const p = await phone.newPage();
    await p.goto(`${platform.url}/`);
    await p.waitForSelector('section#now[data-live="1"]');
    // Nothing wider than the phone's screen.
    files.push(...(await shootAll(p, '-phone', true)));
    await phone.close();
    for (const f of files) assert.ok(existsSync(f), f);
    console.log(`screenshots: ${files.length} in ${SHOTS}`);
  });

  it('pipeline health shows each role as the platform’s metrics say', async () => {
    await page.click('nav a[data-view="pipeline"]');
    await page.waitForSelector('#role-collector');
    const { status, body } = await api<Record<string, { running: boolean }>>(platform, '/status');
    assert.equal(status, 200);
    for (const role of ['collector', 'pipeline', 'cubes', 'lake', 'capi']) {
      assert.equal(await page.locator(`#role-${role}`).getAttribute('data-running'), String(body[role]!.running), role);
    }
    assert.equal(body['pipeline']!.running, true);
    assert.equal(body['cubes']!.running, true);
    assert.equal(body['capi']!.running, false);
    assert.match((await page.locator('#role-capi').textContent())!, /not running in this deployment/);
  });

  it('shows the same orders and revenue as the analytics API for the same range', async () => {
    await page.click('nav a[data-view="now"]');
    await page.waitForSelector('section#now[data-live="1"]');
    await traffic.stop();
    const section = page.locator('section#now');
    const from = (await section.getAttribute('data-from'))!;
    const to = (await section.getAttribute('data-to'))!;
    const deadline = Date.now() + 30_000;
    let want = await apiToday(platform, from, to);
    let got = { orders: -1, revenue: -1 };
    let agreed = 0;
    while (Date.now() < deadline) {
      await sleep(1_000);
      const next = await apiToday(platform, from, to);
      got = { orders: await kpiValue(page, 'orders'), revenue: await kpiValue(page, 'revenue') };
      // Equal twice in a row, the API's figures having stopped moving (the traffic stopped).
      agreed = JSON.stringify(next) === JSON.stringify(want) && JSON.stringify(got) === JSON.stringify(next) ? agreed + 1 : 0;
      want = next;
      if (agreed >= 2) break;
    }
    assert.deepEqual(got, want);
    assert.ok(want.orders > 0, 'orders were made');
    const text = await kpi(page, 'revenue').textContent();
    assert.equal(text, new Intl.NumberFormat('en-US', { style: 'currency', currency: 'EUR', minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(want.revenue / 100));
    assert.equal(await kpi(page, 'orders').textContent(), new Intl.NumberFormat('en-US').format(want.orders));
    console.log(`today (${from} ${DEMO.timezone}): ${want.orders} orders, ${text} — equal on the page and in the API`);
  });

  it('refuses a foreign token: another merchant’s (403) and a bogus one (401)', async () => {
    assert.equal((await api(platform, '/status', OTHER.readToken)).status, 403);
    assert.equal((await api(platform, '/metrics', OTHER.readToken)).status, 403);
    assert.equal((await api(platform, '/status', 'rt_bogus_token')).status, 401);
    assert.equal((await api(platform, '/funnel', 'rt_bogus_token')).status, 401);
    assert.equal((await fetch(`${platform.url}/v1/merchants/${DEMO.id}/status`)).status, 401);

    await page.click('button:has-text("Sign out")');
    await page.waitForSelector('form.signin');
    const signIn = async (merchant: string, token: string) => {
      await page.fill('#signin-merchant', merchant);
      await page.fill('#signin-token', token);
      await page.click('form.signin button[type=submit]');
    };
    await signIn(DEMO.id, OTHER.readToken);
    await page.waitForSelector('#signin-error:not(.hidden)');
    const forbidden = (await page.locator('#signin-error').textContent())!;
    assert.match(forbidden, /belongs to another merchant/);
    assert.match(forbidden, /SHOP_ERR_FORBIDDEN/);
    assert.match(forbidden, /403/);
    await page.screenshot({ path: join(SHOTS, 'signin-refused.png') });

    await signIn(DEMO.id, 'rt_bogus_token');
    await page.waitForFunction(() => (globalThis as unknown as Browserish).document.querySelector('#signin-error')?.textContent?.includes('401') === true);
    assert.match((await page.locator('#signin-error').textContent())!, /not valid/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('shopstream.session')), null);
    // A reload after signing out stays signed out, even in demo mode.
    await page.reload();
    await page.waitForSelector('form.signin');

    await signIn(DEMO.id, DEMO.readToken);
    await page.waitForSelector('section#now[data-live="1"]');
    assert.equal(await page.locator('#shop-name').textContent(), DEMO.id);
  });

  // Last: it stops the pipeline for good.
  it('shows a role that stopped on an error as stopped, with what to do, not as "not running"', async () => {
    await traffic.stop();
    await page.click('nav a[data-view="pipeline"]');
    await page.waitForSelector('#role-pipeline[data-running="true"]');
    assert.equal(await page.locator('#failed-roles').count(), 0);
    // The pipeline's outputs disappear under it: its next commit fails on an unknown topic, which
    // it cannot recover from (a log outage would be retried).
    await platform.log.admin.deleteTopics([platform.topics.filtered, platform.topics.bots, platform.topics.rejected]);
    const event = { type: 'track', event: 'Product Viewed', messageId: `failed-${Date.now()}`, anonymousId: 'v-failed', timestamp: new Date().toISOString(), properties: { product_id: 'p1' } };
    const sent = await fetch(`${platform.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${DEMO.writeKey}:`).toString('base64')}` }, body: JSON.stringify({ batch: [event] }) });
    assert.equal(sent.status, 200);
    await page.waitForSelector('#role-pipeline[data-failed="true"]', { timeout: 30_000 });
    assert.equal((await fetch(`${platform.url}/healthz`)).status, 503);
    assert.match((await page.locator('#failed-roles').textContent())!, /Stopped on an error: pipeline\. Restart the process/);
    const card = (await page.locator('#role-pipeline').textContent())!;
    assert.match(card, /Stopped on an error/);
    assert.match(card, /Restart the process/);
    assert.doesNotMatch(card, /not running in this deployment/);
    assert.equal(await page.locator('#role-cubes').getAttribute('data-failed'), 'false');
    await page.screenshot({ path: join(SHOTS, 'pipeline-role-stopped.png'), fullPage: true });
  });
});
