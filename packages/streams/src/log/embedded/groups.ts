/**
 * In-process consumer groups of the embedded log: one coordinator per group id, members, eager
 * rebalances, generations and fencing, and the transactions of group members.
 *
 * Rebalance (eager, like Kafka's classic protocol), triggered by a join, a leave, a fenced member
 * or a created/deleted subscribed topic:
 *   1. every member that holds partitions is asked to revoke them. As in Kafka, the callbacks run
 *      inside the member's own `poll` (a member blocked in `poll` is woken at once): `onRevoke` is
 *      awaited, then the member acknowledges. A member that does not poll within its
 *      `rebalanceTimeoutMs` (default 60 s) is removed from the group and fenced. A member that was
 *      assigned partitions but never polled since gives them up without callbacks; until its next
 *      poll, its owner's seeks of them are ignored (the poll then shows the new generation).
 *   2. the generation is bumped and the leader's assignor (the oldest member's `assignor`, default
 *      co-partitioning) computes the assignment; each member gets its partitions and calls
 *      `onAssign` in its next poll, before returning records. Positions start at the committed
 *      offset (or the reset policy) when first read, for every assigned partition: eager
 *      rebalancing starts over from the committed offsets.
 * Commits (transactions and commitOffsets) are checked at write time: a member that is closed,
 * removed, or whose generation is not the group's current one gets SHOP_ERR_FENCED, and nothing
 * of its transaction is written. Joining with the `instanceId` of a live member fences that member
 * at once (a restarted instance replaces its predecessor). sessionTimeoutMs and
 * heartbeatIntervalMs are ignored: in one process a member lives until it closes, is fenced, or
 * the log closes (a crash of the process ends the whole group).
 */
import { randomUUID } from 'node:crypto';
import { StreamsError, ErrorCodes } from '../../errors.ts';
import { coPartitionAssignor } from '../assignor.ts';
import { BufferedTransaction, plainOffset } from '../buffered-transaction.ts';
import { NullKeyPartitioner } from '../partitioner.ts';
import type {
  ConsumedRecord,
  GroupMember,
  GroupOptions,
  MemberSubscription,
  PollResult,
  ProducerRecord,
  RecordMetadata,
  TopicPartition,
  TopicPartitionOffset,
  Transaction,
} from '../types.ts';
import { tpKey } from '../types.ts';
import { newCursor, readFair } from './partition.ts';
import type { PartitionLog, ReadCursor } from './partition.ts';

export const DEFAULT_MAX_RECORDS = 1000;
const DEFAULT_REBALANCE_TIMEOUT_MS = 60_000;

/** A commit handed to the log: records to append and group offsets to set, atomically. */
export interface CommitRequest {
  records: ProducerRecord[];
  parts: PartitionLog[];
  groupId: string | null;
  offsets: readonly TopicPartitionOffset[] | null;
  /** Run when the commit is written (after earlier commits): an error rejects it, writing nothing. */
  check: (() => StreamsError | null) | null;
  wantMetadata: boolean;
}

/** What the group code needs from the log. */
export interface GroupHost {
  readonly verifyChecksums: boolean;
  ensureOpen(): void;
  partitionCount(topic: string): number | undefined;
  partitionLog(topic: string, partition: number): PartitionLog | undefined;
  committedOffset(groupId: string, tp: TopicPartition): number | undefined;
  /** Validates a record and picks its partition; throws UNKNOWN_TOPIC / INVALID_ARGUMENT. */
  prepareRecord(record: ProducerRecord, partitioner: NullKeyPartitioner): PartitionLog;
  validateOffsets(offsets: readonly TopicPartitionOffset[]): void;
  submit(req: CommitRequest): Promise<RecordMetadata[]>;
  /** Waits until one of the partitions gets new committed records, `wake` is called, or `ms` passes. */
  waitForRecords(parts: readonly PartitionLog[], ms: number, setWake: (wake: (() => void) | null) => void): Promise<void>;
}

function fenced(message: string): StreamsError {
  return new StreamsError(ErrorCodes.FENCED, message);
}

function closedError(what: string): StreamsError {
  return new StreamsError(ErrorCodes.CLOSED, `${what} is closed`);
}

export class GroupCoordinator {
  readonly groupId: string;
  readonly host: GroupHost;
  members: MemberImpl[] = [];
  generation = 0;
  private running = false;
  private requested = false;

  constructor(host: GroupHost, groupId: string) {
    this.host = host;
    this.groupId = groupId;
  }

  join(options: GroupOptions): Promise<MemberImpl> {
    if (options.instanceId !== undefined) {
      const previous = this.members.find((m) => m.instanceId === options.instanceId);
      if (previous !== undefined) this.fence(previous, `member ${previous.memberId} was replaced by a new member with instance id ${options.instanceId}`);
    }
    const member = new MemberImpl(this, options);
    this.members.push(member);
    this.requestRebalance();
    return member.joined;
  }

  subscribesTo(topics: readonly string[]): boolean {
    return this.members.some((m) => m.topics.some((t) => topics.includes(t)));
  }

  requestRebalance(): void {
    this.requested = true;
    if (!this.running) void this.run();
  }

  /** Removes a member and fences it (its next commit or poll throws FENCED). */
  fence(member: MemberImpl, reason: string): void {
    member.markFenced(reason);
    this.remove(member);
  }

  leave(member: MemberImpl): void {
    this.remove(member);
  }

  /** Stops every member (the log is closing): no callbacks, no rebalance. */
  shutdown(): void {
    const members = this.members;
    this.members = [];
    for (const m of members) m.markClosed();
  }

  private remove(member: MemberImpl): void {
    const i = this.members.indexOf(member);
    if (i < 0) return;
    this.members.splice(i, 1);
    if (this.members.length > 0) this.requestRebalance();
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.requested) await this.round();
    } finally {
      this.running = false;
    }
  }

  private async round(): Promise<void> {
    // 1. revoke
    const holders = this.members.filter((m) => m.assigned.length > 0);
    await Promise.all(holders.map((m) => m.revoke()));
    // 2. assign (membership changes up to here are included)
    this.requested = false;
    this.generation++;
    const live = [...this.members];
    if (live.length === 0) return;
    const subscriptions: MemberSubscription[] = live.map((m) => ({
      memberId: m.memberId,
      ...(m.instanceId === undefined ? {} : { instanceId: m.instanceId }),
      topics: m.topics,
    }));
    const partitionsPerTopic = new Map<string, number>();
    for (const m of live) {
      for (const t of m.topics) {
        const n = this.host.partitionCount(t);
        if (n !== undefined) partitionsPerTopic.set(t, n);
      }
    }
    const assignor = live[0]!.options.assignor ?? coPartitionAssignor;
    let result: Map<string, TopicPartition[]>;
    let failure: unknown = null;
    try {
      result = assignor(subscriptions, partitionsPerTopic);
    } catch (err) {
      result = new Map();
      failure = err;
    }
    for (const m of live) m.assign(this.generation, result.get(m.memberId) ?? [], failure);
  }
}

interface Assigned {
  tp: TopicPartition;
  key: string;
  part: PartitionLog | undefined;
  cursor: ReadCursor | null;
}

export class MemberImpl implements GroupMember {
  readonly memberId: string;
  readonly instanceId: string | undefined;
  readonly options: GroupOptions;
  readonly topics: readonly string[];
  readonly joined: Promise<MemberImpl>;
  private readonly coordinator: GroupCoordinator;
  private readonly host: GroupHost;
  private readonly partitioner = new NullKeyPartitioner();
  private generationValue = 0;
  assigned: TopicPartition[] = [];
  private entries: Assigned[] = [];
  private readonly byKey = new Map<string, Assigned>();
  private readonly paused = new Set<string>();
  /** Partitions given up without callbacks since the last poll (the owner may still seek them). */
  private readonly stale = new Set<string>();
  private revokeAck: (() => void) | null = null;
  private revokeTimer: NodeJS.Timeout | null = null;
  private assignPending = false;
  private pendingError: unknown = null;
  private hasJoined = false;
  private joinResolve!: (m: MemberImpl) => void;
  private joinReject!: (err: unknown) => void;
  private closed = false;
  private closing: Promise<void> | null = null;
  private fencedReason: string | null = null;
  private wake: (() => void) | null = null;
  private openTxn: TransactionImpl | null = null;
  private rr = 0;

  constructor(coordinator: GroupCoordinator, options: GroupOptions) {
    this.coordinator = coordinator;
    this.host = coordinator.host;
    this.options = options;
    this.topics = [...options.topics];
    this.instanceId = options.instanceId;
    this.memberId = `${options.clientId ?? options.instanceId ?? 'member'}-${randomUUID()}`;
    this.joined = new Promise<MemberImpl>((resolve, reject) => {
      this.joinResolve = resolve;
      this.joinReject = reject;
    });
    // the joiner may be dropped (closed log) before anyone awaits `joined`
    this.joined.catch(() => undefined);
  }

  get generation(): number {
    return this.generationValue;
  }

  assignment(): TopicPartition[] {
    return this.assigned.map((tp) => ({ topic: tp.topic, partition: tp.partition }));
  }

  // ---- called by the coordinator ----

  revoke(): Promise<void> {
    if (this.closed || this.fencedReason !== null) return Promise.resolve();
    if (this.assignPending) {
      // never seen by the member (no poll since): give it up without callbacks. The owner may have
      // read it (assignment()) and may still seek it: such seeks are ignored until its next poll,
      // which brings the new assignment and generation (StreamsApp then drops the tasks it built).
      this.assignPending = false;
      for (const key of this.byKey.keys()) this.stale.add(key);
      this.clearAssignment();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.revokeAck = () => {
        this.revokeAck = null;
        if (this.revokeTimer !== null) clearTimeout(this.revokeTimer);
        this.revokeTimer = null;
        resolve();
      };
      const timeout = this.options.rebalanceTimeoutMs ?? DEFAULT_REBALANCE_TIMEOUT_MS;
      this.revokeTimer = setTimeout(() => {
        this.coordinator.fence(this, `member ${this.memberId} did not poll within rebalanceTimeoutMs (${timeout} ms) during a rebalance`);
      }, timeout);
      this.wakeUp();
    });
  }

  assign(generation: number, partitions: TopicPartition[], failure: unknown): void {
    if (this.closed || this.fencedReason !== null) return;
    this.generationValue = generation;
    this.clearAssignment();
    this.assigned = partitions.map((tp) => ({ topic: tp.topic, partition: tp.partition }));
    for (const tp of this.assigned) {
      const e: Assigned = { tp, key: tpKey(tp), part: this.host.partitionLog(tp.topic, tp.partition), cursor: null };
      this.entries.push(e);
      this.byKey.set(e.key, e);
    }
    this.assignPending = true;
    if (failure !== null) this.pendingError = failure;
    if (!this.hasJoined) {
      this.hasJoined = true;
      this.joinResolve(this);
    }
    this.wakeUp();
  }

  markFenced(reason: string): void {
    if (this.closed || this.fencedReason !== null) return;
    this.fencedReason = reason;
    this.revokeAck?.();
    this.openTxn = null;
    if (!this.hasJoined) {
      this.hasJoined = true;
      this.joinReject(fenced(reason));
    }
    this.wakeUp();
  }

  markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.revokeAck?.();
    this.openTxn = null;
    if (!this.hasJoined) {
      this.hasJoined = true;
      this.joinReject(closedError('the log'));
    }
    this.wakeUp();
  }

  private clearAssignment(): void {
    this.assigned = [];
    this.entries = [];
    this.byKey.clear();
    this.paused.clear();
  }

  private wakeUp(): void {
    const w = this.wake;
    if (w !== null) {
      this.wake = null;
      w();
    }
  }

  // ---- GroupMember ----

  private ensureUsable(): void {
    if (this.closed) throw closedError(`group member ${this.memberId}`);
    if (this.fencedReason !== null) throw fenced(this.fencedReason);
    this.host.ensureOpen();
  }

  /** Null when this member may commit now. */
  fenceCheck(): StreamsError | null {
    if (this.closed) return closedError(`group member ${this.memberId}`);
    if (this.fencedReason !== null) return fenced(this.fencedReason);
    if (!this.coordinator.members.includes(this)) return fenced(`member ${this.memberId} is not in group ${this.coordinator.groupId}`);
    if (this.generationValue !== this.coordinator.generation) {
      return fenced(`member ${this.memberId} has generation ${this.generationValue}, group ${this.coordinator.groupId} is at ${this.coordinator.generation}`);
    }
    return null;
  }

  async poll(maxWaitMs: number): Promise<PollResult> {
    this.ensureUsable();
    this.stale.clear();
    const deadline = Date.now() + Math.max(0, maxWaitMs);
    while (true) {
      await this.runCallbacks();
      this.ensureUsable();
      if (this.pendingError !== null) {
        const err = this.pendingError;
        this.pendingError = null;
        throw err;
      }
      const records: ConsumedRecord[] = [];
      if (this.revokeAck === null) this.fetch(records);
      if (records.length > 0) return { records };
      const remaining = deadline - Date.now();
      if (remaining <= 0) return { records };
      // a group event may have arrived while callbacks were awaited: handle it before sleeping
      if (this.revokeAck !== null || this.assignPending || this.pendingError !== null) continue;
      const parts: PartitionLog[] = [];
      for (const e of this.entries) if (e.part !== undefined && !this.paused.has(e.key)) parts.push(e.part);
      await this.host.waitForRecords(parts, remaining, (w) => {
        this.wake = w;
      });
    }
  }

  private async runCallbacks(): Promise<void> {
    while (!this.closed && this.fencedReason === null) {
      if (this.revokeAck !== null) {
        const partitions = this.assignment();
        let failure: unknown = null;
        if (partitions.length > 0 && this.options.onRevoke !== undefined && !this.assignPending) {
          try {
            await this.options.onRevoke(partitions);
          } catch (err) {
            failure = err;
          }
        }
        this.assignPending = false;
        this.clearAssignment();
        this.revokeAck?.();
        if (failure !== null) throw failure;
        continue;
      }
      if (this.assignPending) {
        this.assignPending = false;
        if (this.options.onAssign !== undefined) await this.options.onAssign(this.assignment());
        continue;
      }
      return;
    }
  }

  private fetch(out: ConsumedRecord[]): void {
    const n = this.entries.length;
    if (n === 0) return;
    const max = this.options.maxRecords ?? DEFAULT_MAX_RECORDS;
    const parts: PartitionLog[] = [];
    const cursors: ReadCursor[] = [];
    for (const e of this.entries) {
      const part = e.part;
      if (part === undefined || part.deleted || this.paused.has(e.key)) continue;
      if (e.cursor === null) e.cursor = newCursor(this.initialPosition(e.tp, part));
      parts.push(part);
      cursors.push(e.cursor);
    }
    readFair(parts, cursors, this.rr++ % n, max, out, this.host.verifyChecksums);
  }

  private initialPosition(tp: TopicPartition, part: PartitionLog): number {
    const committed = this.host.committedOffset(this.coordinator.groupId, tp);
    if (committed !== undefined) return Math.max(committed, part.logStart);
    return this.options.autoOffsetReset === 'latest' ? part.visibleEnd : part.logStart;
  }

  seek(tp: TopicPartition, offset: number): void {
    this.ensureUsable();
    const key = tpKey(tp);
    const e = this.byKey.get(key);
    if (e === undefined) {
      if (this.stale.has(key)) return;
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `seek: ${tp.topic}-${tp.partition} is not assigned to member ${this.memberId}`);
    }
    if (!Number.isInteger(offset) || offset < 0) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `seek: invalid offset ${offset}`);
    e.cursor = newCursor(offset);
  }

  pause(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) {
      const key = tpKey(tp);
      if (this.byKey.has(key)) this.paused.add(key);
    }
  }

  resume(partitions: readonly TopicPartition[]): void {
    for (const tp of partitions) this.paused.delete(tpKey(tp));
    this.wakeUp();
  }

  caughtUp(tp: TopicPartition): boolean {
    const e = this.byKey.get(tpKey(tp));
    if (e === undefined || e.part === undefined) return false;
    const position = e.cursor === null ? this.initialPosition(e.tp, e.part) : e.cursor.position;
    return position >= e.part.visibleEnd;
  }

  /** The position of an assigned partition (for tests and the runtime's bookkeeping). */
  position(tp: TopicPartition): number | undefined {
    const e = this.byKey.get(tpKey(tp));
    if (e === undefined || e.part === undefined) return undefined;
    if (e.cursor === null) e.cursor = newCursor(this.initialPosition(e.tp, e.part));
    return Math.max(e.cursor.position, e.part.logStart);
  }

  async commitOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.ensureUsable();
    this.host.validateOffsets(offsets);
    if (offsets.length === 0) return;
    await this.host.submit({
      records: [],
      parts: [],
      groupId: this.coordinator.groupId,
      offsets: offsets.map(plainOffset),
      check: () => this.fenceCheck(),
      wantMetadata: false,
    });
  }

  /** The embedded log commits atomically: no transaction is ever left half-ended. */
  settleTransactions(): Promise<void> {
    return Promise.resolve();
  }

  beginTransaction(): Transaction {
    this.ensureUsable();
    if (!this.options.transactional) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `member ${this.memberId} of group ${this.coordinator.groupId} is not transactional`);
    }
    if (this.openTxn !== null) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `member ${this.memberId} already has an open transaction`);
    const txn = new TransactionImpl(this, this.host, this.partitioner, this.coordinator.groupId);
    this.openTxn = txn;
    return txn;
  }

  /** @internal */
  transactionDone(txn: TransactionImpl): void {
    if (this.openTxn === txn) this.openTxn = null;
  }

  close(): Promise<void> {
    if (this.closing === null) this.closing = this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.closed) return;
    let failure: unknown = null;
    const partitions = this.assignment();
    if (this.fencedReason === null && partitions.length > 0 && !this.assignPending && this.options.onRevoke !== undefined) {
      try {
        await this.options.onRevoke(partitions);
      } catch (err) {
        failure = err;
      }
    }
    this.markClosed();
    this.coordinator.leave(this);
    if (failure !== null) throw failure;
  }
}

export class TransactionImpl extends BufferedTransaction {
  private readonly member: MemberImpl;
  private readonly host: GroupHost;
  private readonly partitioner: NullKeyPartitioner;
  private readonly groupId: string;
  private parts: PartitionLog[] = [];

  constructor(member: MemberImpl, host: GroupHost, partitioner: NullKeyPartitioner, groupId: string) {
    super();
    this.member = member;
    this.host = host;
    this.partitioner = partitioner;
    this.groupId = groupId;
  }

  protected accept(record: ProducerRecord): void {
    this.parts.push(this.host.prepareRecord(record, this.partitioner));
  }

  protected async commitRecords(records: ProducerRecord[], offsets: TopicPartitionOffset[]): Promise<void> {
    const early = this.member.fenceCheck();
    if (early !== null) throw early;
    this.host.validateOffsets(offsets);
    await this.host.submit({
      records,
      parts: this.parts,
      groupId: offsets.length > 0 ? this.groupId : null,
      offsets: offsets.length > 0 ? offsets : null,
      check: () => this.member.fenceCheck(),
      wantMetadata: false,
    });
  }

  protected ended(): void {
    this.parts = [];
    this.member.transactionDone(this);
  }
}
