/**
 * The pipeline topology (parse, de-duplicate, enrich, sessionize, bot-filter; exactly-once), on
 * both logs.
 *
 *   node bench/pipeline.bench.ts                  both logs (start a broker first: npm run kafka:start)
 *   BENCH_LOGS=embedded BENCH_EVENTS=300000 BENCH_RUNS=3 node bench/pipeline.bench.ts
 *   BENCH_THREADS=2 …                             the pipeline in 2 stream threads (docs/streams.md, "Stream threads")
 *   BENCH_IN_THREADS=1 …                          in stream threads also for one (the main thread only serves the log)
 *   BENCH_STORE_CACHE=0 …                         the pipeline's stores without their read cache (bytes per store; default the engine's)
 *   BENCH_COMMIT_MS=250 …                         the pipeline's and the floor's commit interval (default 100, the engine's; config pipeline.commitIntervalMs)
 *
 * 1. Throughput: events.raw is filled as the collector fills it (Segment messages as sent, request
 *    facts in headers, record time = arrival) with ~700 B events of 5,000 visitors: 90% validated
 *    visitors, 5% crawlers, 5% never validated (held, then bots), 1% duplicate retries. The
 *    reference is a plain reader of the same topic in the same run. A run is timed from start()
 *    until the committed offsets reach the end of both inputs. Medians of BENCH_RUNS runs. Also
 *    shown: the rate over the second half of each run (from when the committed offsets pass half
 *    the input), without the start: the group's join, the JIT's first compilations and, with
 *    stream threads, each thread loading its modules, which weigh on a run of a few seconds.
 *    Also in the same run, a floor: an exactly-once topology on the same input that does only what
 *    every design of this pipeline must do per event (bench/topologies.ts `pipelineFloor`): parse the
 *    message, de-duplicate it by message id in a store, and write it out as JSON. No enrichment, no
 *    sessions, no bot filter. What it reaches bounds what the pipeline can reach with this engine.
 *    It runs in as many stream threads as the pipeline, and its second half is printed too.
 * 2. The bot lookup (validation and held state of the visitor, in the task's store), p50 and p99,
 *    measured around the lookup inside the processor during the runs.
 * 3. End to end, on each log: the collector and the pipeline in one process; batches of validated
 *    visitors' events sent over HTTP at half the pipeline rate measured on that log (at most half
 *    its target); latency from the collector's 200 to the event's arrival in events.filtered
 *    (read_committed), p50 and p99, over 10 s of traffic after 2 s of the same load as a warm-up
 *    (the pipeline's first polls and commits, the JIT's first compilations: on Kafka, commits of up
 *    to 650 ms and collector acks of 200 ms were seen in those first seconds).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { StreamsApp, StreamThreads, type Log, type ProducerRecord, type ThreadConfig, type Topology, type TopicPartition } from '../packages/streams/src/index.ts';
import { openEmbeddedLog } from '../packages/streams/src/log/embedded/index.ts';
import { connectKafkaLog } from '../packages/streams/src/log/kafka/index.ts';
import { hashUserAgent } from '../packages/platform/src/contract/index.ts';
import { pipelineTopology } from '../packages/platform/src/pipeline/topology.ts';
import { pipelineFloor } from './topologies.ts';
import { VISITORS, pipelineEvent, pipelineValidations } from './pipeline-inputs.ts';
import { BENCH_UA, endTotal, median, profiled, quantile, rawRead, segmentMessage, untilCommitted, youngGeneration } from './common.ts';
import { ensurePlatformTopics, topicNames, type TopicNames } from '../packages/platform/src/topics.ts';
import { buildCollector } from '../packages/platform/src/collector/server.ts';
import { MerchantTable, putMerchant } from '../packages/platform/src/merchants/table.ts';

// 300,000 events: with 100,000 (~7 s on a slow host) the group's start weighs on the figure, enough
// to make two stream threads look slower than one (BENCHMARKS.md, session 15).
const N = Number(process.env['BENCH_EVENTS'] ?? 300_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const PARTITIONS = 4;
const logs = (process.env['BENCH_LOGS'] ?? 'embedded,kafka').split(',');
const THREADS = Number(process.env['BENCH_THREADS'] ?? 1);
/** Stream threads even for one thread (BENCH_IN_THREADS=1): the main thread then only serves the log. */
const IN_THREADS = process.env['BENCH_IN_THREADS'] === '1';
/** The commit interval of the pipeline and of the floor (BENCH_COMMIT_MS; the engine's default, 100 ms, as the platform's). */
const COMMIT_MS = Number(process.env['BENCH_COMMIT_MS'] ?? 100);
const bootstrap = process.env['KAFKA_BOOTSTRAP'] ?? '127.0.0.1:9092';
const UA = BENCH_UA;


/** Fills events.raw and events.validations as the collector would (bench/pipeline-inputs.ts). */
async function fill(log: Log, topics: TopicNames): Promise<void> {
  const t0 = Date.now() - 3_600_000;
  const validations: ProducerRecord[] = pipelineValidations(t0).map((r) => ({ topic: topics.validations, ...r }));
  const producer = log.createProducer({ clientId: 'bench-fill' });
  for (let i = 0; i < validations.length; i += 2000) await producer.send(validations.slice(i, i + 2000));
  let batch: ProducerRecord[] = [];
  for (let i = 0; i < N; i++) {
    batch.push({ topic: topics.raw, ...pipelineEvent(i, t0) });
    if (batch.length === 2000) {
      await producer.send(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await producer.send(batch);
  await producer.close();
}

/**
 * With BENCH_THREADS > 1 or BENCH_IN_THREADS=1, `exportName` of `module` in that many stream threads
 * (the bot lookup is then timed in the threads, not sampled here); else one application here.
 */
function runnerOf(log: Log, module: URL, exportName: string, args: unknown[], here: () => Topology, config: ThreadConfig): StreamsApp | StreamThreads {
  return THREADS > 1 || IN_THREADS
    ? new StreamThreads({ module, exportName, args, threads: THREADS, ...(log.kind === 'kafka' ? { kafka: { bootstrapServers: bootstrap, clientId: 'bench' } } : { log }), config })
    : new StreamsApp(here(), { ...config, log });
}

/**
 * Starts `runner` and waits until its group's committed offsets reach `total`. Also gives the second
 * half of the run apart, from when the offsets pass half its N events: without the start (threads
 * loading their modules, the group's join, the JIT's first compilations), which weighs on a run of
 * seconds.
 */
async function runToEnd(log: Log, runner: StreamsApp | StreamThreads, applicationId: string, tps: TopicPartition[], total: number): Promise<{ end: number; half: { events: number; at: number; cpu: NodeJS.CpuUsage } | undefined }> {
  let half: { events: number; at: number; cpu: NodeJS.CpuUsage } | undefined;
  await runner.start();
  await untilCommitted(log, applicationId, tps, total, runner instanceof StreamsApp ? runner : undefined, (committed) => {
    if (half === undefined && committed - (total - N) >= N / 2) half = { events: total - committed, at: performance.now(), cpu: process.cpuUsage() };
  });
  return { end: performance.now(), half: half !== undefined && half.events > 0 ? half : undefined };
}

/** The pipeline over the whole input: events/s over the whole run, and over its second half. */
async function runPipeline(log: Log, topics: TopicNames, lookups: number[]): Promise<{ rate: number; half: number }> {
  const applicationId = `bench-pipeline-${randomUUID().slice(0, 8)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-pipeline-'));
  const sample = (s: number) => {
    if (lookups.length < 200_000) lookups.push(s);
  };
  const cache = process.env['BENCH_STORE_CACHE'];
  const config = { applicationId, stateDir, commitIntervalMs: COMMIT_MS, maxRecordsPerIteration: 5000, ...(cache === undefined ? {} : { storeCacheBytesPerStore: Number(cache) }) };
  const runner = runnerOf(log, new URL('../packages/platform/src/pipeline/threads.ts', import.meta.url), 'pipelineThreadTopology', [topics, {}], () => pipelineTopology(topics, { onBotLookup: sample }), config);
  const tps = [topics.raw, topics.validations].flatMap((topic) => Array.from({ length: PARTITIONS }, (_, partition) => ({ topic, partition })));
  const total = await endTotal(log, tps);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const { end, half } = await profiled(`pipeline-${log.kind}`, () => runToEnd(log, runner, applicationId, tps, total));
  const s = (end - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  process.stderr.write(`  pipeline cpu: user ${(cpu.user / N).toFixed(1)} µs/event, system ${(cpu.system / N).toFixed(1)} µs/event, wall ${(s * 1e6 / N).toFixed(1)} µs/event\n`);
  let halfRate = Number.NaN;
  if (half !== undefined) {
    const c = process.cpuUsage(half.cpu);
    halfRate = (half.events * 1000) / (end - half.at);
    process.stderr.write(`  second half: ${Math.round(halfRate).toLocaleString('en-US')} events/s, cpu ${((c.user + c.system) / half.events).toFixed(1)} µs/event\n`);
  }
  await runner.close();
  await deleteAppTopics(log, applicationId);
  rmSync(stateDir, { recursive: true, force: true });
  return { rate: N / s, half: halfRate };
}

/** The floor topology (see the header) on the same input, into its own output topic, in as many threads as the pipeline: events/s over the whole run, and over its second half. */
async function runFloor(log: Log, topics: TopicNames, output: string): Promise<{ rate: number; half: number }> {
  const applicationId = `bench-floor-${randomUUID().slice(0, 8)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-floor-'));
  const config = { applicationId, stateDir, commitIntervalMs: COMMIT_MS, maxRecordsPerIteration: 5000 };
  const app = runnerOf(log, new URL('./topologies.ts', import.meta.url), 'pipelineFloor', [topics.raw, output], () => pipelineFloor(topics.raw, output), config);
  const tps = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: topics.raw, partition }));
  const total = await endTotal(log, tps);
  const t0 = performance.now();
  const { end, half } = await runToEnd(log, app, applicationId, tps, total);
  await app.close();
  await deleteAppTopics(log, applicationId);
  rmSync(stateDir, { recursive: true, force: true });
  return { rate: (N * 1000) / (end - t0), half: half === undefined ? Number.NaN : (half.events * 1000) / (end - half.at) };
}

/** Deletes a streams application's internal topics (changelogs, repartition topics) on Kafka, where they outlive the run. */
async function deleteAppTopics(log: Log, applicationId: string): Promise<void> {
  if (log.kind !== 'kafka') return;
  const mine = (await log.admin.listTopics()).filter((t) => t.startsWith(`${applicationId}-`));
  if (mine.length > 0) await log.admin.deleteTopics(mine).catch(() => {});
}

async function endToEnd(kind: string, ratePerS: number): Promise<{ p50: number; p99: number; events: number }> {
  const dir = kind === 'embedded' ? mkdtempSync(join(tmpdir(), 'bench-e2e-')) : undefined;
  const log = dir ? await openEmbeddedLog({ dir, fsync: true, retentionCheckIntervalMs: 0 }) : await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'bench-e2e' });
  const prefix = `bench-e2e-${randomUUID().slice(0, 8)}.`;
  const applicationId = `${prefix}pipeline`;
  const topics = topicNames(prefix);
  await ensurePlatformTopics(log, { prefix, partitions: PARTITIONS });
  const table = new MerchantTable(log, topics.merchants);
  await table.start();
  await putMerchant(log, topics.merchants, { id: 'bench', writeKeys: ['wk_bench_e2e_key'], revokedWriteKeys: [], readTokens: ['rt_bench_e2e_token'], timezone: 'UTC', currency: 'USD', createdAt: 0, updatedAt: 0 }, table);
  const now = Date.now();
  const producer = log.createProducer();
  await producer.send(
    Array.from({ length: 1000 }, (_, v) => ({
      topic: topics.validations,
      key: Buffer.from(`e2e-${v}`),
      value: Buffer.from(JSON.stringify({ v: 1, merchantId: 'bench', anonymousId: `e2e-${v}`, validatedAt: now - 1000, validUntil: now + 86_400_000, tokenId: `t${v}`, uaHash: hashUserAgent(UA) })),
      timestamp: now - 1000,
    })),
  );
  await producer.close();
  const collector = await buildCollector({ log, topics, merchants: table, beaconSecrets: [Buffer.alloc(32, 7)] });
  await collector.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(collector.server.address() as AddressInfo).port}/v1/batch`;
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-e2e-state-'));
  const app = new StreamsApp(pipelineTopology(topics), { applicationId, log, stateDir, commitIntervalMs: COMMIT_MS });
  await app.start();

  const acked = new Map<string, number>();
  const latencies: number[] = [];
  const reader = log.createReader();
  reader.assign(Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: topics.filtered, partition, offset: 0 })));
  let reading = true;
  const readLoop = (async () => {
    while (reading) {
      for (const r of await reader.poll(50)) {
        const id = (JSON.parse(r.value!.toString()) as { event: { messageId: string } }).event.messageId;
        const at = acked.get(id);
        if (at !== undefined) latencies.push(performance.now() - at);
      }
    }
  })();
  const auth = `Basic ${Buffer.from('wk_bench_e2e_key:').toString('base64')}`;
  const perTick = Math.max(1, Math.round(ratePerS / 100));
  let i = 0;
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now();
  // Timed: the events sent after a warm-up at the same load (see the header).
  const warmupMs = 2_000;
  const durationMs = warmupMs + 10_000;
  while (performance.now() - t0 < durationMs) {
    const timed = performance.now() - t0 >= warmupMs;
    const batch = Array.from({ length: perTick }, () => {
      const n = i++;
      return { ...segmentMessage(n, `e2e-${n % 1000}`, Date.now(), UA), messageId: `e2e-${n}` };
    });
    const p = fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: auth }, body: JSON.stringify({ batch }) }).then(async (res) => {
      await res.arrayBuffer();
      if (res.status === 200 && timed) {
        const at = performance.now();
        for (const m of batch) acked.set(m.messageId, at);
      }
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    const next = t0 + (i / ratePerS) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  await Promise.all(inflight);
  const deadline = performance.now() + 10_000;
  while (latencies.length < acked.size && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  reading = false;
  await readLoop;
  await reader.close();
  await app.close();
  await collector.close();
  await table.close();
  if (kind === 'kafka') {
    await log.admin.deleteTopics(Object.values(topics)).catch(() => {});
    await deleteAppTopics(log, applicationId);
  }
  await log.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
  // An event can be read before its batch's 200 is seen (the reader is quick): count those as 0.
  const ls = latencies.map((x) => Math.max(0, x));
  return { p50: quantile(ls, 0.5), p99: quantile(ls, 0.99), events: ls.length };
}

const rows: string[] = [];
/** The pipeline's rate on each log (median), for the end-to-end runs' load. */
const rates = new Map<string, number>();
console.log(`pipeline bench: ${N.toLocaleString('en-US')} events (~700 B), ${PARTITIONS} partitions, ${VISITORS} visitors, median of ${RUNS} runs, one instance, exactly-once, commits every ${COMMIT_MS} ms, ${youngGeneration()}`);
for (const kind of logs) {
  const dir = kind === 'embedded' ? mkdtempSync(join(tmpdir(), 'bench-pipeline-log-')) : undefined;
  const log = dir ? await openEmbeddedLog({ dir, fsync: true }) : await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'bench' });
  const prefix = `bench-${randomUUID().slice(0, 8)}.`;
  const topics = topicNames(prefix);
  await ensurePlatformTopics(log, { prefix, partitions: PARTITIONS });
  await fill(log, topics);
  const raw: number[] = [];
  const pipe: number[] = [];
  const pipeHalf: number[] = [];
  const lookups: number[] = [];
  const floor: number[] = [];
  const floorHalf: number[] = [];
  const floorTopic = `${prefix}bench.floor`;
  await log.admin.createTopics([{ name: floorTopic, partitions: PARTITIONS }]);
  for (let run = 0; run < RUNS; run++) {
    raw.push(await rawRead(log, topics.raw, PARTITIONS, N));
    const fl = await runFloor(log, topics, floorTopic);
    floor.push(fl.rate);
    floorHalf.push(fl.half);
    const result = await runPipeline(log, topics, lookups);
    pipe.push(result.rate);
    pipeHalf.push(result.half);
    process.stderr.write(`  ${kind} run ${run + 1}/${RUNS}: raw read ${raw.at(-1)!.toFixed(0)}/s, floor ${floor.at(-1)!.toFixed(0)}/s, pipeline ${pipe.at(-1)!.toFixed(0)}/s\n`);
  }
  if (kind === 'kafka') await log.admin.deleteTopics([...Object.values(topics), floorTopic]).catch(() => {});
  await log.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  const r = median(raw);
  const p = median(pipe);
  rates.set(kind, p);
  const us = (s: number) => `${(s * 1e6).toFixed(1)} µs`;
  rows.push(`| ${kind} | raw read of events.raw (reference) | ${Math.round(r).toLocaleString('en-US')} events/s | 1.00 |`);
  const f = median(floor);
  const threads = THREADS > 1 || IN_THREADS ? `, ${THREADS} stream thread${THREADS > 1 ? 's' : ''}` : '';
  rows.push(`| ${kind} | floor: parse, de-duplicate, write (exactly-once${threads}) | ${Math.round(f).toLocaleString('en-US')} events/s | ${(f / r).toFixed(2)} |`);
  rows.push(`| ${kind} | pipeline, exactly-once${threads} | ${Math.round(p).toLocaleString('en-US')} events/s | ${(p / r).toFixed(2)} |`);
  // A run too short for a progress check between its half and its end has no second half.
  for (const [what, xs] of [['floor', floorHalf], ['pipeline', pipeHalf]] as const) {
    const halves = xs.filter((x) => Number.isFinite(x));
    const figure = halves.length > 0 ? `${Math.round(median(halves)).toLocaleString('en-US')} events/s | ${(median(halves) / r).toFixed(2)}` : 'runs too short to measure it: raise BENCH_EVENTS |';
    rows.push(`| ${kind} | ${what}, second half of each run (after the start) | ${figure} |`);
  }
  // The lookup is timed inside the processor; stream threads keep their processors to themselves.
  if (lookups.length > 0) rows.push(`| ${kind} | bot lookup p50 / p99 | ${us(quantile(lookups, 0.5))} / ${us(quantile(lookups, 0.99))} | |`);
  else rows.push(`| ${kind} | bot lookup p50 / p99 | timed inside the stream threads, out of reach: run without stream threads | |`);
}
for (const kind of process.env['BENCH_E2E'] === '0' ? [] : logs) {
  // Half the pipeline's measured rate on this log (capped at half its target).
  const rate = Math.round(Math.min(rates.get(kind)!, kind === 'embedded' ? 100_000 : 50_000) / 2);
  const e2e = await endToEnd(kind, rate);
  rows.push(`| ${kind} | end to end, collector 200 → events.filtered, at ${rate.toLocaleString('en-US')} events/s, after a 2 s warm-up: p50 / p99 | ${e2e.p50.toFixed(0)} ms / ${e2e.p99.toFixed(0)} ms (${e2e.events.toLocaleString('en-US')} events) | |`);
}
console.log('\n| log | measure | figure | ratio to raw read |\n|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('\ntargets: embedded >= 100,000 events/s; Kafka exactly-once >= 50,000 events/s; bot lookup p99 < 1 ms; end-to-end p99 < 1 s');
