/**
 * A task runs one sub-topology for one partition number: it owns partition p of each of the
 * sub-topology's source topics, its processors and its state stores. The runtime (StreamsApp) and
 * the test driver both run this same code; they differ only in where records come from and where
 * sends go.
 */
import type { ConsumedRecord, Header, ProducerRecord, TopicPartition, TopicPartitionOffset } from '../log/types.ts';
import type { Cancellable, Processor, ProcessorContext, PunctuationType, Record, RecordMetadata } from '../processor/api.ts';
import type { Node, StoreSpec, Subtopology, Topology } from '../topology.ts';
import { resolveTopic } from '../topology.ts';
import type { Backend } from '../state/backend.ts';
import type { BufferedStore, StoreLimits } from '../state/stores.ts';
import { PlainKeyValueStore, SegmentedWindowStore, TtlKeyValueStore } from '../state/stores.ts';
import { StreamsError, ErrorCodes } from '../errors.ts';

/** Where a task's output goes: the current transaction (runtime) or the test driver's capture. */
/** Prefix of the stream time kept in the commit metadata of input offsets. */
const STREAM_TIME_PREFIX = 'st:';

export interface RecordCollector {
  send(record: ProducerRecord): void;
  /** Partition count of a topic, for custom partitioners. */
  partitionsOf(topic: string): number;
}

export interface TaskMetrics {
  recordsIn(n: number): void;
  recordsOut(topic: string, n: number): void;
  lateDropped(processor: string): void;
  deadLettered(reason: string): void;
}

export interface TaskOptions {
  applicationId: string;
  topology: Topology;
  subtopology: Subtopology;
  partition: number;
  collector: RecordCollector;
  /** Opens the backend of a store for this task. */
  openBackend(spec: StoreSpec, taskId: string): Backend;
  /** Max bytes of a store's write buffer before the task asks for a commit. */
  maxBufferBytes: number;
  /** Stored bytes of committed values each store keeps decoded in its read cache (0: none). */
  cacheBytes: number;
  /** Topic for records that cannot be deserialised; undefined: fail the task. */
  deadLetterTopic?: string | undefined;
  /** Write changelogs (false in the test driver). */
  changelogs: boolean;
  wallClock(): number;
  metrics?: TaskMetrics | undefined;
  requestCommit(): void;
}

interface NodeInstance {
  name: string;
  node: Node;
  processor?: Processor<unknown, unknown, unknown, unknown>;
  children: NodeInstance[];
  context: ProcessorContext;
}

interface Punctuation {
  intervalMs: number;
  type: PunctuationType;
  next: number;
  fn: (ts: number) => void;
  node: NodeInstance;
  cancelled: boolean;
}

interface Pending {
  raw: ConsumedRecord;
  key: unknown;
  value: unknown;
  timestamp: number;
}

class PartitionQueue {
  readonly tp: TopicPartition;
  readonly source: Extract<Node, { kind: 'source' }>;
  records: ConsumedRecord[] = [];
  index = 0;
  head: Pending | undefined;
  /** Offset of the next record to consume (for the commit). */
  nextOffset: number | undefined;

  constructor(tp: TopicPartition, source: Extract<Node, { kind: 'source' }>) {
    this.tp = tp;
    this.source = source;
  }

  get size(): number {
    return this.records.length - this.index + (this.head === undefined ? 0 : 1);
  }
}

export class Task {
  readonly id: string;
  readonly partition: number;
  readonly subtopology: Subtopology;
  readonly stores = new Map<string, BufferedStore<unknown>>();
  /** Changelog partition of each logged store. */
  readonly changelogs = new Map<string, TopicPartition>();
  private readonly opts: TaskOptions;
  private readonly instances = new Map<string, NodeInstance>();
  private readonly queues = new Map<string, PartitionQueue>();
  private readonly punctuations: Punctuation[] = [];
  private streamTime = -Infinity;
  private current: Pending | undefined;
  private currentTime = -Infinity;
  private initialized = false;
  private dirty = false;
  /** Records sent per topic since the last metrics flush (counted locally: a metric update per record is costly). */
  private readonly sent = new Map<string, number>();

  constructor(opts: TaskOptions) {
    this.opts = opts;
    this.partition = opts.partition;
    this.subtopology = opts.subtopology;
    this.id = `${opts.subtopology.id}_${opts.partition}`;
    const { topology } = opts;
    for (const storeName of opts.subtopology.stores) {
      const spec = topology.stores.get(storeName)!;
      const backend = opts.openBackend(spec, this.id);
      this.stores.set(storeName, createStore(spec, backend, { maxBufferBytes: opts.maxBufferBytes, cacheBytes: opts.cacheBytes }));
      if (opts.changelogs && spec.logging !== false) {
        this.changelogs.set(storeName, {
          topic: resolveTopic({ internal: topology.changelogTopic(storeName).name }, opts.applicationId),
          partition: opts.partition,
        });
      }
    }
    for (const name of opts.subtopology.nodes) {
      const node = topology.nodes.get(name)!;
      if (node.kind === 'source') {
        for (const ref of node.topics) {
          const topic = resolveTopic(ref, opts.applicationId);
          this.queues.set(topic, new PartitionQueue({ topic, partition: opts.partition }, node));
        }
      }
    }
  }

  /** The input partitions of this task. */
  inputPartitions(): TopicPartition[] {
    return [...this.queues.values()].map((q) => q.tp);
  }

  /** Creates processors and wires stores; call after the stores are restored. */
  init(): void {
    if (this.initialized) return;
    const storeCtx = {
      streamTime: () => this.streamTime,
      recordTime: () => (this.current !== undefined ? this.current.timestamp : this.currentTime),
      requestCommit: () => this.opts.requestCommit(),
    };
    for (const [name, store] of this.stores) {
      const cl = this.changelogs.get(name);
      store.init(
        storeCtx,
        cl === undefined
          ? undefined
          : {
              send: (key, value, timestamp) => {
                this.opts.collector.send({ topic: cl.topic, partition: cl.partition, key, value, timestamp });
              },
            },
      );
    }
    const build = (name: string): NodeInstance => {
      const existing = this.instances.get(name);
      if (existing !== undefined) return existing;
      const node = this.opts.topology.nodes.get(name)!;
      const inst: NodeInstance = { name, node, children: [], context: undefined as unknown as ProcessorContext };
      this.instances.set(name, inst);
      inst.children = node.children.map(build);
      inst.context = this.makeContext(inst);
      if (node.kind === 'processor') inst.processor = node.supplier();
      return inst;
    };
    for (const name of this.subtopology.nodes) build(name);
    for (const name of this.subtopology.nodes) {
      const inst = this.instances.get(name)!;
      try {
        inst.processor?.init?.(inst.context);
      } catch (err) {
        throw new StreamsError(ErrorCodes.PROCESSING, `task ${this.id}: processor "${name}" failed in init`, { cause: err });
      }
    }
    this.initialized = true;
  }

  private makeContext(inst: NodeInstance): ProcessorContext {
    const connected = inst.node.kind === 'processor' ? inst.node.stores : [];
    return {
      applicationId: this.opts.applicationId,
      taskId: this.id,
      forward: (record, childName) => {
        if (childName === undefined) {
          for (const c of inst.children) this.deliver(c, record);
        } else {
          const c = inst.children.find((x) => x.name === childName);
          if (c === undefined) throw new StreamsError(ErrorCodes.TOPOLOGY, `"${inst.name}" has no child named "${childName}"`);
          this.deliver(c, record);
        }
      },
      getStateStore: <S>(name: string): S => {
        if (!connected.includes(name)) {
          throw new StreamsError(ErrorCodes.TOPOLOGY, `processor "${inst.name}" is not connected to store "${name}"`);
        }
        return this.stores.get(name) as S;
      },
      schedule: (intervalMs, type, fn): Cancellable => {
        if (!(intervalMs >= 1)) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'punctuation interval must be >= 1 ms');
        const base = type === 'wall-clock' ? this.opts.wallClock() : Number.isFinite(this.streamTime) ? this.streamTime : -Infinity;
        const p: Punctuation = { intervalMs, type, next: base + intervalMs, fn, node: inst, cancelled: false };
        this.punctuations.push(p);
        return { cancel: () => void (p.cancelled = true) };
      },
      commit: () => this.opts.requestCommit(),
      recordMetadata: (): RecordMetadata | undefined =>
        this.current === undefined ? undefined : { topic: this.current.raw.topic, partition: this.current.raw.partition, offset: this.current.raw.offset },
      currentStreamTimeMs: () => this.streamTime,
      currentSystemTimeMs: () => this.opts.wallClock(),
      recordLateDrop: () => this.opts.metrics?.lateDropped(inst.name),
    };
  }

  private deliver(inst: NodeInstance, record: Record<unknown, unknown>): void {
    const node = inst.node;
    if (node.kind === 'processor') {
      inst.processor!.process(record);
    } else if (node.kind === 'sink') {
      this.sink(node, record);
    } else {
      for (const c of inst.children) this.deliver(c, record);
    }
  }

  private sink(node: Extract<Node, { kind: 'sink' }>, record: Record<unknown, unknown>): void {
    const topic = typeof node.topic === 'function' ? node.topic(record.key, record.value) : resolveTopic(node.topic, this.opts.applicationId);
    let key: Buffer | null;
    let value: Buffer | null;
    try {
      key = node.keySerde.serialize(record.key, topic);
      value = node.valueSerde.serialize(record.value, topic);
    } catch (err) {
      throw new StreamsError(ErrorCodes.SERIALIZATION, `sink "${node.name}" cannot serialise a record for ${topic}`, { cause: err });
    }
    const out: ProducerRecord = { topic, key, value, timestamp: record.timestamp, headers: record.headers };
    if (node.partitioner !== undefined) {
      const p = node.partitioner(record.key, record.value, this.opts.collector.partitionsOf(topic));
      if (p !== undefined) out.partition = p;
    }
    this.opts.collector.send(out);
    this.dirty = true;
    this.sent.set(topic, (this.sent.get(topic) ?? 0) + 1);
  }

  /** Buffers records of this task's input partitions. */
  addRecords(records: readonly ConsumedRecord[]): void {
    for (const r of records) {
      const q = this.queues.get(r.topic);
      if (q === undefined) throw new StreamsError(ErrorCodes.TOPOLOGY, `task ${this.id} got a record of ${r.topic}, which it does not read`);
      q.records.push(r);
    }
  }

  /** Records waiting in the queue of each input partition. */
  queueSizes(): Array<[TopicPartition, number]> {
    return [...this.queues.values()].map((q) => [q.tp, q.size]);
  }

  buffered(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  /** Deserialises the head of a queue; records that fail go to the dead-letter topic and are skipped. */
  private headOf(q: PartitionQueue): Pending | undefined {
    while (q.head === undefined && q.index < q.records.length) {
      const raw = q.records[q.index++]!;
      if (q.index > 1024 && q.index * 2 > q.records.length) {
        q.records = q.records.slice(q.index);
        q.index = 0;
      }
      try {
        const key = q.source.keySerde.deserialize(raw.key, raw.topic);
        const value = q.source.valueSerde.deserialize(raw.value, raw.topic);
        let timestamp = raw.timestamp;
        if (q.source.timestampExtractor !== undefined) timestamp = q.source.timestampExtractor({ key, value, timestamp, topic: raw.topic });
        if (!Number.isFinite(timestamp) || timestamp < 0) throw new Error(`invalid timestamp ${timestamp}`);
        q.head = { raw, key, value, timestamp };
      } catch (err) {
        this.deadLetter(raw, err);
        q.nextOffset = raw.offset + 1;
      }
    }
    return q.head;
  }

  private deadLetter(raw: ConsumedRecord, err: unknown): void {
    const reason = err instanceof Error ? err.message : String(err);
    this.opts.metrics?.deadLettered('deserialization');
    if (this.opts.deadLetterTopic === undefined) {
      throw new StreamsError(ErrorCodes.DESERIALIZATION, `task ${this.id}: cannot deserialise ${raw.topic}/${raw.partition}@${raw.offset}: ${reason}`, {
        cause: err,
      });
    }
    const headers: Header[] = [
      ...raw.headers,
      ['shopstream.error.code', Buffer.from(ErrorCodes.DESERIALIZATION.code)],
      ['shopstream.error.reason', Buffer.from(reason)],
      ['shopstream.source.topic', Buffer.from(raw.topic)],
      ['shopstream.source.partition', Buffer.from(String(raw.partition))],
      ['shopstream.source.offset', Buffer.from(String(raw.offset))],
      ['shopstream.task', Buffer.from(this.id)],
    ];
    this.opts.collector.send({ topic: this.opts.deadLetterTopic, key: raw.key, value: raw.value, timestamp: raw.timestamp, headers });
    this.dirty = true;
  }

  /**
   * Processes up to `max` buffered records, always taking the queue whose head has the lowest
   * timestamp (Kafka Streams' PartitionGroup), so that a task with several inputs sees them in time order.
   *
   * With several inputs, an empty queue can only be passed over when the log says there is nothing
   * more to fetch for it (`caughtUp`), else a record already in the log, with an earlier timestamp,
   * would be processed late (Kafka Streams' max.task.idle.ms, KIP-695). `idleMs` < 0 never waits;
   * 0 waits only for records known to be in the log; > 0 also waits that long, on the wall clock,
   * for an input that is caught up but empty. `blocked` tells the caller the task is waiting.
   */
  process(max = Infinity, caughtUp?: (tp: TopicPartition) => boolean, idleMs = 0, now = 0): number {
    let n = 0;
    const queues = [...this.queues.values()];
    const single = queues.length === 1 ? queues[0]! : undefined;
    this.blocked = false;
    while (n < max) {
      let best: PartitionQueue | undefined = single;
      if (single === undefined) {
        let bestTs = Infinity;
        let empty = false;
        for (const q of queues) {
          const h = this.headOf(q);
          if (h === undefined) empty = true;
          else if (h.timestamp < bestTs) {
            best = q;
            bestTs = h.timestamp;
          }
        }
        if (best !== undefined && empty && caughtUp !== undefined && idleMs >= 0 && this.mustWait(queues, caughtUp, idleMs, now)) {
          this.blocked = true;
          break;
        }
        this.idleSince = undefined;
      }
      if (best === undefined) break;
      const rec = this.headOf(best);
      if (rec === undefined) break;
      best.head = undefined;
      this.processOne(best, rec);
      n++;
    }
    if (n > 0) this.opts.metrics?.recordsIn(n);
    return n;
  }

  /** True while the task has to wait for an empty input (see `process`). */
  blocked = false;
  private idleSince: number | undefined;

  private mustWait(queues: readonly PartitionQueue[], caughtUp: (tp: TopicPartition) => boolean, idleMs: number, now: number): boolean {
    let lagging = false;
    for (const q of queues) if (q.head === undefined && !caughtUp(q.tp)) lagging = true;
    if (lagging) return true;
    if (idleMs === 0) return false;
    this.idleSince ??= now;
    return now - this.idleSince < idleMs;
  }

  private processOne(q: PartitionQueue, rec: Pending): void {
    if (rec.timestamp > this.streamTime) this.streamTime = rec.timestamp;
    this.current = rec;
    this.dirty = true;
    try {
      const inst = this.instances.get(q.source.name)!;
      const record: Record<unknown, unknown> = { key: rec.key, value: rec.value, timestamp: rec.timestamp, headers: rec.raw.headers };
      for (const c of inst.children) this.deliver(c, record);
    } catch (err) {
      if (err instanceof StreamsError) throw err;
      throw new StreamsError(ErrorCodes.PROCESSING, `task ${this.id}: processing ${rec.raw.topic}/${rec.raw.partition}@${rec.raw.offset} failed`, {
        cause: err,
      });
    } finally {
      this.current = undefined;
    }
    q.nextOffset = rec.raw.offset + 1;
    this.punctuate('stream-time', this.streamTime);
  }

  /** Fires due punctuators of a type; Kafka Streams fires each at most once per call. */
  punctuate(type: PunctuationType, now: number): boolean {
    let fired = false;
    for (const p of this.punctuations) {
      if (p.cancelled || p.type !== type) continue;
      // Stream-time punctuators scheduled before the first record fire at the first record (as Kafka Streams).
      if (p.next === -Infinity) p.next = now;
      if (now < p.next) continue;
      this.currentTime = now;
      try {
        p.fn(now);
      } catch (err) {
        throw new StreamsError(ErrorCodes.PROCESSING, `task ${this.id}: punctuator of "${p.node.name}" failed`, { cause: err });
      }
      // Next scheduled time: the first multiple of the interval after now, aligned to the first schedule.
      p.next += Math.max(1, Math.floor((now - p.next) / p.intervalMs) + 1) * p.intervalMs;
      fired = true;
      this.dirty = true;
    }
    return fired;
  }

  /** True when the task has processed or sent something since the last commit. */
  needsCommit(): boolean {
    return this.dirty || [...this.stores.values()].some((s) => s.hasPendingWrites());
  }

  /** Commit step 1: flush caches and send changelog records into the current transaction. */
  flush(): void {
    for (const s of this.stores.values()) s.flush();
    for (const [topic, n] of this.sent) this.opts.metrics?.recordsOut(topic, n);
    this.sent.clear();
  }

  /** Offsets to commit: the next offset of each input partition that has advanced. */
  committableOffsets(): TopicPartitionOffset[] {
    const out: TopicPartitionOffset[] = [];
    const metadata = Number.isFinite(this.streamTime) ? `${STREAM_TIME_PREFIX}${this.streamTime}` : undefined;
    for (const q of this.queues.values()) {
      if (q.nextOffset === undefined) continue;
      out.push(metadata === undefined ? { ...q.tp, offset: q.nextOffset } : { ...q.tp, offset: q.nextOffset, metadata });
    }
    return out;
  }

  /**
   * Restores the stream time committed with the input offsets (as Kafka Streams keeps partition
   * time in the commit metadata), so that a restart neither reopens closed windows nor accepts
   * records that were late before it.
   */
  restoreStreamTime(committed: readonly { metadata?: string }[]): void {
    for (const c of committed) {
      if (c.metadata?.startsWith(STREAM_TIME_PREFIX) !== true) continue;
      const t = Number(c.metadata.slice(STREAM_TIME_PREFIX.length));
      if (Number.isFinite(t) && t > this.streamTime) this.streamTime = t;
    }
  }

  /**
   * Commit step 2, as the transaction starts committing: what the stores hold so far is the
   * commit's, and what is processed from now on belongs to the next commit.
   */
  freeze(): void {
    for (const s of this.stores.values()) s.freeze();
    this.dirty = false;
  }

  /** Commit step 3, after the transaction committed. `checkpoints` gives each logged store's changelog position. */
  applyFrozen(checkpoints: ReadonlyMap<string, number>): void {
    for (const [name, s] of this.stores) s.applyFrozen(checkpoints.get(name));
  }

  /** Steps 2 and 3 at once (a commit not overlapped with processing). */
  applyCommitted(checkpoints: ReadonlyMap<string, number>): void {
    this.freeze();
    this.applyFrozen(checkpoints);
  }

  /** The transaction failed: drop uncommitted state and buffered input (the runtime seeks back). */
  discard(): void {
    for (const s of this.stores.values()) s.discard();
    for (const q of this.queues.values()) {
      q.records = [];
      q.index = 0;
      q.head = undefined;
      q.nextOffset = undefined;
    }
    this.dirty = false;
  }

  close(): void {
    for (const inst of this.instances.values()) {
      try {
        inst.processor?.close?.();
      } catch {
        // closing must go on for the other processors and stores
      }
    }
    for (const s of this.stores.values()) s.close();
  }

  streamTimeMs(): number {
    return this.streamTime;
  }
}

export function createStore(spec: StoreSpec, backend: Backend, limits: StoreLimits): BufferedStore<unknown> {
  if (spec.kind === 'key-value') {
    return spec.ttlMs === undefined
      ? new PlainKeyValueStore(spec.name, backend, spec.keySerde, spec.valueSerde, limits)
      : new TtlKeyValueStore(spec.name, backend, spec.keySerde, spec.valueSerde, limits, spec.ttlMs);
  }
  return new SegmentedWindowStore(spec.name, backend, spec.keySerde, spec.valueSerde, limits, spec.retentionMs, spec.layout);
}
