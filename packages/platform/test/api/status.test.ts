/**
 * The status endpoint behind the dashboard's pipeline view: read-token authentication (401, 403),
 * every number equal to the registry's own value, and roles whose metrics are absent reported as
 * not running (never as zeros).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import { StreamsMetrics } from '@shopstream/streams';
import { STATUS_METRICS, readStatus, roleOfApplication, statusRoutes, type StatusResponse } from '../../src/api/status.ts';
import { CollectorMetrics } from '../../src/collector/metrics.ts';
import { rawRecordHeaders } from '../../src/contract/index.ts';
import { LakeSink } from '../../src/lake/sink.ts';
import { LocalStorage } from '../../src/lake/storage.ts';
import { join } from 'node:path';
import { pino } from 'pino';
import { startPlatform } from '../../src/platform.ts';
import { openTestLog, tempDir } from '../helpers.ts';
import { apiServer, readMerchant } from './fixture.ts';

const MERCHANTS = [readMerchant('shop-a', 'rt_shop_a_token'), readMerchant('shop-b', 'rt_shop_b_token')];

function server(registry: Registry): Promise<FastifyInstance> {
  return apiServer(MERCHANTS, (app, lookups) => statusRoutes(app, { registry, ...lookups }));
}

const get = (app: FastifyInstance, token?: string, id = 'shop-a') =>
  app.inject({ method: 'GET', url: `/v1/merchants/${id}/status`, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

/** The registry's own value of a metric for some labels (what /metrics shows). */
async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  const values = (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x));
  return values.reduce((a, v) => a + v.value, 0);
}

describe('GET /v1/merchants/{id}/status', () => {
  describe('a process with only the collector (no other role registered its metrics)', () => {
    let app: FastifyInstance;
    before(async () => {
      const registry = new Registry();
      new CollectorMetrics(registry);
      new Counter({ name: STATUS_METRICS.decisions, help: 'decisions', labelNames: ['decision'], registers: [registry] });
      app = await server(registry);
    });
    after(() => app.close());

    it('needs the merchant’s read token: none or unknown is 401, another merchant’s is 403', async () => {
      const none = await get(app);
      assert.equal(none.statusCode, 401);
      assert.equal(none.json().error.code, 'SHOP_ERR_UNAUTHORIZED');
      assert.equal((await get(app, 'rt_bogus_token')).statusCode, 401);
      assert.equal((await app.inject({ method: 'GET', url: '/v1/merchants/shop-a/status', headers: { authorization: 'Basic wk_shop-a' } })).statusCode, 401);
      const other = await get(app, 'rt_shop_b_token');
      assert.equal(other.statusCode, 403);
      assert.equal(other.json().error.code, 'SHOP_ERR_FORBIDDEN');
      const ok = await get(app, 'rt_shop_a_token');
      assert.equal(ok.statusCode, 200);
      assert.equal(ok.headers['cache-control'], 'no-store');
    });

    it('says which roles are not running instead of showing zeros', async () => {
      const s = (await get(app, 'rt_shop_a_token')).json() as StatusResponse;
      assert.deepEqual(s.merchant, { id: 'shop-a', timezone: 'Europe/Paris', currency: 'EUR' });
      assert.equal(s.scope, 'process');
      assert.equal(s.collector.running, true);
      assert.equal(s.pipeline.running, false);
      assert.equal(s.pipeline.lag, null);
      assert.equal(s.cubes.running, false);
      assert.equal(s.cubes.lastCommitAt, null);
      assert.equal(s.lake.running, false);
      assert.equal(s.lake.lastCommitAt, null);
      assert.equal(s.capi.running, false);
      assert.equal(s.capi.inflight, null);
      assert.equal(s.capi.pending, null);
      assert.deepEqual(s.lag, []);
    });
  });

  describe('a process running every role', () => {
    let app: FastifyInstance;
    let registry: Registry;
    let s: StatusResponse;
    const commitAt = Date.UTC(2026, 10, 26, 10, 0, 0) / 1000;
    before(async () => {
      registry = new Registry();
      const collector = new CollectorMetrics(registry);
      collector.events.inc({ outcome: 'accepted' }, 120);
      collector.events.inc({ outcome: 'rejected' }, 3);
      collector.rejected.inc({ code: 'SHOP_ERR_UNKNOWN_EVENT' }, 2);
      collector.rejected.inc({ code: 'SHOP_ERR_EVENT_SCHEMA' });
      const decisions = new Counter({ name: STATUS_METRICS.decisions, help: 'decisions', labelNames: ['decision'], registers: [registry] });
      decisions.inc({ decision: 'human_validated' }, 90);
      decisions.inc({ decision: 'bot_user_agent' }, 25);
      decisions.inc({ decision: 'rejected' }, 4);
      const streams = new StreamsMetrics(registry);
      streams.tasks.set({ application: 'shopstream-pipeline' }, 2);
      streams.lag.set({ application: 'shopstream-pipeline', topic: 'events.raw', partition: '0' }, 5);
      streams.lag.set({ application: 'shopstream-pipeline', topic: 'events.raw', partition: '1' }, 7);
      streams.lag.set({ application: 'shopstream-capi', topic: 'events.filtered', partition: '0' }, 3);
      streams.commits.inc({ application: 'shopstream-pipeline', outcome: 'committed' }, 11);
      streams.commits.inc({ application: 'shopstream-capi', outcome: 'committed' }, 6);
      new Gauge({ name: STATUS_METRICS.cubesLastCommit, help: 'cubes last commit', registers: [registry] }).set(commitAt);
      const cubesEvents = new Counter({ name: STATUS_METRICS.cubesEvents, help: 'cubes events', labelNames: ['topic'], registers: [registry] });
      cubesEvents.inc({ topic: 'filtered' }, 100);
      cubesEvents.inc({ topic: 'bots' }, 20);
      new Counter({ name: STATUS_METRICS.cubesCommits, help: 'cubes commits', labelNames: ['outcome'], registers: [registry] }).inc({ outcome: 'committed' }, 9);
      const files = new Counter({ name: STATUS_METRICS.lakeFiles, help: 'lake files', labelNames: ['topic'], registers: [registry] });
      files.inc({ topic: 'events.raw' }, 4);
      new Gauge({ name: STATUS_METRICS.lakeLastCommit, help: 'lake last commit', registers: [registry] }).set(commitAt + 60);
      const capi = new Counter({ name: STATUS_METRICS.capiEvents, help: 'capi events', labelNames: ['merchant', 'outcome'], registers: [registry] });
      capi.inc({ merchant: 'shop-a', outcome: 'acknowledged' }, 30);
      capi.inc({ merchant: 'shop-a', outcome: 'retried' }, 2);
      capi.inc({ merchant: 'shop-a', outcome: 'dlq' }, 1);
      capi.inc({ merchant: 'shop-b', outcome: 'acknowledged' }, 500);
      new Gauge({ name: STATUS_METRICS.capiInflight, help: 'in flight', registers: [registry] }).set(2);
      new Gauge({ name: STATUS_METRICS.capiBreaker, help: 'breaker', labelNames: ['merchant'], registers: [registry] }).set({ merchant: 'shop-a' }, 2);
      new Counter({ name: STATUS_METRICS.capiDlq, help: 'dlq', labelNames: ['merchant', 'reason'], registers: [registry] }).inc({ merchant: 'shop-a', reason: 'SHOP_ERR_META_INVALID' });
      app = await server(registry);
      s = (await get(app, 'rt_shop_a_token')).json() as StatusResponse;
    });
    after(() => app.close());

    it('every number is the registry’s own value', async () => {
      assert.equal(s.collector.accepted, await value(registry, STATUS_METRICS.collectorEvents, { outcome: 'accepted' }));
      assert.equal(s.collector.rejected, await value(registry, STATUS_METRICS.collectorEvents, { outcome: 'rejected' }));
      assert.deepEqual(s.collector.rejectedByCode, {
        SHOP_ERR_UNKNOWN_EVENT: await value(registry, STATUS_METRICS.collectorRejected, { code: 'SHOP_ERR_UNKNOWN_EVENT' }),
        SHOP_ERR_EVENT_SCHEMA: await value(registry, STATUS_METRICS.collectorRejected, { code: 'SHOP_ERR_EVENT_SCHEMA' }),
      });
      for (const d of ['human_validated', 'bot_user_agent', 'rejected']) assert.equal(s.pipeline.decisions[d], await value(registry, STATUS_METRICS.decisions, { decision: d }));
      assert.equal(s.pipeline.lag, await value(registry, STATUS_METRICS.streamsLag, { application: 'shopstream-pipeline' }));
      assert.equal(s.pipeline.lag, 12);
      assert.equal(s.pipeline.commits['committed'], await value(registry, STATUS_METRICS.streamsCommits, { application: 'shopstream-pipeline', outcome: 'committed' }));
      assert.equal(s.capi.lag, await value(registry, STATUS_METRICS.streamsLag, { application: 'shopstream-capi' }));
      assert.deepEqual(
        s.lag.map((l) => [l.role, l.topic, l.partition, l.records]),
        [
          ['capi', 'events.filtered', '0', 3],
          ['pipeline', 'events.raw', '0', 5],
          ['pipeline', 'events.raw', '1', 7],
        ],
      );
      assert.equal(s.cubes.lastCommitAt, new Date((await value(registry, STATUS_METRICS.cubesLastCommit)) * 1000).toISOString());
      assert.deepEqual(s.cubes.events, { filtered: 100, bots: 20 });
      assert.equal(s.cubes.commits['committed'], await value(registry, STATUS_METRICS.cubesCommits, { outcome: 'committed' }));
      assert.equal(s.lake.files, await value(registry, STATUS_METRICS.lakeFiles));
      assert.deepEqual(s.lake.filesByTopic, { 'events.raw': 4 });
      assert.equal(s.lake.lastCommitAt, new Date((commitAt + 60) * 1000).toISOString());
      assert.equal(s.capi.inflight, await value(registry, STATUS_METRICS.capiInflight));
      assert.equal(s.capi.breaker, 'open');
      assert.deepEqual(s.capi.dlqByReason, { SHOP_ERR_META_INVALID: 1 });
    });

    it('Meta delivery is the merchant’s own (its merchant label), not another shop’s', async () => {
      assert.equal(s.capi.acknowledged, await value(registry, STATUS_METRICS.capiEvents, { merchant: 'shop-a', outcome: 'acknowledged' }));
      assert.equal(s.capi.retried, 2);
      assert.equal(s.capi.dlq, 1);
      const b = (await get(app, 'rt_shop_b_token', 'shop-b')).json() as StatusResponse;
      assert.equal(b.capi.acknowledged, 500);
      assert.equal(b.capi.dlq, 0);
      assert.equal(b.capi.breaker, null);
    });

    it('flags every role as running', () => {
      assert.equal(s.collector.running, true);
      assert.equal(s.pipeline.running, true);
      assert.equal(s.cubes.running, true);
      assert.equal(s.lake.running, true);
      assert.equal(s.capi.running, true);
    });
  });

  it('reads the lake sink’s own metrics: files written and the last commit', async () => {
    const { log, close } = await openTestLog('embedded');
    const t = tempDir();
    const registry = new Registry();
    const sink = new LakeSink({ log, storage: new LocalStorage(t.dir), groupId: 'status-lake', topics: ['events.raw'], flushSize: 5, rotateScheduleIntervalMs: 0, registry });
    try {
      await log.admin.createTopics([{ name: 'events.raw', partitions: 1 }]);
      const before = await readStatus(registry, MERCHANTS[0]!);
      assert.equal(before.lake.running, true);
      assert.equal(before.lake.files, 0);
      assert.equal(before.lake.lastCommitAt, null);
      const producer = log.createProducer();
      const at = Date.now();
      await producer.send(
        Array.from({ length: 10 }, (_, i) => ({
          topic: 'events.raw',
          partition: 0,
          key: Buffer.from('v1'),
          value: Buffer.from(JSON.stringify({ type: 'page', messageId: `m-${i}`, anonymousId: 'v1', timestamp: new Date(at).toISOString() })),
          timestamp: at,
          headers: rawRecordHeaders({ merchantId: 'shop-a', defaultCurrency: 'EUR', receivedAt: at }, undefined),
        })),
      );
      await producer.close();
      await sink.start();
      const deadline = Date.now() + 20_000;
      while (sink.stats().cuts < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const after = await readStatus(registry, MERCHANTS[0]!);
      assert.equal(after.lake.files, sink.stats().files);
      assert.ok(after.lake.files >= 2, `files written: ${after.lake.files}`);
      assert.deepEqual(after.lake.filesByTopic, { 'events.raw': sink.stats().files });
      assert.ok(after.lake.lastCommitAt !== null && Date.parse(after.lake.lastCommitAt) >= at - 1000);
    } finally {
      await sink.close();
      await close();
      t.cleanup();
    }
  });

  it('names roles after their streams application or consumer group', () => {
    assert.equal(roleOfApplication('shopstream-pipeline'), 'pipeline');
    assert.equal(roleOfApplication('tenant1.shopstream-pipeline'), 'pipeline');
    assert.equal(roleOfApplication('shopstream-capi-forwarder'), 'capi');
    assert.equal(roleOfApplication('demo-counts'), 'demo-counts');
  });
});

describe('a role that stops on an error it cannot recover from', () => {
  it('fails /healthz (so that the process is restarted) and shows in the status, not as running', { timeout: 60_000 }, async () => {
    const t = tempDir();
    const platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger: pino({ level: 'silent' }),
      roles: ['collector', 'pipeline'],
      config: { merchants: [{ id: 'shop-a', writeKey: 'wk_failed_role_shop_a', readToken: 'rt_shop_a_token', currency: 'EUR' }] },
    });
    try {
      assert.deepEqual(await (await fetch(`${platform.url}/healthz`)).json(), { status: 'ok' });
      // The pipeline's outputs disappear under it: its next commit fails on an unknown topic, not a
      // log outage to wait out but an error it cannot recover from.
      await platform.log.admin.deleteTopics([platform.topics.filtered, platform.topics.bots, platform.topics.rejected]);
      const crawler = { type: 'track', event: 'Product Viewed', messageId: 'failed-role-1', anonymousId: 'v1', timestamp: new Date().toISOString(), properties: { product_id: 'p1' }, context: { userAgent: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' } };
      const sent = await fetch(`${platform.url}/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('wk_failed_role_shop_a:').toString('base64')}` }, body: JSON.stringify({ batch: [crawler] }) });
      assert.equal(sent.status, 200);
      let res = await fetch(`${platform.url}/healthz`);
      for (const deadline = Date.now() + 30_000; res.status === 200 && Date.now() < deadline; res = await fetch(`${platform.url}/healthz`)) await new Promise((r) => setTimeout(r, 100));
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { status: 'failed', roles: ['pipeline'] });
      const status = (await (await fetch(`${platform.url}/v1/merchants/shop-a/status`, { headers: { authorization: 'Bearer rt_shop_a_token' } })).json()) as StatusResponse;
      assert.deepEqual(status.failedRoles, ['pipeline']);
      assert.equal(status.pipeline.running, false);
      assert.equal(status.collector.running, true);
    } finally {
      await platform.close();
      t.cleanup();
    }
  });
});
