/**
 * The S3 backend against a real S3-compatible server (S3Mock, s3-server.ts): an object is visible
 * only once complete (one PUT, or a completed multipart upload: never while its parts upload), a
 * failed upload is aborted, a crashed writer's unfinished upload is aborted by the stale cleanup;
 * then the whole path on S3: the sink archives events.raw (embedded log), `shopstream query` (the
 * CLI, with `lake.storage: s3` in the config) counts them, downloading only the partitions the query
 * can need, compaction merges closed hours, and replay publishes a day again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { main } from '../../src/cli/main.ts';
import { compactLake } from '../../src/lake/compact.ts';
import { parseLakeFile } from '../../src/lake/files.ts';
import { queryLake } from '../../src/lake/query.ts';
import { replayLake } from '../../src/lake/replay.ts';
import { LakeSink } from '../../src/lake/sink.ts';
import { openTestLog, readAll, tempDir, unique } from '../helpers.ts';
import { genEvent, produceEvents, type GenOptions } from './fixtures/events.ts';
import { startS3, type TestS3 } from './s3-server.ts';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;

describe('S3 lake storage (S3Mock)', () => {
  let s3: TestS3;
  before(async () => {
    s3 = await startS3();
  });
  after(async () => {
    await s3?.stop();
  });

  it('objects are visible only when complete; failed and crashed uploads leave nothing visible', { timeout: 120_000 }, async () => {
    const seenDuring: Array<{ listed: boolean; readable: boolean }> = [];
    const storage = s3.storage({
      partSize: 5 * MiB,
      afterPart: async (name) => {
        seenDuring.push({ listed: (await storage.list('lake/')).includes(name), readable: await storage.read(name).then(() => true, () => false) });
      },
    });
    try {
      // A small object: one PUT.
      const small = await storage.stage('lake/t/merchant=a/dt=2026-11-01/hour=10/t+0+0000000000000000000.parquet');
      writeFileSync(small.localPath, 'small object');
      await small.publish();
      assert.equal((await storage.read(small.name)).toString(), 'small object');
      // 12 MiB: a multipart upload of three parts; during the parts, nothing under the name.
      const bytes = randomBytes(12 * MiB);
      const big = await storage.stage('lake/t/merchant=a/dt=2026-11-01/hour=10/t+0+0000000000000000100.parquet');
      writeFileSync(big.localPath, bytes);
      await big.publish();
      assert.equal(seenDuring.length, 3, 'three parts');
      assert.deepEqual(seenDuring, Array(3).fill({ listed: false, readable: false }), 'not visible while uploading');
      assert.ok((await storage.read(big.name)).equals(bytes), 'the whole object once complete');
      assert.deepEqual(await storage.list('lake/'), [small.name, big.name]);
      assert.deepEqual(await storage.pendingUploads(), []);
      // A failed upload (a part fails) is aborted: no object, no pending upload, no scratch file.
      const failing = s3.storage({ partSize: 5 * MiB, afterPart: (_n, part) => { if (part === 2) throw new Error('network down'); } });
      const f = await failing.stage('lake/t/merchant=a/dt=2026-11-01/hour=11/t+0+0000000000000000200.parquet');
      writeFileSync(f.localPath, bytes);
      await assert.rejects(f.publish(), /network down/);
      assert.deepEqual(await failing.list(''), []);
      assert.deepEqual(await failing.pendingUploads(), []);
      failing.close();
      // A crashed writer's upload (started, never completed): invisible; removed by the stale cleanup once old enough.
      const key = `${storage.prefix}lake/t/merchant=a/dt=2026-11-01/hour=12/t+0+0000000000000000300.parquet`;
      const { UploadId } = await storage.client.send(new CreateMultipartUploadCommand({ Bucket: storage.bucket, Key: key }));
      await storage.client.send(new UploadPartCommand({ Bucket: storage.bucket, Key: key, UploadId, PartNumber: 1, Body: bytes.subarray(0, 5 * MiB) }));
      assert.equal((await storage.list('lake/')).length, 2, 'the unfinished upload is not listed');
      assert.equal((await storage.pendingUploads()).length, 1);
      assert.deepEqual(await storage.removeStaleTemporaries(3_600_000), [], 'a young upload may be a live writer’s: kept');
      assert.deepEqual(await storage.removeStaleTemporaries(0, Date.now() + 1000), [key.slice(storage.prefix.length)]);
      assert.deepEqual(await storage.pendingUploads(), []);
      // Delete is idempotent.
      await storage.delete(big.name);
      await storage.delete(big.name);
      assert.deepEqual(await storage.list('lake/'), [small.name]);
    } finally {
      storage.close();
    }
  });

  it('sink → S3, then query (CLI, pruned downloads), compaction and replay from S3', { timeout: 180_000 }, async () => {
    const { log, close } = await openTestLog('embedded');
    const t = tempDir('shopstream-lake-s3-');
    const prefix = `${unique('s3')}.`;
    const topic = `${prefix}events.raw`;
    const storage = s3.storage();
    try {
      await log.admin.createTopics([{ name: topic, partitions: 2 }]);
      // Two days, 22:00 to 02:00, three merchants.
      const gen: GenOptions = { run: unique('e'), merchants: [{ id: 'm-one', currency: 'EUR' }, { id: 'm-two', currency: 'USD' }, { id: 'm three', currency: 'GBP' }], start: Date.UTC(2026, 10, 20, 22), spanMs: 4 * HOUR, total: 3000, visitors: 200 };
      const ids = await produceEvents(log, topic, gen);
      const sink = new LakeSink({ log, storage, groupId: unique('lake'), topics: [topic], flushSize: 200, rotateScheduleIntervalMs: 0, pollMs: 20 });
      await sink.start();
      while (sink.positions().reduce((a, p) => a + p.offset, 0) < ids.length) await new Promise((r) => setTimeout(r, 20));
      await sink.close();
      const want = new Map<string, number>();
      for (let i = 0; i < gen.total; i++) {
        const e = genEvent(gen, i);
        const k = `${e.merchant}|${new Date(e.at).toISOString().slice(0, 10)}`;
        want.set(k, (want.get(k) ?? 0) + 1);
      }
      // The CLI, configured for S3.
      const config = join(t.dir, 'shopstream.json');
      writeFileSync(config, JSON.stringify({ topics: { prefix }, lake: { storage: { kind: 's3', bucket: storage.bucket, prefix: storage.prefix, endpoint: s3.endpoint, forcePathStyle: true } } }));
      const out: string[] = [];
      const err: string[] = [];
      const io = { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) };
      assert.equal(await main(['query', '--config', config, '--format', 'json', 'SELECT merchant, dt::VARCHAR AS day, count(*)::INTEGER AS n FROM events GROUP BY ALL ORDER BY ALL'], io), 0, err.join('\n'));
      const got = new Map((JSON.parse(out.join('\n')) as Array<{ merchant: string; day: string; n: number }>).map((r) => [`${r.merchant}|${r.day}`, r.n]));
      assert.deepEqual(got, want, 'counts per merchant and day');
      assert.equal(await main(['query', '--config', config, `COPY (SELECT 1) TO '${join(t.dir, 'x.csv')}'`], io), 1, 'writes are refused');
      // Pruning: only the files of one merchant and day are downloaded.
      const q = await queryLake({ storage, prefix, sql: "SELECT count(*)::INTEGER FROM events WHERE merchant = 'm-two' AND dt = DATE '2026-11-21'" });
      assert.equal(q.rows[0]![0], want.get('m-two|2026-11-21'));
      const names = await storage.list(`lake/${topic}/`);
      const expectedFiles = names.filter((n) => n.includes('/merchant=m-two/dt=2026-11-21/')).length;
      assert.deepEqual(q.files['events'], { lake: names.length, read: expectedFiles }, 'only the matching partitions were downloaded');
      const joined = await queryLake({ storage, prefix, sql: "SELECT count(*)::INTEGER FROM events a JOIN (SELECT DISTINCT message_id FROM events WHERE merchant = 'm three') b USING (message_id)" });
      assert.equal(joined.rows[0]![0], want.get('m three|2026-11-20')! + want.get('m three|2026-11-21')!, 'a join reads everything it needs');
      // Compaction on S3: closed hours (all, 100 hours later) become one file per group.
      const before = names.length;
      const r = await compactLake({ storage, now: Date.UTC(2026, 10, 25) });
      const after = await storage.list(`lake/${topic}/`);
      assert.ok(after.length < before && r.written.length === after.length, `${before} files → ${after.length}`);
      assert.ok(after.every((n) => parseLakeFile(n)?.end !== undefined));
      const total = await queryLake({ storage, prefix, sql: 'SELECT count(*)::INTEGER, count(DISTINCT message_id)::INTEGER FROM events' });
      assert.deepEqual(total.rows[0], [ids.length, ids.length]);
      // Replay of one day of one merchant from S3.
      const progress: number[] = [];
      const rr = await replayLake({ storage, log, topic, toTopic: `${prefix}replayed`, from: '2026-11-21', to: '2026-11-21', merchant: 'm three', onProgress: (d) => void progress.push(d) });
      assert.equal(rr.events, want.get('m three|2026-11-21'));
      const replayed = await readAll(log, `${prefix}replayed`);
      assert.equal(replayed.length, rr.events);
      assert.equal(progress.at(-1), rr.events);
    } finally {
      storage.close();
      await close();
      t.cleanup();
    }
  });
});
