/**
 * The processing graph: sources, processors, sinks and state stores. The DSL only adds nodes here;
 * tasks execute it. Node and store names are stable and can be set by the user, so state survives a
 * change to the topology. Internal topics (repartition, changelog) get the application id as prefix
 * at run time: `${applicationId}-${name}-repartition`, `${applicationId}-${store}-changelog`.
 */
import type { Serde } from './serde/index.ts';
import type { ProcessorSupplier } from './processor/api.ts';
import type { TopicConfig } from './log/types.ts';
import { StreamsError, ErrorCodes } from './errors.ts';

export type TimestampExtractor = (record: { key: unknown; value: unknown; timestamp: number; topic: string }) => number;

/** A topic name, or a marker for an internal topic whose full name needs the application id. */
export type TopicRef = string | { internal: string };

export function resolveTopic(ref: TopicRef, applicationId: string): string {
  return typeof ref === 'string' ? ref : `${applicationId}-${ref.internal}`;
}

export interface SourceNode {
  kind: 'source';
  name: string;
  topics: TopicRef[];
  keySerde: Serde<unknown>;
  valueSerde: Serde<unknown>;
  timestampExtractor?: TimestampExtractor | undefined;
  children: string[];
}

export interface ProcessorNode {
  kind: 'processor';
  name: string;
  supplier: ProcessorSupplier<unknown, unknown, unknown, unknown>;
  stores: string[];
  children: string[];
}

export interface SinkNode {
  kind: 'sink';
  name: string;
  topic: TopicRef | ((key: unknown, value: unknown) => string);
  keySerde: Serde<unknown>;
  valueSerde: Serde<unknown>;
  /** Returns the partition for a record, or undefined for the default (murmur2 of the key bytes). */
  partitioner?: ((key: unknown, value: unknown, partitions: number) => number | undefined) | undefined;
  children: string[];
}

export type Node = SourceNode | ProcessorNode | SinkNode;

export type StoreSpec =
  | {
      kind: 'key-value';
      name: string;
      keySerde: Serde<unknown>;
      valueSerde: Serde<unknown>;
      /** Entries expire this long (stream time) after their last write. */
      ttlMs?: number | undefined;
      inMemory?: boolean | undefined;
      /** Write a changelog (default true). Without one, state is lost with the task's local files. */
      logging?: boolean | undefined;
    }
  | {
      kind: 'window';
      name: string;
      keySerde: Serde<unknown>;
      valueSerde: Serde<unknown>;
      retentionMs: number;
      layout: 'key-first' | 'time-first';
      inMemory?: boolean | undefined;
      logging?: boolean | undefined;
    };

export interface InternalTopic {
  name: string;
  kind: 'repartition' | 'changelog';
  /** Repartition topics: fixed partition count, else the max of the writing subtopology's sources. */
  partitions?: number | undefined;
  config: TopicConfig;
}

export interface Subtopology {
  id: number;
  nodes: string[];
  sourceTopics: TopicRef[];
  stores: string[];
}

/** Extra retention of window-store changelogs, as Kafka Streams' windowstore.changelog.additional.retention.ms. */
export const CHANGELOG_ADDITIONAL_RETENTION_MS = 24 * 60 * 60 * 1000;

export class Topology {
  readonly nodes = new Map<string, Node>();
  readonly stores = new Map<string, StoreSpec>();
  readonly repartitionTopics = new Map<string, InternalTopic>();
  private counter = 0;

  /** A generated name like Kafka Streams' `KSTREAM-FILTER-0000000003`. */
  newName(prefix: string): string {
    return `${prefix}-${String(this.counter++).padStart(10, '0')}`;
  }

  private assertFree(name: string): void {
    if (this.nodes.has(name)) throw new StreamsError(ErrorCodes.TOPOLOGY, `a node named "${name}" already exists`);
  }

  private connect(name: string, parents: readonly string[]): void {
    for (const p of parents) {
      const parent = this.nodes.get(p);
      if (parent === undefined) throw new StreamsError(ErrorCodes.TOPOLOGY, `node "${name}": unknown parent "${p}"`);
      if (parent.kind === 'sink') throw new StreamsError(ErrorCodes.TOPOLOGY, `node "${name}": a sink ("${p}") cannot have children`);
      parent.children.push(name);
    }
  }

  addSource(
    name: string,
    topics: readonly TopicRef[],
    options: { keySerde: Serde<unknown>; valueSerde: Serde<unknown>; timestampExtractor?: TimestampExtractor | undefined },
  ): this {
    this.assertFree(name);
    if (topics.length === 0) throw new StreamsError(ErrorCodes.TOPOLOGY, `source "${name}" has no topic`);
    for (const n of this.nodes.values()) {
      if (n.kind !== 'source') continue;
      for (const t of n.topics) {
        if (topics.some((u) => topicRefKey(u) === topicRefKey(t))) {
          throw new StreamsError(ErrorCodes.TOPOLOGY, `topic ${topicRefKey(t)} is already read by source "${n.name}"`);
        }
      }
    }
    this.nodes.set(name, { kind: 'source', name, topics: [...topics], children: [], ...options });
    return this;
  }

  addProcessor(name: string, supplier: ProcessorSupplier<unknown, unknown, unknown, unknown>, parents: readonly string[], stores: readonly string[] = []): this {
    this.assertFree(name);
    if (parents.length === 0) throw new StreamsError(ErrorCodes.TOPOLOGY, `processor "${name}" has no parent`);
    this.nodes.set(name, { kind: 'processor', name, supplier, stores: [], children: [] });
    this.connect(name, parents);
    for (const s of stores) this.connectStore(name, s);
    return this;
  }

  addSink(
    name: string,
    topic: SinkNode['topic'],
    parents: readonly string[],
    options: { keySerde: Serde<unknown>; valueSerde: Serde<unknown>; partitioner?: SinkNode['partitioner'] },
  ): this {
    this.assertFree(name);
    this.nodes.set(name, { kind: 'sink', name, topic, children: [], ...options });
    this.connect(name, parents);
    return this;
  }

  addStateStore(spec: StoreSpec, ...processorNames: string[]): this {
    const existing = this.stores.get(spec.name);
    if (existing !== undefined && existing !== spec) throw new StreamsError(ErrorCodes.TOPOLOGY, `a store named "${spec.name}" already exists`);
    this.stores.set(spec.name, spec);
    for (const p of processorNames) this.connectStore(p, spec.name);
    return this;
  }

  connectStore(processorName: string, storeName: string): void {
    const node = this.nodes.get(processorName);
    if (node?.kind !== 'processor') throw new StreamsError(ErrorCodes.TOPOLOGY, `store "${storeName}": "${processorName}" is not a processor`);
    if (!this.stores.has(storeName)) throw new StreamsError(ErrorCodes.TOPOLOGY, `processor "${processorName}": unknown store "${storeName}"`);
    if (!node.stores.includes(storeName)) node.stores.push(storeName);
  }

  addRepartitionTopic(name: string, partitions?: number): TopicRef {
    const topicName = `${name}-repartition`;
    this.repartitionTopics.set(topicName, {
      name: topicName,
      kind: 'repartition',
      partitions,
      // Repartition records are consumed once; Kafka Streams purges them after commit. Keep them a day.
      config: { 'cleanup.policy': 'delete', 'retention.ms': 24 * 60 * 60 * 1000 },
    });
    return { internal: topicName };
  }

  changelogTopic(storeName: string): InternalTopic {
    const spec = this.stores.get(storeName);
    if (spec === undefined) throw new StreamsError(ErrorCodes.TOPOLOGY, `unknown store "${storeName}"`);
    const retention = spec.kind === 'window' ? spec.retentionMs : spec.ttlMs;
    const config: TopicConfig =
      retention === undefined
        ? { 'cleanup.policy': 'compact' }
        : { 'cleanup.policy': 'compact,delete', 'retention.ms': retention + CHANGELOG_ADDITIONAL_RETENTION_MS };
    return { name: `${storeName}-changelog`, kind: 'changelog', config };
  }

  /** Connected components, split at repartition topics and joined by shared stores. */
  subtopologies(): Subtopology[] {
    const parent = new Map<string, string>();
    const find = (x: string): string => {
      let r = x;
      while (parent.get(r) !== r) r = parent.get(r)!;
      parent.set(x, r);
      return r;
    };
    const union = (a: string, b: string) => {
      const ra = find(a);
      const rb = find(b);
      if (ra !== rb) parent.set(rb, ra);
    };
    for (const n of this.nodes.keys()) parent.set(n, n);
    const storeOwner = new Map<string, string>();
    for (const n of this.nodes.values()) {
      for (const c of n.children) union(n.name, c);
      if (n.kind === 'processor') {
        for (const s of n.stores) {
          const o = storeOwner.get(s);
          if (o === undefined) storeOwner.set(s, n.name);
          else union(o, n.name);
        }
      }
    }
    const groups = new Map<string, string[]>();
    for (const n of this.nodes.keys()) {
      const r = find(n);
      let g = groups.get(r);
      if (g === undefined) groups.set(r, (g = []));
      g.push(n);
    }
    const result: Subtopology[] = [];
    for (const nodes of groups.values()) {
      const sourceTopics: TopicRef[] = [];
      const stores = new Set<string>();
      for (const name of nodes) {
        const n = this.nodes.get(name)!;
        if (n.kind === 'source') sourceTopics.push(...n.topics);
        if (n.kind === 'processor') for (const s of n.stores) stores.add(s);
      }
      if (sourceTopics.length === 0) continue;
      result.push({ id: result.length, nodes, sourceTopics, stores: [...stores] });
    }
    return result;
  }

  /** A readable description, like Kafka Streams' TopologyDescription. */
  describe(): string {
    const lines: string[] = [];
    for (const st of this.subtopologies()) {
      lines.push(`Sub-topology: ${st.id}`);
      for (const name of st.nodes) {
        const n = this.nodes.get(name)!;
        const detail =
          n.kind === 'source'
            ? `(topics: [${n.topics.map(topicRefKey).join(', ')}])`
            : n.kind === 'processor'
              ? `(stores: [${n.stores.join(', ')}])`
              : `(topic: ${typeof n.topic === 'function' ? '<extractor>' : topicRefKey(n.topic)})`;
        lines.push(`  ${n.kind[0]!.toUpperCase()}${n.kind.slice(1)}: ${name} ${detail}`);
        if (n.children.length > 0) lines.push(`    --> ${n.children.join(', ')}`);
      }
    }
    return lines.join('\n');
  }
}

export function topicRefKey(ref: TopicRef): string {
  return typeof ref === 'string' ? ref : `<app>-${ref.internal}`;
}
