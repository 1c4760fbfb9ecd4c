/**
 * The pipeline's work alone, without a log: one task runs the pipeline topology over the pipeline
 * bench's events (~700 B Segment messages as the collector writes them, 5,000 visitors: 90%
 * validated, 5% crawlers, 5% never validated, 1% duplicate retries) with LMDB stores and
 * changelogs, committing every 2,500 records; sends are counted and dropped. Reference, in the same
 * run: the floor topology of the pipeline bench (parse, de-duplicate by message id, write) in the
 * same harness. Without the log's I/O and threads, the figures move far less between runs than the
 * full bench's, so this is the bench for A/B tests of the pipeline's and the engine's per-event cost.
 *
 *   node bench/pipeline-task.bench.ts               BENCH_EVENTS=100000 BENCH_RUNS=5
 *   BENCH_STORE_CACHE=0,1048576 …                   alternates store read-cache sizes (bytes per store)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConsumedRecord, Topology } from '../packages/streams/src/index.ts';
import { Task } from '../packages/streams/src/runtime/task.ts';
import { LmdbEnvironment } from '../packages/streams/src/state/backend.ts';
import { DEFAULT_STORE_CACHE_BYTES } from '../packages/streams/src/state/stores.ts';
import { hashUserAgent, rawRecordHeaders } from '../packages/platform/src/contract/index.ts';
import { pipelineTopology } from '../packages/platform/src/pipeline/topology.ts';
import { topicNames } from '../packages/platform/src/topics.ts';
import { pipelineFloor } from './topologies.ts';
import { BENCH_UA, median, profiled, segmentMessage } from './common.ts';

const N = Number(process.env['BENCH_EVENTS'] ?? 100_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const VISITORS = 5_000;
const CACHES = (process.env['BENCH_STORE_CACHE'] ?? String(DEFAULT_STORE_CACHE_BYTES)).split(',').map(Number);
const CRAWLER = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const topics = topicNames('');

// The inputs, as the pipeline bench fills them: validations first, then the events.
const t0 = Date.now() - 3_600_000;
const validations: ConsumedRecord[] = [];
for (let v = 0; v < VISITORS; v++) {
  if (v % 20 === 0 || v % 20 === 1) continue; // crawlers (0) and never-validated visitors (1)
  const value = { v: 1, merchantId: 'bench', anonymousId: `visitor-${v}`, validatedAt: t0 - 1000, validUntil: t0 + 86_400_000, tokenId: `t${v}`, uaHash: hashUserAgent(BENCH_UA) };
  validations.push({ topic: topics.validations, partition: 0, offset: validations.length, key: Buffer.from(`visitor-${v}`), value: Buffer.from(JSON.stringify(value)), timestamp: t0 - 1000, headers: [] });
}
const events: ConsumedRecord[] = [];
for (let i = 0; i < N; i++) {
  const j = i % 100 === 99 ? i - 1 : i;
  const v = j % VISITORS;
  const visitor = `visitor-${v}`;
  const receivedAt = t0 + i * 20;
  const headers = rawRecordHeaders({ merchantId: 'bench', defaultCurrency: 'USD', receivedAt }, undefined, false, false);
  const m = segmentMessage(j, visitor, t0 + j * 20, v % 20 === 0 ? CRAWLER : BENCH_UA);
  events.push({ topic: topics.raw, partition: 0, offset: i, key: Buffer.from(visitor), value: Buffer.from(JSON.stringify(m)), timestamp: receivedAt, headers });
}

/** Runs `topology` over the inputs in one task; records/s over the events. */
function runTask(topology: Topology, cacheBytes: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'bench-pipeline-task-'));
  const env = new LmdbEnvironment(dir);
  let sent = 0;
  const task = new Task({
    applicationId: 'bench',
    topology,
    subtopology: topology.subtopologies()[0]!,
    partition: 0,
    collector: { send: () => void sent++, partitionsOf: () => 1 },
    openBackend: (spec) => env.backend(spec.name),
    maxBufferBytes: 1e9,
    cacheBytes,
    changelogs: true,
    wallClock: () => Date.now(),
    requestCommit: () => {},
  });
  task.init();
  const inputs = new Set(task.inputPartitions().map((tp) => tp.topic));
  if (inputs.has(topics.validations)) {
    task.addRecords(validations);
    task.process();
  }
  const start = performance.now();
  for (let i = 0; i < N; i += 2500) {
    task.addRecords(events.slice(i, i + 2500));
    while (task.process() > 0);
    task.flush();
    task.applyCommitted(new Map());
  }
  const rate = N / ((performance.now() - start) / 1000);
  task.close();
  env.close();
  rmSync(dir, { recursive: true, force: true });
  if (sent < N * 0.9) throw new Error(`only ${sent} sends for ${N} events`);
  return rate;
}

const floor: number[] = [];
const pipeline = new Map<number, number[]>(CACHES.map((c) => [c, []]));
for (let run = 0; run < RUNS; run++) {
  floor.push(runTask(pipelineFloor(topics.raw, 'out'), CACHES[0]!));
  for (const c of CACHES) {
    pipeline.get(c)!.push(await profiled(`pipeline-task-cache${c}`, async () => runTask(pipelineTopology(topics), c)));
  }
  process.stderr.write(`  run ${run + 1}/${RUNS}: floor ${floor.at(-1)!.toFixed(0)}/s, pipeline ${CACHES.map((c) => `${pipeline.get(c)!.at(-1)!.toFixed(0)}/s (cache ${c})`).join(', ')}\n`);
}
const fmt = (x: number) => `${Math.round(x).toLocaleString('en-US')} events/s`;
console.log(`pipeline work alone: ${N.toLocaleString('en-US')} events (~700 B), one task, LMDB, no log, median of ${RUNS}`);
console.log('| workload | events/s | ratio to floor |\n|---|---|---|');
console.log(`| floor: parse, de-duplicate, write (reference) | ${fmt(median(floor))} | 1.00 |`);
for (const c of CACHES) {
  const m = median(pipeline.get(c)!);
  // Ratios per run (floor and pipeline measured back to back), then their median: steadier than a ratio of medians.
  const ratios = pipeline.get(c)!.map((p, i) => p / floor[i]!);
  console.log(`| pipeline, store cache ${c.toLocaleString('en-US')} B per store | ${fmt(m)} | ${median(ratios).toFixed(3)} |`);
}
