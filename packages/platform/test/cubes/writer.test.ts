/**
 * Several cubes writers on one PostgreSQL store: a second writer joins while the first is busy (a
 * rebalance: the first commits and gives up partitions, the second starts from the stored offsets),
 * then the first leaves. Every event is counted exactly once, on both logs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { ProducerRecord } from '@shopstream/streams';
import { PostgresDb } from '../../src/cubes/db.ts';
import { metricsSeries } from '../../src/cubes/query.ts';
import { CubeStore } from '../../src/cubes/store.ts';
import { CubesWriter } from '../../src/cubes/writer.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import { ensurePlatformTopics, topicNames } from '../../src/topics.ts';
import { TEST_POSTGRES, openTestLog, unique, type LogKind } from '../helpers.ts';

const T0 = Date.UTC(2026, 10, 26, 8, 0, 0);

function pipelineEvent(i: number): { key: string; value: PipelineEvent } {
  const visitor = `v${i % 97}`;
  const name = i % 3 === 0 ? 'Product Viewed' : 'Page Viewed';
  const properties =
    name === 'Page Viewed'
      ? { name: null, category: null, path: null, url: null, referrer: null, title: null, search: null }
      : { product_id: `p${i % 13}`, sku: null, name: null, brand: null, category: null, variant: null, price: 100, quantity: 1, position: null, url: null, image_url: null, coupon: null, cart_id: null, value: null, currency: 'EUR' };
  const value = {
    v: 1,
    event: {
      v: 1,
      type: name === 'Page Viewed' ? 'page' : 'track',
      event: name,
      messageId: `m${i}`,
      merchantId: 'shop-w',
      visitorId: visitor,
      anonymousId: visitor,
      userId: null,
      sessionId: null,
      timestamp: T0 + i * 1000,
      originalTimestamp: null,
      sentAt: null,
      receivedAt: T0 + i * 1000,
      context: { ip: null, userAgent: null, page: null, campaign: null, locale: null, timezone: null, country: null, library: null, traits: null, fbp: null, fbc: null },
      properties,
    },
    enrichment: { device: { type: 'desktop', browser: null, os: null }, trafficSource: 'direct', country: 'FR' },
    session: { id: `${visitor}:s`, start: i < 97, seq: 1 },
    bot: null,
    human: 'validated',
  } as unknown as PipelineEvent;
  return { key: visitor, value };
}

for (const kind of ['embedded', 'kafka'] as LogKind[]) {
  describe(`cubes writers sharing a PostgreSQL store (${kind})`, () => {
    it('a writer joining and another leaving mid-stream: every event counted once', { timeout: 180_000 }, async () => {
      const { log, close } = await openTestLog(kind);
      const prefix = `${unique('cw')}.`;
      const schema = unique('cw_cubes').replace(/[^a-z0-9_]/g, '_');
      const topics = topicNames(prefix);
      await ensurePlatformTopics(log, { prefix, partitions: 4 });
      const stores = [new CubeStore(await PostgresDb.open(TEST_POSTGRES, schema)), new CubeStore(await PostgresDb.open(TEST_POSTGRES, schema))];
      await stores[0]!.init();
      const logger = pino({ level: 'silent' });
      const writer = (store: CubeStore) => new CubesWriter({ log, topics, store, consumer: `${prefix}cubes`, commitIntervalMs: 50, maxBatchEvents: 200, logger });
      const producer = log.createProducer();
      const produce = async (from: number, to: number) => {
        const records: ProducerRecord[] = [];
        for (let i = from; i < to; i++) {
          const e = pipelineEvent(i);
          records.push({ topic: topics.filtered, key: Buffer.from(e.key), value: Buffer.from(JSON.stringify(e.value)) });
        }
        await producer.send(records);
      };
      const total = async () => {
        const series = await metricsSeries(stores[0]!, { merchant: 'shop-w', timeZone: 'UTC', currency: 'EUR', from: T0 - 86_400_000, to: T0 + 2 * 86_400_000, granularity: 'day', metrics: ['events', 'sessions', 'product_viewed'], groupBy: [], filters: [] });
        return { events: series.reduce((a, r) => a + (r.events ?? 0), 0), sessions: series.reduce((a, r) => a + (r.sessions ?? 0), 0), viewed: series.reduce((a, r) => a + (r.product_viewed ?? 0), 0) };
      };
      const N = 6000;
      try {
        await produce(0, 2000);
        const a = writer(stores[0]!);
        await a.start();
        while ((await total()).events < 500) await new Promise((r) => setTimeout(r, 20));
        // A second writer joins mid-stream: partitions move between them.
        const b = writer(stores[1]!);
        const joining = b.start();
        await produce(2000, 4000);
        await joining;
        await produce(4000, N);
        while ((await total()).events < 4500) await new Promise((r) => setTimeout(r, 20));
        // The first leaves: the second takes over its partitions from the stored offsets.
        await a.close();
        const deadline = Date.now() + 60_000;
        while ((await total()).events < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        await new Promise((r) => setTimeout(r, 500)); // anything counted twice would show now
        assert.deepEqual(await total(), { events: N, sessions: 97, viewed: N / 3 });
        await b.close();
      } finally {
        await producer.close();
        await stores[0]!.db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
        for (const s of stores) await s.close();
        if (kind === 'kafka') await log.admin.deleteTopics((await log.admin.listTopics()).filter((n) => n.startsWith(prefix))).catch(() => {});
        await close();
      }
    });

    it('a writer restarted with the same instanceId takes every partition back at once, without waiting for its predecessor', { timeout: 120_000 }, async () => {
      // As after a crash: the predecessor has not left the group (here it is still alive, so that
      // without static membership the two would share the partitions; on Kafka a dead one would
      // hold the join up for its session timeout).
      const { log, close } = await openTestLog(kind);
      const prefix = `${unique('cwi')}.`;
      const schema = unique('cwi_cubes').replace(/[^a-z0-9_]/g, '_');
      const topics = topicNames(prefix);
      await ensurePlatformTopics(log, { prefix, partitions: 4 });
      const store = new CubeStore(await PostgresDb.open(TEST_POSTGRES, schema));
      const logger = pino({ level: 'silent' });
      const writer = () => new CubesWriter({ log, topics, store, consumer: `${prefix}cubes`, instanceId: 'host-1', logger });
      const owned = (w: CubesWriter) => w.committedPositions().map((p) => `${p.topic === topics.filtered ? 'filtered' : 'bots'}/${p.partition}`).sort();
      const all = ['bots', 'filtered'].flatMap((t) => [0, 1, 2, 3].map((p) => `${t}/${p}`));
      const a = writer();
      const b = writer();
      try {
        // The first assignment may come with the first poll: wait for it (up to 30 s).
        const settle = async (w: CubesWriter) => {
          for (const deadline = Date.now() + 30_000; owned(w).join() !== all.join() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
          return owned(w);
        };
        await a.start();
        assert.deepEqual(await settle(a), all);
        await b.start();
        assert.deepEqual(await settle(b), all, 'the restarted writer owns every partition, its predecessor none');
      } finally {
        await b.close();
        await a.close().catch(() => {});
        await store.db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
        await store.close();
        if (kind === 'kafka') await log.admin.deleteTopics((await log.admin.listTopics()).filter((n) => n.startsWith(prefix))).catch(() => {});
        await close();
      }
    });
  });
}
