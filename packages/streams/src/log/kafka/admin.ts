/** LogAdmin on @platformatic/kafka's Admin client. */
import { Admin, ConfigResourceTypes, ConfigSources, FetchIsolationLevels, ListOffsetTimestamps } from '@platformatic/kafka';
import { ErrorCodes, StreamsError } from '../../errors.ts';
import type { LogAdmin, TopicConfig, TopicDescription, TopicPartition, TopicPartitionOffset, TopicSpec } from '../types.ts';
import { hasApiError, toStreamsError } from './errors.ts';
import { baseClientOptions, groupByTopic, sleep, type ResolvedOptions } from './util.ts';

/** How long createTopics/deleteTopics wait for the metadata to show the change. */
const PROPAGATION_TIMEOUT_MS = 15_000;
/** How long committedOffsets retries while a transaction holds unstable offsets (KIP-447). */
const UNSTABLE_OFFSETS_TIMEOUT_MS = 60_000;

const NUMERIC_VALUE = /^-?\d+$/;

export class KafkaAdmin implements LogAdmin {
  readonly client: Admin;
  private closed = false;

  constructor(options: ResolvedOptions) {
    this.client = new Admin(baseClientOptions(options, `${options.clientId}-admin`));
    // Connection events are surfaced through the calls; an unhandled 'error' event would crash the process.
    this.client.on('error', () => {});
  }

  async createTopics(specs: readonly TopicSpec[]): Promise<void> {
    this.checkOpen();
    for (const spec of specs) {
      if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
        throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `topic ${spec.name}: invalid partition count ${spec.partitions}`);
      }
    }
    await Promise.all(specs.map((spec) => this.createTopic(spec)));
    await this.waitForTopics(specs);
  }

  private async createTopic(spec: TopicSpec): Promise<void> {
    const configs = Object.entries(spec.config ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([name, value]) => ({ name, value: String(value) }));
    try {
      await this.client.createTopics({ topics: [spec.name], partitions: spec.partitions, replicas: -1, configs });
    } catch (err) {
      if (!hasApiError(err, 'TOPIC_ALREADY_EXISTS')) throw toStreamsError(err, `create topic ${spec.name}`);
      const existing = (await this.describeTopics([spec.name])).get(spec.name);
      if (existing && existing.partitions !== spec.partitions) {
        throw new StreamsError(
          ErrorCodes.TOPIC_CONFLICT,
          `topic ${spec.name} exists with ${existing.partitions} partitions, not ${spec.partitions}`,
          { details: { topic: spec.name, existing: existing.partitions, requested: spec.partitions } },
        );
      }
    }
  }

  /** Waits until every partition of the topics has a leader in the metadata, so that the next produce or fetch succeeds. */
  private async waitForTopics(specs: readonly TopicSpec[]): Promise<void> {
    const deadline = Date.now() + PROPAGATION_TIMEOUT_MS;
    const names = specs.map((s) => s.name);
    while (true) {
      try {
        const md = await this.client.metadata({ topics: names, forceUpdate: true });
        const ready = names.every((n) => {
          const t = md.topics.get(n);
          return t !== undefined && t.partitionsCount > 0 && t.partitions.every((p) => p !== undefined && p.leader >= 0);
        });
        if (ready) return;
      } catch (err) {
        if (Date.now() > deadline) throw toStreamsError(err, `wait for topics ${names.join(',')}`);
      }
      if (Date.now() > deadline) throw new StreamsError(ErrorCodes.TIMEOUT, `topics ${names.join(',')} have no leaders after ${PROPAGATION_TIMEOUT_MS} ms`);
      await sleep(50);
    }
  }

  async deleteTopics(names: readonly string[]): Promise<void> {
    this.checkOpen();
    if (names.length === 0) return;
    const existing = new Set(await this.listTopics());
    const toDelete = names.filter((n) => existing.has(n));
    if (toDelete.length === 0) return;
    try {
      await this.client.deleteTopics({ topics: toDelete });
    } catch (err) {
      if (!hasApiError(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID')) throw toStreamsError(err, `delete topics ${toDelete.join(',')}`);
    }
    // Deletion is asynchronous in Kafka: wait until the topics are gone so that they can be recreated at once.
    const deadline = Date.now() + PROPAGATION_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const left = new Set(await this.listTopics());
      if (!toDelete.some((n) => left.has(n))) return;
      await sleep(50);
    }
  }

  async describeTopics(names: readonly string[]): Promise<Map<string, TopicDescription>> {
    this.checkOpen();
    const result = new Map<string, TopicDescription>();
    if (names.length === 0) return result;
    const existing = new Set(await this.listTopics());
    const present = [...new Set(names)].filter((n) => existing.has(n));
    if (present.length === 0) return result;
    try {
      const [md, configs] = await Promise.all([
        this.client.metadata({ topics: present, forceUpdate: true }),
        this.client.describeConfigs({
          resources: present.map((name) => ({ resourceType: ConfigResourceTypes.TOPIC, resourceName: name })),
        }),
      ]);
      for (const name of present) {
        const t = md.topics.get(name);
        if (!t) continue;
        const config: TopicConfig = {};
        const desc = configs.find((c) => c.resourceName === name);
        for (const entry of desc?.configs ?? []) {
          // Only the topic's own settings (what createTopics was given or alterConfigs set), like the embedded log.
          if (entry.configSource !== ConfigSources.DYNAMIC_TOPIC_CONFIG || entry.value === null || entry.value === undefined) continue;
          config[entry.name] = NUMERIC_VALUE.test(entry.value) ? Number(entry.value) : entry.value;
        }
        result.set(name, { name, partitions: t.partitionsCount, config });
      }
    } catch (err) {
      throw toStreamsError(err, `describe topics ${present.join(',')}`);
    }
    return result;
  }

  async listTopics(): Promise<string[]> {
    this.checkOpen();
    try {
      const topics = await this.client.listTopics({ includeInternals: false });
      return topics.filter((t) => !t.startsWith('__')).sort();
    } catch (err) {
      throw toStreamsError(err, 'list topics');
    }
  }

  async listOffsets(partitions: readonly TopicPartition[], which: 'earliest' | 'latest'): Promise<TopicPartitionOffset[]> {
    this.checkOpen();
    if (partitions.length === 0) return [];
    const timestamp = which === 'earliest' ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST;
    const topics = [...groupByTopic(partitions)].map(([name, tps]) => ({
      name,
      partitions: tps.map((tp) => ({ partitionIndex: tp.partition, timestamp })),
    }));
    let listed;
    try {
      // READ_COMMITTED: `latest` is the last stable offset, not the high watermark.
      listed = await this.client.listOffsets({ topics, isolationLevel: FetchIsolationLevels.READ_COMMITTED });
    } catch (err) {
      throw toStreamsError(err, `list ${which} offsets`);
    }
    const byKey = new Map<string, number>();
    for (const t of listed) for (const p of t.partitions) byKey.set(`${t.name}\u0000${p.partitionIndex}`, Number(p.offset));
    return partitions.map((tp) => {
      const offset = byKey.get(`${tp.topic}\u0000${tp.partition}`);
      if (offset === undefined) throw new StreamsError(ErrorCodes.UNKNOWN_TOPIC, `no offset for ${tp.topic}-${tp.partition}`);
      return { topic: tp.topic, partition: tp.partition, offset };
    });
  }

  async committedOffsets(groupId: string, partitions: readonly TopicPartition[]): Promise<TopicPartitionOffset[]> {
    this.checkOpen();
    if (partitions.length === 0) return [];
    const topics = [...groupByTopic(partitions)].map(([name, tps]) => ({ name, partitionIndexes: tps.map((tp) => tp.partition) }));
    const deadline = Date.now() + UNSTABLE_OFFSETS_TIMEOUT_MS;
    while (true) {
      try {
        // requireStable: offsets of a pending transaction are not returned half-done (UNSTABLE_OFFSET_COMMIT instead).
        const groups = await this.client.listConsumerGroupOffsets({ groups: [{ groupId, topics }], requireStable: true });
        const out: TopicPartitionOffset[] = [];
        for (const g of groups) {
          for (const t of g.topics) {
            for (const p of t.partitions) {
              if (p.committedOffset < 0n) continue;
              const o: TopicPartitionOffset = { topic: t.name, partition: p.partitionIndex, offset: Number(p.committedOffset) };
              // The offset-commit metadata (Kafka answers "" when none was given).
              if (p.metadata) o.metadata = p.metadata;
              out.push(o);
            }
          }
        }
        return out;
      } catch (err) {
        if (hasApiError(err, 'UNSTABLE_OFFSET_COMMIT', 'COORDINATOR_LOAD_IN_PROGRESS') && Date.now() < deadline) {
          await sleep(100);
          continue;
        }
        throw toStreamsError(err, `committed offsets of group ${groupId}`);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new StreamsError(ErrorCodes.CLOSED, 'the Kafka log is closed');
  }
}
