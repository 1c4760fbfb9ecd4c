/**
 * A backlog stays in the log, not in the heap: an input partition whose task has
 * maxBufferedRecordsPerPartition records waiting is paused until the task works its queue below it
 * (Kafka Streams' buffered.records.per.partition). A slow processor over a backlog shows it: the
 * records the log has returned but the task has not processed stay within the limit plus one poll,
 * where without the pause the whole backlog would be read ahead. Every record is still processed
 * once, so the paused partitions are resumed. On both logs (the Kafka run needs the broker that
 * `.ci/run` starts: KAFKA_BOOTSTRAP, default 127.0.0.1:9092).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamsApp, StreamsBuilder, Serdes } from '../../src/index.ts';
import type { Log } from '../../src/index.ts';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import { connectKafkaLog } from '../../src/log/kafka/index.ts';
import { DEFAULT_MAX_RECORDS as EMBEDDED_POLL_MAX } from '../../src/log/embedded/groups.ts';
import { DEFAULT_MAX_RECORDS as KAFKA_POLL_MAX } from '../../src/log/kafka/reader.ts';
import { produce, readTopic, slowCopy, unique, withMembers } from './helpers.ts';

const S = Serdes.string();
const PARTITIONS = 2;
const RECORDS = 10_000;
const LIMIT = 50;
const bootstrap = process.env['KAFKA_BOOTSTRAP'] ?? '127.0.0.1:9092';

/**
 * The log, counting per partition the records that its members' polls return. `forgetPauses`: after
 * every poll the member resumes all its partitions, as a rebalance resets the pauses of the
 * partitions a member keeps.
 */
function countingPolls(log: Log, returned: number[], forgetPauses: boolean): Log {
  return withMembers(log, (m) => ({
    poll: async (ms: number) => {
      const r = await m.poll(ms);
      for (const rec of r.records) returned[rec.partition]! += 1;
      if (forgetPauses) m.resume(m.assignment());
      return r;
    },
  }));
}

async function run(log: Log, maxBufferedRecordsPerPartition: number | undefined, forgetPauses = false): Promise<{ maxWaiting: number; outputs: number; distinct: number }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'backpressure-state-'));
  const input = unique('in');
  const output = unique('out');
  await log.admin.createTopics([
    { name: input, partitions: PARTITIONS },
    { name: output, partitions: PARTITIONS },
  ]);
  await produce(
    log,
    Array.from({ length: RECORDS }, (_, i) => ({ topic: input, partition: i % PARTITIONS, key: Buffer.from(`k${i}`), value: Buffer.from(String(i)), timestamp: 1_000 + i })),
  );
  const returned = new Array<number>(PARTITIONS).fill(0);
  const processed = new Array<number>(PARTITIONS).fill(0);
  let maxWaiting = 0;
  // A slow processor (~100 µs a record): the log is read far faster than records are processed.
  const topology = slowCopy(input, output, 0.1, (ctx) => {
    const p = ctx.recordMetadata()!.partition;
    processed[p]! += 1;
    maxWaiting = Math.max(maxWaiting, returned[p]! - processed[p]!);
  });
  const app = new StreamsApp(topology, {
    applicationId: unique('app'),
    log: countingPolls(log, returned, forgetPauses),
    stateDir,
    ...(maxBufferedRecordsPerPartition === undefined ? {} : { maxBufferedRecordsPerPartition }),
  });
  try {
    await app.start();
    const out = await readTopic(log, output, (rs) => rs.length >= RECORDS, 60_000);
    return { maxWaiting, outputs: out.length, distinct: new Set(out.map((r) => r.value!.toString())).size };
  } finally {
    await app.close();
    await log.admin.deleteTopics([input, output]).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

test('a limit below one record is refused with a code (it would pause every input for good)', () => {
  const b = new StreamsBuilder();
  b.stream('in', { keySerde: S, valueSerde: S }).to('out', { keySerde: S, valueSerde: S });
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => new StreamsApp(b.build(), { applicationId: 'x', log: {} as Log, maxBufferedRecordsPerPartition: bad }),
      (err: Error & { code?: string }) => err.code === 'SHOP_ERR_INVALID_ARGUMENT' && /maxBufferedRecordsPerPartition/.test(err.message),
    );
  }
});

/**
 * `pollMax`: the records one poll returns at most. At most LIMIT - 1 records wait when a poll may
 * still add to the queue, plus what that poll returns.
 */
async function checkBackpressure(log: Log, pollMax: number): Promise<void> {
  const bounded = await run(log, LIMIT);
  assert.equal(bounded.outputs, RECORDS);
  assert.equal(bounded.distinct, RECORDS);
  assert.ok(bounded.maxWaiting <= LIMIT - 1 + pollMax, `${bounded.maxWaiting} records waited in one partition's queue`);
  // A member that forgets its pauses after every poll (as a rebalance resets them) is paused again before the next.
  const forgetful = await run(log, LIMIT, true);
  assert.equal(forgetful.outputs, RECORDS);
  assert.ok(forgetful.maxWaiting <= LIMIT - 1 + pollMax, `with a member that forgets its pauses, ${forgetful.maxWaiting} records waited in one partition's queue`);
  // The same backlog without a limit worth the name is read ahead far beyond it: the check above can fail.
  const unbounded = await run(log, RECORDS);
  assert.equal(unbounded.outputs, RECORDS);
  assert.ok(unbounded.maxWaiting > LIMIT - 1 + pollMax, `without the pause only ${unbounded.maxWaiting} records waited: the test shows nothing`);
}

test('embedded log: a partition whose queue is full is paused until its task works it down; every record is processed once', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'backpressure-log-'));
  const log = await openEmbeddedLog({ dir, fsync: false });
  try {
    await checkBackpressure(log, EMBEDDED_POLL_MAX);
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Kafka: a partition whose queue is full is paused until its task works it down; every record is processed once', { timeout: 180_000 }, async () => {
  const log = await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'backpressure-test' });
  try {
    await checkBackpressure(log, KAFKA_POLL_MAX);
  } finally {
    await log.close();
  }
});
