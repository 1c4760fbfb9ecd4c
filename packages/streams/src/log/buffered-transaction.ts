/**
 * A transaction that keeps its records and hands them, with the offsets, to one commit: the
 * embedded log's (its commit is one atomic write) and the remote log's (its commit is one message
 * to the thread that owns the log). The Kafka log sends as it goes and has its own.
 */
import { StreamsError, ErrorCodes } from '../errors.ts';
import type { ProducerRecord, TopicPartitionOffset, Transaction } from './types.ts';

export abstract class BufferedTransaction implements Transaction {
  private state: 'open' | 'committing' | 'done' = 'open';
  private records: ProducerRecord[] = [];

  /** Checks (and may prepare) a record as it is sent; throws to refuse it. */
  protected abstract accept(record: ProducerRecord): void;
  /** Makes the records visible and sets the offsets, atomically. */
  protected abstract commitRecords(records: ProducerRecord[], offsets: TopicPartitionOffset[]): Promise<void>;
  /** The transaction is over (committed, failed or aborted). */
  protected abstract ended(): void;

  send(record: ProducerRecord): void {
    this.ensureOpen('send');
    this.accept(record);
    this.records.push(record);
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.ensureOpen('commit');
    this.state = 'committing';
    try {
      await this.commitRecords(this.records, offsets.map(plainOffset));
    } finally {
      this.finish();
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'done') return;
    if (this.state === 'committing') throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'transaction.abort: the transaction is committing');
    this.finish();
  }

  private ensureOpen(op: string): void {
    if (this.state !== 'open') throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `transaction.${op}: the transaction is already ${this.state === 'done' ? 'finished' : 'committing'}`);
  }

  private finish(): void {
    this.state = 'done';
    this.records = [];
    this.ended();
  }
}

/** A copy of an offset with only its own fields (`metadata` only when it has some). */
export function plainOffset(o: TopicPartitionOffset): TopicPartitionOffset {
  return o.metadata === undefined ? { topic: o.topic, partition: o.partition, offset: o.offset } : { topic: o.topic, partition: o.partition, offset: o.offset, metadata: o.metadata };
}
