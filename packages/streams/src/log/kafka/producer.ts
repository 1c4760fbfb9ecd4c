/** The plain producer: idempotent, acks=all, murmur2 partitioning through our partitioner. */
import { ProduceAcks, Producer } from '@platformatic/kafka';
import { NullKeyPartitioner } from '../partitioner.ts';
import type { LogProducer, ProducerOptions, ProducerRecord, RecordMetadata } from '../types.ts';
import { closedError, toStreamsError } from './errors.ts';
import { choosePartition, MAX_BATCH_BYTES, recordSize, toKafkaMessage, type KafkaMessage } from './records.ts';
import { baseClientOptions, type ResolvedOptions } from './util.ts';

/** Upper bound of one produce request, across partitions. */
const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

export type KafkaProducerClient = Producer<Buffer, Buffer, Buffer, Buffer>;

/** Partition counts of topics, from the producer's metadata cache. */
export async function partitionCounts(producer: KafkaProducerClient, topics: readonly string[]): Promise<Map<string, number>> {
  try {
    const md = await producer.metadata({ topics: [...topics] });
    const out = new Map<string, number>();
    for (const t of topics) {
      const count = md.topics.get(t)?.partitionsCount;
      if (count === undefined) throw new Error(`Unknown topic ${t}.`);
      out.set(t, count);
    }
    return out;
  } catch (err) {
    throw toStreamsError(err, `metadata of ${topics.join(',')}`);
  }
}

interface Placed {
  message: KafkaMessage;
  /** Index of the record in its partition's batch within its chunk. */
  indexInBatch: number;
  chunk: number;
}

/** Splits messages into requests whose per-partition batches stay below the broker's limit. */
export function chunkMessages(records: readonly ProducerRecord[], messages: readonly KafkaMessage[]): { chunks: KafkaMessage[][]; placed: Placed[] } {
  const chunks: KafkaMessage[][] = [[]];
  const placed: Placed[] = [];
  let partBytes = new Map<string, number>();
  let partCount = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    const size = recordSize(records[i]!);
    const key = `${m.topic}\u0000${m.partition}`;
    const current = partBytes.get(key) ?? 0;
    if (chunks[chunks.length - 1]!.length > 0 && (current + size > MAX_BATCH_BYTES || total + size > MAX_REQUEST_BYTES)) {
      chunks.push([]);
      partBytes = new Map();
      partCount = new Map();
      total = 0;
    }
    const n = partCount.get(key) ?? 0;
    partCount.set(key, n + 1);
    partBytes.set(key, (partBytes.get(key) ?? 0) + size);
    total += size;
    chunks[chunks.length - 1]!.push(m);
    placed.push({ message: m, indexInBatch: n, chunk: chunks.length - 1 });
  }
  return { chunks, placed };
}

export class KafkaProducer implements LogProducer {
  private readonly producer: KafkaProducerClient;
  private readonly nullKeys = new NullKeyPartitioner();
  private closed = false;
  private readonly onClose: () => void;

  constructor(options: ResolvedOptions, producerOptions: ProducerOptions | undefined, onClose: () => void) {
    this.producer = new Producer({
      ...baseClientOptions(options, producerOptions?.clientId ?? `${options.clientId}-producer`),
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
    });
    this.producer.on('error', () => {});
    this.onClose = onClose;
  }

  async send(records: readonly ProducerRecord[]): Promise<RecordMetadata[]> {
    if (this.closed) throw closedError('producer');
    if (records.length === 0) return [];
    const counts = await partitionCounts(this.producer, [...new Set(records.map((r) => r.topic))]);
    const messages = records.map((r) => toKafkaMessage(r, choosePartition(r, counts.get(r.topic)!, this.nullKeys)));
    const { chunks, placed } = chunkMessages(records, messages);
    let results;
    try {
      // Sequence numbers are assigned in call order, so concurrent chunks keep the records' order.
      results = await Promise.all(chunks.map((messages) => this.producer.send({ messages, acks: ProduceAcks.ALL })));
    } catch (err) {
      throw toStreamsError(err, `produce to ${[...counts.keys()].join(',')}`);
    }
    const bases = results.map((res) => {
      const m = new Map<string, number>();
      for (const o of res.offsets ?? []) m.set(`${o.topic}\u0000${o.partition}`, Number(o.offset));
      return m;
    });
    return placed.map(({ message, indexInBatch, chunk }) => {
      const base = bases[chunk]!.get(`${message.topic}\u0000${message.partition}`) ?? -1;
      return { topic: message.topic, partition: message.partition!, offset: base < 0 ? -1 : base + indexInBatch };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    await this.producer.close(true).catch(() => {});
  }
}
