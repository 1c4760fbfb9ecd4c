/**
 * `pipeline.threads`: the platform runs the pipeline in stream threads, on the embedded log (served
 * by the platform's thread) and on Kafka (each thread connects). Events sent through the collector come out once each, the threads share the
 * tasks, and /metrics and the status API report the pipeline's own metrics added up over the
 * threads: the same numbers as with one thread.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { StreamThreads } from '@shopstream/streams';
import { startPlatform, type Platform } from '../../src/platform.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import type { StatusResponse } from '../../src/api/status.ts';
import { KAFKA_BOOTSTRAP, capturingLogger, readAll, tempDir, unique, type LogKind } from '../helpers.ts';

const SERVER_KEY = 'sk_threads_test_server_key_01';
const CRAWLER = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

for (const kind of ['embedded', 'kafka'] as LogKind[]) describe(`the pipeline in two stream threads (pipeline.threads: 2, ${kind})`, () => {
  let platform: Platform;
  const t = tempDir();
  const prefix = kind === 'kafka' ? `${unique('threads')}.` : '';
  before(async () => {
    platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger: pino({ level: 'warn' }),
      roles: ['collector', 'pipeline'],
      dashboard: false,
      config: {
        merchants: [{ id: 'shop', writeKey: 'wk_threads_test_storefront', serverWriteKeys: [SERVER_KEY], readToken: 'rt_threads_test_shop', currency: 'EUR' }],
        topics: { prefix, partitions: 4 },
        pipeline: { threads: 2 },
        ...(kind === 'kafka' && { kafka: { brokers: [KAFKA_BOOTSTRAP] } }),
      },
    });
  });
  after(async () => {
    if (kind === 'kafka') await platform.log.admin.deleteTopics((await platform.log.admin.listTopics()).filter((n) => n.startsWith(prefix))).catch(() => {});
    await platform.close();
    t.cleanup();
  });

  it('decides every event once, splits the tasks, and reports the decisions of both threads', { timeout: 120_000 }, async () => {
    assert.ok(platform.pipeline instanceof StreamThreads);
    // 200 events of 40 visitors from the merchant's backend (trusted: human at once), 50 of a crawler.
    const events = Array.from({ length: 250 }, (_, i) => ({
      type: 'track',
      event: 'Product Viewed',
      messageId: `th-${i}`,
      anonymousId: `visitor-${i % 50}`,
      timestamp: new Date().toISOString(),
      properties: { product_id: `sku-${i % 7}`, price: 5, currency: 'EUR' },
      ...(i % 50 >= 40 && { context: { userAgent: CRAWLER } }),
    }));
    for (let i = 0; i < events.length; i += 50) {
      const res = await fetch(`${platform.url}/v1/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${SERVER_KEY}:`).toString('base64')}` },
        body: JSON.stringify({ batch: [...events.slice(i, i + 50), events[i]] }), // and one duplicate per batch
      });
      assert.equal(res.status, 200, await res.text());
    }
    const metric = async (re: RegExp) => {
      const text = await (await fetch(`${platform.url}/metrics`)).text();
      return Number(re.exec(text)?.[1] ?? NaN);
    };
    const deadline = Date.now() + 60_000;
    while ((await metric(/shopstream_pipeline_decisions_total\{decision="human_trusted_source"\} (\d+)/)) !== 200) {
      if (Date.now() > deadline) assert.fail(`timed out; /metrics: ${await (await fetch(`${platform.url}/metrics`)).text()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await metric(/shopstream_pipeline_decisions_total\{decision="bot_user_agent"\} (\d+)/), 50);
    assert.equal(await metric(/shopstream_pipeline_decisions_total\{decision="duplicate"\} (\d+)/), 5);
    // The lookup histogram comes back too (empty: a trusted source and a crawler are decided before the lookup).
    assert.equal(await metric(/shopstream_pipeline_bot_lookup_seconds_count (\d+)/), 0);
    assert.equal(await metric(new RegExp(`shopstream_streams_active_tasks\\{application="${prefix.replace('.', '\\.')}shopstream-pipeline"\\} (\\d+)`)), 4);
    // The process's own metrics are still there, next to the threads', even those prom-client leaves out of cluster sums.
    assert.ok((await metric(/process_start_time_seconds (\d+)/)) > 0, 'process_start_time_seconds is served');
    assert.ok((await metric(/shopstream_collector_events_total\{[^}]*outcome="accepted"[^}]*\} (\d+)/)) >= 250);

    const split = await (platform.pipeline as StreamThreads).threadTasks();
    assert.deepEqual(split.map((tasks) => tasks.length), [2, 2], `each thread runs two of the four tasks: ${JSON.stringify(split)}`);

    // Each event once, in the topic its decision says (decisions are counted as they are made; the
    // records are visible once their transaction commits).
    const ids = async (topic: string) => (await readAll(platform.log, topic)).map((r) => (JSON.parse(r.value!.toString('utf8')) as PipelineEvent).event.messageId).sort();
    let filtered: string[] = [];
    let bots: string[] = [];
    while ((filtered = await ids(platform.topics.filtered)).length < 200 || (bots = await ids(platform.topics.bots)).length < 50) {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(filtered, events.filter((_, i) => i % 50 < 40).map((e) => e.messageId).sort());
    assert.deepEqual(bots, events.filter((_, i) => i % 50 >= 40).map((e) => e.messageId).sort());

    // The status API reads the same numbers.
    const res = await fetch(`${platform.url}/v1/merchants/shop/status`, { headers: { authorization: 'Bearer rt_threads_test_shop' } });
    assert.equal(res.status, 200);
    const s = (await res.json()) as StatusResponse;
    assert.equal(s.pipeline.running, true);
    assert.equal(s.pipeline.decisions['human_trusted_source'], 200);
    assert.equal(s.pipeline.decisions['bot_user_agent'], 50);
    assert.equal(s.pipeline.lag === null || s.pipeline.lag >= 0, true);
  });
});

describe('pipeline.threads beyond the partitions of events.raw', () => {
  it('starts, warns that the extra threads will stay idle, and still decides every event', { timeout: 60_000 }, async () => {
    const t = tempDir();
    const { logger, text } = capturingLogger();
    const platform = await startPlatform({
      dataDir: join(t.dir, 'data'),
      port: 0,
      logger,
      roles: ['collector', 'pipeline'],
      dashboard: false,
      config: {
        merchants: [{ id: 'shop', writeKey: 'wk_threads_test_storefront', serverWriteKeys: [SERVER_KEY], readToken: 'rt_threads_test_shop', currency: 'EUR' }],
        topics: { partitions: 1 },
        pipeline: { threads: 3 },
      },
    });
    try {
      assert.match(text(), /pipeline\.threads is 3 but events\.raw has 1 partitions \(a task each\): 2 threads will stay idle/);
      const res = await fetch(`${platform.url}/v1/batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${SERVER_KEY}:`).toString('base64')}` },
        body: JSON.stringify({ batch: Array.from({ length: 20 }, (_, i) => ({ type: 'track', event: 'Product Viewed', messageId: `idle-${i}`, anonymousId: `v-${i % 3}`, properties: { product_id: 'sku-1' } })) }),
      });
      assert.equal(res.status, 200);
      const deadline = Date.now() + 30_000;
      while ((await readAll(platform.log, platform.topics.filtered)).length < 20) {
        if (Date.now() > deadline) assert.fail('timed out waiting for events.filtered');
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal((await readAll(platform.log, platform.topics.filtered)).length, 20);
    } finally {
      await platform.close();
      t.cleanup();
    }
  });
});
