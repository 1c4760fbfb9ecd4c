/**
 * Ending hanging transactions (src/log/kafka/hanging.ts) against the real broker
 * (KAFKA_BOOTSTRAP, default 127.0.0.1:9092). A transaction left open by a producer stands in for a
 * hanging one: on the partition they look the same (an open transaction of a producer id, no
 * marker), which is what DescribeProducers sees and WriteTxnMarkers ends, as `kafka-transactions.sh abort` does.
 * The last case makes a real hanging transaction, on a broker of its own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FindCoordinatorKeyTypes, ProduceAcks, Producer, kGetApi, kGetConnection, type Connection } from '@platformatic/kafka';
import { connectKafkaLog } from '../../../src/log/kafka/index.ts';
import { describeTransaction, endOpenTransactions, offsetsPartitionFor, openTransactions, partitionLeaders } from '../../../src/log/kafka/hanging.ts';
import { encodeBatch, fastProduceApi } from '../../../src/log/kafka/fastproduce.ts';
import type { KafkaAdmin } from '../../../src/log/kafka/admin.ts';
import type { KafkaProducerClient } from '../../../src/log/kafka/producer.ts';
import type { Log } from '../../../src/log/types.ts';
import { TestBroker } from '../../../../../infra/kafka/broker.ts';

const bootstrap = process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

function transactionalProducer(transactionalId: string, brokers = bootstrap): KafkaProducerClient {
  return new Producer({
    clientId: unique('hanging-test'),
    bootstrapBrokers: [brokers],
    idempotent: true,
    acks: ProduceAcks.ALL,
    transactionalId,
    timeout: 60_000,
    autocreateTopics: false,
  }) as KafkaProducerClient;
}

describe('hanging transactions (Kafka)', () => {
  let log: Log;
  const topics: string[] = [];
  before(async () => {
    log = await connectKafkaLog({ bootstrapServers: bootstrap, clientId: 'hanging-test' });
  });
  after(async () => {
    await log.admin.deleteTopics(topics).catch(() => {});
    await log.close();
  });

  /** Values a read_committed reader sees in partition `partition` up to its last stable offset, and that offset. */
  async function committed(topic: string, partition: number): Promise<{ values: string[]; end: number }> {
    const [end] = await log.admin.listOffsets([{ topic, partition }], 'latest');
    const reader = log.createReader();
    const values: string[] = [];
    try {
      reader.assign([{ topic, partition, offset: 0 }]);
      const deadline = Date.now() + 10_000;
      while (reader.position({ topic, partition }) < end!.offset && Date.now() < deadline) for (const r of await reader.poll(200)) values.push(r.value!.toString());
    } finally {
      await reader.close();
    }
    return { values, end: end!.offset };
  }

  it('finds an open transaction of a producer id and ends it with the chosen outcome, on each partition', async () => {
    const topic = unique('hanging');
    topics.push(topic);
    await log.admin.createTopics([{ name: topic, partitions: 2 }]);
    const producer = transactionalProducer(unique('txn'));
    const other = transactionalProducer(unique('txn-other'));
    try {
      const tx = await producer.beginTransaction();
      await tx.send({ messages: [0, 1].flatMap((partition) => ['a', 'b', 'c'].map((v) => ({ topic, partition, key: Buffer.from(v), value: Buffer.from(`${v}${partition}`) }))) });
      // Another producer's open transaction on the same partition is not ours to end.
      const otx = await other.beginTransaction();
      await otx.send({ messages: [{ topic, partition: 0, key: Buffer.from('o'), value: Buffer.from('other') }] });
      const pid = producer.producerId!;
      const tps = [0, 1].map((partition) => ({ topic, partition }));

      // Open: nothing is readable past the transactions' first records.
      assert.deepEqual((await committed(topic, 0)).values, []);
      const open = await openTransactions(producer, new Set([pid]), tps);
      assert.deepEqual(
        open.map((o) => [o.partition, o.producerId, o.startOffset]),
        [
          [0, pid, 0n],
          [1, pid, 0n],
        ],
      );
      assert.ok(open.every((o) => o.producerEpoch === producer.producerEpoch));

      await endOpenTransactions(producer, open.filter((o) => o.partition === 0), 'abort');
      await endOpenTransactions(producer, open.filter((o) => o.partition === 1), 'commit');
      // Partition 0: our records aborted; the other producer's transaction still holds the stable offset back.
      assert.deepEqual(await openTransactions(producer, new Set([pid]), tps), []);
      assert.equal((await openTransactions(producer, new Set([other.producerId!]), tps)).length, 1);
      await otx.commit();
      const p0 = await committed(topic, 0);
      assert.deepEqual(p0.values, ['other']);
      // Partition 1: committed by our marker.
      const p1 = await committed(topic, 1);
      assert.deepEqual(p1.values, ['a1', 'b1', 'c1']);
      assert.equal(p1.end, 4, 'three records and the marker');
    } finally {
      await producer.close(true).catch(() => {});
      await other.close(true).catch(() => {});
    }
  });

  it("describes a transaction in progress with its partitions, the group's offsets partition among them", async () => {
    const topic = unique('hanging-desc');
    topics.push(topic);
    await log.admin.createTopics([{ name: topic, partitions: 1 }]);
    const transactionalId = unique('txn-desc');
    const groupId = unique('group');
    const producer = transactionalProducer(transactionalId);
    try {
      const coordinator = async () => (await (log.admin as KafkaAdmin).client.findCoordinator({ keyType: FindCoordinatorKeyTypes.TRANSACTION, keys: [transactionalId] }))[0]!.nodeId;
      assert.equal((await describeTransaction(producer, coordinator, transactionalId)).state, 'Empty');
      const tx = await producer.beginTransaction();
      await tx.send({ messages: [{ topic, partition: 0, key: Buffer.from('k'), value: Buffer.from('v') }] });
      await tx.addConsumer({ groupId } as never);
      const d = await describeTransaction(producer, coordinator, transactionalId);
      assert.equal(d.state, 'Ongoing');
      assert.equal(d.producerId, producer.producerId);
      // A group's coordinator lookup creates the offsets topic on a fresh broker.
      let count = 0;
      for (let i = 0; i < 100 && count === 0; i++) {
        await (log.admin as KafkaAdmin).client.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [groupId] }).catch(() => undefined);
        count = (await partitionLeaders(producer, ['__consumer_offsets']).catch(() => new Map<string, number[]>())).get('__consumer_offsets')?.length ?? 0;
        if (count === 0) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(count > 0);
      const offsets = d.partitions.filter((tp) => tp.topic === '__consumer_offsets');
      assert.deepEqual(offsets, [{ topic: '__consumer_offsets', partition: offsetsPartitionFor(groupId, count) }], 'our hash of the group id matches the broker');
      assert.ok(d.partitions.some((tp) => tp.topic === topic && tp.partition === 0));
      // The offsets themselves (TxnOffsetCommit to the group coordinator) open the transaction on the offsets partition.
      const groupCoordinator = (await (log.admin as KafkaAdmin).client.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [groupId] }))[0]!;
      const connection = await new Promise<Connection>((resolve, reject) => producer[kGetConnection](groupCoordinator, (err, c) => (err || !c ? reject(err) : resolve(c))));
      const txnOffsetCommit = await new Promise<{ async: (...args: unknown[]) => Promise<unknown> }>((resolve, reject) =>
        producer[kGetApi]('TxnOffsetCommit', (err, api) => (err || !api ? reject(err) : resolve(api as never))),
      );
      await txnOffsetCommit.async(connection, transactionalId, groupId, producer.producerId, producer.producerEpoch, -1, '', null, [
        { name: topic, partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: null }] },
      ]);
      // Ended by hand on the offsets partition too (it is an internal topic: leaders come from our own Metadata request).
      const open = await openTransactions(producer, new Set([producer.producerId!]), d.partitions);
      assert.deepEqual(open.map((o) => o.topic).sort(), ['__consumer_offsets', topic].sort());
      await tx.commit();
      // The commit answers once it is decided; the markers follow. The description waits for them.
      assert.equal((await describeTransaction(producer, coordinator, transactionalId)).state, 'CompleteCommit');
      assert.deepEqual(await openTransactions(producer, new Set([producer.producerId!]), d.partitions), []);
    } finally {
      await producer.close(true).catch(() => {});
    }
  });
});

/**
 * A real hanging transaction, made on a broker of this test's own that does not verify transactional
 * produce requests (`transaction.partition.verification.enable=false`, the check Kafka added against
 * such writes, KIP-890): after a committed transaction, one more batch of the same producer id goes
 * to a partition without AddPartitionsToTxn. The coordinator knows nothing of it and the partition
 * holds it open for good, as after a lost marker. A member that starts with this transactional id
 * and the topic among its outputs must end it, with the coordinator's last outcome.
 */
describe("a hanging transaction of the member's transactional id, at start (Kafka, own broker)", () => {
  const broker = new TestBroker(Number(process.env['SHOPSTREAM_HANGING_KAFKA_PORT'] ?? 19412));
  const own = broker.bootstrap;
  let log: Log;
  before(async () => {
    broker.start({ fresh: true, extraConfig: 'transaction.partition.verification.enable=false' });
    log = await connectKafkaLog({ bootstrapServers: own, clientId: 'hanging-start' });
  });
  after(async () => {
    await log?.close().catch(() => {});
    broker.stop();
  });

  it('is ended by the member when it starts, and the partition reads on', async () => {
    const [input, output, groupId] = [unique('in'), unique('out'), unique('group')];
    await log.admin.createTopics([
      { name: input, partitions: 1 },
      { name: output, partitions: 2 },
    ]);
    const producer = transactionalProducer(`${groupId}-i1`, own);
    try {
      const tx = await producer.beginTransaction();
      await tx.send({ messages: [{ topic: output, partition: 0, key: Buffer.from('k'), value: Buffer.from('committed') }] });
      await tx.commit();
      // Its markers written (the description waits for them): nothing is open on the partition.
      const coordinator = async () => (await (log.admin as KafkaAdmin).client.findCoordinator({ keyType: FindCoordinatorKeyTypes.TRANSACTION, keys: [`${groupId}-i1`] }))[0]!.nodeId;
      assert.equal((await describeTransaction(producer, coordinator, `${groupId}-i1`)).state, 'CompleteCommit');
      const pid = producer.producerId!;
      assert.deepEqual(await openTransactions(producer, new Set([pid]), [{ topic: output, partition: 0 }]), []);
      // The batch no transaction knows of: same producer id and epoch, next sequence, transactional.
      const batch = encodeBatch([{ topic: output, key: Buffer.from('k'), value: Buffer.from('hanging') }], [0], Date.now(), pid, producer.producerEpoch!, 1, true);
      const leader = (await partitionLeaders(producer, [output])).get(output)![0]!;
      const broker = (await producer.metadata({ topics: [] })).brokers.get(leader)!;
      const connection = await new Promise<Connection>((res, rej) => producer[kGetConnection](broker, (err, c) => (err || !c ? rej(err) : res(c))));
      const answer = (await (await fastProduceApi(producer))!.async(connection, `${groupId}-i1`, -1, 10_000, new Map([[output, new Map([[0, batch]])]]))) as {
        responses: Array<{ partitionResponses: Array<{ errorCode: number }> }>;
      };
      assert.equal(answer.responses[0]!.partitionResponses[0]!.errorCode, 0, 'the broker took the batch');
      assert.equal((await openTransactions(producer, new Set([pid]), [{ topic: output, partition: 0 }])).length, 1, 'the partition holds a transaction open');
      assert.equal((await describeTransaction(producer, coordinator, `${groupId}-i1`)).state, 'CompleteCommit', 'that the coordinator does not know of');
    } finally {
      await producer.close(true).catch(() => {});
    }
    const warnings: Array<Record<string, unknown>> = [];
    const member = await log.joinGroup({ groupId, instanceId: 'i1', topics: [input], transactional: true, outputTopics: [output], onWarning: (_m, d) => warnings.push(d) });
    try {
      const checker = transactionalProducer(unique('checker'), own);
      try {
        assert.deepEqual(await openTransactions(checker, new Set([warnings.length > 0 ? BigInt((warnings[0]!['partitions'] as Array<{ producerId: string }>)[0]!.producerId) : -1n]), [{ topic: output, partition: 0 }]), []);
      } finally {
        await checker.close(true).catch(() => {});
      }
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!['outcome'], 'commit', "the coordinator's last outcome");
      // The stable offset moved past it: a read_committed reader gets both records.
      const [end] = await log.admin.listOffsets([{ topic: output, partition: 0 }], 'latest');
      const reader = log.createReader();
      const values: string[] = [];
      try {
        reader.assign([{ topic: output, partition: 0, offset: 0 }]);
        const deadline = Date.now() + 10_000;
        while (reader.position({ topic: output, partition: 0 }) < end!.offset && Date.now() < deadline) for (const r of await reader.poll(200)) values.push(r.value!.toString());
      } finally {
        await reader.close();
      }
      assert.deepEqual(values, ['committed', 'hanging']);
    } finally {
      await member.close();
    }
  });
});
