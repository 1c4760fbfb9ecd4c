/**
 * TopologyTestDriver: runs a topology's real task code with no log and no broker, a controllable
 * wall clock, piped input, readable output and inspectable stores (as Kafka Streams' TopologyTestDriver).
 *
 * Every sub-topology runs as one task on partition 0. Records written to a topic that the topology
 * also reads (a repartition topic, or a user topic read by another source) are fed back in, after the
 * record that produced them. By default every piped record is followed by a commit, which flushes
 * caches; set `commitEveryInput: false` to commit only when the wall clock passes the commit interval.
 */
import type { ConsumedRecord, Header, ProducerRecord } from '../log/types.ts';
import type { Serde } from '../serde/index.ts';
import type { Topology } from '../topology.ts';
import { resolveTopic } from '../topology.ts';
import { Task } from '../runtime/task.ts';
import { MemoryBackend } from '../state/backend.ts';
import { DEFAULT_STORE_CACHE_BYTES, type KeyValueStore, type WindowStore } from '../state/stores.ts';
import { StreamsError, ErrorCodes } from '../errors.ts';

export interface TestDriverOptions {
  applicationId?: string;
  /** Initial wall-clock time, ms. Default 0. */
  wallClockMs?: number;
  /** Commit (flush caches, apply state) after every piped record. Default true. */
  commitEveryInput?: boolean;
  commitIntervalMs?: number;
  deadLetterTopic?: string;
}

export interface TestRecord<K, V> {
  key: K | null;
  value: V | null;
  timestamp: number;
  headers: readonly Header[];
}

interface Captured {
  records: ProducerRecord[];
  read: number;
}

export class TopologyTestDriver {
  private readonly applicationId: string;
  private readonly tasks: Task[] = [];
  private readonly taskByTopic = new Map<string, Task>();
  private readonly outputs = new Map<string, Captured>();
  private readonly offsets = new Map<string, number>();
  private readonly pending: ConsumedRecord[] = [];
  private wallClock: number;
  private readonly commitEveryInput: boolean;
  private readonly commitIntervalMs: number;
  private lastCommit: number;
  private commitRequested = false;
  private readonly lateDrops = new Map<string, number>();
  private deadLettered = 0;

  constructor(topology: Topology, options: TestDriverOptions = {}) {
    this.applicationId = options.applicationId ?? 'test-app';
    this.wallClock = options.wallClockMs ?? 0;
    this.lastCommit = this.wallClock;
    this.commitEveryInput = options.commitEveryInput ?? true;
    this.commitIntervalMs = options.commitIntervalMs ?? 30_000;
    const collector = {
      send: (r: ProducerRecord) => this.capture(r),
      partitionsOf: () => 1,
    };
    for (const st of topology.subtopologies()) {
      const task = new Task({
        applicationId: this.applicationId,
        topology,
        subtopology: st,
        partition: 0,
        collector,
        openBackend: () => new MemoryBackend(),
        maxBufferBytes: Number.MAX_SAFE_INTEGER,
        // As in an application, so that topology tests read through the stores' cache too.
        cacheBytes: DEFAULT_STORE_CACHE_BYTES,
        deadLetterTopic: options.deadLetterTopic,
        changelogs: false,
        wallClock: () => this.wallClock,
        metrics: {
          recordsIn: () => {},
          recordsOut: () => {},
          lateDropped: (p) => this.lateDrops.set(p, (this.lateDrops.get(p) ?? 0) + 1),
          deadLettered: () => void this.deadLettered++,
        },
        requestCommit: () => void (this.commitRequested = true),
      });
      task.init();
      this.tasks.push(task);
      for (const tp of task.inputPartitions()) this.taskByTopic.set(tp.topic, task);
    }
  }

  /** The full name of an internal topic, e.g. `internalTopic('agg-repartition')`. */
  internalTopic(name: string): string {
    return resolveTopic({ internal: name }, this.applicationId);
  }

  private capture(r: ProducerRecord): void {
    let c = this.outputs.get(r.topic);
    if (c === undefined) this.outputs.set(r.topic, (c = { records: [], read: 0 }));
    c.records.push(r);
    if (this.taskByTopic.has(r.topic)) this.pending.push(this.toConsumed(r.topic, r.key, r.value, r.timestamp ?? this.wallClock, r.headers ?? []));
  }

  private toConsumed(topic: string, key: Buffer | null, value: Buffer | null, timestamp: number, headers: readonly Header[]): ConsumedRecord {
    const offset = this.offsets.get(topic) ?? 0;
    this.offsets.set(topic, offset + 1);
    return { topic, partition: 0, offset, key, value, timestamp, headers };
  }

  private run(record: ConsumedRecord): void {
    this.pending.push(record);
    this.drain();
    if (this.commitEveryInput || this.commitRequested) this.commit();
  }

  private drain(): void {
    while (this.pending.length > 0) {
      const r = this.pending.shift()!;
      const task = this.taskByTopic.get(r.topic);
      if (task === undefined) continue;
      task.addRecords([r]);
      task.process();
    }
  }

  /** Flushes caches (which may forward more records) and applies state, as a runtime commit does. */
  commit(): void {
    for (let round = 0; round < 100; round++) {
      for (const t of this.tasks) t.flush();
      const more = this.pending.length > 0;
      this.drain();
      for (const t of this.tasks) t.applyCommitted(new Map());
      if (!more && this.pending.length === 0) break;
    }
    this.commitRequested = false;
    this.lastCommit = this.wallClock;
  }

  createInputTopic<K, V>(topic: string, keySerde: Serde<K>, valueSerde: Serde<V>): TestInputTopic<K, V> {
    if (!this.taskByTopic.has(topic)) throw new StreamsError(ErrorCodes.UNKNOWN_TOPIC, `the topology does not read ${topic}`);
    return new TestInputTopic<K, V>(topic, keySerde, valueSerde, (t, k, v, ts, h) => {
      this.run(this.toConsumed(t, k, v, ts ?? this.wallClock, h));
    });
  }

  /** Pipes raw bytes (for dead-letter tests). */
  pipeRaw(topic: string, key: Buffer | null, value: Buffer | null, timestamp = this.wallClock, headers: readonly Header[] = []): void {
    this.run(this.toConsumed(topic, key, value, timestamp, headers));
  }

  createOutputTopic<K, V>(topic: string, keySerde: Serde<K>, valueSerde: Serde<V>): TestOutputTopic<K, V> {
    return new TestOutputTopic<K, V>(() => {
      let c = this.outputs.get(topic);
      if (c === undefined) this.outputs.set(topic, (c = { records: [], read: 0 }));
      return c;
    }, keySerde, valueSerde, topic);
  }

  /** Advances the wall clock, firing wall-clock punctuators, and commits when the interval has passed. */
  advanceWallClockTime(ms: number): void {
    this.wallClock += ms;
    for (const t of this.tasks) t.punctuate('wall-clock', this.wallClock);
    this.drain();
    if (this.commitEveryInput || this.wallClock - this.lastCommit >= this.commitIntervalMs || this.commitRequested) this.commit();
  }

  private store(name: string): unknown {
    for (const t of this.tasks) {
      const s = t.stores.get(name);
      if (s !== undefined) return s;
    }
    throw new StreamsError(ErrorCodes.STATE_STORE, `no store named "${name}"`);
  }

  getKeyValueStore<K, V>(name: string): KeyValueStore<K, V> {
    return this.store(name) as KeyValueStore<K, V>;
  }

  getWindowStore<K, V>(name: string): WindowStore<K, V> {
    return this.store(name) as WindowStore<K, V>;
  }

  /** Records dropped as late, per processor name. */
  lateRecordsDropped(): ReadonlyMap<string, number> {
    return this.lateDrops;
  }

  deadLetteredCount(): number {
    return this.deadLettered;
  }

  close(): void {
    this.commit();
    for (const t of this.tasks) t.close();
  }
}

export class TestInputTopic<K, V> {
  private readonly topic: string;
  private readonly keySerde: Serde<K>;
  private readonly valueSerde: Serde<V>;
  private readonly sink: (topic: string, key: Buffer | null, value: Buffer | null, ts: number | undefined, headers: readonly Header[]) => void;
  private nextTimestamp: number | undefined;
  private autoAdvanceMs = 0;

  constructor(
    topic: string,
    keySerde: Serde<K>,
    valueSerde: Serde<V>,
    sink: (topic: string, key: Buffer | null, value: Buffer | null, ts: number | undefined, headers: readonly Header[]) => void,
  ) {
    this.topic = topic;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
    this.sink = sink;
  }

  /** Records piped without a timestamp get `start`, then `start + advance`, ... */
  withTimestamps(startMs: number, autoAdvanceMs = 0): this {
    this.nextTimestamp = startMs;
    this.autoAdvanceMs = autoAdvanceMs;
    return this;
  }

  pipeInput(key: K | null, value: V | null, timestamp?: number, headers: readonly Header[] = []): void {
    let ts = timestamp;
    if (ts === undefined && this.nextTimestamp !== undefined) {
      ts = this.nextTimestamp;
      this.nextTimestamp += this.autoAdvanceMs;
    }
    this.sink(this.topic, this.keySerde.serialize(key, this.topic), this.valueSerde.serialize(value, this.topic), ts, headers);
  }

  pipeKeyValueList(list: ReadonlyArray<readonly [K | null, V | null]>, timestamp?: number): void {
    for (const [k, v] of list) this.pipeInput(k, v, timestamp);
  }
}

export class TestOutputTopic<K, V> {
  private readonly get: () => Captured;
  private readonly keySerde: Serde<K>;
  private readonly valueSerde: Serde<V>;
  private readonly topic: string;

  constructor(get: () => Captured, keySerde: Serde<K>, valueSerde: Serde<V>, topic: string) {
    this.get = get;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
    this.topic = topic;
  }

  isEmpty(): boolean {
    const c = this.get();
    return c.read >= c.records.length;
  }

  getQueueSize(): number {
    const c = this.get();
    return c.records.length - c.read;
  }

  readRecord(): TestRecord<K, V> {
    const c = this.get();
    const r = c.records[c.read];
    if (r === undefined) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `no more records in ${this.topic}`);
    c.read++;
    return {
      key: this.keySerde.deserialize(r.key, this.topic),
      value: this.valueSerde.deserialize(r.value, this.topic),
      timestamp: r.timestamp ?? 0,
      headers: r.headers ?? [],
    };
  }

  readKeyValue(): { key: K | null; value: V | null } {
    const r = this.readRecord();
    return { key: r.key, value: r.value };
  }

  readValue(): V | null {
    return this.readRecord().value;
  }

  readRecordsToList(): TestRecord<K, V>[] {
    const out: TestRecord<K, V>[] = [];
    while (!this.isEmpty()) out.push(this.readRecord());
    return out;
  }

  readKeyValuesToList(): Array<{ key: K | null; value: V | null }> {
    return this.readRecordsToList().map((r) => ({ key: r.key, value: r.value }));
  }

  /** The latest value per key (a null value removes the key). */
  readKeyValuesToMap(): Map<K | null, V> {
    const m = new Map<K | null, V>();
    for (const r of this.readRecordsToList()) {
      if (r.value === null) m.delete(r.key);
      else m.set(r.key, r.value);
    }
    return m;
  }
}
