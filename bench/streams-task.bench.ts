/**
 * The engine alone: one task runs the stateful benchmark topology (dedupe + tumbling-window
 * aggregate) over 1 KB JSON records with LMDB stores, committing every 2,500 records, with no log
 * (sends are counted and dropped). It shows what the library itself costs per record, apart from
 * either log. Reference, measured in the same run: JSON.parse of the same records, the least any
 * engine must do with them.
 *
 *   node bench/streams-task.bench.ts            BENCH_RECORDS=100000 BENCH_RUNS=3
 */
import { StreamsBuilder, Serdes, TimeWindows } from '../packages/streams/src/index.ts';
import type { ConsumedRecord } from '../packages/streams/src/index.ts';
import { DEFAULT_STORE_CACHE_BYTES } from '../packages/streams/src/state/stores.ts';
import { median } from './common.ts';
import { runInTask } from './task-harness.ts';

const N = Number(process.env.BENCH_RECORDS ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const base = Date.UTC(2026, 10, 26);
const records: ConsumedRecord[] = [];
for (let i = 0; i < N; i++) {
  const j = i % 10 === 9 ? i - 1 : i;
  const visitor = `visitor-${j % 5000}`;
  const value = JSON.stringify({ id: `msg-${j}`, visitor, type: j % 7 ? 'view' : 'order', price: j % 1000, pad: 'x'.repeat(930) });
  records.push({ topic: 'in', partition: 0, offset: i, headers: [], key: Buffer.from(visitor), value: Buffer.from(value), timestamp: base + j * 10 });
}

interface Event {
  id: string;
  price: number;
}

function runTask(): number {
  const b = new StreamsBuilder();
  b.stream<string, Event>('in')
    .deduplicate((_k, v) => v.id, { name: 'dedupe', windowMs: 3_600_000 })
    .groupByKey()
    .windowedBy(TimeWindows.ofSizeAndGrace(60_000, 10_000))
    .aggregate(() => ({ n: 0, revenue: 0 }), (_k, v, agg) => ({ n: agg.n + 1, revenue: agg.revenue + v.price }), { name: 'per-minute' })
    .toStream()
    .to('out', { keySerde: Serdes.json(), valueSerde: Serdes.json() });
  return runInTask(b.build(), records, { cacheBytes: DEFAULT_STORE_CACHE_BYTES, minSends: N });
}

function parseOnly(): number {
  const t0 = performance.now();
  let n = 0;
  for (const r of records) n += (JSON.parse(r.value!.toString('utf8')) as Event).price >= 0 ? 1 : 0;
  if (n !== N) throw new Error('parse');
  return N / ((performance.now() - t0) / 1000);
}

const task: number[] = [];
const parse: number[] = [];
for (let run = 0; run < RUNS; run++) {
  parse.push(parseOnly());
  task.push(runTask());
}
const fmt = (x: number) => `${Math.round(x).toLocaleString('en-US')} rec/s`;
console.log(`engine alone: ${N.toLocaleString('en-US')} records of 1 KB JSON, one task, median of ${RUNS}`);
console.log('| workload | records/s | ratio to JSON.parse |\n|---|---|---|');
console.log(`| JSON.parse only (reference) | ${fmt(median(parse))} | 1.00 |`);
console.log(`| task: dedupe + tumbling aggregate, LMDB, changelogs, commit every 2,500 | ${fmt(median(task))} | ${(median(task) / median(parse)).toFixed(3)} |`);
