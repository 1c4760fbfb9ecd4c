/**
 * `shopstream lake compact`: the small files of closed hour partitions become one file per (topic,
 * input partition, hive partition); open hours are left alone; a reader (`queryLake`) sees every
 * record exactly once at every step of a run (checked from the hooks between the steps), also after
 * a crash between writing the merged file and deleting its inputs, or in the middle of the deletes;
 * the next run finishes the work. Files the sink writes again after a compaction (a cut repeated
 * after a crash) are superseded, and late records in a closed hour are merged by the next run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Log } from '@shopstream/streams';
import { compactLake } from '../../src/lake/compact.ts';
import { lakeReaderSql, parseLakeFile, splitSuperseded, visibleLakeFiles } from '../../src/lake/files.ts';
import { queryLake } from '../../src/lake/query.ts';
import { LakeSink } from '../../src/lake/sink.ts';
import { LocalStorage } from '../../src/lake/storage.ts';
import { main } from '../../src/cli/main.ts';
import { openTestLog, tempDir, unique } from '../helpers.ts';
import { produceEvents, type GenOptions } from './fixtures/events.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 24, 9, 0, 0);
const MERCHANTS = [
  { id: 'shop-a', currency: 'EUR' },
  { id: 'shop-b', currency: 'USD' },
];

async function sinkAll(log: Log, storage: LocalStorage, topic: string, groupId: string, total: number): Promise<void> {
  const sink = new LakeSink({ log, storage, groupId, topics: [topic], flushSize: 100, rotateIntervalMs: 24 * HOUR, rotateScheduleIntervalMs: 0, pollMs: 20 });
  await sink.start();
  const deadline = Date.now() + 60_000;
  while (sink.positions().reduce((a, p) => a + p.offset, 0) < total) {
    if (Date.now() > deadline) throw new Error('the sink did not catch up');
    await new Promise((r) => setTimeout(r, 20));
  }
  await sink.close();
}

/** What a reader sees: rows, distinct (partition, offset), distinct message ids. */
async function seen(dir: string, topic: string): Promise<{ rows: number; positions: number; ids: number }> {
  const r = await queryLake({ dir, sql: `SELECT count(*) AS n, count(DISTINCT ("partition", "offset")) AS d, count(DISTINCT message_id) AS m FROM events` , prefix: topic.slice(0, -'events.raw'.length) });
  const [n, d, m] = r.rows[0] as [number, number, number];
  return { rows: n, positions: d, ids: m };
}

/** A plain glob over every .parquet file (a reader that does not apply the superseded rule). */
async function globCount(dir: string, topic: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const r = await c.runAndReadAll(`SELECT count(*)::INTEGER FROM read_parquet('${join(dir, 'lake', topic, '**', '*.parquet')}')`);
    return Number(r.getRows()[0]![0]);
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

/** The documented reader query for other engines (files.ts lakeReaderSql), run by DuckDB directly on the folder. */
async function ruleCount(dir: string, topic: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const r = await c.runAndReadAll(`SELECT count(*)::INTEGER, count(DISTINCT ("partition", "offset"))::INTEGER FROM (${lakeReaderSql(join(dir, 'lake', topic, '**', '*.parquet'))})`);
    const [n, d] = r.getRows()[0]!.map(Number) as [number, number];
    assert.equal(n, d, 'no duplicates');
    return n;
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

describe('lake compaction (embedded log, local storage)', () => {
  it('merges closed hours only, exactly once at every step, through crashes between the steps', { timeout: 180_000 }, async () => {
    const { log, close } = await openTestLog('embedded');
    const t = tempDir('shopstream-lake-compact-');
    const prefix = `${unique('cp')}.`;
    const topic = `${prefix}events.raw`;
    const storage = new LocalStorage(t.dir, { fsync: false });
    const groupId = unique('lake');
    try {
      await log.admin.createTopics([{ name: topic, partitions: 2 }]);
      const gen: GenOptions = { run: unique('c'), merchants: MERCHANTS, start: T0, spanMs: 3 * HOUR, total: 1200, visitors: 300 };
      const ids = await produceEvents(log, topic, gen);
      await sinkAll(log, storage, topic, groupId, ids.length);
      const want = { rows: ids.length, positions: ids.length, ids: ids.length };
      assert.deepEqual(await seen(t.dir, topic), want);
      const before = await storage.list(`lake/${topic}/`);
      const saved = new Map<string, Buffer>();
      for (const n of before) saved.set(n, await storage.read(n));
      // Hours 09 and 10 are closed 2 hours after 11:30; hour 11 is not.
      const now = T0 + 4.5 * HOUR;
      const closed = (n: string) => parseLakeFile(n)!.hour !== 11;
      const groups = new Set(before.filter(closed).map((n) => `${n.slice(0, n.lastIndexOf('/'))} ${parseLakeFile(n)!.partition}`));
      assert.ok(before.filter(closed).length > 2 * groups.size, `several files per group to merge (${before.length} files, ${groups.size} closed groups)`);

      // 1. A crash right after the first merged file is published: its inputs are still there.
      await assert.rejects(
        compactLake({
          storage,
          now,
          afterPublish: () => {
            throw new Error('crash after publish');
          },
        }),
        /crash after publish/,
      );
      let names = await storage.list(`lake/${topic}/`);
      assert.equal(names.length, before.length + 1, 'one merged file more, nothing deleted');
      assert.equal(splitSuperseded(names).superseded.length > 1, true, 'its inputs are superseded');
      assert.deepEqual(await seen(t.dir, topic), want, 'a reader sees every record once');
      assert.ok((await globCount(t.dir, topic)) > ids.length, 'a plain glob would count the superseded inputs again (why readers apply the rule)');
      assert.equal(await ruleCount(t.dir, topic), ids.length, 'the documented SQL for other readers applies the rule too');

      // 2. A crash in the middle of the deletes of a run.
      let deletes = 0;
      await assert.rejects(
        compactLake({
          storage,
          now,
          beforeDelete: () => {
            if (++deletes === 5) throw new Error('crash while deleting');
          },
        }),
        /crash while deleting/,
      );
      assert.deepEqual(await seen(t.dir, topic), want, 'after a crash in the deletes');
      assert.equal(await ruleCount(t.dir, topic), ids.length);

      // 3. A full run, checked at every step.
      let checks = 0;
      const check = async () => {
        checks++;
        assert.deepEqual(await seen(t.dir, topic), want, `reader at step ${checks}`);
      };
      const r = await compactLake({ storage, now, afterPublish: check, beforeDelete: check });
      assert.ok(checks > 5, `checked at ${checks} steps`);
      assert.ok(r.written.length > 0);
      names = await storage.list(`lake/${topic}/`);
      const after = new Map<string, string[]>();
      for (const n of names.filter(closed)) {
        const k = `${n.slice(0, n.lastIndexOf('/'))} ${parseLakeFile(n)!.partition}`;
        after.set(k, [...(after.get(k) ?? []), n]);
      }
      assert.equal(after.size, groups.size, 'every closed group is still there');
      for (const [k, files] of after) {
        assert.equal(files.length, 1, `${k}: one file`);
        assert.notEqual(parseLakeFile(files[0]!)!.end, undefined, `${k}: a compacted file`);
      }
      assert.deepEqual(names.filter((n) => !closed(n)), before.filter((n) => !closed(n)), 'the open hour is untouched');
      assert.deepEqual(await seen(t.dir, topic), want);
      assert.equal(await globCount(t.dir, topic), ids.length, 'nothing superseded is left: even a plain glob is exact');
      // A compacted file holds what its name says, ordered by offset, with the lake's metadata.
      const sample = names.find((n) => parseLakeFile(n)?.end !== undefined)!;
      const f = parseLakeFile(sample)!;
      const q = await queryLake({
        dir: t.dir,
        prefix,
        sql: `SELECT min("offset")::BIGINT, max("offset")::BIGINT, count(*) FROM read_parquet('${storage.locate(sample)}')`,
      });
      assert.deepEqual(q.rows[0], [f.start, f.end, q.rows[0]![2]]);
      // The CLI runs the same (nothing left to do for these hours).
      const out: string[] = [];
      assert.equal(await main(['lake', 'compact', '--data-dir', t.dir, '--older-than-hours', '100000'], { out: (l) => void out.push(l), err: (l) => void out.push(l) }), 0);
      assert.match(out.join('\n'), /^Compacted 0 files into 0/);

      // 4. The sink writes an old file again (a cut repeated after a crash): superseded, then deleted.
      const old = before.find((n) => closed(n) && !names.includes(n))!;
      const staged = await storage.stage(old);
      writeFileSync(staged.localPath, saved.get(old)!);
      await staged.publish();
      assert.ok(!visibleLakeFiles(await storage.list(`lake/${topic}/`)).includes(old), 'the rewritten file is superseded');
      assert.deepEqual(await seen(t.dir, topic), want);
      await compactLake({ storage, now });
      assert.ok(!(await storage.list(`lake/${topic}/`)).includes(old), 'and deleted by the next run');

      // 5. Late records of a closed hour: a new sink file, merged by the next run.
      const late = await produceEvents(log, topic, { ...gen, run: unique('late'), start: T0 + 10 * 60_000, spanMs: 10 * 60_000, total: 40 });
      await sinkAll(log, storage, topic, groupId, ids.length + late.length);
      const all = { rows: ids.length + late.length, positions: ids.length + late.length, ids: ids.length + late.length };
      assert.deepEqual(await seen(t.dir, topic), all);
      const r2 = await compactLake({ storage, now });
      assert.ok(r2.written.length > 0, 'the late files are merged');
      assert.deepEqual(await seen(t.dir, topic), all);
      assert.equal(await globCount(t.dir, topic), all.rows);
    } finally {
      await close();
      t.cleanup();
    }
  });
});
