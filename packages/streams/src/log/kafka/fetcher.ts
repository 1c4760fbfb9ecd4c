/**
 * The fetch loop shared by the reader and group members: positions per partition, read_committed
 * fetches on a connection pool of their own (so a long-poll fetch never delays group requests),
 * one fetch in flight per broker, and a buffer per partition that is filled while the caller
 * processes the previous poll (prefetch). Positions are numbers; the wire uses bigint.
 */
import { FetchIsolationLevels, ListOffsetTimestamps, type Consumer, type ConnectionPool, type fetchV17 } from '@platformatic/kafka';
import { ErrorCodes, StreamsError } from '../../errors.ts';
import type { ConsumedRecord, TopicPartition } from '../types.ts';
import { tpKey } from '../types.ts';
import { hasApiError, toStreamsError } from './errors.ts';
import { decodeRecords, fastFetchApi, releaseResponse, type FetchedResponse, type FetchTopic } from './fastfetch.ts';
import { decodeBatches } from './records.ts';
import { Signal, type ResolvedOptions } from './util.ts';

/** What to do when a position is outside the log: clamp to [start, end], or reset to one end. */
export type OutOfRangePolicy = 'clamp' | 'earliest' | 'latest';

interface PartState {
  readonly topic: string;
  readonly partition: number;
  /** Next offset returned to the caller; undefined until known (committed offset being fetched). */
  position: number | undefined;
  /** Next offset to fetch: `position` plus what is buffered. */
  fetchOffset: number | undefined;
  buffer: ConsumedRecord[];
  bufIdx: number;
  paused: boolean;
  /** Bumped by seek: responses to older requests are dropped. */
  version: number;
  inFlight: boolean;
  /** Not before this time (backoff after a partition error). */
  retryAt: number;
  /** The last stable offset the last response reported (read_committed end); undefined before one. */
  end: number | undefined;
}

interface RequestedPartition {
  state: PartState;
  version: number;
  offset: number;
}

type AnyConsumer = Consumer<Buffer, Buffer, Buffer, Buffer>;
type FetchResponse = fetchV17.FetchResponse;

/** Consecutive failed fetch rounds before poll reports the broker as unavailable. */
const MAX_FETCH_FAILURES = 3;
const ERROR_BACKOFF_MS = 200;
/**
 * The broker's wait for a fetch sent while other partitions still hold buffered records or are behind. A broker
 * reads a connection's requests one at a time, and this fetcher has one fetch in flight per broker:
 * a long wait for idle partitions (say, a table's topic) would hold back the next fetch of the busy
 * ones by up to fetchMaxWaitMs once their buffers are drained.
 */
const SHORT_WAIT_MS = 5;

export class Fetcher {
  private parts = new Map<string, PartState>();
  private order: PartState[] = [];
  private rr = 0;
  private inflightNodes = new Set<number>();
  private planning = false;
  private refreshMetadata = false;
  private failures = 0;
  private pendingError: StreamsError | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  readonly signal: Signal;

  private readonly consumer: AnyConsumer;
  private readonly pool: ConnectionPool;
  private readonly options: ResolvedOptions;
  private readonly policy: OutOfRangePolicy;

  constructor(consumer: AnyConsumer, pool: ConnectionPool, options: ResolvedOptions, policy: OutOfRangePolicy, signal = new Signal()) {
    this.consumer = consumer;
    this.pool = pool;
    this.options = options;
    this.policy = policy;
    this.signal = signal;
  }

  /** Replaces the assignment. `offset` undefined: unknown until `initPosition`. */
  assign(partitions: ReadonlyArray<TopicPartition & { offset?: number }>): void {
    const next = new Map<string, PartState>();
    for (const tp of partitions) {
      const key = tpKey(tp);
      if (next.has(key)) continue;
      next.set(key, {
        topic: tp.topic,
        partition: tp.partition,
        position: tp.offset,
        fetchOffset: tp.offset,
        buffer: [],
        bufIdx: 0,
        paused: false,
        version: 0,
        inFlight: false,
        retryAt: 0,
        end: undefined,
      });
    }
    this.parts = next;
    this.order = [...next.values()];
    this.rr = 0;
    this.pendingError = undefined;
    this.failures = 0;
    this.signal.notify();
  }

  assignment(): TopicPartition[] {
    return this.order.map((s) => ({ topic: s.topic, partition: s.partition }));
  }

  has(tp: TopicPartition): boolean {
    return this.parts.has(tpKey(tp));
  }

  position(tp: TopicPartition): number | undefined {
    return this.parts.get(tpKey(tp))?.position;
  }

  seek(tp: TopicPartition, offset: number): void {
    const s = this.parts.get(tpKey(tp));
    if (!s) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `${tp.topic}-${tp.partition} is not assigned`);
    if (!Number.isInteger(offset) || offset < 0) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `invalid offset ${offset}`);
    this.setPosition(s, offset);
  }

  /** Sets the first position of a partition unless the caller has sought it already. */
  initPosition(tp: TopicPartition, offset: number): void {
    const s = this.parts.get(tpKey(tp));
    if (s && s.position === undefined) this.setPosition(s, offset);
  }

  /**
   * True when everything the last fetch response knew of has been returned by poll: nothing is
   * buffered, and nothing committed waits on the broker below the last stable offset it reported
   * (Kafka Streams' "lag is known to be zero").
   */
  caughtUp(tp: TopicPartition): boolean {
    const s = this.parts.get(tpKey(tp));
    return s !== undefined && s.end !== undefined && s.fetchOffset !== undefined && s.bufIdx >= s.buffer.length && s.fetchOffset >= s.end;
  }

  private setPosition(s: PartState, offset: number): void {
    s.position = offset;
    s.fetchOffset = offset;
    s.buffer = [];
    s.bufIdx = 0;
    s.version++;
    s.retryAt = 0;
    this.signal.notify();
  }

  pause(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) {
      const s = this.parts.get(tpKey(tp));
      if (s) s.paused = true;
    }
  }

  resume(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) {
      const s = this.parts.get(tpKey(tp));
      if (s) s.paused = false;
    }
    this.signal.notify();
  }

  /** Returns buffered records, up to `max`, round-robin over the partitions; never waits. */
  drain(max: number): ConsumedRecord[] {
    let out: ConsumedRecord[] = [];
    const n = this.order.length;
    if (n === 0) return out;
    const start = this.rr % n;
    this.rr = (this.rr + 1) % n;
    for (let k = 0; k < n && out.length < max; k++) {
      const s = this.order[(start + k) % n]!;
      if (s.paused || s.position === undefined) continue;
      const buf = s.buffer;
      if (s.bufIdx >= buf.length) {
        if (s.fetchOffset !== undefined) s.position = s.fetchOffset;
        continue;
      }
      const take = Math.min(buf.length - s.bufIdx, max - out.length);
      if (s.bufIdx === 0 && take === buf.length && out.length === 0) {
        // Whole buffer: hand the array over without copying.
        out = buf;
      } else {
        for (let i = 0; i < take; i++) out.push(buf[s.bufIdx + i]!);
      }
      s.bufIdx += take;
      if (s.bufIdx >= buf.length) {
        s.buffer = [];
        s.bufIdx = 0;
        s.position = s.fetchOffset;
      } else {
        s.position = buf[s.bufIdx]!.offset;
      }
    }
    return out;
  }

  /**
   * Waits up to `maxWaitMs` for records. Returns early (maybe empty) when `interrupted()` turns true
   * after a wake-up of the signal.
   */
  async poll(maxWaitMs: number, maxRecords: number, interrupted?: () => boolean): Promise<ConsumedRecord[]> {
    const deadline = Date.now() + Math.max(0, maxWaitMs);
    while (true) {
      this.throwPending();
      const records = this.drain(maxRecords);
      this.maybeFetch();
      if (records.length > 0) return records;
      if (interrupted?.()) return records;
      const left = deadline - Date.now();
      if (left <= 0) return records;
      await this.signal.wait(left);
      if (this.closed) return [];
    }
  }

  private throwPending(): void {
    const err = this.pendingError;
    if (err) {
      this.pendingError = undefined;
      throw err;
    }
  }

  /** A partition that wants a fetch: it has a position, is not paused, holds nothing and has no fetch in flight (it may be backing off). */
  private wantsFetch(s: PartState): boolean {
    return !s.paused && !s.inFlight && s.fetchOffset !== undefined && s.bufIdx >= s.buffer.length;
  }

  /** Starts fetches for the partitions that have nothing buffered, one request per broker. */
  maybeFetch(): void {
    if (this.closed || this.planning) return;
    const now = Date.now();
    let nextRetry = Infinity;
    let any = false;
    for (const s of this.order) {
      if (!this.wantsFetch(s)) continue;
      if (s.retryAt > now) nextRetry = Math.min(nextRetry, s.retryAt);
      else any = true;
    }
    if (nextRetry !== Infinity && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.maybeFetch();
      }, nextRetry - now);
      this.retryTimer.unref();
    }
    if (!any) return;
    this.planning = true;
    // The metadata of every active partition's topic: which partitions go in the fetch is decided
    // when it comes (below), not now.
    const topics = [...new Set(this.order.filter((s) => !s.paused && s.fetchOffset !== undefined).map((s) => s.topic))];
    const asked = new Set(topics);
    const forceUpdate = this.refreshMetadata;
    this.refreshMetadata = false;
    this.consumer.metadata({ topics, forceUpdate }, (error, metadata) => {
      this.planning = false;
      if (this.closed) return;
      // Chosen now, not when the metadata was asked for: partitions that the caller drained
      // meanwhile go in this fetch. Left out, they would wait behind it, and a fetch of idle
      // partitions alone long-polls the broker for fetchMaxWaitMs (the pipeline's busy events.raw
      // stalled ~500 ms behind a fetch of events.validations; BENCHMARKS.md, session 19).
      const at = Date.now();
      const wanted = this.order.filter((s) => this.wantsFetch(s) && s.retryAt <= at);
      if (error || !metadata) {
        this.refreshMetadata = true;
        this.onRoundFailed(error, wanted);
        return;
      }
      const byNode = new Map<number, Map<string, { topicId: string; partitions: RequestedPartition[] }>>();
      const brokers = metadata.brokers;
      // A partition assigned meanwhile, of a topic the metadata was not asked for, waits for the next round.
      let unasked = false;
      for (const s of wanted) {
        if (s.fetchOffset === undefined) continue;
        if (!asked.has(s.topic)) {
          unasked = true;
          continue;
        }
        const t = metadata.topics.get(s.topic);
        const p = t?.partitions[s.partition];
        if (!t || !p || p.leader < 0) {
          this.refreshMetadata = true;
          s.retryAt = Date.now() + ERROR_BACKOFF_MS;
          continue;
        }
        if (this.inflightNodes.has(p.leader)) continue;
        let topicsOfNode = byNode.get(p.leader);
        if (!topicsOfNode) byNode.set(p.leader, (topicsOfNode = new Map()));
        let entry = topicsOfNode.get(s.topic);
        if (!entry) topicsOfNode.set(s.topic, (entry = { topicId: t.id, partitions: [] }));
        entry.partitions.push({ state: s, version: s.version, offset: s.fetchOffset });
      }
      // Partitions left out will want a fetch soon when they still hold records or are behind (the
      // broker reported more than was fetched), paused ones too: backpressure pauses the busy inputs.
      const holding = this.order.some((s) => s.fetchOffset !== undefined && (s.bufIdx < s.buffer.length || (s.end !== undefined && s.fetchOffset < s.end)));
      const maxWaitMs = holding ? Math.min(SHORT_WAIT_MS, this.options.fetchMaxWaitMs) : this.options.fetchMaxWaitMs;
      for (const [node, topicsOfNode] of byNode) {
        const broker = brokers.get(node);
        if (broker) this.fetchFrom(node, broker, topicsOfNode, maxWaitMs);
        else this.refreshMetadata = true;
      }
      if (byNode.size === 0 && this.refreshMetadata) this.scheduleRetry();
      else if (byNode.size === 0 && unasked) this.maybeFetch();
    });
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.maybeFetch();
    }, ERROR_BACKOFF_MS);
    this.retryTimer.unref();
  }

  private fetchFrom(node: number, broker: { host: string; port: number }, topicsOfNode: Map<string, { topicId: string; partitions: RequestedPartition[] }>, maxWaitMs: number): void {
    const requested = new Map<string, RequestedPartition>();
    const topicIdToName = new Map<string, string>();
    const topics: FetchTopic[] = [];
    for (const [topic, { topicId, partitions }] of topicsOfNode) {
      topicIdToName.set(topicId, topic);
      topics.push({
        topicId,
        partitions: partitions.map((r) => {
          r.state.inFlight = true;
          requested.set(tpKey(r.state), r);
          return {
            partition: r.state.partition,
            fetchOffset: BigInt(r.offset),
            partitionMaxBytes: this.options.fetchMaxPartitionBytes,
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
          };
        }),
      });
    }
    this.inflightNodes.add(node);
    const settle = (): boolean => {
      this.inflightNodes.delete(node);
      for (const r of requested.values()) r.state.inFlight = false;
      return !this.closed;
    };
    const failed = (error: unknown) => {
      if (settle()) this.onRoundFailed(error, [...requested.values()].map((r) => r.state));
    };
    fastFetchApi(this.consumer).then((api) => {
      if (!api) {
        this.clientFetch(node, topics, requested, topicIdToName, settle, failed, maxWaitMs);
        return;
      }
      this.pool.get(broker, (error, connection) => {
        if (error || !connection) {
          failed(error);
          return;
        }
        api(connection, maxWaitMs, 1, this.options.fetchMaxBytes, FetchIsolationLevels.READ_COMMITTED, 0, -1, topics, [], '', (err, response) => {
          if (err || !response) {
            failed(err);
            return;
          }
          if (response.errorCode !== 0) {
            failed(new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `fetch failed with error code ${response.errorCode}`));
            return;
          }
          if (!settle()) return;
          this.failures = 0;
          this.onFastResponse(response, requested, topicIdToName);
          this.signal.notify();
          this.maybeFetch();
        });
      });
    }, failed);
  }

  /** Fallback for brokers without Fetch v13+: the client's fetch and parser. */
  private clientFetch(
    node: number,
    topics: FetchTopic[],
    requested: Map<string, RequestedPartition>,
    topicIdToName: Map<string, string>,
    settle: () => boolean,
    failed: (error: unknown) => void,
    maxWaitMs: number,
  ): void {
    this.consumer.fetch(
      {
        node,
        topics,
        maxWaitTime: maxWaitMs,
        minBytes: 1,
        maxBytes: this.options.fetchMaxBytes,
        isolationLevel: FetchIsolationLevels.READ_COMMITTED,
        connectionPool: this.pool,
      },
      (error, response) => {
        const body: FetchResponse | undefined = response ?? (error as { response?: FetchResponse } | null)?.response;
        if (error && !body?.responses) {
          failed(error);
          return;
        }
        if (!settle()) return;
        this.failures = 0;
        this.onResponse(body!, requested, topicIdToName);
        this.signal.notify();
        this.maybeFetch();
      },
    );
  }

  private onFastResponse(response: FetchedResponse, requested: Map<string, RequestedPartition>, topicIdToName: Map<string, string>): void {
    const outOfRange: PartState[] = [];
    for (const p of response.partitions) {
      const topic = topicIdToName.get(p.topicId);
      if (topic === undefined) continue;
      const r = this.usable(requested.get(`${topic}\u0000${p.partition}`), p.errorCode, outOfRange);
      if (r === undefined) continue;
      const s = r.state;
      s.end = p.lastStableOffset >= 0 ? p.lastStableOffset : p.highWatermark;
      this.accept(s, r.offset, (out) => decodeRecords(s.topic, s.partition, p.records, p.aborted, r.offset, out, p.shared));
    }
    releaseResponse(response); // every record was decoded (copied out of a reused buffer)
    if (outOfRange.length > 0) this.resetOutOfRange(outOfRange);
    if (this.refreshMetadata) this.scheduleRetry();
  }

  /**
   * The request of a partition in a response, if its data can be used: the partition was asked for
   * (not one lingering in the fetch session), is still assigned at the requested offset (not
   * reassigned, sought or advanced since), and came without error. Out-of-range partitions are
   * collected for a reset; other errors schedule a retry.
   */
  private usable(r: RequestedPartition | undefined, errorCode: number, outOfRange: PartState[]): RequestedPartition | undefined {
    if (r === undefined) return undefined;
    const s = r.state;
    if (this.parts.get(tpKey(s)) !== s || s.version !== r.version || s.fetchOffset !== r.offset) return undefined;
    if (errorCode === 0) return r;
    if (errorCode === 1 /* OFFSET_OUT_OF_RANGE */) outOfRange.push(s);
    else {
      this.refreshMetadata = true;
      s.retryAt = Date.now() + ERROR_BACKOFF_MS;
    }
    return undefined;
  }

  /** Stores what a response brought for a partition and moves its fetch offset. */
  private accept(s: PartState, requestedOffset: number, decode: (out: ConsumedRecord[]) => number): void {
    const out: ConsumedRecord[] = [];
    const next = decode(out);
    s.fetchOffset = next;
    if (out.length > 0) {
      s.buffer = out;
      s.bufIdx = 0;
      if (s.position === requestedOffset) s.position = out[0]!.offset;
    } else if (s.bufIdx >= s.buffer.length) {
      s.position = next;
    }
  }

  private onResponse(response: FetchResponse, requested: Map<string, RequestedPartition>, topicIdToName: Map<string, string>): void {
    const outOfRange: PartState[] = [];
    for (const t of response.responses) {
      const topic = topicIdToName.get(t.topicId) ?? t.topicId;
      for (const p of t.partitions) {
        const r = this.usable(requested.get(`${topic}\u0000${p.partitionIndex}`), p.errorCode, outOfRange);
        if (r === undefined) continue;
        const s = r.state;
        s.end = Number(p.lastStableOffset >= 0n ? p.lastStableOffset : p.highWatermark);
        this.accept(s, r.offset, (out) => decodeBatches(s.topic, s.partition, p.records, p.abortedTransactions, r.offset, out));
      }
    }
    if (outOfRange.length > 0) this.resetOutOfRange(outOfRange);
    if (this.refreshMetadata) this.scheduleRetry();
  }

  private onRoundFailed(error: unknown, states: PartState[]): void {
    this.failures++;
    if (hasApiError(error, 'OFFSET_OUT_OF_RANGE')) {
      this.resetOutOfRange(states);
      return;
    }
    this.refreshMetadata = true;
    const retryAt = Date.now() + ERROR_BACKOFF_MS;
    for (const s of states) s.retryAt = retryAt;
    if (this.failures >= MAX_FETCH_FAILURES) {
      this.failures = 0;
      this.pendingError = toStreamsError(error, 'fetch');
      this.signal.notify();
    }
    this.scheduleRetry();
  }

  /** Moves positions that fell outside the log (retention, truncation, or a seek past the end) per the policy. */
  private resetOutOfRange(states: PartState[]): void {
    const versions = states.map((s) => s.version);
    for (const s of states) s.inFlight = true;
    const partitions: Record<string, number[]> = {};
    for (const s of states) (partitions[s.topic] ??= []).push(s.partition);
    const topics = Object.keys(partitions);
    const list = (timestamp: bigint) =>
      this.consumer.listOffsets({ topics, partitions, timestamp, isolationLevel: FetchIsolationLevels.READ_COMMITTED });
    Promise.all([list(ListOffsetTimestamps.EARLIEST), list(ListOffsetTimestamps.LATEST)]).then(
      ([earliest, latest]) => {
        states.forEach((s, i) => {
          s.inFlight = false;
          if (this.parts.get(tpKey(s)) !== s || s.version !== versions[i]) return;
          const lo = Number(earliest.get(s.topic)?.[s.partition] ?? 0n);
          const hi = Number(latest.get(s.topic)?.[s.partition] ?? 0n);
          const at = s.fetchOffset ?? 0;
          let target: number;
          if (this.policy === 'earliest') target = lo;
          else if (this.policy === 'latest') target = hi;
          else target = at < lo ? lo : at > hi ? hi : at;
          if (target !== at) this.options.onOffsetReset({ topic: s.topic, partition: s.partition, from: at, to: target, logStart: lo, logEnd: hi });
          this.setPosition(s, target);
        });
        this.maybeFetch();
      },
      (err: unknown) => {
        for (const s of states) {
          s.inFlight = false;
          s.retryAt = Date.now() + ERROR_BACKOFF_MS;
        }
        this.onRoundFailed(err, []);
      },
    );
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.signal.notify();
  }
}
