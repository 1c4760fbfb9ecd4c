/**
 * Hanging transactions: a transaction that the coordinator has completed, but whose COMMIT or ABORT
 * marker never reached one of its partitions. The partition's last stable offset stays below the
 * transaction's first record, and the next transaction of the same producer id "completes" the old
 * records with its own marker: records of an aborted transaction become visible (duplicates), or
 * read_committed readers and the group's offsets (UNSTABLE_OFFSET_COMMIT) wait until then.
 *
 * Kafka 4.x brokers produce them: the coordinator skips the markers of a partition that has no
 * leader at that moment, as if the topic had been deleted (KAFKA-20734: KRaftMetadataCache answers
 * "unknown" instead of "no node" for a leaderless partition). A single broker restarted after a
 * crash runs its coordinator while its partitions are still leaderless, and aborts the transactions
 * that timed out during the outage right then. Kafka's remedy is `kafka-transactions.sh abort`
 * (KIP-664: DescribeProducers to find them, WriteTxnMarkers to end them); this module does the same
 * for the member's own producer id, with the outcome the coordinator chose.
 */
import { Writer, createAPI, type Connection } from '@platformatic/kafka';
import { ErrorCodes, StreamsError } from '../../errors.ts';
import type { TopicPartition } from '../types.ts';
import { hasApiError, toStreamsError } from './errors.ts';
import { clientApi, connectionTo, groupByTopic, sleep, type RequestClient } from './util.ts';

export type Outcome = 'commit' | 'abort';

/** What the transaction coordinator says of a transactional id (DescribeTransactions). */
export interface TransactionDescription {
  state: string;
  producerId: bigint;
  producerEpoch: number;
  /** Partitions of the transaction in progress (empty once it is complete). */
  partitions: TopicPartition[];
}

/** An open transaction of a producer on one partition (DescribeProducers). */
export interface OpenTransaction extends TopicPartition {
  producerId: bigint;
  producerEpoch: number;
  coordinatorEpoch: number;
  /** Offset of its first record. */
  startOffset: bigint;
}

/**
 * Leader of each partition, asked of a broker (the client's metadata cache leaves internal topics
 * such as `__consumer_offsets` out); a partition without one is unavailable (retry later).
 */
async function leaders(client: RequestClient, partitions: readonly TopicPartition[]): Promise<Map<number, TopicPartition[]>> {
  const md = await partitionLeaders(client, [...new Set(partitions.map((tp) => tp.topic))]);
  const out = new Map<number, TopicPartition[]>();
  for (const tp of partitions) {
    const leader = md.get(tp.topic)?.[tp.partition] ?? -1;
    if (leader < 0) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `no leader for ${tp.topic}-${tp.partition}`);
    let list = out.get(leader);
    if (!list) out.set(leader, (list = []));
    list.push(tp);
  }
  return out;
}

/** Leader node of every partition of `topics` (index: partition), internal topics included, from a Metadata request of our own. */
export async function partitionLeaders(client: RequestClient, topics: readonly string[]): Promise<Map<string, number[]>> {
  const brokers = (await client.metadata({ topics: [] })).brokers;
  const first = brokers.keys().next();
  if (first.done) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, 'no broker is known');
  const connection = await connectionTo(client, first.value);
  const api = await clientApi(client, 'Metadata');
  type Response = { topics: Array<{ name: string; errorCode: number; partitions: Array<{ partitionIndex: number; leaderId: number }> }> };
  let res: Response;
  try {
    res = (await api.async(connection, [...topics], false, false)) as Response;
  } catch (err) {
    // The client throws when any topic has an error: the others are still in the response. A topic
    // that does not exist has nothing to check and is left out.
    const partial = (err as { response?: Response }).response;
    if (partial?.topics === undefined) throw err;
    res = partial;
  }
  const out = new Map<string, number[]>();
  for (const t of res.topics) {
    if (t.errorCode !== 0) continue;
    const list: number[] = [];
    for (const p of t.partitions) list[p.partitionIndex] = p.leaderId;
    out.set(t.name, list);
  }
  return out;
}

const IN_FLIGHT = new Set(['PrepareCommit', 'PrepareAbort', 'PrepareEpochFence']);

/**
 * The coordinator's view of `transactionalId`, once no marker of it is in flight (Prepare* states
 * are waited out). An id the coordinator does not know is `Empty`.
 */
export async function describeTransaction(client: RequestClient, coordinatorOf: () => Promise<number>, transactionalId: string, timeoutMs = 30_000): Promise<TransactionDescription> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const connection = await connectionTo(client, await coordinatorOf());
      const api = await clientApi(client, 'DescribeTransactions');
      const res = (await api.async(connection, [transactionalId])) as {
        transactionStates: Array<{ transactionState: string; producerId: bigint; producerEpoch: number; topics: Array<{ topic: string; partitions: number[] }> }>;
      };
      const s = res.transactionStates[0];
      if (!s) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `no description of transactional id ${transactionalId}`);
      if (IN_FLIGHT.has(s.transactionState) && Date.now() < deadline) {
        await sleep(100);
        continue;
      }
      return {
        state: s.transactionState,
        producerId: s.producerId,
        producerEpoch: s.producerEpoch,
        partitions: s.topics.flatMap((t) => t.partitions.map((partition) => ({ topic: t.topic, partition }))),
      };
    } catch (err) {
      if (hasApiError(err, 'TRANSACTIONAL_ID_NOT_FOUND')) return { state: 'Empty', producerId: -1n, producerEpoch: -1, partitions: [] };
      if (hasApiError(err, 'NOT_COORDINATOR', 'COORDINATOR_LOAD_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE') && Date.now() < deadline) {
        await sleep(100);
        continue;
      }
      throw toStreamsError(err, `describe transactional id ${transactionalId}`);
    }
  }
}

/** The outcome the coordinator chose for the last transaction it ended (or will end: an ongoing one is aborted by the next InitProducerId). */
export function outcomeOf(description: TransactionDescription): Outcome {
  return description.state === 'CompleteCommit' ? 'commit' : 'abort';
}

/**
 * Runs `fn` again while it fails with a retriable error (a partition without a leader yet, just
 * created or just restarted), for up to `timeoutMs`.
 */
async function retried<T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const e = err instanceof StreamsError ? err : toStreamsError(err, what);
      if (!e.retriable || Date.now() >= deadline) throw e;
      await sleep(100);
    }
  }
}

/** Open transactions of the producer ids `producerIds` on `partitions`, asked of each partition's leader. */
export function openTransactions(client: RequestClient, producerIds: ReadonlySet<bigint>, partitions: readonly TopicPartition[]): Promise<OpenTransaction[]> {
  if (partitions.length === 0) return Promise.resolve([]);
  return retried('describe the producers of the partitions of an unfinished transaction', async () => {
    const out: OpenTransaction[] = [];
    for (const [leader, tps] of await leaders(client, partitions)) {
      const connection = await connectionTo(client, leader);
      const api = await clientApi(client, 'DescribeProducers');
      const topics = [...groupByTopic(tps)].map(([name, list]) => ({ name, partitionIndexes: list.map((tp) => tp.partition) }));
      const res = (await api.async(connection, topics)) as {
        topics: Array<{ name: string; partitions: Array<{ partitionIndex: number; activeProducers: Array<{ producerId: bigint; producerEpoch: number; coordinatorEpoch: number; currentTxnStartOffset: bigint }> }> }>;
      };
      for (const t of res.topics) {
        for (const p of t.partitions) {
          for (const a of p.activeProducers) {
            if (a.currentTxnStartOffset < 0n || !producerIds.has(a.producerId)) continue;
            out.push({ topic: t.name, partition: p.partitionIndex, producerId: a.producerId, producerEpoch: a.producerEpoch, coordinatorEpoch: a.coordinatorEpoch, startOffset: a.currentTxnStartOffset });
          }
        }
      }
    }
    return out;
  });
}

/*
  WriteTxnMarkers Request (Version: 1, flexible) => [markers] TAG_BUFFER
    markers => producer_id producer_epoch transaction_result [topics] coordinator_epoch TAG_BUFFER
      producer_id INT64, producer_epoch INT16, transaction_result BOOLEAN (true: commit)
      topics => name [partition_indexes] TAG_BUFFER (COMPACT_STRING, COMPACT_ARRAY of INT32)
      coordinator_epoch INT32
  Response (Version: 1) => [markers] TAG_BUFFER
    markers => producer_id [topics] TAG_BUFFER
      topics => name [partitions] TAG_BUFFER
        partitions => partition_index error_code TAG_BUFFER
  The client library has no WriteTxnMarkers (brokers send it to each other; admins send it to end a
  hanging transaction), so it is written here on the library's Writer and Reader.
*/
function createWriteTxnMarkersRequest(markers: readonly OpenTransaction[], outcome: Outcome): Writer {
  return Writer.create()
    .appendArray([...markers], (w, m) => {
      w.appendInt64(m.producerId)
        .appendInt16(m.producerEpoch)
        .appendBoolean(outcome === 'commit')
        .appendArray([{ name: m.topic, partitions: [m.partition] }], (w2, t) => {
          w2.appendString(t.name).appendArray(t.partitions, (w3, p) => w3.appendInt32(p), true, false);
        })
        .appendInt32(m.coordinatorEpoch);
    })
    .appendTaggedFields();
}

interface WriteTxnMarkersResponse {
  markers: Array<{ producerId: bigint; topics: Array<{ name: string; partitions: Array<{ partitionIndex: number; errorCode: number }> }> }>;
}

function parseWriteTxnMarkersResponse(_correlationId: number, _apiKey: number, _apiVersion: number, reader: ReaderLike): WriteTxnMarkersResponse {
  const response = {
    markers: reader.readArray((r) => ({
      producerId: r.readInt64(),
      topics: r.readArray((r2) => ({
        name: r2.readString(),
        partitions: r2.readArray((r3) => ({ partitionIndex: r3.readInt32(), errorCode: r3.readInt16() })),
      })),
    })),
  };
  reader.readTaggedFields();
  return response;
}

interface ReaderLike {
  readArray<T>(fn: (r: ReaderLike) => T): T[];
  readInt64(): bigint;
  readInt32(): number;
  readInt16(): number;
  readString(): string;
  readTaggedFields(): void;
}

const writeTxnMarkers = createAPI(27, 1, createWriteTxnMarkersRequest as never, parseWriteTxnMarkersResponse as never) as unknown as {
  async(connection: Connection, markers: readonly OpenTransaction[], outcome: Outcome): Promise<WriteTxnMarkersResponse>;
};

/** Kafka's error names of the codes a marker write answers with, for the message. */
const MARKER_ERRORS: Record<number, string> = {
  6: 'NOT_LEADER_OR_FOLLOWER',
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  31: 'CLUSTER_AUTHORIZATION_FAILED',
  47: 'INVALID_PRODUCER_EPOCH',
  52: 'TRANSACTION_COORDINATOR_FENCED',
  35: 'UNSUPPORTED_VERSION',
};

/** The command an operator runs to end one hanging transaction by hand. */
export function abortCommand(t: OpenTransaction): string {
  return `kafka-transactions.sh --bootstrap-server <broker> abort --topic ${t.topic} --partition ${t.partition} --producer-id ${t.producerId} --producer-epoch ${t.producerEpoch} --coordinator-epoch ${t.coordinatorEpoch}`;
}

/**
 * Writes the `outcome` marker on every partition of `open`, through each partition's leader.
 * Needs the ClusterAction permission (as `kafka-transactions.sh abort`); without it, or on any
 * other refusal, throws SHOP_ERR_HANGING_TRANSACTION naming what to run by hand.
 */
export async function endOpenTransactions(client: RequestClient, open: readonly OpenTransaction[], outcome: Outcome): Promise<void> {
  if (open.length === 0) return;
  const byLeader = await retried('find the leaders of hanging transactions', () => leaders(client, open));
  const key = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;
  const byKey = new Map(open.map((o) => [key(o), o]));
  for (const [leader, tps] of byLeader) {
    const markers = tps.map((tp) => byKey.get(key(tp))!);
    let res: WriteTxnMarkersResponse;
    try {
      res = await writeTxnMarkers.async(await connectionTo(client, leader), markers, outcome);
    } catch (err) {
      throw toStreamsError(err, `write ${outcome} markers of a hanging transaction`);
    }
    for (const m of res.markers) {
      for (const t of m.topics) {
        for (const p of t.partitions) {
          if (p.errorCode === 0) continue;
          const which = byKey.get(key({ topic: t.name, partition: p.partitionIndex }));
          const name = MARKER_ERRORS[p.errorCode] ?? `error ${p.errorCode}`;
          if (p.errorCode === 6 || p.errorCode === 3) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `write ${outcome} marker on ${t.name}-${p.partitionIndex}: ${name}`);
          throw new StreamsError(
            ErrorCodes.HANGING_TRANSACTION,
            `a transaction of this application hangs on ${t.name}-${p.partitionIndex} (its ${outcome} marker was lost by the broker) and writing the marker failed with ${name}; ` +
              `run: ${which ? abortCommand(which) : 'kafka-transactions.sh find-hanging'}`,
            { details: { topic: t.name, partition: p.partitionIndex, errorCode: p.errorCode } },
          );
        }
      }
    }
  }
}

/** Partition of `__consumer_offsets` that holds a group's offsets: Kafka's `Utils.abs(groupId.hashCode()) % partitions`. */
export function offsetsPartitionFor(groupId: string, partitions: number): number {
  let h = 0;
  for (let i = 0; i < groupId.length; i++) h = (Math.imul(31, h) + groupId.charCodeAt(i)) | 0;
  const abs = h === -2147483648 ? 0 : Math.abs(h);
  return abs % partitions;
}
