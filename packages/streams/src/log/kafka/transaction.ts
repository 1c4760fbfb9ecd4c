/**
 * A group member's transaction (Kafka Streams' EOS v2, KIP-447): records are buffered and sent in
 * batches without awaiting each send; `commit` flushes, adds the group's offsets with the member's
 * group metadata (so the coordinator fences zombies of an older generation), then ends the transaction.
 */
import { ErrorCodes, StreamsError } from '../../errors.ts';
import type { NullKeyPartitioner } from '../partitioner.ts';
import type { ProducerRecord, TopicPartitionOffset, Transaction } from '../types.ts';
import { hasApiError, isFencing, isProducerFenced, toStreamsError } from './errors.ts';
import type { KafkaProducerClient } from './producer.ts';
import { choosePartition, MAX_BATCH_BYTES, recordSize, toKafkaMessage } from './records.ts';

type PTransaction = NonNullable<KafkaProducerClient['transaction']>;

/** Records of one produce request: indexes into the flushed records, with their partitions. */
export interface Chunk {
  records: readonly ProducerRecord[];
  partitions: readonly number[];
  indexes: number[];
}

/** Upper bound of one produce request, across partitions. */
const MAX_REQUEST_BYTES = 8 * 1024 * 1024;

/** Splits records into requests whose per-partition batches stay below the broker's batch limit. */
function chunkRecords(records: readonly ProducerRecord[], partitions: readonly number[]): Chunk[] {
  const chunks: Chunk[] = [];
  let current: number[] = [];
  // Bytes per partition in the current chunk, per topic.
  let partBytes = new Map<string, number[]>();
  let total = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    const size = recordSize(record);
    const partition = partitions[i]!;
    let perTopic = partBytes.get(record.topic);
    if (!perTopic) partBytes.set(record.topic, (perTopic = []));
    const bytes = perTopic[partition] ?? 0;
    if (current.length > 0 && (bytes + size > MAX_BATCH_BYTES || total + size > MAX_REQUEST_BYTES)) {
      chunks.push({ records, partitions, indexes: current });
      current = [];
      partBytes = new Map([[record.topic, (perTopic = [])]]);
      total = 0;
    }
    perTopic[partition] = (perTopic[partition] ?? 0) + size;
    total += size;
    current.push(i);
  }
  if (current.length > 0) chunks.push({ records, partitions, indexes: current });
  return chunks;
}

/** Buffered bytes that trigger a background send. */
const FLUSH_BYTES = 512 * 1024;
const FLUSH_RECORDS = 4096;

/** What a transaction needs from its member. */
export interface TransactionHost {
  readonly producer: KafkaProducerClient;
  readonly nullKeys: NullKeyPartitioner;
  /** Begins the client's transaction (initialising or re-initialising the producer id when needed). */
  beginClientTransaction(): Promise<PTransaction>;
  /**
   * Queues a produce request of these records (partitions chosen) on the transaction; resolves once
   * it is queued, with the promise of its response. Null: use the client's send.
   */
  produce(chunk: Chunk): Promise<{ done: Promise<unknown> } | null>;
  /** Partition counts, cached. */
  partitionCounts(topics: readonly string[]): Promise<Map<string, number>>;
  /** Count of rebalances this member has adopted. */
  readonly rebalanceCount: number;
  /** Sends the offsets to the transaction with the member's group metadata. */
  sendOffsetsToTransaction(tx: PTransaction, offsets: readonly TopicPartitionOffset[], generation: number, memberId: string): Promise<void>;
  readonly generation: number;
  readonly memberId: string;
  readonly groupId: string;
  /** The producer must get a new epoch before its next transaction. */
  producerNeedsInit(): void;
  /**
   * A transaction that wrote something ended without an answered commit (aborted, or its end
   * unanswered): its partitions (and the group's offsets partition, when offsets were added) are
   * checked for a lost marker at the producer's next epoch, which this also asks for.
   */
  transactionUnfinished(partitions: readonly { topic: string; partition: number }[], offsets: boolean): void;
  /**
   * A transaction's commit was answered. Its markers are written after the answer: a broker that
   * dies before they are all written may lose some, so after a failure its partitions are checked too.
   */
  transactionCommitted(partitions: readonly { topic: string; partition: number }[], offsets: boolean): void;
  transactionEnded(tx: KafkaTransaction): void;
}

export class KafkaTransaction implements Transaction {
  private state: 'open' | 'committing' | 'done' = 'open';
  private readonly client: Promise<PTransaction>;
  private buffer: ProducerRecord[] = [];
  private bufferBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private sends: Promise<void>[] = [];
  private error: unknown;
  /** Partitions added to the transaction, per topic. */
  private readonly added = new Map<string, Set<number>>();
  /** Something of this transaction may have reached the broker, so ending it needs EndTxn. */
  private started = false;
  /** The group's offsets were added to the transaction (AddOffsetsToTxn). */
  private offsetsAdded = false;
  private readonly host: TransactionHost;
  /** The member's rebalance count and group metadata when the transaction began. */
  private readonly epoch: number;
  private readonly generation: number;
  private readonly memberId: string;

  constructor(host: TransactionHost) {
    this.host = host;
    this.epoch = host.rebalanceCount;
    this.generation = host.generation;
    this.memberId = host.memberId;
    this.client = host.beginClientTransaction();
    this.client.catch((err: unknown) => {
      this.error ??= err;
    });
  }

  get done(): boolean {
    return this.state === 'done';
  }

  send(record: ProducerRecord): void {
    if (this.state !== 'open') throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'send on a transaction that is committing or over');
    if (record.partition !== undefined && (!Number.isInteger(record.partition) || record.partition < 0)) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `invalid partition ${record.partition}`);
    }
    this.buffer.push(record);
    this.bufferBytes += recordSize(record);
    if (this.bufferBytes >= FLUSH_BYTES || this.buffer.length >= FLUSH_RECORDS) this.flush();
  }

  /** Starts sending what is buffered; partitions new to the transaction are added first, one request at a time. */
  private flush(): void {
    if (this.buffer.length === 0) return;
    const records = this.buffer;
    this.buffer = [];
    this.bufferBytes = 0;
    this.chain = this.chain
      .then(async () => {
        if (this.error !== undefined) return;
        const tx = await this.client;
        const counts = await this.host.partitionCounts([...new Set(records.map((r) => r.topic))]);
        const partitions = records.map((r) => choosePartition(r, counts.get(r.topic)!, this.host.nullKeys));
        const fresh = new Map<string, { topic: string; partition: number }>();
        let lastTopic = '';
        let addedOfTopic: Set<number> | undefined;
        for (let i = 0; i < records.length; i++) {
          const topic = records[i]!.topic;
          if (topic !== lastTopic || !addedOfTopic) {
            lastTopic = topic;
            addedOfTopic = this.added.get(topic);
            if (!addedOfTopic) this.added.set(topic, (addedOfTopic = new Set()));
          }
          const partition = partitions[i]!;
          if (!addedOfTopic.has(partition)) {
            const key = `${topic}\u0000${partition}`;
            if (!fresh.has(key)) fresh.set(key, { topic, partition });
          }
        }
        if (fresh.size > 0) {
          // AddPartitionsToTxn before the sends, serialised: the client deduplicates concurrent adds by name only.
          const md = await this.host.producer.metadata({ topics: [...new Set([...fresh.values()].map((m) => m.topic))] });
          this.started = true;
          await tx.addPartitions(md, [...fresh.values()] as never);
          for (const { topic, partition } of fresh.values()) this.added.get(topic)!.add(partition);
        }
        for (const chunk of chunkRecords(records, partitions)) {
          const sent = await this.host.produce(chunk);
          const done: Promise<unknown> = sent ? sent.done : tx.send({ messages: chunk.indexes.map((i) => toKafkaMessage(records[i]!, partitions[i]!)) });
          this.sends.push(
            done.then(
              () => undefined,
              (err: unknown) => {
                this.error ??= err;
                // Its sequence numbers are lost: the next transaction needs a new epoch.
                this.host.producerNeedsInit();
              },
            ),
          );
        }
      })
      .catch((err: unknown) => {
        this.error ??= err;
      });
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    if (this.state !== 'open') throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'commit on a transaction that is committing or over');
    this.state = 'committing';
    this.flush();
    let tx: PTransaction | undefined;
    try {
      await this.chain;
      await Promise.all(this.sends);
      if (this.error !== undefined) throw this.error;
      tx = await this.client;
      if (this.host.rebalanceCount !== this.epoch) {
        throw new StreamsError(ErrorCodes.FENCED, 'a rebalance happened since the transaction began; its partitions may belong to another member now');
      }
      if (offsets.length > 0) {
        this.started = true;
        this.offsetsAdded = true;
        await tx.addConsumer({ groupId: this.host.groupId } as never);
        await this.host.sendOffsetsToTransaction(tx, offsets, this.generation, this.memberId);
      }
      if (this.started) await tx.commit();
      else await tx.cancel(); // nothing reached the broker: there is no transaction to end
      this.state = 'done';
      if (this.started) this.host.transactionCommitted(this.partitions(), this.offsetsAdded);
      this.host.transactionEnded(this);
    } catch (err) {
      this.state = 'done';
      await this.abortClient(tx ?? (await this.client.catch(() => undefined)));
      this.reportUnfinished();
      this.host.transactionEnded(this);
      throw this.mapCommitError(err);
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    this.buffer = [];
    await this.chain;
    await Promise.all(this.sends);
    const tx = await this.client.catch(() => undefined);
    await this.abortClient(tx);
    this.reportUnfinished();
    this.host.transactionEnded(this);
  }

  private reportUnfinished(): void {
    if (this.started) this.host.transactionUnfinished(this.partitions(), this.offsetsAdded);
  }

  private partitions(): Array<{ topic: string; partition: number }> {
    return [...this.added].flatMap(([topic, set]) => [...set].map((partition) => ({ topic, partition })));
  }

  private async abortClient(tx: PTransaction | undefined): Promise<void> {
    if (!tx || tx.completed) return;
    try {
      if (this.started) await tx.abort();
      else await tx.cancel();
    } catch {
      // Fenced or unreachable: the coordinator aborts the transaction (on the new epoch, or at its
      // timeout). Forget it locally and give the producer a new epoch before the next transaction.
      this.host.producerNeedsInit();
      await tx.cancel().catch(() => {});
    }
  }

  private mapCommitError(err: unknown): StreamsError {
    if (err instanceof StreamsError && (err.code === ErrorCodes.FENCED.code || err.code === ErrorCodes.TRANSACTION_ABORTED.code)) return err;
    if (isProducerFenced(err)) this.host.producerNeedsInit();
    if (isFencing(err) || hasApiError(err, 'REBALANCE_IN_PROGRESS')) {
      return new StreamsError(ErrorCodes.FENCED, `transaction fenced: ${toStreamsError(err, 'commit').message}`, { cause: err });
    }
    const mapped = toStreamsError(err, 'commit');
    return new StreamsError(ErrorCodes.TRANSACTION_ABORTED, `transaction aborted: ${mapped.message}`, { cause: err, details: { reason: mapped.code } });
  }
}
