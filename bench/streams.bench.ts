/**
 * Streams engine throughput over 1 KB JSON records, on both logs.
 *
 *   npm run bench                       both logs (starts no broker: run `npm run kafka:start` first)
 *   BENCH_LOGS=embedded npm run bench   one log
 *   BENCH_RECORDS=1000000 BENCH_RUNS=3  sizes (the defaults)
 *
 * A million records by default: a steady state, with stores that outgrow LMDB's first pages and
 * TTL segments that expire (the stream spans 2.8 hours of event time), and the start and final
 * commit a small part of each run.
 * For each log it measures, in the same run:
 *   - raw read: a plain reader of the same log client reading the input topic (the reference);
 *   - stateless: filter + mapValues, exactly-once;
 *   - stateful: de-duplicate (TTL store) + tumbling-window aggregate, exactly-once;
 *   - the exactly-once floor: the log's part of a stateful run with no engine (see eosFloor).
 * A topology run is timed from start() until its committed offsets reach the end of the input.
 * Each figure is the median of BENCH_RUNS runs; the ratio is to the median raw read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { StreamsApp, StreamThreads } from '../packages/streams/src/index.ts';
import type { Log, ProducerRecord, Topology } from '../packages/streams/src/index.ts';
import { stateful, stateless } from './topologies.ts';
import { endTotal, median, profiled, rawRead, untilCommitted } from './common.ts';
import type { Event } from './topologies.ts';
import { openEmbeddedLog } from '../packages/streams/src/log/embedded/index.ts';
import { connectKafkaLog } from '../packages/streams/src/log/kafka/index.ts';

const N = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PARTITIONS = 4;
const logs = (process.env.BENCH_LOGS ?? 'embedded,kafka').split(',');
const bootstrap = process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';


function makeRecords(topic: string): ProducerRecord[] {
  const out: ProducerRecord[] = [];
  const base = Date.UTC(2026, 10, 26);
  for (let i = 0; i < N; i++) {
    const dup = i % 10 === 9; // 10% duplicates of the previous record
    const j = dup ? i - 1 : i;
    const visitor = `visitor-${j % 5000}`;
    const e: Event = { id: `msg-${j}`, visitor, type: j % 7 === 0 ? 'order' : 'view', price: j % 1000, pad: '' };
    const size = Buffer.byteLength(JSON.stringify(e));
    e.pad = 'x'.repeat(Math.max(0, 1024 - size));
    out.push({ topic, key: Buffer.from(visitor), value: Buffer.from(JSON.stringify(e)), timestamp: base + j * 10 });
  }
  return out;
}

async function runTopology(log: Log, build: (i: string, o: string) => Topology, input: string): Promise<number> {
  const output = `bench-out-${randomUUID().slice(0, 8)}`;
  await log.admin.createTopics([{ name: output, partitions: PARTITIONS }]);
  const applicationId = `bench-${randomUUID().slice(0, 8)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-state-'));
  const app = new StreamsApp(build(input, output), { applicationId, log, stateDir, commitIntervalMs: 100, maxRecordsPerIteration: 5000 });
  const tps = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: input, partition }));
  const total = await endTotal(log, tps);
  const t0 = performance.now();
  await profiled(`${log.kind}-${build.name}`, async () => {
    await app.start();
    await untilCommitted(log, applicationId, tps, total, app);
  });
  const s = (performance.now() - t0) / 1000;
  await app.close();
  await log.admin.deleteTopics([output]);
  rmSync(stateDir, { recursive: true, force: true });
  return N / s;
}

/**
 * The log's part of an exactly-once stateful run, with no engine at all: a transactional group
 * member reads the input and, for each record, writes one 40-byte record (what the dedupe store's
 * changelog gets per new id), committing every 100 ms with the offsets in the transaction. No
 * parsing, no state. What an engine on this client and broker can reach at most.
 */
async function eosFloor(log: Log, input: string): Promise<number> {
  const output = `bench-out-${randomUUID().slice(0, 8)}`;
  await log.admin.createTopics([{ name: output, partitions: PARTITIONS }]);
  const groupId = `bench-floor-${randomUUID().slice(0, 8)}`;
  const tps = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: input, partition }));
  const total = await endTotal(log, tps);
  const small = Buffer.alloc(40, 1);
  const t0 = performance.now();
  const member = await log.joinGroup({ groupId, topics: [input], transactional: true, clientId: 'bench-floor', maxRecords: 5000 });
  const next = new Map<number, number>();
  let txn = member.beginTransaction();
  let last = performance.now();
  let read = 0;
  while (read < total) {
    const { records } = await member.poll(100);
    for (const r of records) {
      txn.send({ topic: output, partition: r.partition, key: r.key, value: small });
      next.set(r.partition, r.offset + 1);
    }
    read += records.length;
    if (performance.now() - last >= 100 || read >= total) {
      await txn.commit([...next].map(([partition, offset]) => ({ topic: input, partition, offset })));
      txn = member.beginTransaction();
      last = performance.now();
    }
  }
  const s = (performance.now() - t0) / 1000;
  await txn.abort();
  await member.close();
  await log.admin.deleteTopics([output]);
  return N / s;
}

/**
 * The stateful topology in two stream threads of one instance. On Kafka each thread has its own
 * client; the embedded log stays on this thread, which serves it to the two (src/log/remote/).
 */
async function runThreads(log: Log, input: string): Promise<number> {
  const output = `bench-out-${randomUUID().slice(0, 8)}`;
  await log.admin.createTopics([{ name: output, partitions: PARTITIONS }]);
  const applicationId = `bench-${randomUUID().slice(0, 8)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-state-'));
  const tps = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: input, partition }));
  const total = await endTotal(log, tps);
  const threads = new StreamThreads({
    module: new URL('./topologies.ts', import.meta.url),
    exportName: 'stateful',
    args: [input, output],
    threads: 2,
    ...(log.kind === 'kafka' ? { kafka: { bootstrapServers: bootstrap, clientId: 'bench' } } : { log }),
    config: { applicationId, stateDir, commitIntervalMs: 100, maxRecordsPerIteration: 5000 },
  });
  const t0 = performance.now();
  await profiled(`${log.kind}-threads-owner`, async () => {
    await threads.start();
    await untilCommitted(log, applicationId, tps, total);
  });
  const s = (performance.now() - t0) / 1000;
  await threads.close();
  await log.admin.deleteTopics([output]);
  rmSync(stateDir, { recursive: true, force: true });
  return N / s;
}

/** Writes the input; the records are garbage once it returns, so the runs' heap does not carry them. */
async function fill(log: Log, input: string): Promise<number> {
  const records = makeRecords(input);
  const producer = log.createProducer({ clientId: 'bench-producer' });
  const tp = performance.now();
  for (let i = 0; i < records.length; i += 2000) await producer.send(records.slice(i, i + 2000));
  const produceRate = N / ((performance.now() - tp) / 1000);
  await producer.close();
  return produceRate;
}

async function benchLog(name: string, log: Log): Promise<string[]> {
  const input = `bench-in-${randomUUID().slice(0, 8)}`;
  await log.admin.createTopics([{ name: input, partitions: PARTITIONS }]);
  const produceRate = await fill(log, input);
  const raw: number[] = [];
  const sl: number[] = [];
  const sf: number[] = [];
  const sf2: number[] = [];
  const floor: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    raw.push(await rawRead(log, input, PARTITIONS, N, 1000));
    floor.push(await eosFloor(log, input));
    sl.push(await runTopology(log, stateless, input));
    sf.push(await runTopology(log, stateful, input));
    sf2.push(await runThreads(log, input));
    process.stderr.write(
      `  ${name} run ${run + 1}/${RUNS}: raw ${raw.at(-1)!.toFixed(0)}/s, eos floor ${floor.at(-1)!.toFixed(0)}/s, stateless ${sl.at(-1)!.toFixed(0)}/s, stateful ${sf.at(-1)!.toFixed(0)}/s` +
        (sf2.length > 0 ? `, stateful 2 threads ${sf2.at(-1)!.toFixed(0)}/s` : '') +
        '\n',
    );
  }
  await log.admin.deleteTopics([input]);
  const r = median(raw);
  const fmt = (x: number) => `${Math.round(x).toLocaleString('en-US')} rec/s`;
  return [
    `| ${name} | produce (reference writer) | ${fmt(produceRate)} | ${(produceRate / r).toFixed(2)} |`,
    `| ${name} | raw read (reference) | ${fmt(r)} | 1.00 |`,
    `| ${name} | exactly-once floor: read + a 40-byte record per input, transactional, no engine | ${fmt(median(floor))} | ${(median(floor) / r).toFixed(2)} |`,
    `| ${name} | stateless: filter + mapValues, exactly-once | ${fmt(median(sl))} | ${(median(sl) / r).toFixed(2)} |`,
    `| ${name} | stateful: dedupe + tumbling aggregate, exactly-once | ${fmt(median(sf))} | ${(median(sf) / r).toFixed(2)} |`,
    ...(sf2.length > 0 ? [`| ${name} | stateful, exactly-once, one instance with 2 stream threads | ${fmt(median(sf2))} | ${(median(sf2) / r).toFixed(2)} |`] : []),
  ];
}

const rows: string[] = [];
console.log(`streams bench: ${N.toLocaleString('en-US')} records of 1 KB JSON, ${PARTITIONS} partitions, median of ${RUNS} runs, one instance`);
if (logs.includes('embedded')) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-log-'));
  const log = await openEmbeddedLog({ dir, fsync: true });
  rows.push(...(await benchLog('embedded', log)));
  await log.close();
  rmSync(dir, { recursive: true, force: true });
}
if (logs.includes('kafka')) {
  const log = await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'bench' });
  rows.push(...(await benchLog('kafka', log)));
  await log.close();
}
console.log('\n| log | workload | records/s | ratio to raw read |\n|---|---|---|---|');
for (const r of rows) console.log(r);
