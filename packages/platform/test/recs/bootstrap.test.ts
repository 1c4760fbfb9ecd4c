/**
 * `shopstream recs bootstrap`: the models built from the lake's history plus the live stream count
 * every order exactly once. History that events.filtered no longer holds (deleted by retention)
 * comes from the lake; what it still holds comes from the topic; nothing from both. A second
 * bootstrap, after the role started, is refused.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { StreamsApp } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { normalizeEvent } from '../../src/contract/index.ts';
import { isPlatformError } from '../../src/errors.ts';
import { LakeSink } from '../../src/lake/sink.ts';
import { LocalStorage } from '../../src/lake/storage.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import { bootstrapRecs } from '../../src/recs/bootstrap.ts';
import { coEstimate, TOTAL_KEY, type CoItemState } from '../../src/recs/cooccurrence.ts';
import { RecsTable } from '../../src/recs/table.ts';
import { recsTopology } from '../../src/recs/topology.ts';
import { ensurePlatformTopics, topicNames } from '../../src/topics.ts';
import { tempDir } from '../helpers.ts';

const DAY = 86_400_000;
let seq = 0;

function orderRecord(topic: string, ids: string[], at: number) {
  const visitor = `v${seq % 17}`;
  const r = normalizeEvent(
    { type: 'track', event: 'Order Completed', messageId: `m-${seq++}`, anonymousId: visitor, timestamp: new Date(at).toISOString(), properties: { order_id: `o-${seq}`, currency: 'EUR', total: 10, products: ids.map((id) => ({ product_id: id, price: 5, quantity: 1 })) } },
    { merchantId: 'shop', defaultCurrency: 'EUR', receivedAt: at + 1000 },
  );
  assert.ok(r.ok);
  const pe: PipelineEvent = { v: 1, event: r.event, enrichment: {} as PipelineEvent['enrichment'], session: { id: `s${seq}`, start: true, seq: 1 }, bot: null, human: 'trusted_source' };
  return { topic, key: Buffer.from(visitor), value: Buffer.from(JSON.stringify(pe)), timestamp: at + 1000 };
}

it('bootstrap from the lake, then the live stream: every order counted once; a second bootstrap is refused', { timeout: 120_000 }, async () => {
  const t = tempDir();
  const log = await openEmbeddedLog({ dir: join(t.dir, 'log'), fsync: false, retentionCheckIntervalMs: 0 });
  const topics = topicNames('bt.');
  const storage = new LocalStorage(join(t.dir, 'lake-root'), { fsync: false });
  try {
    // events.filtered with small segments and 7 days of retention, so old history can be deleted.
    await log.admin.createTopics([{ name: topics.filtered, partitions: 2, config: { 'segment.bytes': 4096, 'retention.ms': 7 * DAY } }]);
    await ensurePlatformTopics(log, { prefix: 'bt.', partitions: 2 });
    const now = Date.now();
    const producer = log.createProducer();
    // 60 old orders (20 days ago) of tent+pegs, then 40 recent ones of tent+lamp.
    for (let i = 0; i < 60; i++) await producer.send([orderRecord(topics.filtered, ['tent', 'pegs'], now - 20 * DAY + i * 1000)]);
    for (let i = 0; i < 40; i++) await producer.send([orderRecord(topics.filtered, ['tent', 'lamp'], now - 60_000 + i * 1000)]);
    await producer.close();

    // The lake archives events.filtered.
    const sink = new LakeSink({ log, storage, groupId: 'bt.lake', topics: [{ name: topics.filtered, decode: 'json' }], root: 'lake', rotateScheduleIntervalMs: 0, pollMs: 20 });
    await sink.start();
    const ends = await log.admin.listOffsets([0, 1].map((partition) => ({ topic: topics.filtered, partition })), 'latest');
    const deadline = Date.now() + 30_000;
    while (!ends.every((e) => (sink.positions().find((p) => p.partition === e.partition)?.offset ?? 0) >= e.offset)) {
      assert.ok(Date.now() < deadline, 'the lake sink catches up');
      await new Promise((r) => setTimeout(r, 25));
    }
    await sink.close();

    // Retention deletes the old segments: the topic no longer holds that history.
    await log.runRetention();
    const earliest = await log.admin.listOffsets([0, 1].map((partition) => ({ topic: topics.filtered, partition })), 'earliest');
    const deleted = earliest.reduce((a, e) => a + e.offset, 0);
    assert.ok(deleted > 20 && deleted < 100, `retention deleted part of the history (${deleted} records)`);

    let progress = 0;
    const r = await bootstrapRecs({ log, storage, topics, applicationId: 'bt.shopstream-recs', days: 90, root: 'lake', onProgress: (done) => (progress = done) });
    assert.equal(r.events, deleted, 'exactly the records the topic no longer holds');
    assert.equal(progress, deleted);

    const app = new StreamsApp(recsTopology(topics), { applicationId: 'bt.shopstream-recs', log, stateDir: join(t.dir, 'state'), logger: pino({ level: 'warn' }) });
    await app.start();
    const table = new RecsTable({ log, modelTopic: topics.recsModel, visitorsTopic: topics.recsVisitors });
    await table.start();
    try {
      const model = table.model('f', 'shop');
      const until = Date.now() + 30_000;
      while ((model.get(TOTAL_KEY)?.n ?? 0) < 100) {
        assert.ok(Date.now() < until, `the models count every order: ${model.get(TOTAL_KEY)?.n ?? 0}`);
        await new Promise((res) => setTimeout(res, 50));
      }
      await new Promise((res) => setTimeout(res, 300));
      const tent = model.get('tent') as CoItemState;
      assert.equal(model.get(TOTAL_KEY)!.n, 100, 'every order once');
      assert.equal(tent.n, 100);
      assert.equal(coEstimate(tent, 'pegs', 50).count, 60, 'the history, once');
      assert.equal(coEstimate(tent, 'lamp', 50).count, 40, 'the live stream, once');
    } finally {
      await table.close();
      await app.close();
    }
    await assert.rejects(
      bootstrapRecs({ log, storage, topics, applicationId: 'bt.shopstream-recs', days: 90, root: 'lake' }),
      (err: unknown) => isPlatformError(err) && /already read events.filtered/.test(err.message),
    );
  } finally {
    await log.close();
    t.cleanup();
  }
});
