/** LogReader: manual assignment, no group, read_committed, on the shared Fetcher. */
import { randomUUID } from 'node:crypto';
import { ConnectionPool, Consumer } from '@platformatic/kafka';
import { ErrorCodes, StreamsError } from '../../errors.ts';
import type { ConsumedRecord, LogReader, ReaderOptions, TopicPartition, TopicPartitionOffset } from '../types.ts';
import { closedError } from './errors.ts';
import { Fetcher } from './fetcher.ts';
import { baseClientOptions, type ResolvedOptions } from './util.ts';

export const DEFAULT_MAX_RECORDS = 2000;

export class KafkaReader implements LogReader {
  private readonly consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  private readonly pool: ConnectionPool;
  private readonly fetcher: Fetcher;
  private readonly maxRecords: number;
  private closed = false;
  private readonly onClose: () => void;

  constructor(options: ResolvedOptions, readerOptions: ReaderOptions | undefined, onClose: () => void) {
    const clientId = readerOptions?.clientId ?? `${options.clientId}-reader`;
    // A consumer client is needed for its fetch/metadata plumbing; it never joins its (unique) group.
    this.consumer = new Consumer({
      ...baseClientOptions(options, clientId),
      groupId: `shopstream-reader-${randomUUID()}`,
      autocommit: false,
    });
    this.consumer.on('error', () => {});
    this.pool = new ConnectionPool(clientId, { connectTimeout: options.connectTimeoutMs, requestTimeout: options.requestTimeoutMs, maxInflights: 5 });
    this.pool.on('error', () => {});
    this.fetcher = new Fetcher(this.consumer, this.pool, options, 'clamp');
    this.maxRecords = readerOptions?.maxRecords ?? DEFAULT_MAX_RECORDS;
    this.onClose = onClose;
  }

  assign(partitions: readonly TopicPartitionOffset[]): void {
    this.checkOpen();
    for (const p of partitions) {
      if (!Number.isInteger(p.offset) || p.offset < 0) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `invalid offset ${p.offset} for ${p.topic}-${p.partition}`);
    }
    this.fetcher.assign(partitions);
    this.fetcher.maybeFetch();
  }

  async poll(maxWaitMs: number): Promise<ConsumedRecord[]> {
    this.checkOpen();
    return this.fetcher.poll(maxWaitMs, this.maxRecords, () => this.closed);
  }

  position(tp: TopicPartition): number {
    const pos = this.fetcher.position(tp);
    if (pos === undefined) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `${tp.topic}-${tp.partition} is not assigned`);
    return pos;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fetcher.close();
    this.onClose();
    await Promise.allSettled([this.pool.close(), this.consumer.close(true)]);
  }

  private checkOpen(): void {
    if (this.closed) throw closedError('reader');
  }
}
