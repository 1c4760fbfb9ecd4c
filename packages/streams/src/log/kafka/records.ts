/** Conversions between the log's records and Kafka record batches as @platformatic/kafka reads and writes them. */
import type { MessageToProduce, RecordsBatch } from '@platformatic/kafka';
import { ErrorCodes, StreamsError } from '../../errors.ts';
import { partitionForKey, type NullKeyPartitioner } from '../partitioner.ts';
import type { ConsumedRecord, Header, ProducerRecord } from '../types.ts';

const IS_TRANSACTIONAL = 1 << 4;
const IS_CONTROL = 1 << 5;
const LOG_APPEND_TIME = 1 << 3;
const CONTROL_ABORT = 0;

/** Kafka refuses record batches above message.max.bytes (1 MiB by default): keep each partition's batch in one request below this. */
export const MAX_BATCH_BYTES = 900 * 1024;

export type KafkaMessage = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/** Rough encoded size of a record, to split sends below the broker's batch limit. */
export function recordSize(r: ProducerRecord): number {
  let size = 24 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
  if (r.headers) for (const [name, value] of r.headers) size += 8 + Buffer.byteLength(name) + value.length;
  return size;
}

/** Picks the partition as the embedded log does: explicit, else murmur2 of the key, else round-robin. */
export function choosePartition(record: ProducerRecord, partitions: number, nullKeys: NullKeyPartitioner): number {
  if (record.partition !== undefined) {
    if (!Number.isInteger(record.partition) || record.partition < 0 || record.partition >= partitions) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `partition ${record.partition} out of range for ${record.topic} (${partitions} partitions)`);
    }
    return record.partition;
  }
  if (record.key !== null) return partitionForKey(record.key, partitions);
  return nullKeys.partition(record.topic, partitions);
}

export function toKafkaMessage(record: ProducerRecord, partition: number): KafkaMessage {
  let headers: Map<Buffer, Buffer> | undefined;
  if (record.headers && record.headers.length > 0) {
    // Distinct Buffer keys keep repeated header names, which Kafka allows.
    headers = new Map();
    for (const [name, value] of record.headers) headers.set(Buffer.from(name, 'utf8'), value);
  }
  return {
    topic: record.topic,
    partition,
    key: record.key ?? undefined,
    value: record.value ?? undefined,
    timestamp: BigInt(Math.trunc(record.timestamp ?? Date.now())),
    headers,
  } as KafkaMessage;
}

interface AbortedTransaction {
  producerId: bigint;
  firstOffset: bigint;
}

/**
 * Appends the data records of a fetched partition at or after `fromOffset` to `out`, skipping control
 * batches and, for read_committed, the batches of aborted transactions (Java's algorithm: a producer
 * is aborted from the first offset the broker lists until its abort marker, even when the marker is
 * in a later response). Returns the next offset to fetch, or `fromOffset` when nothing was read.
 */
export function decodeBatches(
  topic: string,
  partition: number,
  batches: readonly RecordsBatch[] | null | undefined,
  aborted: readonly AbortedTransaction[] | null | undefined,
  fromOffset: number,
  out: ConsumedRecord[],
): number {
  if (!batches || batches.length === 0) return fromOffset;
  let next = fromOffset;
  const pending = aborted && aborted.length > 0 ? [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0)) : null;
  let pendingIdx = 0;
  let abortedProducers: Set<bigint> | null = null;
  for (const batch of batches) {
    const first = Number(batch.firstOffset);
    const last = first + batch.lastOffsetDelta;
    if (last < fromOffset) continue;
    if (last + 1 > next) next = last + 1;
    const attributes = batch.attributes;
    if (pending) {
      while (pendingIdx < pending.length && pending[pendingIdx]!.firstOffset <= BigInt(last)) {
        (abortedProducers ??= new Set()).add(pending[pendingIdx]!.producerId);
        pendingIdx++;
      }
    }
    if (attributes & IS_CONTROL) {
      if (abortedProducers) {
        const key = batch.records[0]?.key;
        if (key && key.length >= 4 && key.readInt16BE(2) === CONTROL_ABORT) abortedProducers.delete(batch.producerId);
      }
      continue;
    }
    if (abortedProducers && attributes & IS_TRANSACTIONAL && abortedProducers.has(batch.producerId)) continue;
    const logAppendTime = (attributes & LOG_APPEND_TIME) !== 0;
    const firstTimestamp = Number(batch.firstTimestamp);
    const maxTimestamp = Number(batch.maxTimestamp);
    const records = batch.records;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const offset = first + r.offsetDelta;
      if (offset < fromOffset) continue;
      let headers: Header[];
      const rh = r.headers;
      if (rh.length === 0) headers = EMPTY_HEADERS;
      else {
        headers = new Array(rh.length);
        for (let h = 0; h < rh.length; h++) {
          const [k, v] = rh[h]!;
          headers[h] = [k ? k.toString('utf8') : '', v ?? EMPTY];
        }
      }
      out.push({
        topic,
        partition,
        offset,
        key: r.key ?? null,
        value: r.value ?? null,
        timestamp: logAppendTime ? maxTimestamp : firstTimestamp + Number(r.timestampDelta),
        headers,
      });
    }
  }
  return next;
}

const EMPTY = Buffer.alloc(0);
const EMPTY_HEADERS: Header[] = [];
