/**
 * The pipeline's work alone, without a log: one task runs the pipeline topology over the pipeline
 * bench's events (~700 B Segment messages as the collector writes them, 5,000 visitors: 90%
 * validated, 5% crawlers, 5% never validated, 1% duplicate retries) with LMDB stores and
 * changelogs, committing every 2,500 records; sends are counted and dropped. Reference, in the same
 * run: the floor topology of the pipeline bench (parse, de-duplicate by message id, write) in the
 * same harness. Without the log's I/O and threads, the figures move far less between runs than the
 * full bench's, so this is the bench for A/B tests of the pipeline's and the engine's per-event cost.
 * It also prints a bound: that rate times the cores, what the pipeline's work allows at most with a
 * log that costs nothing and threads that scale perfectly.
 *
 *   node bench/pipeline-task.bench.ts               BENCH_EVENTS=100000 BENCH_RUNS=5
 *   BENCH_STORE_CACHE=0,1048576 …                   alternates store read-cache sizes (bytes per store)
 */
import { availableParallelism } from 'node:os';
import type { ConsumedRecord } from '../packages/streams/src/index.ts';
import { DEFAULT_STORE_CACHE_BYTES } from '../packages/streams/src/state/stores.ts';
import { pipelineTopology } from '../packages/platform/src/pipeline/topology.ts';
import { topicNames } from '../packages/platform/src/topics.ts';
import { pipelineFloor } from './topologies.ts';
import { median, profiled, youngGeneration } from './common.ts';
import { pipelineEvent, pipelineValidations } from './pipeline-inputs.ts';
import { runInTask } from './task-harness.ts';

const N = Number(process.env['BENCH_EVENTS'] ?? 100_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const CACHES = (process.env['BENCH_STORE_CACHE'] ?? String(DEFAULT_STORE_CACHE_BYTES)).split(',').map(Number);
const topics = topicNames('');

// The inputs, as the pipeline bench fills them (bench/pipeline-inputs.ts): validations, then the events.
const t0 = Date.now() - 3_600_000;
const validations: ConsumedRecord[] = pipelineValidations(t0).map((r, offset) => ({ topic: topics.validations, partition: 0, offset, ...r }));
const events: ConsumedRecord[] = Array.from({ length: N }, (_, i) => ({ topic: topics.raw, partition: 0, offset: i, ...pipelineEvent(i, t0) }));
const runTask = (topology: ReturnType<typeof pipelineTopology>, cacheBytes: number) => runInTask(topology, events, { cacheBytes, minSends: N * 0.9, preload: validations });

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
console.log(`pipeline work alone: ${N.toLocaleString('en-US')} events (~700 B), one task, LMDB, no log, median of ${RUNS}, ${youngGeneration()}`);
console.log('| workload | events/s | ratio to floor |\n|---|---|---|');
console.log(`| floor: parse, de-duplicate, write (reference) | ${fmt(median(floor))} | 1.00 |`);
for (const c of CACHES) {
  const m = median(pipeline.get(c)!);
  // Ratios per run (floor and pipeline measured back to back), then their median: steadier than a ratio of medians.
  const ratios = pipeline.get(c)!.map((p, i) => p / floor[i]!);
  console.log(`| pipeline, store cache ${c.toLocaleString('en-US')} B per store | ${fmt(m)} | ${median(ratios).toFixed(3)} |`);
}
// What this work allows at most on the machine: every core running it, with a log that costs nothing.
const cores = availableParallelism();
const best = Math.max(...CACHES.map((c) => median(pipeline.get(c)!)));
console.log(`\nbound: the pipeline's work alone on all ${cores} cores, log free, perfectly parallel: ${fmt(cores * best)} (the embedded target is 100,000 events/s)`);
