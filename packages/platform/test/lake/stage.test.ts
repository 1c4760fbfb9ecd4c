/**
 * The sink's hand-off to DuckDB (src/lake/stage.ts, parquet.ts, workers.ts): records staged as flat
 * lines and turned into Parquet by `read_csv` + COPY. Every column read back equals what the decoder
 * says of the record (event time with the Segment clock-skew correction, a missing timestamp, a
 * refused message, a value that is not JSON, not UTF-8, empty or null, values holding the line's
 * separator bytes, a line over DuckDB's default 2 MB), and a sink decoding in worker threads writes
 * the same files, byte for byte, as one decoding on its own thread.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ConsumedRecord, Header, ProducerRecord } from '@shopstream/streams';
import { rawRecordHeaders, type IngestContext } from '../../src/contract/index.ts';
import { headersJson, hivePartition, rawDecoder, validTime, type DecodedLakeRecord, type LakeDecoder } from '../../src/lake/decode.ts';
import { ParquetWriter } from '../../src/lake/parquet.ts';
import { LakeSink } from '../../src/lake/sink.ts';
import { packRecords, unpackRecords } from '@shopstream/streams/remote';
import { LineBuffer, PART_BYTES, SlabPool, stageRecords } from '../../src/lake/stage.ts';
import { LocalStorage } from '../../src/lake/storage.ts';
import { openTestLog, tempDir, unique } from '../helpers.ts';

const T0 = Date.UTC(2026, 10, 20, 9, 30, 0);

function message(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'track', event: 'Product Viewed', messageId: `m-${i}`, anonymousId: `v-${i % 7}`, timestamp: new Date(T0 + i * 1000).toISOString(), properties: { product_id: `p${i}`, price: 10 + i, currency: 'EUR' }, ...extra };
}

/** Records covering the edge cases, as the collector writes them (plus a few it never writes). */
function edgeValues(): { value: Buffer | null; ctx?: Partial<IngestContext>; headers?: Header[] }[] {
  const sentAtSkew = message(1, { timestamp: undefined, originalTimestamp: new Date(T0 - 2 * 3_600_000).toISOString(), sentAt: new Date(T0 - 3_600_000).toISOString() });
  return [
    { value: Buffer.from(JSON.stringify(message(0))) },
    // Clock skew: timestamp = receivedAt - (sentAt - originalTimestamp), one hour before the received time.
    { value: Buffer.from(JSON.stringify(sentAtSkew)) },
    // No timestamp at all: the event time is the received time.
    { value: Buffer.from(JSON.stringify(message(2, { timestamp: undefined }))) },
    // The batch's sentAt (a header) corrects the clock too.
    { value: Buffer.from(JSON.stringify(message(3, { timestamp: undefined, originalTimestamp: new Date(T0 - 600_000).toISOString() }))), ctx: { batchSentAt: new Date(T0 - 300_000).toISOString() } },
    // Refused: unknown event name, then an event time 40 days old.
    { value: Buffer.from(JSON.stringify(message(4, { event: 'Nope Happened' }))) },
    { value: Buffer.from(JSON.stringify(message(5, { timestamp: new Date(T0 - 40 * 86_400_000).toISOString() }))) },
    // Not JSON; pretty-printed JSON (raw newlines and a tab); a value holding U+001F and NUL; one starting with the marker U+0002.
    { value: Buffer.from('{"type":"track","event":"Product Viewed"') },
    { value: Buffer.from(JSON.stringify(message(6), null, 2).replace('  ', '\t')) },
    { value: Buffer.from('{"a":"x\u001fy"}\u0000') },
    { value: Buffer.from('\u0002{"b":1}') },
    { value: Buffer.from('line\r\nbreaks') },
    // Empty, null, not UTF-8.
    { value: Buffer.alloc(0) },
    { value: null },
    { value: Buffer.from([0x7b, 0xff, 0xfe, 0x0a, 0x1f, 0x7d]) },
    // An encoded surrogate and a code point above U+10FFFF are not UTF-8; noncharacters and U+10FFFF are.
    { value: Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]) },
    { value: Buffer.from([0xf4, 0x90, 0x80, 0x80]) },
    { value: Buffer.from('"\ufffe\uffff\u{10ffff}\u00a0"', 'utf8') },
    // Identifiers with the separator bytes, quotes, backslashes and non-ASCII text; a merchant with a slash and a newline.
    { value: Buffer.from(JSON.stringify(message(7, { messageId: 'm\u001f7\n"q"\\', anonymousId: 'vé🙂\r' }))), ctx: { merchantId: 'shop/ü\nx' } },
    // No merchant header value.
    { value: Buffer.from(JSON.stringify(message(8))), ctx: { merchantId: '' } },
    // A line longer than DuckDB's default maximum (2 MB).
    { value: Buffer.from(JSON.stringify(message(9, { properties: { product_id: 'big', name: 'x'.repeat(2_500_000) } }))) },
  ];
}

function edgeRecords(topic: string): ConsumedRecord[] {
  return edgeValues().map((v, i) => {
    const receivedAt = T0 + i * 1000 + 500;
    const ctx: IngestContext = { merchantId: 'shop-a', defaultCurrency: 'EUR', receivedAt, ...v.ctx };
    return { topic, partition: 3, offset: 100 + i * 2, timestamp: receivedAt, key: null, value: v.value, headers: v.headers ?? rawRecordHeaders(ctx, undefined) };
  });
}

interface Row {
  offset: number;
  partition: number;
  received_at: number;
  merchant: string | null;
  message_id: string | null;
  event: string | null;
  type: string | null;
  visitor_id: string | null;
  event_time: number | null;
  payload: string | null;
  payload_bytes: Buffer | null;
  headers: string;
  reject_code: string | null;
}

async function readRows(file: string): Promise<Row[]> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const r = await c.runAndReadAll(
      `SELECT "offset"::DOUBLE AS "offset", "partition", epoch_ms(received_at)::DOUBLE AS received_at, merchant, message_id, event, type, visitor_id,
        epoch_ms(event_time)::DOUBLE AS event_time, payload, to_hex(payload_bytes) AS payload_hex, headers, reject_code,
        typeof(received_at) AS t1, typeof(event_time) AS t2, typeof(payload_bytes) AS t3, typeof("partition") AS t4, typeof("offset") AS t5
       FROM read_parquet('${file.replaceAll("'", "''")}')`,
    );
    return (r.getRowObjects() as Record<string, unknown>[]).map((x) => {
      assert.deepEqual([x['t1'], x['t2'], x['t3'], x['t4'], x['t5']], ['TIMESTAMP', 'TIMESTAMP', 'BLOB', 'INTEGER', 'BIGINT']);
      return {
        offset: x['offset'] as number,
        partition: x['partition'] as number,
        received_at: x['received_at'] as number,
        merchant: x['merchant'] as string | null,
        message_id: x['message_id'] as string | null,
        event: x['event'] as string | null,
        type: x['type'] as string | null,
        visitor_id: x['visitor_id'] as string | null,
        event_time: x['event_time'] as number | null,
        payload: x['payload'] as string | null,
        payload_bytes: x['payload_hex'] === null ? null : Buffer.from(x['payload_hex'] as string, 'hex'),
        headers: x['headers'] as string,
        reject_code: x['reject_code'] as string | null,
      };
    });
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

/** The row the lake must hold for a record, from the decoder directly. */
function expectedRow(r: ConsumedRecord, d: DecodedLakeRecord): Row {
  const utf8 = r.value !== null && Buffer.from(r.value.toString('utf8'), 'utf8').equals(r.value);
  return {
    offset: r.offset,
    partition: r.partition,
    received_at: Math.trunc(validTime(d.receivedAt) ? d.receivedAt : r.timestamp),
    merchant: d.merchant,
    message_id: d.messageId,
    event: d.event,
    type: d.type,
    visitor_id: d.visitorId,
    event_time: validTime(d.eventTime) ? Math.trunc(d.eventTime) : null,
    payload: r.value !== null && utf8 ? r.value.toString('utf8') : null,
    payload_bytes: r.value !== null && !utf8 ? r.value : null,
    headers: headersJson(r),
    reject_code: d.rejectCode,
  };
}

async function writeStaged(dir: string, records: ConsumedRecord[], decoder: LakeDecoder): Promise<{ rows: Row[]; hives: string[] }> {
  const b = stageRecords(records, () => decoder);
  const writer = await ParquetWriter.open({ scratchDir: dir });
  const rows: Row[] = [];
  const hives: string[] = [];
  try {
    // One file per hive partition, as the sink does: the lines of each are contiguous.
    for (let h = 0; h < b.hives.length; h++) {
      const mine = records.map((_, i) => i).filter((i) => b.hive[i] === h);
      const start = Math.min(...mine.map((i) => b.start[i]!));
      const end = Math.max(...mine.map((i) => b.end[i]!));
      assert.equal(mine.reduce((a, i) => a + b.end[i]! - b.start[i]!, 0), end - start, 'the lines of a hive partition are contiguous');
      const path = join(dir, `f${h}.parquet`);
      await writer.write(path, { chunks: [b.bytes.subarray(start, end)], maxLine: b.maxLine, partition: 3 }, { shopstream_topic: 't' });
      rows.push(...(await readRows(path)));
      for (const _ of mine) hives.push(b.hives[h]!);
    }
  } finally {
    await writer.close();
  }
  // Rows back in record order, with the hive partition of each.
  const order = records.map((r) => r.offset);
  const byOffset = new Map(rows.map((r, k) => [r.offset, { row: r, hive: hives[k]! }]));
  return { rows: order.map((o) => byOffset.get(o)!.row), hives: order.map((o) => byOffset.get(o)!.hive) };
}

describe('lake staging: records → lines → Parquet', () => {
  it('every column equals the decoder’s view of the record, edge cases included', { timeout: 60_000 }, async () => {
    const t = tempDir('shopstream-lake-stage-');
    try {
      const records = edgeRecords('events.raw');
      const { rows, hives } = await writeStaged(t.dir, records, rawDecoder);
      assert.equal(rows.length, records.length);
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        const d = rawDecoder(r);
        assert.deepEqual(rows[i], expectedRow(r, d), `record ${i}`);
        const time = validTime(d.eventTime) ? d.eventTime : validTime(d.receivedAt) ? d.receivedAt : r.timestamp;
        assert.equal(hives[i], hivePartition(d.merchant, time), `hive partition of record ${i}`);
      }
      // The decoder's facts, spelled out for the cases that matter.
      const at = (i: number) => rows[i]!;
      assert.equal(at(0).event_time, T0, 'timestamp as sent');
      assert.equal(at(1).event_time, T0 + 1000 + 500 - 3_600_000, 'sentAt skew: receivedAt - (sentAt - originalTimestamp)');
      assert.equal(at(2).event_time, T0 + 2000 + 500, 'no timestamp: the received time');
      assert.equal(at(3).event_time, T0 + 3000 + 500 - 300_000, "the batch's sentAt corrects the clock");
      assert.deepEqual([at(4).reject_code, at(4).event_time, at(4).message_id], ['SHOP_ERR_UNKNOWN_EVENT', null, null]);
      assert.equal(at(5).reject_code, 'SHOP_ERR_TIMESTAMP_PAST');
      assert.equal(hives[5], hivePartition('shop-a', T0 + 5000 + 500), 'refused: filed under the received hour');
      assert.equal(at(6).reject_code, 'SHOP_ERR_EVENT_SCHEMA', 'not JSON');
      assert.equal(at(7).payload, records[7]!.value!.toString('utf8'), 'pretty-printed JSON kept byte for byte');
      assert.equal(at(11).payload, '', 'an empty value is an empty string');
      assert.deepEqual([at(12).payload, at(12).payload_bytes], [null, null], 'a null value');
      assert.deepEqual(at(13).payload_bytes, records[13]!.value, 'bytes that are not UTF-8');
      assert.deepEqual([at(14).payload_bytes, at(15).payload_bytes, at(16).payload], [records[14]!.value, records[15]!.value, records[16]!.value!.toString('utf8')]);
      assert.equal(at(17).merchant, 'shop/ü\nx');
      assert.equal(at(17).message_id, 'm\u001f7\n"q"\\');
      assert.equal(hives[17], 'merchant=shop%2F%C3%BC%0Ax/dt=2026-11-20/hour=09');
      assert.equal(at(18).merchant, '', 'the canonical event’s merchant id, empty as in the header');
      assert.ok(hives[18]!.startsWith('merchant=_unknown/'));
      assert.ok(at(19).payload!.length > 2_500_000);
    } finally {
      t.cleanup();
    }
  });

  it('a custom decoder’s empty strings stay empty strings, its nulls stay null', { timeout: 60_000 }, async () => {
    const t = tempDir('shopstream-lake-stage-');
    try {
      const records = edgeRecords('custom').slice(0, 4);
      const values: DecodedLakeRecord[] = [
        { merchant: '', receivedAt: T0, eventTime: T0 + 1.7, messageId: '', event: '\u0002x', type: 'a\u0000b', visitorId: ' ', rejectCode: '' },
        { merchant: null, receivedAt: Number.NaN, eventTime: Number.POSITIVE_INFINITY, messageId: null, event: null, type: null, visitorId: null, rejectCode: null },
        { merchant: 'm', receivedAt: -5_000.5, eventTime: -86_400_000, messageId: 'x'.repeat(1000), event: 'é', type: 't', visitorId: 'v', rejectCode: 'C' },
        { merchant: 'm', receivedAt: 9e15, eventTime: 8.64e15, messageId: '\ud83d\ude42', event: 'e', type: 't', visitorId: 'v', rejectCode: null },
      ];
      const decoder: LakeDecoder = (r) => values[(r.offset - 100) / 2]!;
      const { rows } = await writeStaged(t.dir, records, decoder);
      for (let i = 0; i < records.length; i++) assert.deepEqual(rows[i], expectedRow(records[i]!, values[i]!), `record ${i}`);
    } finally {
      t.cleanup();
    }
  });

  it('a file’s lines keep their bytes across parts, and parts are used again', () => {
    const pool = new SlabPool(PART_BYTES, 4);
    const source = Buffer.from(Array.from({ length: 3 * PART_BYTES }, (_, i) => (i * 7 + (i >> 11)) & 0xff));
    for (let round = 0; round < 2; round++) {
      const lines = new LineBuffer(pool);
      const expected: Buffer[] = [];
      let at = round;
      for (const n of [1, 10, 32 * 1024 - 12, 5, PART_BYTES, 3, PART_BYTES - 7, 100_000]) {
        lines.append(source, at, at + n);
        expected.push(source.subarray(at, at + n));
        at = (at + n * 13) % (source.length - PART_BYTES - 1);
      }
      assert.ok(Buffer.concat(lines.chunks()).equals(Buffer.concat(expected)));
      lines.release();
      assert.equal(lines.chunks().length, 0);
    }
    assert.equal(pool.take().byteLength, PART_BYTES);
  });

  it('a writer deletes the scratch files of writers that crashed, not those of live ones', { timeout: 30_000 }, async () => {
    const t = tempDir('shopstream-lake-scratch-');
    try {
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      const stale = join(t.dir, `shopstream-lake-lines-${dead}-0123456789ab.txt`);
      const live = join(t.dir, `shopstream-lake-lines-${process.pid}-0123456789ab.txt`);
      writeFileSync(stale, 'x');
      writeFileSync(live, 'y');
      const writer = await ParquetWriter.open({ scratchDir: t.dir });
      assert.equal(existsSync(stale), false, 'the crashed writer’s scratch file is gone');
      assert.equal(existsSync(live), true, 'a live writer’s scratch file stays');
      await writer.close();
      assert.deepEqual(readdirSync(t.dir), [`shopstream-lake-lines-${process.pid}-0123456789ab.txt`], 'close() deletes its own');
    } finally {
      t.cleanup();
    }
  });

  it('packing for a worker thread keeps every field', () => {
    const records = edgeRecords('events.raw');
    records[0] = { ...records[0]!, headers: [...records[0]!.headers, ['shopstream.merchant', Buffer.from('again')], ['', Buffer.alloc(0)]] };
    const back = unpackRecords(packRecords(records));
    assert.equal(back.length, records.length);
    for (let i = 0; i < records.length; i++) {
      const a = records[i]!;
      const b = back[i]!;
      assert.deepEqual([b.topic, b.partition, b.offset, b.timestamp], [a.topic, a.partition, a.offset, a.timestamp]);
      assert.deepEqual(b.key === null ? null : Buffer.from(b.key), a.key === null ? null : Buffer.from(a.key));
      assert.deepEqual(b.value === null ? null : Buffer.from(b.value), a.value === null ? null : Buffer.from(a.value));
      assert.deepEqual(b.headers.map(([n, v]) => [n, Buffer.from(v)]), a.headers.map(([n, v]) => [n, Buffer.from(v)]));
      assert.deepEqual(rawDecoder(b), rawDecoder(a));
    }
  });
});

function filesOf(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile() && e.name.endsWith('.parquet')) out.set(relative(dir, join(e.parentPath, e.name)), readFileSync(join(e.parentPath, e.name)));
  }
  return out;
}

describe('lake sink: decoding in worker threads', () => {
  it('writes the same files, byte for byte, as decoding on the sink’s thread', { timeout: 120_000 }, async () => {
    const { log, close } = await openTestLog('embedded');
    const dirs = [tempDir('shopstream-lake-w0-'), tempDir('shopstream-lake-w2-')];
    const topic = `${unique('lk')}.events.raw`;
    try {
      await log.admin.createTopics([{ name: topic, partitions: 2 }]);
      const producer = log.createProducer();
      const records: ProducerRecord[] = [];
      const edges = edgeRecords(topic).filter((r) => r.value === null || r.value.length < 100_000);
      for (let i = 0; i < 3000; i++) {
        const edge = i % 100 === 7 ? edges[(i / 100) % edges.length | 0] : undefined;
        const receivedAt = T0 + i * 5_000;
        const ctx: IngestContext = { merchantId: `shop-${i % 3}`, defaultCurrency: 'EUR', receivedAt };
        records.push({
          topic,
          partition: i % 2,
          key: null,
          value: edge !== undefined ? edge.value : Buffer.from(JSON.stringify(message(i, { timestamp: new Date(receivedAt - 20_000).toISOString() }))),
          timestamp: receivedAt,
          headers: edge !== undefined ? edge.headers : rawRecordHeaders(ctx, undefined),
        });
      }
      await producer.send(records);
      await producer.close();
      for (const [k, threads] of [0, 2].entries()) {
        const sink = new LakeSink({ log, storage: new LocalStorage(dirs[k]!.dir, { fsync: false }), groupId: unique('lake'), topics: [topic], flushSize: 700, rotateScheduleIntervalMs: 0, pollMs: 20, maxRecords: 250, decodeThreads: threads });
        await sink.start();
        const deadline = Date.now() + 60_000;
        while (sink.positions().reduce((a, p) => a + p.offset, 0) < records.length) {
          if (Date.now() > deadline) throw new Error('timed out waiting for the sink');
          await new Promise((r) => setTimeout(r, 20));
        }
        await sink.close();
      }
      const [a, b] = dirs.map((d) => filesOf(d.dir));
      assert.ok(a!.size > 10, 'several files');
      assert.deepEqual([...b!.keys()].sort(), [...a!.keys()].sort(), 'the same file names');
      for (const [name, bytes] of a!) assert.ok(bytes.equals(b!.get(name)!), `${name}: the same bytes`);
      // And the files hold every record once.
      const rows = (await Promise.all([...a!.keys()].map((f) => readRows(join(dirs[0]!.dir, f))))).flat();
      assert.equal(rows.length, records.length);
      assert.equal(new Set(rows.map((r) => `${r.partition}/${r.offset}`)).size, records.length);
    } finally {
      await close();
      for (const d of dirs) d.cleanup();
    }
  });
});
