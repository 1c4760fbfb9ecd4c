/**
 * The lake sink: events.raw records of two merchants across three event hours land in the right hive
 * partitions under deterministic names; rotation by flush size and event time; and after a crash in
 * the middle of a cut (some files published, offsets not committed) plus a stray temporary file, a
 * restarted sink leaves every input record in the lake exactly once, with the files published before
 * the crash rewritten byte for byte.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Log, ProducerRecord } from '@shopstream/streams';
import { rawRecordHeaders, type IngestContext } from '../../src/contract/index.ts';
import { LakeSink, type LakeSinkOptions } from '../../src/lake/sink.ts';
import { LocalStorage } from '../../src/lake/storage.ts';
import { openTestLog, tempDir, unique, type LogKind } from '../helpers.ts';

const T0 = Date.UTC(2026, 2, 1, 10, 0, 0);
const MERCHANTS = ['shop-a', 'shop-b'];

interface Sent {
  partition: number;
  offset: number;
  payload: string;
  merchant: string;
  hive: string;
}

/** Record i: partition (i/2)%n, merchant i%2, event hour (i*7)%3 (interleaved), received 30 s after the event. Every 50th does not normalize. */
function rawInput(topic: string, i: number, partitions: number): ProducerRecord & { merchant: string; hive: string; payload: string } {
  const merchant = MERCHANTS[i % 2]!;
  const hour = (i * 7) % 3;
  const at = T0 + hour * 3_600_000 + (i % 60) * 1000;
  const receivedAt = at + 30_000;
  const ctx: IngestContext = { merchantId: merchant, defaultCurrency: 'EUR', receivedAt };
  const bad = i % 50 === 49;
  const payload = bad
    ? `{"type":"track","event":"Product Viewed","messageId":"bad-${i}"` // not JSON: never dropped, filed under the received hour
    : JSON.stringify({ type: 'page', messageId: `m-${i}`, anonymousId: `v${i % 17}`, timestamp: new Date(at).toISOString(), properties: { path: `/p/${i}` } });
  const iso = new Date(bad ? receivedAt : at).toISOString();
  return {
    topic,
    partition: (i >> 1) % partitions,
    key: Buffer.from(`v${i % 17}`),
    value: Buffer.from(payload),
    timestamp: receivedAt,
    headers: rawRecordHeaders(ctx, undefined),
    merchant,
    payload,
    hive: `merchant=${merchant}/dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`,
  };
}

async function produce(log: Log, topic: string, from: number, to: number, partitions: number): Promise<Sent[]> {
  const producer = log.createProducer();
  try {
    const inputs = Array.from({ length: to - from }, (_, k) => rawInput(topic, from + k, partitions));
    const meta = await producer.send(inputs.map(({ topic: t, partition, key, value, timestamp, headers }) => ({ topic: t, partition, key, value, timestamp, headers })));
    return inputs.map((x, k) => ({ partition: meta[k]!.partition, offset: meta[k]!.offset, payload: x.payload, merchant: x.merchant, hive: x.hive }));
  } finally {
    await producer.close();
  }
}

interface LakeRowRead {
  offset: number;
  partition: number;
  payload: string;
  merchant: string | null;
  event_time: unknown;
  reject_code: string | null;
  file: string;
}

/** Every row of every visible file, through DuckDB's hive-partitioned glob. */
async function readLake(dir: string, topic: string): Promise<LakeRowRead[]> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const glob = join(dir, 'lake', topic, '**', '*.parquet').replaceAll("'", "''");
    const r = await c.runAndReadAll(
      `SELECT "offset", "partition", payload, merchant, event_time, reject_code, filename FROM read_parquet('${glob}', hive_partitioning = true, filename = true) ORDER BY "partition", "offset"`,
    );
    return (r.getRowObjects() as Record<string, unknown>[]).map((x) => ({
      offset: Number(x['offset']),
      partition: Number(x['partition']),
      payload: x['payload'] as string,
      merchant: x['merchant'] as string | null,
      event_time: x['event_time'],
      reject_code: x['reject_code'] as string | null,
      file: (x['filename'] as string).slice(join(dir, 'lake', topic).length + 1),
    }));
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

async function kvMetadata(dir: string, file: string): Promise<Record<string, string>> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const r = await c.runAndReadAll(`SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata('${file.replaceAll("'", "''")}')`);
    return Object.fromEntries((r.getRowObjects() as Array<{ k: string; v: string }>).map((x) => [x.k, x.v]));
  } finally {
    c.closeSync();
    db.closeSync();
    void dir;
  }
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until the sink has read every sent record. */
async function caughtUp(sink: LakeSink, sent: readonly Sent[]): Promise<void> {
  const ends = new Map<number, number>();
  for (const s of sent) ends.set(s.partition, Math.max(ends.get(s.partition) ?? 0, s.offset + 1));
  await waitFor('the sink to read everything', () => [...ends].every(([p, end]) => (sink.positions().find((x) => x.partition === p)?.offset ?? -1) >= end));
}

/** Checks that the lake holds exactly the sent records, each in its hive partition, in files named after their first record. */
function checkLake(rows: readonly LakeRowRead[], sent: readonly Sent[], topic: string): void {
  assert.equal(rows.length, sent.length, 'as many rows as records sent');
  const byKey = new Map(sent.map((s) => [`${s.partition}/${s.offset}`, s]));
  const seen = new Set<string>();
  const firstOfFile = new Map<string, number>();
  for (const r of rows) {
    const k = `${r.partition}/${r.offset}`;
    assert.ok(!seen.has(k), `record ${k} is in the lake once`);
    seen.add(k);
    const s = byKey.get(k);
    assert.ok(s, `record ${k} was sent`);
    assert.equal(r.payload, s.payload, `payload of ${k}`);
    const m = /^(merchant=[^/]+\/dt=[^/]+\/hour=\d\d)\/(.+)\+(\d+)\+(\d{19})\.parquet$/.exec(r.file);
    assert.ok(m, `file name ${r.file}`);
    assert.equal(m[1], s.hive, `hive partition of ${k}`);
    assert.equal(m[2], topic);
    assert.equal(Number(m[3]), r.partition);
    firstOfFile.set(r.file, Math.min(firstOfFile.get(r.file) ?? Infinity, r.offset));
  }
  for (const [file, first] of firstOfFile) assert.equal(Number(file.slice(-27, -8)), first, `${file} is named after its first record`);
}

function sinkOptions(log: Log, dir: string, topic: string, groupId: string, extra: Partial<LakeSinkOptions> = {}): LakeSinkOptions {
  return { log, storage: new LocalStorage(dir, { fsync: false }), groupId, topics: [topic], rotateScheduleIntervalMs: 0, pollMs: 50, ...extra };
}

for (const kind of ['embedded', 'kafka'] as LogKind[]) {
  describe(`lake sink (${kind})`, () => {
    it('two merchants across three event hours: hive paths, names, every record exactly once', { timeout: 120_000 }, async () => {
      const { log, close } = await openTestLog(kind);
      const t = tempDir('shopstream-lake-');
      const topic = `${unique('lk')}.events.raw`;
      try {
        await log.admin.createTopics([{ name: topic, partitions: 2 }]);
        const sent = await produce(log, topic, 0, 300, 2);
        const sink = new LakeSink(sinkOptions(log, t.dir, topic, unique('lake'), { rotateIntervalMs: 24 * 3_600_000 }));
        await sink.start();
        await caughtUp(sink, sent);
        await sink.close();
        const rows = await readLake(t.dir, topic);
        checkLake(rows, sent, topic);
        // One segment per input partition: one file per (input partition, hive partition).
        const files = new Set(rows.map((r) => r.file));
        const hives = new Set(sent.map((s) => `${s.partition} ${s.hive}`));
        assert.equal(files.size, hives.size);
        assert.deepEqual(new Set(rows.map((r) => r.merchant)), new Set(MERCHANTS));
        const bad = rows.filter((r) => r.reject_code !== null);
        assert.equal(bad.length, sent.filter((s) => s.payload.startsWith('{"type":"track"')).length);
        assert.ok(bad.every((r) => r.event_time === null));
        const kv = await kvMetadata(t.dir, join(t.dir, 'lake', topic, rows[0]!.file));
        assert.equal(kv['shopstream_lake_schema'], '1');
        assert.equal(kv['shopstream_topic'], topic);
      } finally {
        await close();
        t.cleanup();
      }
    });

    for (const secondFlushSize of kind === 'embedded' ? [25, 1000] : [25])
    it(`a crash in the middle of a cut, and a stray temporary file: after a restart (flush size ${secondFlushSize}) every record is in the lake once`, { timeout: 120_000 }, async () => {
      const { log, close } = await openTestLog(kind);
      const t = tempDir('shopstream-lake-');
      const topic = `${unique('lk')}.events.raw`;
      const groupId = unique('lake');
      try {
        await log.admin.createTopics([{ name: topic, partitions: 2 }]);
        const sent = await produce(log, topic, 0, 200, 2);
        let published = 0;
        let crash: Promise<void> | undefined;
        const first: LakeSink = new LakeSink(
          sinkOptions(log, t.dir, topic, groupId, {
            flushSize: 25,
            rotateIntervalMs: 24 * 3_600_000,
            maxRecords: 10,
            beforePublish: () => {
              // The 10th file: the second cut of a partition, with some of its files already published.
              if (++published === 10) {
                crash = first.abort();
                throw new Error('simulated crash before publishing');
              }
            },
          }),
        );
        await first.start();
        await waitFor('the crash', () => crash !== undefined);
        await crash;
        const storage = new LocalStorage(t.dir);
        const before = new Map<string, Buffer>();
        for (const name of await storage.list(`lake/${topic}/`)) before.set(name, await storage.read(name));
        assert.equal(before.size, 9, 'nine files were published before the crash');
        // A crash also leaves the file being written under its temporary name.
        const stray = join(t.dir, 'lake', topic, [...before.keys()][0]!.split('/').slice(2, 5).join('/'), `${topic}+0+0000000000000099999.parquet.tmp-deadbeef`);
        writeFileSync(stray, 'half a parquet file');
        assert.equal((await readLake(t.dir, topic)).length > 0, true, 'the glob skips the temporary file');

        // More records arrive while the sink is down.
        sent.push(...(await produce(log, topic, 200, 300, 2)));
        // A restart with another flush size still repeats the recorded cut first (same files, same bytes).
        const second = new LakeSink(sinkOptions(log, t.dir, topic, groupId, { flushSize: secondFlushSize, rotateIntervalMs: 24 * 3_600_000 }));
        await second.start();
        await caughtUp(second, sent);
        await second.close();

        const rows = await readLake(t.dir, topic);
        checkLake(rows, sent, topic);
        for (const [name, bytes] of before) assert.deepEqual(await storage.read(name), bytes, `${name} was rewritten identically`);
        // Flush size: a cut every 25 records of a partition, so no file spans two blocks of 25 of its partition's records.
        const files = new Map<string, number[]>();
        for (const r of rows) files.set(r.file, [...(files.get(r.file) ?? []), r.offset]);
        const ordinal = new Map(sent.map((s) => [`${s.partition}/${s.offset}`, sent.filter((x) => x.partition === s.partition && x.offset < s.offset).length]));
        for (const [file, offsets] of secondFlushSize === 25 ? files : []) {
          const blocks = new Set(offsets.map((o) => Math.floor(ordinal.get(`${file.split('+')[1]}/${o}`)! / 25)));
          assert.equal(blocks.size, 1, `${file} holds records of one segment`);
        }
        assert.deepEqual(await storage.removeStaleTemporaries(0), [stray.slice(t.dir.length + 1)]);
      } finally {
        await close();
        t.cleanup();
      }
    });
  });
}

describe('lake sink rotation (embedded)', () => {
  it('by event time: no file spans more than rotateIntervalMs, and names follow the first record', { timeout: 60_000 }, async () => {
    const { log, close } = await openTestLog('embedded');
    const t = tempDir('shopstream-lake-');
    const topic = `${unique('lk')}.events.raw`;
    try {
      await log.admin.createTopics([{ name: topic, partitions: 1 }]);
      const producer = log.createProducer();
      const records: ProducerRecord[] = [];
      for (let i = 0; i < 120; i++) {
        const at = T0 + i * 60_000; // one a minute, in order: two hours
        const payload = JSON.stringify({ type: 'page', messageId: `m-${i}`, anonymousId: 'v1', timestamp: new Date(at).toISOString(), properties: {} });
        records.push({ topic, partition: 0, key: Buffer.from('v1'), value: Buffer.from(payload), timestamp: at, headers: rawRecordHeaders({ merchantId: 'shop-a', defaultCurrency: 'EUR', receivedAt: at }, undefined) });
      }
      await producer.send(records);
      await producer.close();
      const sink = new LakeSink(sinkOptions(log, t.dir, topic, unique('lake'), { rotateIntervalMs: 20 * 60_000 }));
      await sink.start();
      await waitFor('the sink to read everything', () => (sink.positions()[0]?.offset ?? 0) >= 120);
      await sink.close();
      const rows = await readLake(t.dir, topic);
      assert.equal(rows.length, 120);
      const files = new Map<string, number[]>();
      for (const r of rows) files.set(r.file, [...(files.get(r.file) ?? []), r.offset]);
      // Cuts at minutes 20, 40, 60 (the new hour opens a new file too), 80, 100: six files of 20.
      assert.deepEqual(
        [...files].map(([f, o]) => [f.slice(-27, -8), o.length]),
        [0, 20, 40, 60, 80, 100].map((s) => [String(s).padStart(19, '0'), 20]),
      );
      for (const [f, o] of files) assert.equal(Number(f.slice(-27, -8)), o[0]);
    } finally {
      await close();
      t.cleanup();
    }
  });
});
