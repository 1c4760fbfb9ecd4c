import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { StreamThreads, Serdes, type Log, type StreamThreadsOptions } from '../../src/index.ts';
import { connectKafkaLog } from '../../src/log/kafka/index.ts';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import { produce, readTopic, unique, waitFor } from './helpers.ts';

const bootstrap = process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';

test('kafka: two stream threads share the group, split the tasks and process exactly once', { timeout: 120_000 }, async () => {
  const log = await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'threads-test' });
  try {
    await twoThreads(log, { kafka: { bootstrapServers: bootstrap } });
  } finally {
    await log.close();
  }
});

test('embedded: two stream threads use the log this thread owns, split the tasks and process exactly once', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'threads-log-'));
  const log = await openEmbeddedLog({ dir, fsync: false });
  try {
    await twoThreads(log, { log });
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Two threads of the fixture topology on an embedded log of this thread, with topics of
 * `partitions`; `exportName` and `extraArgs` (after input and output) pick another of the fixture's
 * functions.
 */
async function embeddedThreads(
  partitions: number,
  more: Pick<StreamThreadsOptions, 'onError' | 'logger' | 'exportName'> & { extraArgs?: unknown[] } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'threads-log-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'threads-state-'));
  const log = await openEmbeddedLog({ dir, fsync: false });
  const input = unique('threads-in');
  const output = unique('threads-out');
  await log.admin.createTopics([
    { name: input, partitions },
    { name: output, partitions },
  ]);
  const { extraArgs = [], ...options } = more;
  const threads = new StreamThreads({
    module: new URL('./fixtures/threads-topology.ts', import.meta.url),
    args: [input, output, ...extraArgs],
    threads: 2,
    log,
    config: { applicationId: unique('threads-app'), stateDir, instanceId: 'inst', commitIntervalMs: 50 },
    ...options,
  });
  const workers = (threads as unknown as { workers: Worker[] }).workers;
  const close = async () => {
    await threads.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  };
  return { log, input, output, threads, workers, close };
}

test('embedded: a stream thread that dies leaves its tasks to the other, which goes on exactly once', { timeout: 120_000 }, async () => {
  const died: number[] = [];
  const { log, input, output, threads, workers, close } = await embeddedThreads(4, { onError: (_err, i) => died.push(i) });
  try {
    await threads.start();
    // 3,000 records over 60 keys, every 4th re-sent (same key and id).
    const records = Array.from({ length: 3000 }, (_, i) => {
      const o = i % 4 === 3 ? i - 1 : i;
      return { topic: input, key: Buffer.from(`k${o % 60}`), value: Buffer.from(JSON.stringify({ id: `m${o}` })), timestamp: Date.now() };
    });
    const { expected, seen } = expectedCounts(records);
    await produce(log, records.slice(0, 1500), 100);
    await readTopic(log, output, (r) => r.length >= 300, 60_000);
    // Thread 0 dies of an uncaught error while records flow: no commit, no goodbye. Its open
    // transaction is never visible; the survivor restores its tasks' state from the changelogs.
    const rest = produce(log, records.slice(1500), 25);
    await new Promise((r) => setTimeout(r, 20));
    workers[0]!.postMessage({ type: 'test:crash' });
    await rest;
    const latest = (recs: { key: Buffer | null; value: Buffer | null }[]) => new Map(recs.map((r) => [r.key!.toString(), Serdes.long().deserialize(r.value)!]));
    const out = await readTopic(log, output, (r) => [...expected].every(([k, v]) => latest(r).get(k) === v), 60_000);
    assert.deepEqual(latest(out), expected);
    assert.equal(out.length, seen.size, 'one committed update per distinct record: nothing lost, nothing counted twice');
    assert.deepEqual(died, [0], 'the death is reported, once');
    // The output can be complete before the group has handed the dead thread's tasks over (when the
    // dead thread had read its partitions to the end before it died): wait for the rebalance.
    let split = await threads.threadTasks();
    for (const deadline = Date.now() + 30_000; split[1]!.length < 4 && Date.now() < deadline; split = await threads.threadTasks()) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(split[0], []);
    assert.equal(split[1]!.length, 4, `the survivor runs all four tasks: ${JSON.stringify(split)}`);
  } finally {
    await close();
  }
});

/** What the dedupe-then-count topology must end with: the count per key of distinct ids, and the distinct ids. */
function expectedCounts(records: { key: Buffer; value: Buffer }[]): { expected: Map<string, number>; seen: Set<string> } {
  const expected = new Map<string, number>();
  const seen = new Set<string>();
  for (const r of records) {
    const id = (JSON.parse(r.value.toString()) as { id: string }).id;
    if (seen.has(id)) continue;
    seen.add(id);
    expected.set(r.key.toString(), (expected.get(r.key.toString()) ?? 0) + 1);
  }
  return { expected, seen };
}

test('embedded: a thread stuck in user code does not hold up metrics(); it answers again once free', { timeout: 60_000 }, async () => {
  const { threads, workers, close } = await embeddedThreads(2);
  try {
    await threads.start();
    assert.equal((await threads.metricsJSON()).length, 2);
    workers[1]!.postMessage({ type: 'test:block', ms: 8_000 });
    const t0 = Date.now();
    const answered = await threads.metricsJSON();
    const waited = Date.now() - t0;
    assert.equal(answered.length, 1, 'only the free thread answered');
    assert.ok(waited >= 4_000 && waited < 7_500, `gave up on the stuck thread after ${waited} ms (timeout 5 s)`);
    await waitFor(async () => (await threads.metricsJSON()).length === 2, 20_000, 'the thread to answer again');
  } finally {
    await close();
  }
});

test('embedded: threads join the group together, once every thread is ready, even when one of them starts late', { timeout: 60_000 }, async () => {
  const logged: Array<{ thread: number; msg: string | undefined }> = [];
  const entry = (obj: object, msg?: string) => logged.push({ thread: (obj as { thread: number }).thread, msg });
  // Thread 1 loads its module 1.5 s late. Joining as soon as it was ready, thread 0 would take all
  // four tasks meanwhile (on Kafka, thread 1's join then waits for thread 0's next heartbeat, and
  // the tasks move).
  const { log, input, output, threads, close } = await embeddedThreads(4, {
    exportName: 'slowStart',
    extraArgs: [{ thread: 1, ms: 1_500 }],
    logger: { info: entry, warn: entry, error: entry },
  });
  try {
    await threads.start();
    await produce(log, Array.from({ length: 200 }, (_, i) => ({ topic: input, key: Buffer.from(`k${i % 20}`), value: Buffer.from(JSON.stringify({ id: `e${i}` })), timestamp: Date.now() })));
    await readTopic(log, output, (r) => r.length >= 20, 30_000);
    const late = logged.findIndex((e) => e.thread === 1 && e.msg === 'test: module loaded late');
    const firstAssigned = logged.findIndex((e) => e.msg === 'tasks assigned');
    assert.ok(late >= 0 && firstAssigned >= 0, `both entries were logged: ${JSON.stringify(logged)}`);
    assert.ok(firstAssigned > late, `no thread had tasks before the late thread was ready: ${JSON.stringify(logged)}`);
    assert.deepEqual((await threads.threadTasks()).map((t) => t.length), [2, 2]);
  } finally {
    await close();
  }
});

async function twoThreads(log: Log, connect: Pick<StreamThreadsOptions, 'kafka' | 'log'>): Promise<void> {
  const input = unique('threads-in');
  const output = unique('threads-out');
  const applicationId = unique('threads-app');
  const stateDir = mkdtempSync(join(tmpdir(), 'threads-state-'));
  await log.admin.createTopics([
    { name: input, partitions: 4 },
    { name: output, partitions: 4 },
  ]);
  const logged: Array<{ thread: number; msg: string | undefined }> = [];
  const entry = (obj: object, msg?: string) => logged.push({ thread: (obj as { thread: number }).thread, msg });
  const threads = new StreamThreads({
    module: new URL('./fixtures/threads-topology.ts', import.meta.url),
    args: [input, output],
    threads: 2,
    ...connect,
    config: { applicationId, stateDir, instanceId: 'inst', commitIntervalMs: 50 },
    logger: { info: entry, warn: entry, error: entry },
  });
  try {
    await threads.start();
    // 400 records over 40 keys, every 4th re-sent (same key and id).
    const records = Array.from({ length: 400 }, (_, i) => {
      const o = i % 4 === 3 ? i - 1 : i;
      return { topic: input, key: Buffer.from(`k${o % 40}`), value: Buffer.from(JSON.stringify({ id: `m${o}` })), timestamp: Date.now() };
    });
    await produce(log, records);
    const { expected, seen } = expectedCounts(records);
    const latest = (recs: { key: Buffer | null; value: Buffer | null }[]) => new Map(recs.map((r) => [r.key!.toString(), Serdes.long().deserialize(r.value)!]));
    const out = await readTopic(log, output, (r) => [...expected].every(([k, v]) => latest(r).get(k) === v), 60_000);
    assert.deepEqual(latest(out), expected);
    assert.equal(out.length, seen.size, 'one update per distinct record: nothing counted twice');
    const text = await threads.metrics();
    const tasks = /shopstream_streams_active_tasks\{application="[^"]+"\} (\d+)/.exec(text);
    assert.equal(Number(tasks?.[1]), 4, 'the two threads run the four tasks between them');
    const split = await threads.threadTasks();
    assert.equal(split.length, 2);
    assert.ok(split.every((t) => t.length === 2), `each thread runs two tasks: ${JSON.stringify(split)}`);
    const perTask = [...text.matchAll(/shopstream_streams_records_in_total\{application="[^"]+",task="(\d+_\d+)"\} (\d+)/g)];
    assert.equal(perTask.reduce((a, m) => a + Number(m[2]), 0), 400);
    // The topology's own metric, registered in each thread's registry, comes back per thread.
    const seenBy = [...text.matchAll(/test_topology_records_seen_total\{thread="(\d)"\} (\d+)/g)].map((m) => [m[1], Number(m[2])] as const);
    assert.deepEqual(seenBy.map(([t]) => t).sort(), ['0', '1'], 'both threads report the topology metric');
    assert.equal(seenBy.reduce((a, [, n]) => a + n, 0), 400);
    // The process's own registry and the threads' add up into one view.
    const json = await threads.metricsJSON();
    assert.equal(json.length, 2);
    // The threads' applications log through the parent's logger, each entry marked with its thread.
    for (const i of [0, 1]) assert.ok(logged.some((l) => l.thread === i && l.msg === 'streams application started'), `thread ${i} logged its start: ${JSON.stringify(logged)}`);
  } finally {
    await threads.close();
    await log.admin.deleteTopics([input, output]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}
