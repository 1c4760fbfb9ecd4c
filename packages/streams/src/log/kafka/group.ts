/**
 * GroupMember: a classic-protocol (eager) consumer group member on @platformatic/kafka's Consumer,
 * with our Assignor as its partition assigner and our own fetch loop (Fetcher).
 *
 * Rebalances. The client rejoins by itself when a heartbeat answers REBALANCE_IN_PROGRESS (or the
 * member was dropped) and offers no revocation callback; but it calls `protocolsMetadata` before
 * every JoinGroup and waits for the promise it returns. That is our hook: it holds the JoinGroup
 * until the member's next `poll` has run `onRevoke` for the partitions it owns (the member keeps
 * them, and its generation stays valid, until the hook returns). A member that does not poll within
 * `revokeGraceMs` lets the JoinGroup go: its partitions are dropped at once, `onRevoke` runs late in
 * the next poll, and commits of the old generation throw FENCED; its owner's seeks of them are
 * ignored until then (StreamsApp seeks the tasks it restored, which may take longer than the
 * grace). The new assignment arrives with the 'consumer:group:join' event and is adopted by the
 * next poll: `onAssign`, then positions from the
 * committed offsets (read with requireStable, retried while UNSTABLE_OFFSET_COMMIT), else the reset policy.
 */
import { randomUUID } from 'node:crypto';
import {
  ConnectionPool,
  Consumer,
  FetchIsolationLevels,
  FindCoordinatorKeyTypes,
  ListOffsetTimestamps,
  ProduceAcks,
  Producer,
  type ClusterMetadata,
  type Connection,
  type ExtendedGroupProtocolSubscription,
  type GroupAssignment,
  type GroupPartitionsAssignments,
} from '@platformatic/kafka';
import { ErrorCodes, StreamsError } from '../../errors.ts';
import { coPartitionAssignor } from '../assignor.ts';
import { NullKeyPartitioner } from '../partitioner.ts';
import type { Assignor, GroupMember, GroupOptions, MemberSubscription, PollResult, TopicPartition, TopicPartitionOffset, Transaction } from '../types.ts';
import { tpKey } from '../types.ts';
import type { KafkaAdmin } from './admin.ts';
import { closedError, hasApiError, toStreamsError } from './errors.ts';
import { Fetcher } from './fetcher.ts';
import { partitionCounts, type KafkaProducerClient } from './producer.ts';
import { DEFAULT_MAX_RECORDS } from './reader.ts';
import { encodeBatch, fastProduceApi, type PartitionBatches } from './fastproduce.ts';
import { KafkaTransaction, type Chunk, type TransactionHost } from './transaction.ts';
import { describeTransaction, endOpenTransactions, offsetsPartitionFor, openTransactions, outcomeOf, partitionLeaders, type Outcome } from './hanging.ts';
import { baseClientOptions, clientApi, connectionTo, deferred, groupByTopic, sleep, type AsyncApi, type Deferred, type ResolvedOptions } from './util.ts';

type PTransaction = NonNullable<KafkaProducerClient['transaction']>;
type AnyConsumer = Consumer<Buffer, Buffer, Buffer, Buffer>;

/** Name of the group protocol (the assignor) every member of our groups announces. */
export const GROUP_PROTOCOL = 'shopstream';

const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
const DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000;
const DEFAULT_REBALANCE_TIMEOUT_MS = 30_000;
const REJOIN_BACKOFF_MS = 1_000;
/** Kafka's topic of group offsets (its partition of a group holds the group's transactional offset commits). */
const OFFSETS_TOPIC = '__consumer_offsets';

export interface GroupTuning {
  /** How long a rebalance waits for the member's next poll to run onRevoke. Default 3000 ms. */
  revokeGraceMs?: number;
}

interface JoinEvent {
  generationId: number;
  memberId: string;
  assignments: GroupAssignment[];
}

/** Adapts our Assignor to the client's partitionAssigner. Member instance ids travel in the subscription's user data. */
export function toPartitionAssigner(assignor: Assignor) {
  return (_current: string, members: Map<string, ExtendedGroupProtocolSubscription>, topics: Set<string>, metadata: ClusterMetadata): GroupPartitionsAssignments[] => {
    const subscriptions: MemberSubscription[] = [];
    for (const [memberId, m] of members) {
      const sub: MemberSubscription = { memberId, topics: m.topics ?? [] };
      const instanceId = decodeUserData(m.metadata);
      if (instanceId !== undefined) sub.instanceId = instanceId;
      subscriptions.push(sub);
    }
    const counts = new Map<string, number>();
    for (const t of [...topics].sort()) {
      const count = metadata.topics.get(t)?.partitionsCount;
      if (count !== undefined) counts.set(t, count);
    }
    const assigned = assignor(subscriptions, counts);
    return subscriptions.map(({ memberId }) => {
      const map = new Map<string, GroupAssignment>();
      for (const tp of assigned.get(memberId) ?? []) {
        let entry = map.get(tp.topic);
        if (!entry) map.set(tp.topic, (entry = { topic: tp.topic, partitions: [] }));
        entry.partitions.push(tp.partition);
      }
      return { memberId, assignments: map };
    });
  };
}

function encodeUserData(instanceId: string | undefined): Buffer {
  return Buffer.from(JSON.stringify(instanceId === undefined ? {} : { instanceId }), 'utf8');
}

function decodeUserData(data: Buffer | string | undefined | null): string | undefined {
  if (!data || data.length === 0) return undefined;
  try {
    const parsed = JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as { instanceId?: unknown };
    return typeof parsed.instanceId === 'string' ? parsed.instanceId : undefined;
  } catch {
    return undefined;
  }
}

function flatten(assignments: readonly GroupAssignment[] | null | undefined): TopicPartition[] {
  const out: TopicPartition[] = [];
  for (const a of assignments ?? []) for (const p of a.partitions) out.push({ topic: a.topic, partition: p });
  out.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  return out;
}

export class KafkaGroupMember implements GroupMember, TransactionHost {
  readonly groupId: string;
  readonly consumer: AnyConsumer;
  producer!: KafkaProducerClient;
  readonly nullKeys = new NullKeyPartitioner();
  private readonly group: GroupOptions;
  private readonly admin: KafkaAdmin;
  private readonly pool: ConnectionPool;
  private readonly fetcher: Fetcher;
  private readonly maxRecords: number;
  private readonly revokeGraceMs: number;
  private readonly transactionalId: string | undefined;
  private readonly joinOptions;

  private memberIdValue = '';
  private generationValue = -1;
  private owned: TopicPartition[] = [];
  private rebalances = 0;
  private pendingJoin: JoinEvent | null = null;
  private revokeRequest: Deferred<void> | null = null;
  private lateRevoked: TopicPartition[] | null = null;
  private polling = false;
  private deferredError: unknown;
  private groupError: StreamsError | undefined;
  private txn: KafkaTransaction | undefined;
  private needsInit = false;
  private producerReady = false;
  /**
   * Partitions of transactions that wrote something and did not end with an answered commit. At
   * the next InitProducerId they are checked for a marker the broker lost (see hanging.ts).
   */
  private readonly unfinished = new Map<string, TopicPartition>();
  private unfinishedOffsets = false;
  /** The partitions of the last answered commit (its markers may not all have been written when a failure came). */
  private lastCommitted: { partitions: TopicPartition[]; offsets: boolean } = { partitions: [], offsets: false };
  /** The coordinator's outcome of the unfinished transaction, read before the InitProducerId that makes it forget it; with the producer ids it may carry. */
  private unfinishedOutcome: { outcome: Outcome; producerIds: Set<bigint> } | undefined;
  private coordinator: number | undefined;
  private readonly counts = new Map<string, number>();
  private readonly produceTimeoutMs: number;
  /** Next sequence number per partition, for the producer id and epoch in `sequenceOwner`. */
  private readonly sequences = new Map<string, number>();
  private sequenceOwner = '';
  /**
   * Connections of the transactional sends: up to 5 produce requests in flight per broker, as the
   * Java client does with idempotence (the client's own pool allows 1 for idempotent producers).
   */
  private producePool: ConnectionPool | undefined;
  private closed = false;
  private readonly onClose: () => void;

  constructor(options: ResolvedOptions, admin: KafkaAdmin, group: GroupOptions, tuning: GroupTuning, onClose: () => void) {
    this.group = group;
    this.produceTimeoutMs = options.transactionTimeoutMs;
    this.admin = admin;
    this.groupId = group.groupId;
    this.onClose = onClose;
    this.maxRecords = group.maxRecords ?? DEFAULT_MAX_RECORDS;
    this.revokeGraceMs = tuning.revokeGraceMs ?? 3_000;
    const sessionTimeout = group.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
    const heartbeatInterval = Math.min(group.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS, sessionTimeout);
    const rebalanceTimeout = Math.max(group.rebalanceTimeoutMs ?? DEFAULT_REBALANCE_TIMEOUT_MS, sessionTimeout);
    const clientId = group.clientId ?? `${options.clientId}-${group.groupId}`;
    const userData = encodeUserData(group.instanceId);
    this.joinOptions = {
      sessionTimeout,
      heartbeatInterval,
      rebalanceTimeout,
      protocols: [{ name: GROUP_PROTOCOL, version: 1 }],
      partitionAssigner: toPartitionAssigner(group.assignor ?? coPartitionAssignor),
      protocolsMetadata: () => this.beforeJoin(userData),
    };
    this.consumer = new Consumer({
      ...baseClientOptions(options, clientId),
      // JoinGroup waits for the whole group: the request must outlive the rebalance timeout.
      requestTimeout: Math.max(options.requestTimeoutMs, rebalanceTimeout + 5_000),
      groupId: group.groupId,
      // Static membership (KIP-345): a restarted instance takes its predecessor's place at once.
      ...(group.instanceId === undefined ? {} : { groupInstanceId: group.instanceId }),
      autocommit: false,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      ...this.joinOptions,
    } as ConstructorParameters<typeof Consumer>[0]) as AnyConsumer;
    this.consumer.on('consumer:group:join', (p) => {
      if (this.closed) return;
      this.pendingJoin = { generationId: p.generationId ?? -1, memberId: p.memberId, assignments: p.assignments ?? [] };
      this.fetcher.signal.notify();
    });
    // Emitted when a background rejoin gave up: report it from poll and try again.
    this.consumer.on('error', (err: unknown) => {
      if (this.closed || this.fenced) return;
      this.groupError = toStreamsError(err, `group ${group.groupId}`);
      this.fetcher.signal.notify();
      setTimeout(() => this.rejoin(), REJOIN_BACKOFF_MS).unref();
    });
    this.pool = new ConnectionPool(`${clientId}-fetch`, { connectTimeout: options.connectTimeoutMs, requestTimeout: options.requestTimeoutMs, maxInflights: 5 });
    this.pool.on('error', () => {});
    this.fetcher = new Fetcher(this.consumer, this.pool, options, group.autoOffsetReset ?? 'earliest');
    if (group.transactional) {
      this.transactionalId = `${group.groupId}-${group.instanceId ?? randomUUID()}`;
      this.producer = new Producer({
        ...baseClientOptions(options, `${clientId}-producer`),
        // The client sends `timeout` as the transaction timeout of InitProducerId (and as the produce timeout).
        timeout: options.transactionTimeoutMs,
        idempotent: true,
        acks: ProduceAcks.ALL,
        transactionalId: this.transactionalId,
        autocreateTopics: false,
      }) as KafkaProducerClient;
      this.producer.on('error', () => {});
      this.producePool = new ConnectionPool(`${clientId}-produce`, { connectTimeout: options.connectTimeoutMs, requestTimeout: options.requestTimeoutMs, maxInflights: 5 });
      this.producePool.on('error', () => {});
    }
  }

  /** Initialises the transactional producer (fencing a predecessor with the same id), then joins. */
  async start(): Promise<void> {
    try {
      if (this.transactionalId) {
        // A predecessor that died with the broker may have left a transaction hanging on any
        // partition it writes: all of them are checked once the new epoch is in place.
        const outputs = this.group.outputTopics ?? [];
        if (outputs.length > 0) {
          for (const [topic, leaders] of await partitionLeaders(this.producer, outputs)) for (let p = 0; p < leaders.length; p++) this.unfinished.set(tpKey({ topic, partition: p }), { topic, partition: p });
          this.unfinishedOffsets = true;
        }
        // InitProducerId now, not at the first transaction: a restarted instance fences its
        // predecessor and aborts its open transaction before it reads any committed offset.
        const tx = await this.beginClientTransaction();
        await tx.cancel();
      }
      this.consumer.topics.trackAll(...this.group.topics);
      await this.consumer.joinGroup({ ...this.joinOptions });
      this.adopt();
    } catch (err) {
      await this.close().catch(() => {});
      throw toStreamsError(err, `join group ${this.groupId}`);
    }
  }

  get memberId(): string {
    return this.memberIdValue;
  }

  get generation(): number {
    return this.generationValue;
  }

  get rebalanceCount(): number {
    return this.rebalances;
  }

  assignment(): TopicPartition[] {
    return this.owned.map((tp) => ({ ...tp }));
  }

  // ---- rebalance hook -------------------------------------------------------------------------

  /** Runs before every JoinGroup the client sends; holds it until onRevoke has run (or the grace is over). */
  private async beforeJoin(userData: Buffer): Promise<Buffer> {
    if (this.closed) throw new Error('group member closed');
    if (this.fenced) throw this.fenced;
    if (this.group.instanceId !== undefined && this.memberIdValue !== '' && !this.consumer.memberId && (await this.replaced())) {
      // Another process joined with our instance id: we are the zombie. Never rejoin (that would
      // fence the new instance in turn); every later call throws FENCED.
      // For good: not retriable (an application stops instead of fencing its successor back).
      this.fenced = new StreamsError({ ...ErrorCodes.FENCED, retriable: false, fatal: true }, `instance ${this.group.instanceId} of group ${this.groupId} was taken over by another member`);
      this.dropAssignment();
      this.fetcher.signal.notify();
      throw this.fenced;
    }
    this.pendingJoin = null; // an assignment not yet adopted is stale now
    if (this.owned.length > 0 && this.assignPending) {
      // Assigned but never polled since: give the partitions up without callbacks.
      this.dropAssignment();
    }
    if (this.owned.length === 0) return userData;
    const request = (this.revokeRequest ??= deferred<void>());
    this.fetcher.signal.notify();
    let timer: NodeJS.Timeout | undefined;
    // The client stops heartbeating while it rejoins: keep the session alive while onRevoke runs.
    const heartbeats = setInterval(() => this.heartbeat(), this.joinOptions.heartbeatInterval);
    const grace = new Promise<'late'>((resolve) => {
      // A member inside poll (e.g. in onAssign) gets longer: it will reach the revocation soon.
      timer = setTimeout(() => resolve('late'), this.polling ? Math.max(this.revokeGraceMs, this.joinOptions.rebalanceTimeout / 2) : this.revokeGraceMs);
    });
    try {
      const outcome = await Promise.race([request.promise.then(() => 'done' as const), grace]);
      if (outcome === 'late' && this.revokeRequest === request && !this.revoking) {
        // The member did not poll in time: give the partitions up now, tell it in its next poll.
        this.revokeRequest = null;
        this.lateRevoked = [...(this.lateRevoked ?? []), ...this.owned];
        this.dropAssignment();
        request.resolve();
      } else {
        await request.promise;
      }
    } finally {
      clearTimeout(timer);
      clearInterval(heartbeats);
    }
    if (this.closed) throw new Error('group member closed');
    return userData;
  }

  private revoking = false;
  /** Set when another process took over this member's static instance id. */
  private fenced: StreamsError | undefined;

  /** One Heartbeat for the current generation; its answer (REBALANCE_IN_PROGRESS, mostly) is not needed. */
  private heartbeat(): void {
    const memberId = this.consumer.memberId;
    if (this.closed || !memberId) return;
    this.withCoordinator(this.consumer, 'Heartbeat', 'heartbeat', (api, connection) =>
      api.async(connection, this.groupId, this.consumer.generationId, memberId, this.group.instanceId ?? null),
    ).catch(() => {});
  }

  /** Whether the group's member with our instance id is somebody else now. */
  private async replaced(): Promise<boolean> {
    try {
      const groups = await this.admin.client.describeGroups({ groups: [this.groupId] });
      for (const m of groups.get(this.groupId)?.members.values() ?? []) {
        if (m.groupInstanceId === this.group.instanceId) return m.id !== this.memberIdValue && m.id !== this.consumer.memberId;
      }
    } catch {
      // unknown: rejoin as usual (the coordinator fences a real zombie on its next request)
    }
    return false;
  }
  /** Assigned, but onAssign has not run yet (no poll since the assignment). */
  private assignPending = false;

  private async runRevoke(): Promise<void> {
    const request = this.revokeRequest;
    if (!request) return;
    this.revoking = true;
    const revoked = this.owned;
    try {
      if (revoked.length > 0 && !this.assignPending && this.group.onRevoke) await this.group.onRevoke(revoked.map((tp) => ({ ...tp })));
    } catch (err) {
      this.deferredError ??= err;
    } finally {
      this.dropAssignment();
      this.revoking = false;
      this.revokeRequest = null;
      request.resolve();
    }
  }

  private dropAssignment(): void {
    this.owned = [];
    this.assignPending = false;
    this.rebalances++;
    this.fetcher.assign([]);
  }

  private async runLateRevoke(): Promise<void> {
    const revoked = this.lateRevoked;
    this.lateRevoked = null;
    if (!revoked || revoked.length === 0 || !this.group.onRevoke) return;
    try {
      await this.group.onRevoke(revoked.map((tp) => ({ ...tp })));
    } catch (err) {
      this.deferredError ??= err;
    }
  }

  /** Takes the assignment of the last join; onAssign and the first positions follow in poll. */
  private adopt(): void {
    const join = this.pendingJoin;
    if (!join) return;
    this.pendingJoin = null;
    const assigned = flatten(join.assignments);
    this.generationValue = join.generationId;
    this.memberIdValue = join.memberId;
    this.owned = assigned;
    this.rebalances++;
    this.assignPending = true;
    this.fetcher.assign(assigned);
  }

  /** onAssign, then the first positions of the new assignment. */
  private async completeAssign(): Promise<void> {
    this.assignPending = false;
    const assigned = this.assignment();
    if (this.group.onAssign) {
      try {
        await this.group.onAssign(assigned.map((tp) => ({ ...tp })));
      } catch (err) {
        this.deferredError ??= err;
      }
    }
    await this.resolvePositions(assigned);
  }

  /** First positions: the committed offsets (stable only, KIP-447), else the reset policy. */
  private async resolvePositions(assigned: TopicPartition[]): Promise<void> {
    const epoch = this.rebalances;
    const unresolved = () => assigned.filter((tp) => this.fetcher.has(tp) && this.fetcher.position(tp) === undefined);
    let todo = unresolved();
    let attempt = 0;
    while (todo.length > 0) {
      if (this.closed || this.revokeRequest || this.rebalances !== epoch) return;
      try {
        // Our own unfinished transaction would hold these offsets back: settle it first.
        await this.settleTransactions();
        const committed = await this.fetchCommitted(todo);
        if (this.rebalances !== epoch) return;
        const missing: TopicPartition[] = [];
        for (const tp of todo) {
          const offset = committed.get(tpKey(tp));
          if (offset !== undefined) this.fetcher.initPosition(tp, offset);
          else missing.push(tp);
        }
        if (missing.length > 0) {
          const which = this.group.autoOffsetReset === 'latest' ? ListOffsetTimestamps.LATEST : ListOffsetTimestamps.EARLIEST;
          const partitions: Record<string, number[]> = {};
          for (const tp of missing) (partitions[tp.topic] ??= []).push(tp.partition);
          const offsets = await this.consumer.listOffsets({
            topics: Object.keys(partitions),
            partitions,
            timestamp: which,
            isolationLevel: FetchIsolationLevels.READ_COMMITTED,
          });
          if (this.rebalances !== epoch) return;
          for (const tp of missing) this.fetcher.initPosition(tp, Number(offsets.get(tp.topic)?.[tp.partition] ?? 0n));
        }
      } catch (err) {
        const retriable = hasApiError(err, 'UNSTABLE_OFFSET_COMMIT', 'COORDINATOR_LOAD_IN_PROGRESS', 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE');
        if (!retriable && ++attempt > 5) throw toStreamsError(err, `committed offsets of group ${this.groupId}`);
        await sleep(retriable ? 100 : 250);
      }
      todo = unresolved();
    }
    this.fetcher.maybeFetch();
  }

  private async fetchCommitted(tps: TopicPartition[]): Promise<Map<string, number>> {
    const topics = [...groupByTopic(tps)].map(([name, list]) => ({ name, partitionIndexes: list.map((tp) => tp.partition) }));
    const groups = await this.admin.client.listConsumerGroupOffsets({ groups: [{ groupId: this.groupId, topics }], requireStable: true });
    const out = new Map<string, number>();
    for (const g of groups) {
      for (const t of g.topics) {
        for (const p of t.partitions) if (p.committedOffset >= 0n) out.set(tpKey({ topic: t.name, partition: p.partitionIndex }), Number(p.committedOffset));
      }
    }
    return out;
  }

  private rejoin(): void {
    if (this.closed) return;
    this.consumer.joinGroup({ ...this.joinOptions }).catch((err: unknown) => {
      if (this.closed) return;
      this.groupError = toStreamsError(err, `rejoin group ${this.groupId}`);
      this.fetcher.signal.notify();
      setTimeout(() => this.rejoin(), REJOIN_BACKOFF_MS).unref();
    });
  }

  // ---- poll -----------------------------------------------------------------------------------

  async poll(maxWaitMs: number): Promise<PollResult> {
    if (this.closed) throw closedError('group member');
    if (this.polling) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'poll is already running');
    this.polling = true;
    try {
      const deadline = Date.now() + Math.max(0, maxWaitMs);
      while (true) {
        if (this.closed) return { records: [] };
        if (this.lateRevoked) await this.runLateRevoke();
        if (this.revokeRequest) await this.runRevoke();
        if (this.pendingJoin && !this.revokeRequest) this.adopt();
        if (this.assignPending && !this.revokeRequest) await this.completeAssign();
        this.throwDeferred();
        const interrupted = () =>
          this.closed ||
          this.fenced !== undefined || this.revokeRequest !== null || this.pendingJoin !== null || this.lateRevoked !== null || this.groupError !== undefined || this.assignPending;
        const records = await this.fetcher.poll(deadline - Date.now(), this.maxRecords, interrupted);
        if (records.length > 0) return { records };
        this.throwDeferred();
        if (Date.now() >= deadline && !this.revokeRequest && !this.lateRevoked) return { records };
        if (!interrupted()) return { records };
      }
    } finally {
      this.polling = false;
    }
  }

  private throwDeferred(): void {
    if (this.fenced) throw this.fenced;
    if (this.groupError) {
      const err = this.groupError;
      this.groupError = undefined;
      throw err;
    }
    if (this.deferredError !== undefined) {
      const err = this.deferredError;
      this.deferredError = undefined;
      throw err;
    }
  }

  seek(tp: TopicPartition, offset: number): void {
    if (this.closed) throw closedError('group member');
    // Dropped late (the owner did not poll within revokeGraceMs, e.g. during a long restore): the
    // owner learns it in its next poll, where onRevoke runs; until then its seeks of them are moot.
    if (this.lateRevoked?.some((p) => p.topic === tp.topic && p.partition === tp.partition) && !this.owned.some((p) => p.topic === tp.topic && p.partition === tp.partition)) return;
    this.fetcher.seek(tp, offset);
  }

  caughtUp(tp: TopicPartition): boolean {
    return this.fetcher.caughtUp(tp);
  }

  position(tp: TopicPartition): number | undefined {
    return this.fetcher.position(tp);
  }

  pause(partitions: readonly TopicPartition[]): void {
    this.fetcher.pause(partitions);
  }

  resume(partitions: readonly TopicPartition[]): void {
    this.fetcher.resume(partitions);
  }

  // ---- offsets and transactions ---------------------------------------------------------------

  async commitOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    if (this.closed) throw closedError('group member');
    if (this.group.transactional) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'a transactional member commits offsets with its transaction');
    if (offsets.length === 0) return;
    const topics = [...groupByTopic(offsets)].map(([name, list]) => ({
      name,
      partitions: list.map((o) => ({ partitionIndex: o.partition, committedOffset: BigInt(o.offset), committedLeaderEpoch: -1, committedMetadata: o.metadata ?? null })),
    }));
    await this.withCoordinator(this.consumer, 'OffsetCommit', `commit offsets of group ${this.groupId}`, (api, connection) =>
      api.async(connection, this.groupId, this.generationValue, this.memberIdValue, this.group.instanceId ?? null, topics),
    );
  }

  beginTransaction(): Transaction {
    if (this.closed) throw closedError('group member');
    if (!this.group.transactional) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'beginTransaction on a member that is not transactional');
    if (this.txn && !this.txn.done) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'a transaction is already open');
    if (this.fenced) throw this.fenced;
    this.txn = new KafkaTransaction(this);
    return this.txn;
  }

  async beginClientTransaction(): Promise<PTransaction> {
    const initOptions = { producerId: -1n, producerEpoch: -1 };
    if (this.fenced) throw this.fenced;
    if (this.needsInit && this.producerReady && this.group.instanceId !== undefined && (await this.replaced())) {
      // Fenced by a new instance with our transactional id: a new epoch would fence it back.
      this.fenced = new StreamsError(ErrorCodes.FENCED, `instance ${this.group.instanceId} of group ${this.groupId} was taken over by another member`);
      throw this.fenced;
    }
    try {
      const init = !this.producerReady || this.needsInit;
      // What the coordinator did with the last transaction, asked before the new epoch (after it, the
      // coordinator only knows the new epoch's empty state). At the first start, a predecessor's
      // transaction still in progress is aborted by our InitProducerId: its partitions are checked too.
      if (init && this.unfinishedOutcome === undefined) {
        // The last answered commit may have lost markers too; the coordinator's outcome covers it
        // (a later transaction could not have begun before its markers were written).
        for (const tp of this.lastCommitted.partitions) this.unfinished.set(tpKey(tp), tp);
        if (this.lastCommitted.offsets) this.unfinishedOffsets = true;
        this.lastCommitted = { partitions: [], offsets: false };
        const d = await describeTransaction(this.producer, () => this.transactionCoordinator(), this.transactionalId!);
        for (const tp of d.partitions) this.unfinished.set(tpKey(tp), tp);
        if (this.unfinished.size > 0 || this.unfinishedOffsets) {
          const producerIds = new Set<bigint>([d.producerId]);
          if (this.producer.producerId !== undefined) producerIds.add(this.producer.producerId);
          this.unfinishedOutcome = { outcome: d.state === 'Ongoing' ? 'abort' : outcomeOf(d), producerIds };
        }
      }
      const tx = await this.producer.beginTransaction(initOptions);
      if (this.needsInit && this.producerReady) {
        // A fenced or broken producer: a new epoch (aborting whatever this id left open).
        await this.producer.initIdempotentProducer(initOptions);
      }
      this.needsInit = false;
      this.producerReady = true;
      if (this.unfinishedOutcome !== undefined) await this.endHangingTransactions(this.unfinishedOutcome);
      return tx;
    } catch (err) {
      this.producer.transaction?.cancel().catch(() => {});
      this.needsInit = true;
      throw err;
    }
  }

  /**
   * After the new epoch: any partition of the unfinished transaction on which our producer id still
   * has a transaction open lost its marker (a broker bug, see hanging.ts). Ends it there with the
   * coordinator's outcome before this epoch writes anything, which would otherwise merge the old
   * records into its own transaction.
   */
  private async endHangingTransactions(u: { outcome: Outcome; producerIds: Set<bigint> }): Promise<void> {
    const partitions = [...this.unfinished.values()];
    if (this.unfinishedOffsets) {
      // Absent on a cluster where no group has committed yet: then nothing can hang there.
      const count = (await partitionLeaders(this.producer, [OFFSETS_TOPIC])).get(OFFSETS_TOPIC)?.length ?? 0;
      const tp = { topic: OFFSETS_TOPIC, partition: count > 0 ? offsetsPartitionFor(this.groupId, count) : -1 };
      if (count > 0 && !this.unfinished.has(tpKey(tp))) partitions.push(tp);
    }
    const open = await openTransactions(this.producer, u.producerIds, partitions);
    if (open.length > 0) {
      await endOpenTransactions(this.producer, open, u.outcome);
      this.group.onWarning?.(`ended a hanging transaction (the broker lost its ${u.outcome} marker) on ${open.map((o) => `${o.topic}-${o.partition}`).join(', ')}`, {
        outcome: u.outcome,
        partitions: open.map((o) => ({ topic: o.topic, partition: o.partition, producerId: String(o.producerId), producerEpoch: o.producerEpoch, startOffset: String(o.startOffset) })),
      });
    }
    this.unfinished.clear();
    this.unfinishedOffsets = false;
    this.unfinishedOutcome = undefined;
  }

  transactionCommitted(partitions: readonly TopicPartition[], offsets: boolean): void {
    this.lastCommitted = { partitions: partitions.map((tp) => ({ topic: tp.topic, partition: tp.partition })), offsets };
  }

  transactionUnfinished(partitions: readonly TopicPartition[], offsets: boolean): void {
    for (const tp of partitions) this.unfinished.set(tpKey(tp), { topic: tp.topic, partition: tp.partition });
    if (offsets) this.unfinishedOffsets = true;
    this.needsInit = true;
  }

  /** The transaction coordinator of this member's transactional id. */
  private async transactionCoordinator(): Promise<number> {
    const found = await this.admin.client.findCoordinator({ keyType: FindCoordinatorKeyTypes.TRANSACTION, keys: [this.transactionalId!] });
    const node = found[0]?.nodeId;
    if (node === undefined || node < 0) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `no transaction coordinator for ${this.transactionalId}`);
    return node;
  }

  async settleTransactions(afterFailure = false): Promise<void> {
    // After a failure of the log: a new epoch, and a check of what the last transactions wrote.
    if (afterFailure && this.producerReady) this.needsInit = true;
    if (!this.transactionalId || !this.needsInit || (this.txn && !this.txn.done)) return;
    const tx = await this.beginClientTransaction();
    await tx.cancel();
  }

  producerNeedsInit(): void {
    this.needsInit = true;
  }

  transactionEnded(tx: KafkaTransaction): void {
    if (this.txn === tx) this.txn = undefined;
  }

  async partitionCounts(topics: readonly string[]): Promise<Map<string, number>> {
    const missing = topics.filter((t) => !this.counts.has(t));
    if (missing.length > 0) for (const [t, n] of await partitionCounts(this.producer, missing)) this.counts.set(t, n);
    return new Map(topics.map((t) => [t, this.counts.get(t)!]));
  }

  async produce(chunk: Chunk): Promise<{ done: Promise<unknown> } | null> {
    const api = await fastProduceApi(this.producer);
    if (!api) return null;
    const producerId = this.producer.producerId;
    const producerEpoch = this.producer.producerEpoch;
    if (producerId === undefined || producerEpoch === undefined) throw new StreamsError(ErrorCodes.FENCED, 'the transactional producer has no producer id');
    const owner = `${producerId}:${producerEpoch}`;
    if (owner !== this.sequenceOwner) {
      this.sequences.clear();
      this.sequenceOwner = owner;
    }
    const { records, partitions, indexes } = chunk;
    const md = await this.producer.metadata({ topics: [...new Set(indexes.map((i) => records[i]!.topic))] });
    const byLeader = new Map<number, Map<string, Map<number, number[]>>>();
    for (const i of indexes) {
      const topic = records[i]!.topic;
      const partition = partitions[i]!;
      const leader = md.topics.get(topic)?.partitions[partition]?.leader ?? -1;
      if (leader < 0) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `no leader for ${topic}-${partition}`);
      let topics = byLeader.get(leader);
      if (!topics) byLeader.set(leader, (topics = new Map()));
      let parts = topics.get(topic);
      if (!parts) topics.set(topic, (parts = new Map()));
      let list = parts.get(partition);
      if (!list) parts.set(partition, (list = []));
      list.push(i);
    }
    const connections = new Map<number, Connection>();
    for (const leader of byLeader.keys()) {
      const broker = md.brokers.get(leader);
      if (!broker) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `broker ${leader} is unknown`);
      connections.set(leader, await new Promise<Connection>((resolve, reject) => this.producePool!.get(broker, (err, c) => (err || !c ? reject(err) : resolve(c)))));
    }
    // From here on synchronous: sequence numbers are taken in the order the requests are queued.
    const now = Date.now();
    const responses: Promise<unknown>[] = [];
    for (const [leader, topics] of byLeader) {
      const batches: PartitionBatches = new Map();
      for (const [topic, parts] of topics) {
        const encoded = new Map<number, Buffer>();
        for (const [partition, list] of parts) {
          const key = `${topic}\u0000${partition}`;
          const sequence = this.sequences.get(key) ?? 0;
          encoded.set(partition, encodeBatch(records, list, now, producerId, producerEpoch, sequence, true));
          this.sequences.set(key, (sequence + list.length) % 2_147_483_648);
        }
        batches.set(topic, encoded);
      }
      responses.push(api.async(connections.get(leader)!, this.transactionalId!, -1, this.produceTimeoutMs, batches));
    }
    return { done: Promise.all(responses) };
  }

  /** TxnOffsetCommit with the full group metadata (the client's high-level addOffset sends one partition per request and no instance id). */
  async sendOffsetsToTransaction(tx: PTransaction, offsets: readonly TopicPartitionOffset[], generation: number, memberId: string): Promise<void> {
    void tx;
    const topics = [...groupByTopic(offsets)].map(([name, list]) => ({
      name,
      partitions: list.map((o) => ({ partitionIndex: o.partition, committedOffset: BigInt(o.offset), committedLeaderEpoch: -1, committedMetadata: o.metadata ?? null })),
    }));
    const producerId = this.producer.producerId;
    const producerEpoch = this.producer.producerEpoch;
    if (producerId === undefined || producerEpoch === undefined) throw new StreamsError(ErrorCodes.FENCED, 'the transactional producer has no producer id');
    await this.withCoordinator(this.producer, 'TxnOffsetCommit', `send offsets of group ${this.groupId}`, (api, connection) =>
      api.async(connection, this.transactionalId!, this.groupId, producerId, producerEpoch, generation, memberId, this.group.instanceId ?? null, topics),
    );
  }

  /** Runs a request on the group coordinator through `client`'s connections, following coordinator moves. */
  private async withCoordinator(
    client: AnyConsumer | KafkaProducerClient,
    apiName: string,
    what: string,
    run: (api: AsyncApi, connection: Connection) => Promise<unknown>,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (this.coordinator === undefined) this.coordinator = await this.consumer.findGroupCoordinator();
        await run(await clientApi(client, apiName), await connectionTo(client, this.coordinator));
        return;
      } catch (err) {
        if (hasApiError(err, 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'COORDINATOR_LOAD_IN_PROGRESS', 'CONCURRENT_TRANSACTIONS') && attempt < 10) {
          if (!hasApiError(err, 'CONCURRENT_TRANSACTIONS')) this.coordinator = (await this.admin.client.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [this.groupId] }).catch(() => []))[0]?.nodeId;
          await sleep(100);
          continue;
        }
        throw toStreamsError(err, what);
      }
    }
  }

  // ---- close ----------------------------------------------------------------------------------

  close(): Promise<void> {
    return (this.closing ??= this.doClose());
  }

  private closing: Promise<void> | undefined;

  private async doClose(): Promise<void> {
    let failure: unknown;
    if (this.owned.length > 0 && !this.assignPending && this.group.onRevoke && !this.polling) {
      // Like a rebalance: the owner may commit its work before the partitions go.
      try {
        await this.group.onRevoke(this.assignment());
      } catch (err) {
        failure = err;
      }
    }
    this.closed = true;
    this.revokeRequest?.resolve();
    this.revokeRequest = null;
    this.fetcher.close();
    if (this.txn && !this.txn.done) await this.txn.abort().catch(() => {});
    try {
      // LeaveGroup: the other members rebalance at once instead of after the session timeout.
      if (this.consumer.memberId) await this.consumer.leaveGroup(true);
    } catch {
      // the coordinator drops us at the session timeout
    }
    await Promise.allSettled([this.consumer.close(true), this.pool.close(), this.producer?.close(true), this.producePool?.close()]);
    this.owned = [];
    this.onClose();
    if (failure !== undefined) throw failure;
  }
}
