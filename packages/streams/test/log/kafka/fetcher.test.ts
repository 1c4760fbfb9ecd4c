/**
 * The Kafka fetcher (src/log/kafka/fetcher.ts) against the real broker (KAFKA_BOOTSTRAP, default
 * 127.0.0.1:9092). It has one fetch in flight per broker, so a fetch that long-polls the broker for
 * idle partitions holds back the fetch of busy ones until it returns. A busy partition paused by
 * backpressure (its task's queue is full) is behind and will want a fetch as soon as it is resumed:
 * a fetch sent meanwhile for the idle partitions alone must wait only briefly on the broker, not
 * fetchMaxWaitMs. Before this was so, stream threads on Kafka sat idle 100–300 ms several times a
 * second (BENCHMARKS.md, session 19).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connectKafkaLog } from '../../../src/log/kafka/index.ts';
import type { ConsumedRecord, GroupMember, Log } from '../../../src/log/types.ts';

const bootstrap = process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** What the test sees of each fetch the fetcher sends: its topics and the broker's max wait. */
interface SeenFetch {
  topics: string[];
  maxWaitMs: number;
}

/** Records every fetch the member's fetcher sends (a spy on its private `fetchFrom`). */
function spyOnFetches(member: GroupMember): SeenFetch[] {
  const seen: SeenFetch[] = [];
  const fetcher = (member as unknown as { fetcher: { fetchFrom: (...args: unknown[]) => void } }).fetcher;
  const original = fetcher.fetchFrom.bind(fetcher);
  assert.equal(typeof original, 'function', 'the fetcher sends its fetches through fetchFrom');
  fetcher.fetchFrom = (node: unknown, broker: unknown, topicsOfNode: unknown, maxWaitMs: unknown) => {
    seen.push({ topics: [...(topicsOfNode as Map<string, unknown>).keys()], maxWaitMs: maxWaitMs as number });
    original(node, broker, topicsOfNode, maxWaitMs);
  };
  return seen;
}

/** Delays every answer to the fetcher's metadata requests by `ms` (a spy on its consumer's `metadata`). */
function delayMetadata(member: GroupMember, ms: number): void {
  const consumer = (member as unknown as { fetcher: { consumer: { metadata: (options: unknown, callback: (...args: unknown[]) => void) => void } } }).fetcher.consumer;
  const original = consumer.metadata.bind(consumer);
  consumer.metadata = (options, callback) => original(options, (...args: unknown[]) => setTimeout(() => callback(...args), ms));
}

async function fill(log: Log, topic: string, n: number): Promise<void> {
  const producer = log.createProducer({ clientId: 'fetcher-test-fill' });
  // Batches of 5 (~2.5 KB): a fetch brings whole batches, at least one, up to fetchMaxPartitionBytes.
  for (let i = 0; i < n; i += 5) {
    await producer.send(Array.from({ length: 5 }, (_, j) => ({ topic, partition: 0, key: Buffer.from(`k${i + j}`), value: Buffer.alloc(500, 97 + ((i + j) % 26)) })));
  }
  await producer.close();
}

describe('the Kafka fetcher (real broker)', () => {
  let log: Log;
  const topics: string[] = [];
  before(async () => {
    // Small responses, so that the busy partition needs many fetches; a long max wait, so that a
    // fetch that long-polls would be plain to see.
    log = await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'fetcher-test', fetchMaxPartitionBytes: 4096, fetchMaxWaitMs: 3000 });
  });
  after(async () => {
    await log.admin.deleteTopics(topics).catch(() => undefined);
    await log.close();
  });

  /**
   * A busy partition of 200 records and an idle one, read by a group member: `body` runs once the
   * first polls brought part of the busy partition (the records so far in `got`); then the rest is
   * read, and every record must have come once, in order.
   */
  async function busyAndIdle(name: string, body: (t: { member: GroupMember; busy: string; got: ConsumedRecord[]; deadline: number }) => Promise<void>): Promise<void> {
    const busy = unique(`fetcher-${name}`);
    const idle = unique('fetcher-idle');
    await log.admin.createTopics([
      { name: busy, partitions: 1 },
      { name: idle, partitions: 1 },
    ]);
    topics.push(busy, idle);
    const n = 200;
    await fill(log, busy, n);
    const member = await log.joinGroup({ groupId: unique('fetcher-group'), topics: [busy, idle], transactional: false, autoOffsetReset: 'earliest' });
    try {
      const got: ConsumedRecord[] = [];
      const deadline = Date.now() + 20_000;
      while (got.length === 0 && Date.now() < deadline) got.push(...(await member.poll(500)).records);
      assert.ok(got.length > 0 && got.length < n, `the first polls bring part of the busy partition (${got.length} of ${n})`);
      await body({ member, busy, got, deadline });
      while (got.length < n && Date.now() < deadline) got.push(...(await member.poll(500)).records);
      assert.deepEqual(
        got.map((r) => [r.topic, r.offset]),
        Array.from({ length: n }, (_, i) => [busy, i]),
      );
    } finally {
      await member.close();
    }
  }

  it('a fetch of idle partitions waits only briefly on the broker while a paused partition is behind, and the records still come in order', async () => {
    await busyAndIdle('busy', async ({ member, busy, deadline }) => {
      const seen = spyOnFetches(member);
      // Backpressure: the busy partition is paused while the broker holds more of it.
      member.pause([{ topic: busy, partition: 0 }]);
      let idleOnly: SeenFetch[] = [];
      while (idleOnly.length === 0 && Date.now() < deadline) {
        assert.equal((await member.poll(50)).records.length, 0, 'nothing comes from a paused partition');
        idleOnly = seen.filter((f) => !f.topics.includes(busy));
      }
      assert.ok(idleOnly.length > 0, 'the idle partition is fetched alone while the busy one is paused');
      for (const f of idleOnly) assert.ok(f.maxWaitMs <= 5, `a fetch of the idle partition alone waits ${f.maxWaitMs} ms on the broker, not the 3,000 of a long poll`);
      member.resume([{ topic: busy, partition: 0 }]);
    });
  });

  it('a fetch takes in the partitions that the caller drained while the metadata for it was on its way', async () => {
    await busyAndIdle('drained', async ({ member, busy, got, deadline }) => {
      // From now on, a fetch is planned when a response comes (the busy partition then holds what it
      // brought, so only the idle one is free), and the metadata answer comes 100 ms later; meanwhile
      // the caller polls and drains the busy partition. Its next fetch must not wait behind a fetch of the idle one.
      delayMetadata(member, 100);
      const seen = spyOnFetches(member);
      while (seen.length < 3 && Date.now() < deadline) got.push(...(await member.poll(20)).records);
      assert.ok(seen.length >= 3, 'the fetcher went on fetching');
      for (const f of seen) assert.ok(f.topics.includes(busy), `a fetch of ${f.topics.map((t) => (t === busy ? 'the busy partition' : 'the idle partition')).join(' and ')} alone, sent while the busy partition had nothing buffered`);
    });
  });
});
