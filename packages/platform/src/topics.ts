/**
 * The platform's topics. Every stage reads and writes these names; nothing else is shared between
 * stages. Partition counts are set once, when a topic is created (repartitioning a keyed topic would
 * move visitors between tasks), so pick them for the largest deployment you expect.
 */
import type { Log, TopicSpec } from '@shopstream/streams';

export interface TopicNames {
  /** Canonical events accepted by the collector, keyed by visitor. */
  raw: string;
  /** Beacon validations, keyed by visitor. Co-partitioned with events.raw. */
  validations: string;
  /** Everything refused after it was acknowledged, with its reason. Keyed by visitor when known. */
  rejected: string;
  /** Merchants (tenants), keyed by merchant id. Compacted. */
  merchants: string;
  /** Human events, parsed, de-duplicated, enriched and sessionized (the pipeline's output), keyed by visitor. */
  filtered: string;
  /** Events classified as bots, with the decision, keyed by visitor. */
  bots: string;
  /** Readiness probes write here (a tiny record, kept one hour). */
  health: string;
  /**
   * Meta server events ready to send (the capi topology's output: mapped, identity-joined, hashed),
   * keyed by identity (user, else visitor). Read by the capi forwarder (docs/meta-capi.md).
   */
  capiOutbox: string;
  /** Event ids Meta acknowledged, per capi.outbox partition (co-partitioned), written with the forwarder's offsets; kept 3 days. */
  capiSent: string;
  /** Events not sent to Meta, each with its reason (too old, invalid for Meta, retries exhausted, Meta disabled). */
  capiDlq: string;
  /** The recommendation models' entries (`f|merchant|product`, `o|…`, `p|merchant`), compacted; read into memory by every API instance. */
  recsModel: string;
  /** Each visitor's recent views and purchases (`merchant|visitor`), compacted; for personalised answers. */
  recsVisitors: string;
  /** Each visitor's figures in each experiment (`merchant|experiment|visitor`), compacted; the A/B report adds them up. */
  recsExperiments: string;
  /** History of events.filtered re-published from the lake by `shopstream recs bootstrap`, co-partitioned with it; read by the recs topology. */
  recsBootstrap: string;
}

/**
 * The topic names, optionally under a prefix (`topics.prefix` in the config), so that several
 * Shopstream deployments, or test runs, can share one Kafka cluster.
 */
export function topicNames(prefix = ''): TopicNames {
  return {
    raw: `${prefix}events.raw`,
    validations: `${prefix}events.validations`,
    rejected: `${prefix}events.rejected`,
    merchants: `${prefix}merchants`,
    filtered: `${prefix}events.filtered`,
    bots: `${prefix}events.bots`,
    health: `${prefix}shopstream.health`,
    capiOutbox: `${prefix}capi.outbox`,
    capiSent: `${prefix}capi.sent`,
    capiDlq: `${prefix}capi.dlq`,
    recsModel: `${prefix}recs.model`,
    recsVisitors: `${prefix}recs.visitors`,
    recsExperiments: `${prefix}recs.experiments`,
    recsBootstrap: `${prefix}recs.bootstrap`,
  };
}

export interface TopicLayout {
  /** Prepended to every topic name. Default ''. */
  prefix?: string;
  /** Partitions of the visitor-keyed topics (events.raw, events.validations). Default 4. */
  partitions?: number;
  /** retention.ms of events.raw and events.validations. Default 7 days. */
  retentionMs?: number;
  /** retention.ms of events.rejected. Default 30 days. */
  rejectedRetentionMs?: number;
}

const DAY = 24 * 3600_000;

export function platformTopicSpecs(layout: TopicLayout = {}): TopicSpec[] {
  const partitions = layout.partitions ?? 4;
  const Topics = topicNames(layout.prefix);
  return [
    { name: Topics.raw, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': layout.retentionMs ?? 7 * DAY } },
    // Compacted: only a visitor's latest validation matters, and it must outlive the raw events (a
    // validation counts for 30 days, see docs/bot-filtering.md).
    { name: Topics.validations, partitions, config: { 'cleanup.policy': 'compact,delete', 'retention.ms': 31 * DAY } },
    { name: Topics.rejected, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': layout.rejectedRetentionMs ?? 30 * DAY } },
    { name: Topics.merchants, partitions: 1, config: { 'cleanup.policy': 'compact' } },
    { name: Topics.filtered, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': layout.retentionMs ?? 7 * DAY } },
    { name: Topics.health, partitions: 1, config: { 'cleanup.policy': 'delete', 'retention.ms': 3_600_000 } },
    { name: Topics.bots, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': layout.retentionMs ?? 7 * DAY } },
    // Meta refuses events older than 7 days: the outbox need not keep more.
    { name: Topics.capiOutbox, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': 7 * DAY } },
    // The sent-id store's changelog: ids are needed 48 hours (docs/meta-capi.md); a day more for safety.
    { name: Topics.capiSent, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': 3 * DAY } },
    { name: Topics.capiDlq, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': layout.rejectedRetentionMs ?? 30 * DAY } },
    // The models' latest entries: compaction keeps one record per key.
    { name: Topics.recsModel, partitions, config: { 'cleanup.policy': 'compact' } },
    { name: Topics.recsVisitors, partitions, config: { 'cleanup.policy': 'compact,delete', 'retention.ms': 30 * DAY } },
    { name: Topics.recsExperiments, partitions, config: { 'cleanup.policy': 'compact' } },
    { name: Topics.recsBootstrap, partitions, config: { 'cleanup.policy': 'delete', 'retention.ms': 7 * DAY } },
  ];
}

/** Creates the platform's topics that do not exist yet (idempotent). */
export async function ensurePlatformTopics(log: Log, layout: TopicLayout = {}): Promise<void> {
  await log.admin.createTopics(platformTopicSpecs(layout));
}
