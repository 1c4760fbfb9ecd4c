/**
 * The data-lake sink (packages/platform/src/lake/, docs/lake.md): events.raw → Parquet on local disk,
 * against DuckDB's own COPY of the same events from NDJSON to Parquet, in the same run.
 *
 *   node bench/lake.bench.ts
 *   BENCH_EVENTS=200000 BENCH_RUNS=3 node bench/lake.bench.ts
 *   BENCH_DECODE_THREADS=2 node bench/lake.bench.ts   the sink's decoding threads (default: one per core, at most 4)
 *   BENCH_REFERENCE=0 node bench/lake.bench.ts        the sink alone, no DuckDB reference (to profile the sink)
 *   BENCH_FSYNC=0 node bench/lake.bench.ts            the sink's files not synced (what the syncs cost; production syncs)
 *
 * 1. events.raw (embedded log, fsync off for the fill, 4 partitions) is filled as the collector fills
 *    it: each ~700 B Segment message as sent, keyed by visitor, request facts in `rawRecordHeaders`,
 *    record time = arrival. 3 merchants, event times spread over 4 hours (so each segment writes
 *    several hive partitions).
 * 2. The sink: a LakeSink (default options: flushSize 10,000, rotation 1 h) over LocalStorage in a
 *    fresh folder (fsync on, as in production) with a fresh group. Timed from start() until it has
 *    read the whole topic and close() has cut the last segments (and, apart, over the second half: from
 *    when the read positions pass half the input to the end of close(), without the sink's start); the group's committed offsets are
 *    then checked to be at the end of the topic and the files to hold every record exactly once.
 * 3. The reference: DuckDB (in memory, 2 threads; the sink's writer runs 2 one-thread COPYs at a time) runs
 *    `COPY (SELECT … FROM read_json_auto('events.ndjson')) TO 'x.parquet' (FORMAT PARQUET, COMPRESSION zstd)`
 *    over an NDJSON file holding, per event, the same columns the sink writes (offset, partition,
 *    merchant, ids, event time, the message as a string, the headers as a JSON string, …): same
 *    input events, same output columns. Timed around the COPY alone (no fsync). Also shown, not the
 *    reference: `SELECT *` over the raw message lines (DuckDB shreds each message into nested columns).
 * 4. A floor, in the same runs (runFloor): the CPU per event of three steps that every lake sink of
 *    this platform must take, each measured alone over the same events: reading the topic, decoding
 *    each record with the event contract (JSON.parse + normalizeEvent: the event time, hence the
 *    hive partition, and the columns come from it), and DuckDB writing the rows to Parquet from a
 *    table that already holds them. The rate those allow on all cores, with nothing else to do (no
 *    hand-off between threads, no staging, no files), bounds any sink; its ratio to the reference
 *    shows what the target leaves possible.
 * 5. Sizes: the sink's .parquet files against the raw JSON (the record values), DuckDB's file against
 *    its NDJSON and against the raw JSON.
 * Medians of BENCH_RUNS runs; MB/s are MB of raw JSON (record values) per second for every row.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ConsumedRecord, Log, ProducerRecord } from '../packages/streams/src/index.ts';
import { openEmbeddedLog } from '../packages/streams/src/log/embedded/index.ts';
import { rawRecordHeaders } from '../packages/platform/src/contract/index.ts';
import { ensurePlatformTopics, topicNames } from '../packages/platform/src/topics.ts';
import { LakeSink, rawDecoder } from '../packages/platform/src/lake/sink.ts';
import { LocalStorage } from '../packages/platform/src/lake/storage.ts';
import { BENCH_UA, endTotal, median, rawRead, segmentMessage, youngGeneration } from './common.ts';

const N = Number(process.env['BENCH_EVENTS'] ?? 200_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const PARTITIONS = 4;
/** BENCH_FSYNC=0: the sink's files without fsync (to see what the syncs cost; production syncs). */
const FSYNC = process.env['BENCH_FSYNC'] !== '0';
const VISITORS = 5000;
const MERCHANTS = ['shop-a', 'shop-b', 'shop-c'];
const SPAN_MS = 4 * 3_600_000;
const T0 = Date.UTC(2026, 10, 26, 6, 0, 0);


async function fill(log: Log, topic: string): Promise<void> {
  const producer = log.createProducer({ clientId: 'bench-fill' });
  let batch: ProducerRecord[] = [];
  for (let i = 0; i < N; i++) {
    const v = i % VISITORS;
    const visitor = `visitor-${v}`;
    const merchantId = MERCHANTS[v % MERCHANTS.length]!;
    const at = T0 + Math.floor((i * SPAN_MS) / N);
    const receivedAt = at + 1500;
    const headers = rawRecordHeaders({ merchantId, defaultCurrency: 'USD', receivedAt, requestIp: '203.0.113.7', requestUserAgent: BENCH_UA }, undefined, false, false);
    batch.push({ topic, key: Buffer.from(visitor), value: Buffer.from(JSON.stringify(segmentMessage(i, visitor, at))), timestamp: receivedAt, headers });
    if (batch.length === 2000) {
      await producer.send(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await producer.send(batch);
  await producer.close();
}

/** Every record of the topic (untimed), for the NDJSON files. */
async function readAll(log: Log, topic: string): Promise<ConsumedRecord[]> {
  const reader = log.createReader({ clientId: 'bench-read' });
  reader.assign(Array.from({ length: PARTITIONS }, (_, partition) => ({ topic, partition, offset: 0 })));
  const out: ConsumedRecord[] = [];
  while (out.length < N) out.push(...(await reader.poll(1000)));
  await reader.close();
  return out;
}

function headersJson(r: ConsumedRecord): string {
  const o: Record<string, string> = {};
  for (const [name, value] of r.headers) o[name] = value.toString('utf8');
  return JSON.stringify(o);
}

/** One NDJSON line per event with the columns the sink writes (times as epoch ms). */
function sameColumnsLine(r: ConsumedRecord): string {
  const d = rawDecoder(r);
  return JSON.stringify({
    offset: r.offset,
    partition: r.partition,
    received_at_ms: d.receivedAt,
    merchant: d.merchant,
    message_id: d.messageId,
    event: d.event,
    type: d.type,
    visitor_id: d.visitorId,
    event_time_ms: d.eventTime,
    payload: r.value!.toString('utf8'),
    headers: headersJson(r),
    reject_code: d.rejectCode,
  });
}

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(suffix))
    .map((e) => join(e.parentPath, e.name));
}

const bytesOf = (files: readonly string[]) => files.reduce((a, f) => a + statSync(f).size, 0);

interface SinkRun {
  rate: number;
  /** Events/s from when the read positions passed half the input to the end of close(). */
  secondHalf: number;
  /** Cores kept busy on average (process CPU time, all threads, over wall time). */
  cores: number;
  parquetBytes: number;
  files: number;
  cuts: number;
}

async function runSink(log: Log, topic: string, duck: DuckDBInstance): Promise<SinkRun> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-lake-sink-'));
  const groupId = `bench-lake-${randomUUID().slice(0, 8)}`;
  const tps = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic, partition }));
  const total = await endTotal(log, tps);
  const sink = new LakeSink({ log, storage: new LocalStorage(dir, { fsync: FSYNC }), groupId, topics: [topic], ...(process.env['BENCH_DECODE_THREADS'] ? { decodeThreads: Number(process.env['BENCH_DECODE_THREADS']) } : {}) });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await sink.start();
  // The last segment of each partition is cut by close() (flush size and rotation cut the others).
  // Also timed: the second half, from when the read positions pass half the input (without the
  // start: the decoding threads load their modules and compile their hot code, ~0.4 s).
  let half: { read: number; at: number } | undefined;
  let read = 0;
  while ((read = sink.positions().reduce((a, p) => a + p.offset, 0)) < total) {
    if (half === undefined && read >= total / 2) half = { read, at: performance.now() };
    await new Promise((r) => setTimeout(r, 10));
  }
  half ??= { read, at: performance.now() };
  await sink.close();
  const t1 = performance.now();
  const s = (t1 - t0) / 1000;
  const secondHalf = (total - half.read) / ((t1 - half.at) / 1000);
  const cpu = process.cpuUsage(cpu0);
  const cores = (cpu.user + cpu.system) / 1e6 / s;
  const committed = (await log.admin.committedOffsets(groupId, tps)).reduce((a, c) => a + c.offset, 0);
  if (committed !== total) throw new Error(`sink committed ${committed}, expected ${total}`);
  const files = filesUnder(dir, '.parquet');
  const c = await duck.connect();
  const check = await c.runAndReadAll(
    `SELECT count(*)::BIGINT AS n, count(DISTINCT ("partition", "offset"))::BIGINT AS d, count(reject_code)::BIGINT AS rej FROM read_parquet('${dir}/**/*.parquet', hive_partitioning = true)`,
  );
  c.closeSync();
  const [n, d, rej] = check.getRows()[0]!.map(Number) as [number, number, number];
  if (n !== N || d !== N) throw new Error(`lake holds ${n} rows (${d} distinct), expected ${N}`);
  if (rej !== 0) throw new Error(`${rej} events did not normalize`);
  const stats = sink.stats();
  const parquetBytes = bytesOf(files);
  rmSync(dir, { recursive: true, force: true });
  return { rate: N / s, secondHalf, cores, parquetBytes, files: files.length, cuts: stats.cuts };
}

/** CPU time of the process (all threads: DuckDB's, V8's garbage collector's) per event while `f` runs, µs. */
async function cpuPerEvent(f: () => Promise<void> | void): Promise<number> {
  const c0 = process.cpuUsage();
  await f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N;
}

interface FloorRun {
  /** CPU µs per event of each step. */
  read: number;
  decode: number;
  write: number;
}

/**
 * The floor (see the header): what the three steps that every lake sink of this platform must take
 * cost in CPU per event, each measured alone on the same events. Reading the topic (a plain reader that
 * keeps nothing); decoding each record with the contract (`rawDecoder`: JSON.parse and
 * normalizeEvent, which give the event time, hence the partition, and the columns); and DuckDB
 * writing the rows to Parquet (zstd) from a table that already holds them (one thread, as the
 * sink's writer: no parsing at all). Nothing for handing records between threads, staging, files
 * or cuts.
 */
async function runFloor(log: Log, topic: string, sameFile: string): Promise<FloorRun> {
  const read = await cpuPerEvent(async () => {
    await rawRead(log, topic, PARTITIONS, N);
  });
  let records: ConsumedRecord[] = await readAll(log, topic);
  let normalized = 0;
  const decode = await cpuPerEvent(() => {
    for (const r of records) if (rawDecoder(r).rejectCode === null) normalized++;
  });
  records = [];
  if (normalized !== N) throw new Error(`floor: ${N - normalized} events did not normalize`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-lake-floor-'));
  const duck1 = await DuckDBInstance.create(':memory:', { threads: '1' });
  const c = await duck1.connect();
  await c.run(`CREATE TABLE rows AS ${SAME_COLUMNS.replace('$IN', `read_json_auto('${sameFile}')`)}`);
  const write = await cpuPerEvent(async () => {
    await c.run(`COPY rows TO '${join(dir, 'rows.parquet')}' (FORMAT PARQUET, COMPRESSION zstd)`);
  });
  c.closeSync();
  duck1.closeSync();
  rmSync(dir, { recursive: true, force: true });
  return { read, decode, write };
}

/** Seconds of DuckDB's COPY of `ndjson` to a Parquet file, and that file's size. */
async function runDuck(duck: DuckDBInstance, ndjson: string, select: string): Promise<{ s: number; bytes: number }> {
  const out = join(mkdtempSync(join(tmpdir(), 'bench-lake-duck-')), 'events.parquet');
  const c = await duck.connect();
  const t0 = performance.now();
  await c.run(`COPY (${select.replace('$IN', `read_json_auto('${ndjson}')`)}) TO '${out}' (FORMAT PARQUET, COMPRESSION zstd)`);
  const s = (performance.now() - t0) / 1000;
  c.closeSync();
  const bytes = statSync(out).size;
  rmSync(join(out, '..'), { recursive: true, force: true });
  return { s, bytes };
}

const SAME_COLUMNS = `SELECT "offset", "partition", epoch_ms(received_at_ms) AS received_at, merchant, message_id, event, type, visitor_id,
  epoch_ms(event_time_ms) AS event_time, payload, NULL::BLOB AS payload_bytes, headers, reject_code::VARCHAR AS reject_code FROM $IN`;
const RAW_LINES = 'SELECT * FROM $IN';

const logDir = mkdtempSync(join(tmpdir(), 'bench-lake-log-'));
const work = mkdtempSync(join(tmpdir(), 'bench-lake-ndjson-'));
const log = await openEmbeddedLog({ dir: logDir, fsync: false });
const topic = topicNames().raw;
await ensurePlatformTopics(log, { partitions: PARTITIONS });
await fill(log, topic);
const records = await readAll(log, topic);
const rawBytes = records.reduce((a, r) => a + r.value!.length, 0);
const sameFile = join(work, 'same-columns.ndjson');
const rawFile = join(work, 'raw.ndjson');
writeFileSync(sameFile, records.map(sameColumnsLine).join('\n') + '\n');
writeFileSync(rawFile, records.map((r) => r.value!.toString('utf8')).join('\n') + '\n');
const sameBytes = statSync(sameFile).size;
records.length = 0;
const MB = 1e6;
console.log(
  `lake bench: ${N.toLocaleString('en-US')} events (${(rawBytes / N).toFixed(0)} B of JSON each, ${(rawBytes / MB).toFixed(1)} MB), ${PARTITIONS} partitions, ` +
    `${MERCHANTS.length} merchants, ${SPAN_MS / 3_600_000} h of event time, median of ${RUNS} runs; sink fsync ${FSYNC ? 'on' : 'OFF'}, flushSize 10,000, ${youngGeneration()}`,
);

const duck = await DuckDBInstance.create(':memory:', { threads: '2' });
const sink: SinkRun[] = [];
const same: { s: number; bytes: number }[] = [];
const raw: { s: number; bytes: number }[] = [];
// BENCH_REFERENCE=0: the sink alone, to profile it (no reference, no ratio).
const REFERENCE = process.env['BENCH_REFERENCE'] !== '0';
const skipped = { s: Infinity, bytes: 0 };
const floor: FloorRun[] = [];
const CORES = availableParallelism();
const floorRate = (f: FloorRun) => (CORES * 1e6) / (f.read + f.decode + f.write);
for (let run = 0; run < RUNS; run++) {
  same.push(REFERENCE ? await runDuck(duck, sameFile, SAME_COLUMNS) : skipped);
  sink.push(await runSink(log, topic, duck));
  raw.push(REFERENCE ? await runDuck(duck, rawFile, RAW_LINES) : skipped);
  if (REFERENCE) floor.push(await runFloor(log, topic, sameFile));
  process.stderr.write(
    `  run ${run + 1}/${RUNS}: sink ${sink.at(-1)!.rate.toFixed(0)}/s, second half ${sink.at(-1)!.secondHalf.toFixed(0)}/s (${sink.at(-1)!.files} files, ${sink.at(-1)!.cuts} cuts, ${sink.at(-1)!.cores.toFixed(2)} cores busy), ` +
      (REFERENCE
        ? `DuckDB same columns ${(N / same.at(-1)!.s).toFixed(0)}/s, DuckDB raw lines ${(N / raw.at(-1)!.s).toFixed(0)}/s; ratio ${(sink.at(-1)!.rate / (N / same.at(-1)!.s)).toFixed(2)}; ` +
          `floor ${floorRate(floor.at(-1)!).toFixed(0)}/s (CPU per event: read ${floor.at(-1)!.read.toFixed(2)} µs, decode ${floor.at(-1)!.decode.toFixed(2)} µs, Parquet ${floor.at(-1)!.write.toFixed(2)} µs); `
        : 'no reference; ') +
      `load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores\n`,
  );
}
duck.closeSync();
await log.close();
rmSync(logDir, { recursive: true, force: true });
rmSync(work, { recursive: true, force: true });

const sinkRate = median(sink.map((r) => r.rate));
const halfRate = median(sink.map((r) => r.secondHalf));
const sameRate = median(same.map((r) => N / r.s));
const rawRate = median(raw.map((r) => N / r.s));
const sinkBytes = sink[0]!.parquetBytes;
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const mbs = (rate: number) => ((rate * rawBytes) / N / MB).toFixed(1);
if (!REFERENCE) {
  console.log(`\nlake sink, events.raw → Parquet (${sink[0]!.files} files, fsync ${FSYNC ? 'on' : 'OFF'}): ${fmt(sinkRate)} events/s, ${mbs(sinkRate)} MB/s (no reference: BENCH_REFERENCE=0)`);
  process.exit(0);
}
console.log('\n| writer | events/s | MB/s (raw JSON) | ratio to DuckDB COPY | Parquet bytes | size / raw JSON |\n|---|---|---|---|---|---|');
console.log(`| DuckDB COPY, NDJSON of the sink's columns → Parquet (reference) | ${fmt(sameRate)} | ${mbs(sameRate)} | 1.00 | ${fmt(same[0]!.bytes)} | ${(same[0]!.bytes / rawBytes).toFixed(3)} (${(same[0]!.bytes / sameBytes).toFixed(3)} of its ${(sameBytes / MB).toFixed(1)} MB NDJSON) |`);
console.log(`| lake sink, events.raw → Parquet (${sink[0]!.files} files, fsync ${FSYNC ? 'on' : 'OFF'}) | ${fmt(sinkRate)} | ${mbs(sinkRate)} | ${(sinkRate / sameRate).toFixed(2)} | ${fmt(sinkBytes)} | ${(sinkBytes / rawBytes).toFixed(3)} |`);
console.log(`| lake sink, second half of each run (after the start) | ${fmt(halfRate)} | ${mbs(halfRate)} | ${(halfRate / sameRate).toFixed(2)} | | |`);
const fl = median(floor.map(floorRate));
const part = (k: keyof FloorRun) => median(floor.map((f) => f[k])).toFixed(2);
console.log(`| floor: read + decode with the contract + DuckDB's Parquet write from a table, on ${CORES} cores (no sink can beat it) | ${fmt(fl)} | ${mbs(fl)} | ${(fl / sameRate).toFixed(2)} | | |`);
console.log(`| DuckDB COPY, raw message lines, SELECT * (shredded; not the reference) | ${fmt(rawRate)} | ${mbs(rawRate)} | ${(rawRate / sameRate).toFixed(2)} | ${fmt(raw[0]!.bytes)} | ${(raw[0]!.bytes / rawBytes).toFixed(3)} |`);
console.log(`\nsink / DuckDB COPY: ${(sinkRate / sameRate).toFixed(2)} (against the raw-lines COPY: ${(sinkRate / rawRate).toFixed(2)})`);
// Also per run (floor and reference measured back to back), then the median: steadier on a noisy host.
const floorRatios = floor.map((f, i) => floorRate(f) / (N / same[i]!.s));
console.log(
  `floor / DuckDB COPY: ${(fl / sameRate).toFixed(2)} (median of the runs' own ratios: ${median(floorRatios).toFixed(2)}); the floor's CPU per event (medians): read ${part('read')} µs, decode ${part('decode')} µs, Parquet ${part('write')} µs, ` +
    `against DuckDB's COPY ${((CORES * 1e6) / sameRate).toFixed(2)} µs of ${CORES} cores' time; the sink spends ${median(sink.map((r) => (r.cores * 1e6) / r.rate)).toFixed(2)} µs`,
);
console.log("target: sink >= 70% of DuckDB's COPY rate");
