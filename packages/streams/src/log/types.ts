/**
 * The log interface. Two implementations: `embedded/` (durable local files, in the process) and
 * `kafka/` (Apache Kafka through @platformatic/kafka). The runtime only talks to this interface.
 *
 * Semantics follow Kafka: topics have a fixed number of partitions; a partition is an ordered
 * sequence of records with dense offsets starting at 0 (or at the log start offset after retention);
 * consumer groups keep committed offsets; a transaction commits produced records and a group's
 * offsets atomically. Readers are always read_committed: records of open or aborted transactions
 * are never returned.
 */

export type Header = readonly [name: string, value: Buffer];

/** A record as stored in a partition. */
export interface LogRecord {
  key: Buffer | null;
  value: Buffer | null;
  /** Event time in milliseconds since the epoch (Kafka's CreateTime). */
  timestamp: number;
  headers: readonly Header[];
}

/** A record read from a partition. */
export interface ConsumedRecord extends LogRecord {
  topic: string;
  partition: number;
  offset: number;
}

/** A record to produce. When `partition` is absent it is chosen by `partitionFor(key)` (Kafka's murmur2). */
export interface ProducerRecord {
  topic: string;
  partition?: number;
  key: Buffer | null;
  value: Buffer | null;
  /** Defaults to the current wall-clock time. */
  timestamp?: number;
  headers?: readonly Header[];
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: number;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface TopicPartitionOffset extends TopicPartition {
  offset: number;
  /**
   * Committed offsets may carry a short string, as Kafka's offset-commit metadata. StreamsApp keeps
   * each input partition's stream time there, so windows stay closed across restarts.
   */
  metadata?: string;
}

/**
 * Topic configuration, with Kafka's names. Unknown keys are passed through to Kafka and ignored by
 * the embedded log.
 */
export interface TopicConfig {
  'cleanup.policy'?: 'delete' | 'compact' | 'compact,delete';
  /** -1 means forever. */
  'retention.ms'?: number;
  /** Per partition; -1 means unbounded. */
  'retention.bytes'?: number;
  'segment.bytes'?: number;
  'segment.ms'?: number;
  [key: string]: string | number | undefined;
}

export interface TopicSpec {
  name: string;
  partitions: number;
  config?: TopicConfig;
}

export interface TopicDescription {
  name: string;
  partitions: number;
  config: TopicConfig;
}

export interface LogAdmin {
  /** Creates the topics that do not exist. An existing topic with another partition count is SHOP_ERR_TOPIC_CONFLICT. */
  createTopics(specs: readonly TopicSpec[]): Promise<void>;
  deleteTopics(names: readonly string[]): Promise<void>;
  /** Topics that do not exist are absent from the answer. */
  describeTopics(names: readonly string[]): Promise<Map<string, TopicDescription>>;
  listTopics(): Promise<string[]>;
  /**
   * `earliest`: the log start offset. `latest`: the last stable offset (read_committed end): the
   * offset the next committed record will get, once all open transactions are resolved.
   */
  listOffsets(partitions: readonly TopicPartition[], which: 'earliest' | 'latest'): Promise<TopicPartitionOffset[]>;
  /** Committed offsets of a group; partitions without one are absent. */
  committedOffsets(groupId: string, partitions: readonly TopicPartition[]): Promise<TopicPartitionOffset[]>;
}

export interface ProducerOptions {
  /** Client id for logs and metrics. */
  clientId?: string;
}

/** A plain producer: idempotent, not transactional. `send` resolves once the records are durable (acks=all). */
export interface LogProducer {
  send(records: readonly ProducerRecord[]): Promise<RecordMetadata[]>;
  close(): Promise<void>;
}

export interface ReaderOptions {
  clientId?: string;
  /** Upper bound of records returned by one poll. */
  maxRecords?: number;
}

/** A reader with manual assignment and no group: for restoring changelogs, tables and tests. read_committed. */
export interface LogReader {
  /** Replaces the assignment; each partition starts at the given offset (clamped to the log start offset). */
  assign(partitions: readonly TopicPartitionOffset[]): void;
  /** Waits up to `maxWaitMs` for records; returns [] on timeout. */
  poll(maxWaitMs: number): Promise<ConsumedRecord[]>;
  /** Next offset this reader will return for the partition. */
  position(tp: TopicPartition): number;
  close(): Promise<void>;
}

/** A member's subscription, given to the assignor. */
export interface MemberSubscription {
  memberId: string;
  /** Stable instance id when configured (static membership), for sticky assignment. */
  instanceId?: string;
  topics: readonly string[];
}

/**
 * Computes the group's assignment. Called on one member (the leader) per rebalance.
 * Returns the partitions of each member; every partition of every subscribed topic must be given to exactly one member.
 */
export type Assignor = (
  members: readonly MemberSubscription[],
  partitionsPerTopic: ReadonlyMap<string, number>,
) => Map<string, TopicPartition[]>;

export interface GroupOptions {
  groupId: string;
  topics: readonly string[];
  clientId?: string;
  /**
   * A stable id for this instance. On Kafka it names the transactional id
   * (`${groupId}-${instanceId}`), so a restarted instance fences its predecessor at once.
   */
  instanceId?: string;
  /** Exactly-once: the member gets a transactional producer fenced by its group generation. */
  transactional: boolean;
  /** Defaults to co-partitioning: partition p of every topic goes to the same member. */
  assignor?: Assignor;
  /**
   * Called before the member gives up partitions in a rebalance, so that the owner can commit its
   * work first. The member does not release them until the promise settles.
   * When it cannot be called in time (the member was already fenced) the next commit throws SHOP_ERR_FENCED.
   */
  onRevoke?: (partitions: TopicPartition[]) => Promise<void>;
  /** Called after a new assignment is received, before records of the new assignment are returned. */
  onAssign?: (partitions: TopicPartition[]) => Promise<void>;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  /** Max records returned by one poll. */
  maxRecords?: number;
  /** Where to start in a partition without a committed offset. Default: earliest. */
  autoOffsetReset?: 'earliest' | 'latest';
  /**
   * Transactional members: the topics their transactions write to. On Kafka they are checked at
   * start for a transaction of this member's transactional id that a broker restarted together
   * with the previous process left hanging (log/kafka/hanging.ts); without them only a
   * transaction still in progress is seen.
   */
  outputTopics?: readonly string[];
  /** Told of what the member repaired by itself (on Kafka: a hanging transaction it ended), for the owner's log. */
  onWarning?: (message: string, details: Record<string, unknown>) => void;
}

export interface PollResult {
  records: ConsumedRecord[];
}

/** A member of a consumer group. */
export interface GroupMember {
  readonly memberId: string;
  /** Increases with each rebalance that this member takes part in. */
  readonly generation: number;
  /** The partitions assigned to this member now. */
  assignment(): TopicPartition[];
  /**
   * Returns the next records of the assigned partitions (read_committed), from each partition's
   * position. The first position of a newly assigned partition is its committed offset, or the
   * reset policy. Rebalances run inside poll (and may call onRevoke/onAssign).
   */
  poll(maxWaitMs: number): Promise<PollResult>;
  /** Moves the position of an assigned partition. */
  seek(tp: TopicPartition, offset: number): void;
  /**
   * The offset poll reads from next in an assigned partition: past every record poll has returned,
   * and past the transaction markers and aborted records after them (on Kafka these take offsets,
   * so the offset after the last record returned can sit below the end of a partition that has
   * nothing more to read). Undefined when the partition is not assigned or has no position yet.
   * A consumer's lag is the end offset minus this, at most.
   */
  position(tp: TopicPartition): number | undefined;
  /**
   * True when poll has returned every committed record of the partition that the log is known to
   * hold (Kafka Streams' "lag is known to be zero"). False when records are waiting or when nothing
   * is known yet. A task with several inputs uses it to wait for data before choosing by timestamp.
   */
  caughtUp(tp: TopicPartition): boolean;
  /** Stops returning records of these partitions until `resume`. */
  pause(partitions: readonly TopicPartition[]): void;
  resume(partitions: readonly TopicPartition[]): void;
  /** Non-transactional members: commit offsets for the group (the offset of the next record to read). */
  commitOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /** Transactional members: begin a transaction. One at a time. */
  beginTransaction(): Transaction;
  /**
   * Transactional members, after a failure and before reading committed offsets: makes the
   * transactions ready to go on. On Kafka: a new producer epoch when the last transaction ended
   * without an answer, and the markers of whatever it left hanging (log/kafka/hanging.ts), which
   * would otherwise hold the group's offsets back. Nothing to do on the embedded log. Throws the
   * log's retriable errors. `afterFailure`: the log failed since the last transaction, so even an
   * answered commit may have lost markers: check it too.
   */
  settleTransactions(afterFailure?: boolean): Promise<void>;
  /** Leaves the group (partitions are reassigned to the other members at once) and closes the member. */
  close(): Promise<void>;
}

/**
 * A transaction of a group member. Records are buffered or sent as the implementation likes; none
 * is visible to read_committed readers before `commit` resolves, and none ever is after `abort` or a failed commit.
 */
export interface Transaction {
  send(record: ProducerRecord): void;
  /**
   * Atomically makes the records visible and sets the group's committed offsets (offset of the next
   * record to read). Throws SHOP_ERR_FENCED when the member's generation or producer is stale; then
   * nothing of the transaction is visible.
   */
  commit(offsets: readonly TopicPartitionOffset[]): Promise<void>;
  abort(): Promise<void>;
}

export interface Log {
  readonly kind: 'embedded' | 'kafka';
  readonly admin: LogAdmin;
  createProducer(options?: ProducerOptions): LogProducer;
  createReader(options?: ReaderOptions): LogReader;
  /** Joins the group; resolves once the member has its first assignment. */
  joinGroup(options: GroupOptions): Promise<GroupMember>;
  close(): Promise<void>;
}

export function tpKey(tp: TopicPartition): string {
  return `${tp.topic}\u0000${tp.partition}`;
}
