/**
 * A task with two inputs chooses by timestamp, and an empty input is passed over only when the log
 * says it has nothing more (Kafka Streams' max.task.idle.ms, KIP-695). Without this, after a
 * restart or under lag, a later record of one input was processed before an earlier one that the
 * other input already held in the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamsBuilder, Serdes } from '../../src/index.ts';
import type { ConsumedRecord, ProducerRecord, TopicPartition } from '../../src/index.ts';
import { Task } from '../../src/runtime/task.ts';
import { MemoryBackend } from '../../src/state/backend.ts';

const S = Serdes.string();

function twoInputTask(): { task: Task; out: string[] } {
  const b = new StreamsBuilder();
  b.stream('left', { keySerde: S, valueSerde: S })
    .merge(b.stream('right', { keySerde: S, valueSerde: S }))
    .to('out', { keySerde: S, valueSerde: S });
  const topology = b.build();
  const out: string[] = [];
  const task = new Task({
    applicationId: 'idle-test',
    topology,
    subtopology: topology.subtopologies()[0]!,
    partition: 0,
    collector: { send: (r: ProducerRecord) => void out.push(r.value!.toString()), partitionsOf: () => 1 },
    openBackend: () => new MemoryBackend(),
    maxBufferBytes: Number.MAX_SAFE_INTEGER,
    cacheBytes: 0,
    changelogs: false,
    wallClock: () => 0,
    requestCommit: () => {},
  });
  task.init();
  return { task, out };
}

let offset = 0;
const rec = (topic: string, value: string, timestamp: number): ConsumedRecord => ({
  topic,
  partition: 0,
  offset: offset++,
  key: Buffer.from('k'),
  value: Buffer.from(value),
  timestamp,
  headers: [],
});

test('an empty input that the log says is behind blocks the task until its records arrive', () => {
  const { task, out } = twoInputTask();
  task.addRecords([rec('left', 'L2', 2000), rec('left', 'L3', 3000)]);
  const caught = new Set<string>();
  const caughtUp = (tp: TopicPartition) => caught.has(tp.topic);
  assert.equal(task.process(Infinity, caughtUp, 0, 0), 0);
  assert.equal(task.blocked, true);
  assert.deepEqual(out, []);
  // The fetch of `right` returns an earlier record: it goes first.
  task.addRecords([rec('right', 'R1', 1000)]);
  caught.add('right');
  assert.equal(task.process(Infinity, caughtUp, 0, 0), 3);
  assert.equal(task.blocked, false);
  assert.deepEqual(out, ['R1', 'L2', 'L3']);
});

test('an empty input that is caught up does not block (max.task.idle.ms = 0)', () => {
  const { task, out } = twoInputTask();
  task.addRecords([rec('left', 'L1', 1000)]);
  assert.equal(task.process(Infinity, () => true, 0, 0), 1);
  assert.deepEqual(out, ['L1']);
});

test('max.task.idle.ms = -1 never waits', () => {
  const { task, out } = twoInputTask();
  task.addRecords([rec('left', 'L1', 1000)]);
  assert.equal(task.process(Infinity, () => false, -1, 0), 1);
  assert.deepEqual(out, ['L1']);
});

test('max.task.idle.ms > 0 waits that long on the wall clock for a caught-up empty input', () => {
  const { task, out } = twoInputTask();
  task.addRecords([rec('left', 'L1', 1000)]);
  assert.equal(task.process(Infinity, () => true, 500, 10_000), 0);
  assert.equal(task.process(Infinity, () => true, 500, 10_400), 0);
  assert.equal(task.blocked, true);
  assert.equal(task.process(Infinity, () => true, 500, 10_500), 1);
  assert.deepEqual(out, ['L1']);
});
