/**
 * The public DSL: StreamsBuilder, KStream, KGroupedStream, windowed streams and KTable. Every
 * method only adds nodes to the Topology; tasks execute them.
 */
import type { Serde, Windowed } from '../serde/index.ts';
import { Serdes, windowedSerde } from '../serde/index.ts';
import type { Processor, ProcessorContext, ProcessorSupplier, Record } from '../processor/api.ts';
import type { StoreSpec, TimestampExtractor, TopicRef } from '../topology.ts';
import { Topology } from '../topology.ts';
import type { KeyValueStore, WindowStore } from '../state/stores.ts';
import type { BufferedStore } from '../state/stores.ts';
import type { JoinWindows, SessionWindows} from './windows.ts';
import { TimeWindows } from './windows.ts';
import { StreamsError, ErrorCodes } from '../errors.ts';

type AnySerde = Serde<unknown>;
const any = <T>(s: Serde<T>): AnySerde => s as AnySerde;

export interface Named {
  /** A stable node name (and the base of derived store and topic names). */
  name?: string;
}

export interface Consumed<K, V> extends Named {
  keySerde?: Serde<K>;
  valueSerde?: Serde<V>;
  timestampExtractor?: TimestampExtractor;
}

export interface Produced<K, V> extends Named {
  keySerde?: Serde<K>;
  valueSerde?: Serde<V>;
  /** Returns a partition, or undefined for the default murmur2 of the key bytes. */
  partitioner?: (key: K, value: V, partitions: number) => number | undefined;
}

export interface Materialized<K, V> {
  /** The store name; also names its changelog topic. */
  name?: string;
  keySerde?: Serde<K>;
  valueSerde?: Serde<V>;
  /** Keep state in memory (restored from the changelog on start) instead of on disk. */
  inMemory?: boolean;
  /** Write a changelog (default true). */
  logging?: boolean;
  /** Emit updates when the cache is flushed (at commit) rather than on every update (default true). */
  caching?: boolean;
  /** Window stores: how long windows are kept (default: window size + grace, at least 1 day as Kafka Streams). */
  retentionMs?: number;
}

export interface Repartitioned<K, V> extends Named {
  keySerde?: Serde<K>;
  valueSerde?: Serde<V>;
  partitions?: number;
}

export interface Grouped<K, V> extends Named {
  keySerde?: Serde<K>;
  valueSerde?: Serde<V>;
}

export interface StreamJoined<K, V1, V2> extends Named {
  keySerde?: Serde<K>;
  valueSerde?: Serde<V1>;
  otherValueSerde?: Serde<V2>;
  /** Base name of the two window stores. */
  storeName?: string;
}

export type EmitStrategy = 'on-change' | 'on-window-close';

export interface BuilderOptions {
  defaultKeySerde?: Serde<unknown>;
  defaultValueSerde?: Serde<unknown>;
}

export interface KeyValue<K, V> {
  key: K;
  value: V;
}

export class StreamsBuilder {
  readonly topology = new Topology();
  readonly defaultKeySerde: AnySerde;
  readonly defaultValueSerde: AnySerde;

  constructor(options: BuilderOptions = {}) {
    this.defaultKeySerde = options.defaultKeySerde ?? any(Serdes.string());
    this.defaultValueSerde = options.defaultValueSerde ?? any(Serdes.json());
  }

  /** A stream of the records of one or more topics. */
  stream<K = string, V = unknown>(topics: string | string[], consumed: Consumed<K, V> = {}): KStream<K, V> {
    const name = consumed.name ?? this.topology.newName('KSTREAM-SOURCE');
    const keySerde = consumed.keySerde === undefined ? this.defaultKeySerde : any(consumed.keySerde);
    const valueSerde = consumed.valueSerde === undefined ? this.defaultValueSerde : any(consumed.valueSerde);
    this.topology.addSource(name, Array.isArray(topics) ? topics : [topics], {
      keySerde,
      valueSerde,
      timestampExtractor: consumed.timestampExtractor,
    });
    return new KStream<K, V>(this, name, keySerde, valueSerde, false);
  }

  /**
   * A table of a (compacted) topic: the latest value per key; a null value deletes the key.
   * It is materialised in a key-value store (named by `materialized.name`), which stream-table joins read.
   */
  table<K = string, V = unknown>(topic: string, consumed: Consumed<K, V> = {}, materialized: Materialized<K, V> = {}): KTable<K, V> {
    const source = this.stream<K, V>(topic, consumed);
    const name = this.topology.newName('KTABLE-SOURCE');
    const storeName = materialized.name ?? `${consumed.name ?? name}-store`;
    const keySerde = materialized.keySerde === undefined ? source.keySerde : any(materialized.keySerde);
    const valueSerde = materialized.valueSerde === undefined ? source.valueSerde : any(materialized.valueSerde);
    this.topology.addStateStore(kvSpec(storeName, keySerde, valueSerde, materialized));
    const caching = materialized.caching === true;
    this.topology.addProcessor(name, () => new TableSourceProcessor(storeName, caching, keySerde), [source.nodeName], [storeName]);
    return new KTable<K, V>(this, name, keySerde, valueSerde, storeName);
  }

  /** Adds a state store for use by `process()`. */
  addStateStore(spec: StoreSpec): this {
    this.topology.addStateStore(spec);
    return this;
  }

  build(): Topology {
    return this.topology;
  }
}

function kvSpec(name: string, keySerde: AnySerde, valueSerde: AnySerde, m: { inMemory?: boolean; logging?: boolean }): StoreSpec {
  return { kind: 'key-value', name, keySerde, valueSerde, inMemory: m.inMemory, logging: m.logging };
}

/** Store builders for the Processor API. */
export const Stores = {
  keyValueStore<K, V>(o: { name: string; keySerde: Serde<K>; valueSerde: Serde<V>; ttlMs?: number; inMemory?: boolean; logging?: boolean }): StoreSpec {
    return { kind: 'key-value', name: o.name, keySerde: any(o.keySerde), valueSerde: any(o.valueSerde), ttlMs: o.ttlMs, inMemory: o.inMemory, logging: o.logging };
  },
  windowStore<K, V>(o: {
    name: string;
    keySerde: Serde<K>;
    valueSerde: Serde<V>;
    retentionMs: number;
    layout?: 'key-first' | 'time-first';
    inMemory?: boolean;
    logging?: boolean;
  }): StoreSpec {
    return {
      kind: 'window',
      name: o.name,
      keySerde: any(o.keySerde),
      valueSerde: any(o.valueSerde),
      retentionMs: o.retentionMs,
      layout: o.layout ?? 'key-first',
      inMemory: o.inMemory,
      logging: o.logging,
    };
  },
};

/** A processor from a function, for the stateless operators. */
class FnProcessor<K, V> implements Processor<K, V> {
  private readonly fn: (record: Record<K, V>, ctx: ProcessorContext) => void;
  private ctx!: ProcessorContext;
  constructor(fn: (record: Record<K, V>, ctx: ProcessorContext) => void) {
    this.fn = fn;
  }
  init(ctx: ProcessorContext): void {
    this.ctx = ctx;
  }
  process(record: Record<K, V>): void {
    this.fn(record, this.ctx);
  }
}

export class KStream<K, V> {
  readonly builder: StreamsBuilder;
  readonly nodeName: string;
  readonly keySerde: AnySerde;
  readonly valueSerde: AnySerde;
  /** The key changed since the last (re)partitioning: grouping or joining must repartition first. */
  readonly repartitionRequired: boolean;

  constructor(builder: StreamsBuilder, nodeName: string, keySerde: AnySerde, valueSerde: AnySerde, repartitionRequired: boolean) {
    this.builder = builder;
    this.nodeName = nodeName;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
    this.repartitionRequired = repartitionRequired;
  }

  private get topology(): Topology {
    return this.builder.topology;
  }

  private add<K2, V2>(
    prefix: string,
    named: Named | undefined,
    fn: (record: Record<K, V>, ctx: ProcessorContext) => void,
    out: { keySerde?: AnySerde; valueSerde?: AnySerde; keyChanged?: boolean },
  ): KStream<K2, V2> {
    const name = named?.name ?? this.topology.newName(prefix);
    this.topology.addProcessor(name, () => new FnProcessor(fn) as Processor<unknown, unknown>, [this.nodeName]);
    return new KStream<K2, V2>(
      this.builder,
      name,
      out.keySerde ?? this.keySerde,
      out.valueSerde ?? this.valueSerde,
      this.repartitionRequired || out.keyChanged === true,
    );
  }

  /** After an operator that changes keys or values, serdes fall back to the builder's defaults (as Kafka Streams). */
  private keyOr<T>(serde: Serde<T> | undefined): AnySerde {
    return serde === undefined ? this.builder.defaultKeySerde : any(serde);
  }

  private valueOr<T>(serde: Serde<T> | undefined): AnySerde {
    return serde === undefined ? this.builder.defaultValueSerde : any(serde);
  }

  filter(predicate: (key: K, value: V) => boolean, named?: Named): KStream<K, V> {
    return this.add('KSTREAM-FILTER', named, (r, ctx) => {
      if (predicate(r.key, r.value)) ctx.forward(r);
    }, {});
  }

  filterNot(predicate: (key: K, value: V) => boolean, named?: Named): KStream<K, V> {
    return this.filter((k, v) => !predicate(k, v), named);
  }

  /** Changes key and value; marks the stream for repartitioning. */
  map<K2, V2>(mapper: (key: K, value: V) => KeyValue<K2, V2>, named?: Named & { keySerde?: Serde<K2>; valueSerde?: Serde<V2> }): KStream<K2, V2> {
    return this.add<K2, V2>('KSTREAM-MAP', named, (r, ctx) => {
      const kv = mapper(r.key, r.value);
      ctx.forward({ ...r, key: kv.key, value: kv.value });
    }, { keySerde: this.keyOr(named?.keySerde), valueSerde: this.valueOr(named?.valueSerde), keyChanged: true });
  }

  mapValues<V2>(mapper: (value: V, key: K) => V2, named?: Named & { valueSerde?: Serde<V2> }): KStream<K, V2> {
    return this.add<K, V2>('KSTREAM-MAPVALUES', named, (r, ctx) => {
      ctx.forward({ ...r, value: mapper(r.value, r.key) });
    }, { valueSerde: this.valueOr(named?.valueSerde) });
  }

  flatMap<K2, V2>(mapper: (key: K, value: V) => Iterable<KeyValue<K2, V2>>, named?: Named & { keySerde?: Serde<K2>; valueSerde?: Serde<V2> }): KStream<K2, V2> {
    return this.add<K2, V2>('KSTREAM-FLATMAP', named, (r, ctx) => {
      for (const kv of mapper(r.key, r.value)) ctx.forward({ ...r, key: kv.key, value: kv.value });
    }, { keySerde: this.keyOr(named?.keySerde), valueSerde: this.valueOr(named?.valueSerde), keyChanged: true });
  }

  flatMapValues<V2>(mapper: (value: V, key: K) => Iterable<V2>, named?: Named & { valueSerde?: Serde<V2> }): KStream<K, V2> {
    return this.add<K, V2>('KSTREAM-FLATMAPVALUES', named, (r, ctx) => {
      for (const v of mapper(r.value, r.key)) ctx.forward({ ...r, value: v });
    }, { valueSerde: this.valueOr(named?.valueSerde) });
  }

  /** Sets a new key; grouping or joining afterwards repartitions through an internal topic. */
  selectKey<K2>(selector: (key: K, value: V) => K2, named?: Named & { keySerde?: Serde<K2> }): KStream<K2, V> {
    return this.add<K2, V>('KSTREAM-KEY-SELECT', named, (r, ctx) => {
      ctx.forward({ ...r, key: selector(r.key, r.value) });
    }, { keySerde: this.keyOr(named?.keySerde), keyChanged: true });
  }

  peek(action: (key: K, value: V) => void, named?: Named): KStream<K, V> {
    return this.add('KSTREAM-PEEK', named, (r, ctx) => {
      action(r.key, r.value);
      ctx.forward(r);
    }, {});
  }

  foreach(action: (key: K, value: V) => void, named?: Named): void {
    this.add('KSTREAM-FOREACH', named, (r) => action(r.key, r.value), {});
  }

  /**
   * Splits the stream: each record goes to the first branch whose predicate matches (or to the
   * default branch). Returns the branches by name, as Kafka Streams' `split().branch()...`.
   */
  split(named?: Named): BranchedKStream<K, V> {
    return new BranchedKStream<K, V>(this, named?.name ?? this.topology.newName('KSTREAM-BRANCH'));
  }

  merge(other: KStream<K, V>, named?: Named): KStream<K, V> {
    const name = named?.name ?? this.topology.newName('KSTREAM-MERGE');
    this.topology.addProcessor(name, () => new FnProcessor<K, V>((r, ctx) => ctx.forward(r)) as Processor<unknown, unknown>, [this.nodeName, other.nodeName]);
    return new KStream<K, V>(this.builder, name, this.keySerde, this.valueSerde, this.repartitionRequired || other.repartitionRequired);
  }

  /** Writes the stream to a topic (or to the topic an extractor picks per record). */
  to(topic: string | ((key: K, value: V) => string), produced: Produced<K, V> = {}): void {
    const name = produced.name ?? this.topology.newName('KSTREAM-SINK');
    this.topology.addSink(name, topic as string, [this.nodeName], {
      keySerde: produced.keySerde === undefined ? this.keySerde : any(produced.keySerde),
      valueSerde: produced.valueSerde === undefined ? this.valueSerde : any(produced.valueSerde),
      partitioner: produced.partitioner as ((k: unknown, v: unknown, n: number) => number | undefined) | undefined,
    });
  }

  /** Repartitions through an internal topic `${applicationId}-${name}-repartition`, keyed by the current key. */
  repartition(options: Repartitioned<K, V> = {}): KStream<K, V> {
    const base = options.name ?? this.topology.newName('KSTREAM-REPARTITION');
    const keySerde = options.keySerde === undefined ? this.keySerde : any(options.keySerde);
    const valueSerde = options.valueSerde === undefined ? this.valueSerde : any(options.valueSerde);
    const topic: TopicRef = this.topology.addRepartitionTopic(base, options.partitions);
    // Records with a null key cannot be placed by key: drop them, as Kafka Streams does before a repartition.
    const filterName = `${base}-repartition-filter`;
    this.topology.addProcessor(filterName, () => new FnProcessor<K, V>((r, ctx) => {
      if (r.key !== null && r.key !== undefined) ctx.forward(r);
    }) as Processor<unknown, unknown>, [this.nodeName]);
    this.topology.addSink(`${base}-repartition-sink`, topic, [filterName], { keySerde, valueSerde });
    const sourceName = `${base}-repartition-source`;
    this.topology.addSource(sourceName, [topic], { keySerde, valueSerde });
    return new KStream<K, V>(this.builder, sourceName, keySerde, valueSerde, false);
  }

  private repartitionIfRequired(name: string | undefined, keySerde: AnySerde, valueSerde: AnySerde): KStream<K, V> {
    if (!this.repartitionRequired) return this;
    const opts: Repartitioned<K, V> = { keySerde: keySerde as Serde<K>, valueSerde: valueSerde as Serde<V> };
    if (name !== undefined) opts.name = name;
    return this.repartition(opts);
  }

  groupByKey(grouped: Grouped<K, V> = {}): KGroupedStream<K, V> {
    const keySerde = grouped.keySerde === undefined ? this.keySerde : any(grouped.keySerde);
    const valueSerde = grouped.valueSerde === undefined ? this.valueSerde : any(grouped.valueSerde);
    const s = this.repartitionIfRequired(grouped.name, keySerde, valueSerde);
    return new KGroupedStream<K, V>(s, keySerde, valueSerde, grouped.name);
  }

  /** Groups by a new key: always repartitions. */
  groupBy<K2>(selector: (key: K, value: V) => K2, grouped: Grouped<K2, V> = {}): KGroupedStream<K2, V> {
    const sel = this.selectKey(selector, grouped.keySerde === undefined ? {} : { keySerde: grouped.keySerde });
    return sel.groupByKey(grouped);
  }

  /**
   * Drops a record when a record with the same id passed within `windowMs` of stream time. Ids are
   * kept in a TTL store (changelogged, exact across crashes), per task: duplicates must share the
   * record key, as retries of the same event do.
   */
  deduplicate(idSelector: (key: K, value: V) => string, options: Named & { windowMs: number; inMemory?: boolean }): KStream<K, V> {
    const name = options.name ?? this.topology.newName('KSTREAM-DEDUPLICATE');
    const storeName = `${name}-store`;
    this.topology.addStateStore({
      kind: 'key-value',
      name: storeName,
      keySerde: any(Serdes.string()),
      valueSerde: any(Serdes.long()),
      ttlMs: options.windowMs,
      inMemory: options.inMemory,
    });
    this.topology.addProcessor(name, () => new DeduplicateProcessor<K, V>(storeName, idSelector) as Processor<unknown, unknown>, [this.nodeName], [storeName]);
    return new KStream<K, V>(this.builder, name, this.keySerde, this.valueSerde, this.repartitionRequired);
  }

  /** Low-level processing with state stores and punctuators. Returns the processor's output stream. */
  process<K2 = K, V2 = V>(
    supplier: ProcessorSupplier<K, V, K2, V2>,
    options: Named & { stores?: string[]; keySerde?: Serde<K2>; valueSerde?: Serde<V2>; keyChanged?: boolean } = {},
  ): KStream<K2, V2> {
    const name = options.name ?? this.topology.newName('KSTREAM-PROCESSOR');
    this.topology.addProcessor(name, supplier as ProcessorSupplier<unknown, unknown>, [this.nodeName], options.stores ?? []);
    return new KStream<K2, V2>(
      this.builder,
      name,
      options.keySerde === undefined ? (options.keyChanged === false ? this.keySerde : this.builder.defaultKeySerde) : any(options.keySerde),
      options.valueSerde === undefined ? this.builder.defaultValueSerde : any(options.valueSerde),
      this.repartitionRequired || options.keyChanged !== false,
    );
  }

  /** Stream-table inner join: each stream record is joined with the table's current value for its key. */
  join<VT, VR>(table: KTable<K, VT>, joiner: (value: V, tableValue: VT, key: K) => VR, named?: Named & { valueSerde?: Serde<VR> }): KStream<K, VR> {
    return this.tableJoin(table, joiner as (v: V, t: VT | null, k: K) => VR, false, named);
  }

  /** Stream-table left join: the table value is null when the key is absent. */
  leftJoin<VT, VR>(table: KTable<K, VT>, joiner: (value: V, tableValue: VT | null, key: K) => VR, named?: Named & { valueSerde?: Serde<VR> }): KStream<K, VR> {
    return this.tableJoin(table, joiner, true, named);
  }

  private tableJoin<VT, VR>(
    table: KTable<K, VT>,
    joiner: (value: V, tableValue: VT | null, key: K) => VR,
    left: boolean,
    named: (Named & { valueSerde?: Serde<VR> }) | undefined,
  ): KStream<K, VR> {
    const storeName = table.storeName;
    if (storeName === undefined) throw new StreamsError(ErrorCodes.TOPOLOGY, 'a stream-table join needs a materialised table (give it a store name)');
    const stream = this.repartitionIfRequired(named?.name, this.keySerde, this.valueSerde);
    const name = named?.name ?? this.topology.newName(left ? 'KSTREAM-LEFTJOIN' : 'KSTREAM-JOIN');
    this.topology.addProcessor(
      name,
      () => new TableJoinProcessor<K, V, VT, VR>(storeName, joiner, left) as Processor<unknown, unknown>,
      [stream.nodeName],
      [storeName],
    );
    return new KStream<K, VR>(this.builder, name, this.keySerde, named?.valueSerde === undefined ? this.builder.defaultValueSerde : any(named.valueSerde), false);
  }

  /**
   * Stream-stream windowed join: records of both sides with the same key and timestamps within the
   * join window are joined. Both sides are buffered in window stores for the window plus grace.
   * `left`: records of this side without a match within the window are emitted with null once the
   * window has closed (as Kafka Streams 3.x).
   */
  joinStream<V2, VR>(
    other: KStream<K, V2>,
    joiner: (value: V, otherValue: V2, key: K) => VR,
    windows: JoinWindows,
    joined: StreamJoined<K, V, V2> & { valueSerdeOut?: Serde<VR> } = {},
  ): KStream<K, VR> {
    return this.streamJoin(other, joiner as (v: V, o: V2 | null, k: K) => VR, windows, joined, false);
  }

  leftJoinStream<V2, VR>(
    other: KStream<K, V2>,
    joiner: (value: V, otherValue: V2 | null, key: K) => VR,
    windows: JoinWindows,
    joined: StreamJoined<K, V, V2> & { valueSerdeOut?: Serde<VR> } = {},
  ): KStream<K, VR> {
    return this.streamJoin(other, joiner, windows, joined, true);
  }

  private streamJoin<V2, VR>(
    other: KStream<K, V2>,
    joiner: (value: V, otherValue: V2 | null, key: K) => VR,
    windows: JoinWindows,
    joined: StreamJoined<K, V, V2> & { valueSerdeOut?: Serde<VR> },
    left: boolean,
  ): KStream<K, VR> {
    const base = joined.name ?? this.topology.newName(left ? 'KSTREAM-LEFTJOIN' : 'KSTREAM-JOIN');
    const keySerde = joined.keySerde === undefined ? this.keySerde : any(joined.keySerde);
    const thisSerde = joined.valueSerde === undefined ? this.valueSerde : any(joined.valueSerde);
    const otherSerde = joined.otherValueSerde === undefined ? other.valueSerde : any(joined.otherValueSerde);
    const a = this.repartitionIfRequired(`${base}-left`, keySerde, thisSerde);
    const b = other.repartitionIfRequired(`${base}-right`, keySerde, otherSerde);
    const storeBase = joined.storeName ?? base;
    const retentionMs = windows.beforeMs + windows.afterMs + windows.graceMs + 1;
    const thisStore = `${storeBase}-this-store`;
    const otherStore = `${storeBase}-other-store`;
    // Several records may share key and timestamp: a window entry holds a list of base64 values.
    const listSerde = any(Serdes.json<string[]>());
    this.topology.addStateStore({ kind: 'window', name: thisStore, keySerde, valueSerde: listSerde, retentionMs, layout: 'key-first' });
    this.topology.addStateStore({ kind: 'window', name: otherStore, keySerde, valueSerde: listSerde, retentionMs, layout: 'key-first' });
    const stores = [thisStore, otherStore];
    let outerStore: string | undefined;
    if (left) {
      outerStore = `${storeBase}-outer-store`;
      this.topology.addStateStore({ kind: 'window', name: outerStore, keySerde, valueSerde: listSerde, retentionMs, layout: 'time-first' });
      stores.push(outerStore);
    }
    const outerSpec = left ? { serde: thisSerde, afterMs: windows.afterMs, emit: (v: unknown, k: K) => joiner(v as V, null, k) } : undefined;
    const thisName = `${base}-this`;
    const otherName = `${base}-other`;
    const mergeName = `${base}-merge`;
    this.topology.addProcessor(
      thisName,
      () => new StreamJoinSide<K, V, V2, VR>(thisStore, otherStore, windows.beforeMs, windows.afterMs, windows.graceMs, thisSerde, otherSerde, (v, o, k) => joiner(v, o, k), outerStore, 'this', outerSpec) as Processor<unknown, unknown>,
      [a.nodeName],
      stores,
    );
    this.topology.addProcessor(
      otherName,
      () => new StreamJoinSide<K, V2, V, VR>(otherStore, thisStore, windows.afterMs, windows.beforeMs, windows.graceMs, otherSerde, thisSerde, (o, v, k) => joiner(v as V, o, k), outerStore, 'other', outerSpec) as Processor<unknown, unknown>,
      [b.nodeName],
      stores,
    );
    this.topology.addProcessor(mergeName, () => new FnProcessor<K, VR>((r, ctx) => ctx.forward(r)) as Processor<unknown, unknown>, [thisName, otherName]);
    return new KStream<K, VR>(this.builder, mergeName, keySerde, joined.valueSerdeOut === undefined ? this.builder.defaultValueSerde : any(joined.valueSerdeOut), false);
  }
}

class DeduplicateProcessor<K, V> implements Processor<K, V, K, V> {
  private ctx!: ProcessorContext<K, V>;
  private seen!: KeyValueStore<string, number>;
  private readonly storeName: string;
  private readonly idSelector: (key: K, value: V) => string;
  constructor(storeName: string, idSelector: (key: K, value: V) => string) {
    this.storeName = storeName;
    this.idSelector = idSelector;
  }
  init(ctx: ProcessorContext<K, V>): void {
    this.ctx = ctx;
    this.seen = ctx.getStateStore(this.storeName);
  }
  process(r: Record<K, V>): void {
    const id = this.idSelector(r.key, r.value);
    if (this.seen.get(id) !== undefined) return;
    this.seen.put(id, r.timestamp, r.timestamp);
    this.ctx.forward(r);
  }
}

class TableJoinProcessor<K, V, VT, VR> implements Processor<K, V, K, VR> {
  private store!: KeyValueStore<K, VT>;
  private ctx!: ProcessorContext<K, VR>;
  private readonly storeName: string;
  private readonly joiner: (value: V, tableValue: VT | null, key: K) => VR;
  private readonly left: boolean;
  constructor(storeName: string, joiner: (value: V, tableValue: VT | null, key: K) => VR, left: boolean) {
    this.storeName = storeName;
    this.joiner = joiner;
    this.left = left;
  }
  init(ctx: ProcessorContext<K, VR>): void {
    this.ctx = ctx;
    this.store = ctx.getStateStore(this.storeName);
  }
  process(r: Record<K, V>): void {
    if (r.key === null || r.key === undefined) return;
    const tv = this.store.get(r.key);
    if (tv === undefined && !this.left) return;
    this.ctx.forward({ ...r, value: this.joiner(r.value, tv ?? null, r.key) });
  }
}

/**
 * One side of a stream-stream join. Stores its record (values of equal key and timestamp are kept
 * together in a list of serialized values), looks up the other side within the window, and forwards
 * the joined results. For a left join, this side's records also wait in an "outer" store until
 * their window closes; a match removes them; at close, the survivors are emitted with null.
 */
class StreamJoinSide<K, V, VO, VR> implements Processor<K, V, K, VR> {
  private ctx!: ProcessorContext<K, VR>;
  private own!: WindowStore<K, string[]>;
  private other!: WindowStore<K, string[]>;
  private outer: WindowStore<K, string[]> | undefined;
  private readonly ownName: string;
  private readonly otherName: string;
  private readonly beforeMs: number;
  private readonly afterMs: number;
  private readonly graceMs: number;
  private readonly ownSerde: AnySerde;
  private readonly otherSerde: AnySerde;
  private readonly joiner: (value: V, other: VO | null, key: K) => VR;
  private readonly outerName: string | undefined;
  private readonly side: 'this' | 'other';
  private lastOuterCheck = -Infinity;
  private readonly outerSpec: { serde: AnySerde; afterMs: number; emit: (thisValue: unknown, key: K) => VR } | undefined;

  constructor(
    ownName: string,
    otherName: string,
    beforeMs: number,
    afterMs: number,
    graceMs: number,
    ownSerde: AnySerde,
    otherSerde: AnySerde,
    joiner: (value: V, other: VO | null, key: K) => VR,
    outerName: string | undefined,
    side: 'this' | 'other',
    outer?: { serde: AnySerde; afterMs: number; emit: (thisValue: unknown, key: K) => VR },
  ) {
    this.outerSpec = outer;
    this.ownName = ownName;
    this.otherName = otherName;
    this.beforeMs = beforeMs;
    this.afterMs = afterMs;
    this.graceMs = graceMs;
    this.ownSerde = ownSerde;
    this.otherSerde = otherSerde;
    this.joiner = joiner;
    this.outerName = outerName;
    this.side = side;
  }

  init(ctx: ProcessorContext<K, VR>): void {
    this.ctx = ctx;
    this.own = ctx.getStateStore(this.ownName);
    this.other = ctx.getStateStore(this.otherName);
    if (this.outerName !== undefined) this.outer = ctx.getStateStore(this.outerName);
  }

  process(r: Record<K, V>): void {
    if (r.key === null || r.key === undefined || r.value === null || r.value === undefined) return;
    const streamTime = this.ctx.currentStreamTimeMs();
    const ts = r.timestamp;
    if (ts + Math.max(this.beforeMs, this.afterMs) + this.graceMs < streamTime) {
      this.ctx.recordLateDrop();
      return;
    }
    const enc = (this.ownSerde.serialize(r.value) ?? Buffer.alloc(0)).toString('base64');
    this.own.put(r.key, [...(this.own.fetch(r.key, ts) ?? []), enc], ts, ts);
    let matched = false;
    for (const w of this.other.fetchRange(r.key, ts - this.beforeMs, ts + this.afterMs)) {
      for (const ov of w.value) {
        const other = this.otherSerde.deserialize(Buffer.from(ov, 'base64')) as VO;
        matched = true;
        this.ctx.forward({ key: r.key, value: this.joiner(r.value, other, r.key), timestamp: Math.max(ts, w.start), headers: r.headers });
        // A late match for a waiting left record of the other side removes it from the outer store.
        if (this.side === 'other' && this.outer !== undefined) {
          this.outer.put(r.key, null, w.start, w.start);
        }
      }
    }
    if (this.side === 'this' && this.outer !== undefined && !matched) {
      this.outer.put(r.key, [...(this.outer.fetch(r.key, ts) ?? []), enc], ts, ts);
    }
    this.emitClosedOuter(streamTime);
  }

  /** Left join: emit this side's unmatched records whose window closed. */
  private emitClosedOuter(streamTime: number): void {
    const spec = this.outerSpec;
    if (this.outer === undefined || spec === undefined) return;
    // A left record at t can match until stream time passes t + after + grace.
    const closeBefore = streamTime - spec.afterMs - this.graceMs;
    if (closeBefore <= this.lastOuterCheck) return;
    this.lastOuterCheck = closeBefore;
    for (const w of this.outer.fetchAll(0, closeBefore - 1)) {
      for (const v of w.value) {
        const value = spec.serde.deserialize(Buffer.from(v, 'base64'));
        this.ctx.forward({ key: w.key, value: spec.emit(value, w.key), timestamp: w.start, headers: [] });
      }
      this.outer.put(w.key, null, w.start, w.start);
    }
  }
}

class TableSourceProcessor<K, V> implements Processor<K, V, K, V> {
  private ctx!: ProcessorContext<K, V>;
  private store!: KeyValueStore<K, V> & BufferedStore<V>;
  private readonly storeName: string;
  private readonly caching: boolean;
  private readonly keySerde: AnySerde;
  constructor(storeName: string, caching: boolean, keySerde: AnySerde) {
    this.storeName = storeName;
    this.caching = caching;
    this.keySerde = keySerde;
  }
  init(ctx: ProcessorContext<K, V>): void {
    this.ctx = ctx;
    this.store = ctx.getStateStore(this.storeName);
    if (this.caching) {
      this.store.setFlushListener((k, v, ts) => ctx.forward({ key: this.keySerde.deserialize(k) as K, value: v as V, timestamp: ts, headers: [] }));
    }
  }
  process(r: Record<K, V>): void {
    if (r.key === null || r.key === undefined) return;
    this.store.put(r.key, r.value ?? null, r.timestamp);
    if (!this.caching) this.ctx.forward(r);
  }
}

export class BranchedKStream<K, V> {
  private readonly stream: KStream<K, V>;
  private readonly name: string;
  private readonly branches: Array<{ name: string; predicate: (k: K, v: V) => boolean }> = [];
  private readonly result = new Map<string, KStream<K, V>>();
  private readonly procName: string;

  constructor(stream: KStream<K, V>, name: string) {
    this.stream = stream;
    this.name = name;
    this.procName = name;
    const branches = this.branches;
    stream.builder.topology.addProcessor(
      name,
      () =>
        new FnProcessor<K, V>((r, ctx) => {
          for (const b of branches) {
            if (b.predicate(r.key, r.value)) {
              ctx.forward(r, b.name);
              return;
            }
          }
        }) as Processor<unknown, unknown>,
      [stream.nodeName],
    );
  }

  /** Adds a branch; its stream is returned under `${splitName}-${name}`. */
  branch(predicate: (key: K, value: V) => boolean, name?: string): this {
    const branchName = `${this.name}-${name ?? String(this.branches.length + 1)}`;
    this.branches.push({ name: branchName, predicate });
    this.stream.builder.topology.addProcessor(branchName, () => new FnProcessor<K, V>((r, ctx) => ctx.forward(r)) as Processor<unknown, unknown>, [this.procName]);
    this.result.set(branchName, new KStream<K, V>(this.stream.builder, branchName, this.stream.keySerde, this.stream.valueSerde, this.stream.repartitionRequired));
    return this;
  }

  /** Records no branch took; then returns all branches. */
  defaultBranch(name = '0'): Map<string, KStream<K, V>> {
    this.branch(() => true, name);
    return this.result;
  }

  /** Returns all branches; records no branch took are dropped. */
  noDefaultBranch(): Map<string, KStream<K, V>> {
    return this.result;
  }
}

export class KGroupedStream<K, V> {
  private readonly stream: KStream<K, V>;
  readonly keySerde: AnySerde;
  readonly valueSerde: AnySerde;
  private readonly name: string | undefined;

  constructor(stream: KStream<K, V>, keySerde: AnySerde, valueSerde: AnySerde, name: string | undefined) {
    this.stream = stream;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
    this.name = name;
  }

  count(materialized: Materialized<K, number> = {}): KTable<K, number> {
    return this.aggregate(() => 0, (_k, _v, agg) => agg + 1, { valueSerde: Serdes.long(), ...materialized });
  }

  reduce(reducer: (agg: V, value: V) => V, materialized: Materialized<K, V> = {}): KTable<K, V> {
    return this.doAggregate<V>(undefined, (_k, v, agg) => (agg === undefined ? v : reducer(agg, v)), { valueSerde: this.valueSerde as Serde<V>, ...materialized }, 'KSTREAM-REDUCE');
  }

  aggregate<VA>(initializer: () => VA, aggregator: (key: K, value: V, aggregate: VA) => VA, materialized: Materialized<K, VA> = {}): KTable<K, VA> {
    return this.doAggregate<VA>(initializer, (k, v, agg) => aggregator(k, v, agg as VA), materialized, 'KSTREAM-AGGREGATE');
  }

  private doAggregate<VA>(
    initializer: (() => VA) | undefined,
    aggregator: (key: K, value: V, aggregate: VA | undefined) => VA,
    materialized: Materialized<K, VA>,
    prefix: string,
  ): KTable<K, VA> {
    const topology = this.stream.builder.topology;
    const name = topology.newName(prefix);
    const storeName = materialized.name ?? `${this.name ?? name}-store`;
    const keySerde = materialized.keySerde === undefined ? this.keySerde : any(materialized.keySerde);
    const valueSerde = materialized.valueSerde === undefined ? this.stream.builder.defaultValueSerde : any(materialized.valueSerde);
    topology.addStateStore(kvSpec(storeName, keySerde, valueSerde, materialized));
    const caching = materialized.caching !== false;
    topology.addProcessor(name, () => new AggregateProcessor<K, V, VA>(storeName, initializer, aggregator, caching, keySerde) as Processor<unknown, unknown>, [this.stream.nodeName], [storeName]);
    return new KTable<K, VA>(this.stream.builder, name, keySerde, valueSerde, storeName);
  }

  windowedBy(windows: TimeWindows): TimeWindowedKStream<K, V>;
  windowedBy(windows: SessionWindows): SessionWindowedKStream<K, V>;
  windowedBy(windows: TimeWindows | SessionWindows): TimeWindowedKStream<K, V> | SessionWindowedKStream<K, V> {
    if (windows instanceof TimeWindows) return new TimeWindowedKStream<K, V>(this.stream, this.keySerde, this.valueSerde, windows, this.name);
    return new SessionWindowedKStream<K, V>(this.stream, this.keySerde, this.valueSerde, windows, this.name);
  }
}

class AggregateProcessor<K, V, VA> implements Processor<K, V, K, VA> {
  private ctx!: ProcessorContext<K, VA>;
  private store!: KeyValueStore<K, VA> & BufferedStore<VA>;
  private readonly storeName: string;
  private readonly initializer: (() => VA) | undefined;
  private readonly aggregator: (key: K, value: V, aggregate: VA | undefined) => VA;
  private readonly caching: boolean;
  private readonly keySerde: AnySerde;
  constructor(storeName: string, initializer: (() => VA) | undefined, aggregator: (key: K, value: V, aggregate: VA | undefined) => VA, caching: boolean, keySerde: AnySerde) {
    this.storeName = storeName;
    this.initializer = initializer;
    this.aggregator = aggregator;
    this.caching = caching;
    this.keySerde = keySerde;
  }
  init(ctx: ProcessorContext<K, VA>): void {
    this.ctx = ctx;
    this.store = ctx.getStateStore(this.storeName);
    if (this.caching) {
      this.store.setFlushListener((k, v, ts) => {
        if (v !== null) ctx.forward({ key: this.keySerde.deserialize(k) as K, value: v, timestamp: ts, headers: [] });
      });
    }
  }
  process(r: Record<K, V>): void {
    // As Kafka Streams: records with a null key or value are skipped by aggregations.
    if (r.key === null || r.key === undefined || r.value === null || r.value === undefined) return;
    const prev = this.store.get(r.key);
    const agg = this.aggregator(r.key, r.value, prev === undefined ? this.initializer?.() : prev);
    const ts = Math.max(r.timestamp, this.store.getWithTimestamp(r.key)?.timestamp ?? -Infinity);
    this.store.put(r.key, agg, ts);
    if (!this.caching) this.ctx.forward({ ...r, value: agg, timestamp: ts });
  }
}

function defaultWindowRetention(sizeMs: number, graceMs: number): number {
  return Math.max(sizeMs + graceMs, 24 * 60 * 60 * 1000);
}

export class TimeWindowedKStream<K, V> {
  private readonly stream: KStream<K, V>;
  private readonly keySerde: AnySerde;
  private readonly valueSerde: AnySerde;
  private readonly windows: TimeWindows;
  private readonly name: string | undefined;
  private emit: EmitStrategy = 'on-change';

  constructor(stream: KStream<K, V>, keySerde: AnySerde, valueSerde: AnySerde, windows: TimeWindows, name: string | undefined) {
    this.stream = stream;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
    this.windows = windows;
    this.name = name;
  }

  /** `on-change` (default): updates as they happen (through the cache); `on-window-close`: one final result per window. */
  emitStrategy(strategy: EmitStrategy): this {
    this.emit = strategy;
    return this;
  }

  count(materialized: Materialized<K, number> = {}): KTable<Windowed<K>, number> {
    return this.aggregate(() => 0, (_k, _v, agg) => agg + 1, { valueSerde: Serdes.long(), ...materialized });
  }

  reduce(reducer: (agg: V, value: V) => V, materialized: Materialized<K, V> = {}): KTable<Windowed<K>, V> {
    return this.doAggregate<V>(undefined, (_k, v, agg) => (agg === undefined ? v : reducer(agg, v)), { valueSerde: this.valueSerde as Serde<V>, ...materialized });
  }

  aggregate<VA>(initializer: () => VA, aggregator: (key: K, value: V, aggregate: VA) => VA, materialized: Materialized<K, VA> = {}): KTable<Windowed<K>, VA> {
    return this.doAggregate<VA>(initializer, (k, v, agg) => aggregator(k, v, agg as VA), materialized);
  }

  private doAggregate<VA>(initializer: (() => VA) | undefined, aggregator: (key: K, value: V, agg: VA | undefined) => VA, materialized: Materialized<K, VA>): KTable<Windowed<K>, VA> {
    const topology = this.stream.builder.topology;
    const name = topology.newName('KSTREAM-WINDOWED-AGGREGATE');
    const storeName = materialized.name ?? `${this.name ?? name}-store`;
    const keySerde = materialized.keySerde === undefined ? this.keySerde : any(materialized.keySerde);
    const valueSerde = materialized.valueSerde === undefined ? this.stream.builder.defaultValueSerde : any(materialized.valueSerde);
    const w = this.windows;
    const retentionMs = materialized.retentionMs ?? defaultWindowRetention(w.sizeMs, w.graceMs);
    if (retentionMs < w.sizeMs + w.graceMs) throw new StreamsError(ErrorCodes.TOPOLOGY, `store ${storeName}: retention must be at least window size + grace`);
    const final = this.emit === 'on-window-close';
    topology.addStateStore({
      kind: 'window',
      name: storeName,
      keySerde,
      valueSerde,
      retentionMs,
      layout: final ? 'time-first' : 'key-first',
      inMemory: materialized.inMemory,
      logging: materialized.logging,
    });
    const caching = !final && materialized.caching !== false;
    topology.addProcessor(
      name,
      () => new WindowedAggregateProcessor<K, V, VA>(storeName, w, initializer, aggregator, caching, final) as Processor<unknown, unknown>,
      [this.stream.nodeName],
      [storeName],
    );
    return new KTable<Windowed<K>, VA>(this.stream.builder, name, any(windowedSerde(keySerde)), valueSerde, storeName);
  }
}

class WindowedAggregateProcessor<K, V, VA> implements Processor<K, V, Windowed<K>, VA> {
  private ctx!: ProcessorContext<Windowed<K>, VA>;
  private store!: WindowStore<K, VA> & BufferedStore<VA>;
  private readonly storeName: string;
  private readonly windows: TimeWindows;
  private readonly initializer: (() => VA) | undefined;
  private readonly aggregator: (key: K, value: V, agg: VA | undefined) => VA;
  private readonly caching: boolean;
  private readonly final: boolean;
  private lastCloseCheck = -Infinity;

  constructor(
    storeName: string,
    windows: TimeWindows,
    initializer: (() => VA) | undefined,
    aggregator: (key: K, value: V, agg: VA | undefined) => VA,
    caching: boolean,
    final: boolean,
  ) {
    this.storeName = storeName;
    this.windows = windows;
    this.initializer = initializer;
    this.aggregator = aggregator;
    this.caching = caching;
    this.final = final;
  }

  init(ctx: ProcessorContext<Windowed<K>, VA>): void {
    this.ctx = ctx;
    this.store = ctx.getStateStore(this.storeName);
    if (this.caching) {
      const size = this.windows.sizeMs;
      this.store.onCommit((key, start, v, ts) => {
        if (v === null) return;
        ctx.forward({ key: { key, start, end: start + size }, value: v, timestamp: ts, headers: [] });
      });
    }
  }

  process(r: Record<K, V>): void {
    if (r.key === null || r.key === undefined || r.value === null || r.value === undefined) return;
    const closeTime = this.ctx.currentStreamTimeMs() - this.windows.graceMs;
    let late = true;
    for (const w of this.windows.windowsFor(r.timestamp)) {
      if (w.end <= closeTime) continue; // this window has closed
      late = false;
      const prev = this.store.fetch(r.key, w.start);
      const agg = this.aggregator(r.key, r.value, prev === undefined ? this.initializer?.() : prev);
      this.store.put(r.key, agg, w.start, Math.max(r.timestamp, w.start));
      if (!this.caching && !this.final) {
        this.ctx.forward({ key: { key: r.key, start: w.start, end: w.end }, value: agg, timestamp: r.timestamp, headers: r.headers });
      }
    }
    if (late) this.ctx.recordLateDrop();
    if (this.final) this.emitClosed(closeTime);
  }

  /**
   * Emits every window that closed and is still in the store, then deletes it: the store only holds
   * open windows, so emission is exactly-once through the same commit as everything else.
   */
  private emitClosed(closeTime: number): void {
    const { sizeMs, advanceMs } = this.windows;
    const boundary = Math.floor(closeTime / advanceMs);
    if (boundary <= this.lastCloseCheck) return;
    this.lastCloseCheck = boundary;
    const maxClosedStart = closeTime - sizeMs; // windows with start + size <= closeTime
    if (maxClosedStart < 0) return;
    for (const w of this.store.fetchAll(0, maxClosedStart)) {
      this.ctx.forward({ key: { key: w.key, start: w.start, end: w.start + sizeMs }, value: w.value, timestamp: w.start + sizeMs - 1, headers: [] });
      this.store.put(w.key, null, w.start, w.start);
    }
  }
}

/** Session windows: per key, records closer than the inactivity gap merge into one session. */
export class SessionWindowedKStream<K, V> {
  private readonly stream: KStream<K, V>;
  private readonly keySerde: AnySerde;
  private readonly windows: SessionWindows;
  private readonly name: string | undefined;

  constructor(stream: KStream<K, V>, keySerde: AnySerde, _valueSerde: AnySerde, windows: SessionWindows, name: string | undefined) {
    this.stream = stream;
    this.keySerde = keySerde;
    this.windows = windows;
    this.name = name;
  }

  count(materialized: Materialized<K, number> = {}): KTable<Windowed<K>, number> {
    return this.aggregate(() => 0, (_k, _v, agg) => agg + 1, (a, b) => a + b, { valueSerde: Serdes.long(), ...materialized });
  }

  /**
   * `merger` combines two sessions' aggregates when a record bridges them. Emits the new session
   * and a tombstone (null value) for each session it replaced, as Kafka Streams does.
   */
  aggregate<VA>(
    initializer: () => VA,
    aggregator: (key: K, value: V, aggregate: VA) => VA,
    merger: (a: VA, b: VA, key: K) => VA,
    materialized: Materialized<K, VA> = {},
  ): KTable<Windowed<K>, VA> {
    const topology = this.stream.builder.topology;
    const name = topology.newName('KSTREAM-SESSION-AGGREGATE');
    const storeName = materialized.name ?? `${this.name ?? name}-store`;
    const keySerde = materialized.keySerde === undefined ? this.keySerde : any(materialized.keySerde);
    const valueSerde = materialized.valueSerde === undefined ? this.stream.builder.defaultValueSerde : any(materialized.valueSerde);
    const w = this.windows;
    const retentionMs = materialized.retentionMs ?? defaultWindowRetention(w.gapMs, w.graceMs);
    // Sessions are kept in a key-first window store keyed by (key, session start); the value holds the end.
    const sessionSerde = any(Serdes.json<{ end: number; agg: unknown }>());
    topology.addStateStore({ kind: 'window', name: storeName, keySerde, valueSerde: sessionSerde, retentionMs, layout: 'key-first', inMemory: materialized.inMemory, logging: materialized.logging });
    topology.addProcessor(
      name,
      () => new SessionAggregateProcessor<K, V, VA>(storeName, w, initializer, aggregator, merger) as Processor<unknown, unknown>,
      [this.stream.nodeName],
      [storeName],
    );
    return new KTable<Windowed<K>, VA>(this.stream.builder, name, any(windowedSerde(keySerde)), valueSerde, undefined);
  }
}

class SessionAggregateProcessor<K, V, VA> implements Processor<K, V, Windowed<K>, VA | null> {
  private ctx!: ProcessorContext<Windowed<K>, VA | null>;
  private store!: WindowStore<K, { end: number; agg: VA }>;
  private readonly storeName: string;
  private readonly windows: SessionWindows;
  private readonly initializer: () => VA;
  private readonly aggregator: (key: K, value: V, agg: VA) => VA;
  private readonly merger: (a: VA, b: VA, key: K) => VA;

  constructor(storeName: string, windows: SessionWindows, initializer: () => VA, aggregator: (key: K, value: V, agg: VA) => VA, merger: (a: VA, b: VA, key: K) => VA) {
    this.storeName = storeName;
    this.windows = windows;
    this.initializer = initializer;
    this.aggregator = aggregator;
    this.merger = merger;
  }

  init(ctx: ProcessorContext<Windowed<K>, VA | null>): void {
    this.ctx = ctx;
    this.store = ctx.getStateStore(this.storeName);
  }

  process(r: Record<K, V>): void {
    if (r.key === null || r.key === undefined || r.value === null || r.value === undefined) return;
    const ts = r.timestamp;
    const { gapMs, graceMs } = this.windows;
    const closeTime = this.ctx.currentStreamTimeMs() - graceMs;
    // Sessions that this record touches: start <= ts + gap and end >= ts - gap.
    const overlapping = this.store.fetchRange(r.key, 0, ts + gapMs).filter((s) => s.value.end >= ts - gapMs);
    let start = ts;
    let end = ts;
    let agg: VA | undefined;
    for (const s of overlapping) {
      start = Math.min(start, s.start);
      end = Math.max(end, s.value.end);
      agg = agg === undefined ? s.value.agg : this.merger(agg, s.value.agg, r.key);
    }
    // As Kafka Streams: the merged session is late when it ends before the close time.
    if (end < closeTime) {
      this.ctx.recordLateDrop();
      return;
    }
    const next = this.aggregator(r.key, r.value, agg ?? this.initializer());
    for (const s of overlapping) {
      if (s.start !== start) {
        this.store.put(r.key, null, s.start, ts);
      }
      this.ctx.forward({ key: { key: r.key, start: s.start, end: s.value.end }, value: null, timestamp: ts, headers: r.headers });
    }
    this.store.put(r.key, { end, agg: next }, start, ts);
    this.ctx.forward({ key: { key: r.key, start, end }, value: next, timestamp: ts, headers: r.headers });
  }
}

export class KTable<K, V> {
  readonly builder: StreamsBuilder;
  readonly nodeName: string;
  readonly keySerde: AnySerde;
  readonly valueSerde: AnySerde;
  /** The store that materialises this table (joins read it); undefined when not materialised. */
  readonly storeName: string | undefined;

  constructor(builder: StreamsBuilder, nodeName: string, keySerde: AnySerde, valueSerde: AnySerde, storeName: string | undefined) {
    this.builder = builder;
    this.nodeName = nodeName;
    this.keySerde = keySerde;
    this.valueSerde = valueSerde;
    this.storeName = storeName;
  }

  /** The stream of this table's updates (a null value is a deletion). */
  toStream(named?: Named): KStream<K, V> {
    const name = named?.name ?? this.builder.topology.newName('KTABLE-TOSTREAM');
    this.builder.topology.addProcessor(name, () => new FnProcessor<K, V>((r, ctx) => ctx.forward(r)) as Processor<unknown, unknown>, [this.nodeName]);
    return new KStream<K, V>(this.builder, name, this.keySerde, this.valueSerde, false);
  }

  /** Keeps the rows that match; a row that stops matching is forwarded as a deletion. Materialise it to join against it. */
  filter(predicate: (key: K, value: V) => boolean, materialized?: Materialized<K, V>): KTable<K, V> {
    return this.transformValues<V>('KTABLE-FILTER', (k, v) => (v !== null && predicate(k, v) ? v : null), materialized);
  }

  mapValues<V2>(mapper: (value: V, key: K) => V2, materialized?: Materialized<K, V2>): KTable<K, V2> {
    return this.transformValues<V2>('KTABLE-MAPVALUES', (k, v) => (v === null ? null : mapper(v, k)), materialized);
  }

  private transformValues<V2>(prefix: string, fn: (key: K, value: V | null) => V2 | null, materialized?: Materialized<K, V2>): KTable<K, V2> {
    const topology = this.builder.topology;
    const name = topology.newName(prefix);
    const valueSerde = materialized?.valueSerde === undefined ? this.valueSerde : any(materialized.valueSerde);
    let storeName: string | undefined;
    if (materialized !== undefined) {
      storeName = materialized.name ?? `${name}-store`;
      topology.addStateStore(kvSpec(storeName, this.keySerde, valueSerde, materialized));
    }
    const store = storeName;
    topology.addProcessor(
      name,
      () => {
        let kv: KeyValueStore<K, V2> | undefined;
        return new FnProcessor<K, V | null>((r, ctx) => {
          if (store !== undefined && kv === undefined) kv = ctx.getStateStore(store);
          const out = fn(r.key, r.value);
          kv?.put(r.key, out, r.timestamp);
          ctx.forward({ ...r, value: out });
        }) as Processor<unknown, unknown>;
      },
      [this.nodeName],
      store === undefined ? [] : [store],
    );
    return new KTable<K, V2>(this.builder, name, this.keySerde, valueSerde, storeName);
  }
}
