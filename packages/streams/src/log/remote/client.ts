/**
 * A Log whose calls run on another thread's log (server.ts), over a MessagePort: how a stream
 * thread in a worker uses the embedded log, which belongs to the thread that opened it.
 *
 * It behaves as the served log, with the differences that a thread boundary makes:
 * - Records cross as one packed buffer per poll, send or commit (wire.ts); the consumer's keys,
 *   values and headers are views into it.
 * - A transaction's records are kept here and sent with its commit (the owner sends and commits them
 *   in one go), so an error about a record (an unknown topic) shows at commit, not at `send`.
 * - `assignment()`, `generation`, `caughtUp()` and `position()` are as of the last poll or rebalance
 *   callback; after a `seek` a partition is not caught up until the next poll says so.
 * - A reader's `assign` is checked by the owner: an error shows at the next `poll`.
 */
import type { MessagePort } from 'node:worker_threads';
import { StreamsError, ErrorCodes } from '../../errors.ts';
import type {
  ConsumedRecord,
  GroupMember,
  GroupOptions,
  Log,
  LogAdmin,
  LogProducer,
  LogReader,
  PollResult,
  ProducerOptions,
  ProducerRecord,
  ReaderOptions,
  RecordMetadata,
  TopicDescription,
  TopicPartition,
  TopicPartitionOffset,
  Transaction,
} from '../types.ts';
import { tpKey } from '../types.ts';
import { BufferedTransaction, plainOffset } from '../buffered-transaction.ts';
import { fromWire, packRecords, toWire, unpackRecords, type CallbackCall, type PackedRecords, type PollReply, type Reply } from './wire.ts';

/** Connects to a log served with `serveLog` on the other end of `port`. */
export async function connectRemoteLog(port: MessagePort): Promise<Log> {
  const log = new RemoteLog(port);
  const { kind } = (await log.call('hello', -1, [])) as { kind: Log['kind'] };
  log.kind = kind;
  return log;
}

class RemoteLog implements Log {
  kind: Log['kind'] = 'embedded';
  readonly admin: LogAdmin;
  private readonly port: MessagePort;
  private nextId = 0;
  private nextHandle = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  readonly members = new Map<number, RemoteMember>();
  private closed = false;

  constructor(port: MessagePort) {
    this.port = port;
    port.on('message', (m: Reply | CallbackCall) => {
      if ('cb' in m) {
        void this.runCallback(m);
        return;
      }
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(fromWire(m.error));
    });
    port.once('close', () => {
      this.closed = true;
      const err = closed();
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    const admin = (op: string) => (...args: unknown[]) => this.call(`admin.${op}`, -1, args);
    this.admin = {
      createTopics: admin('createTopics') as LogAdmin['createTopics'],
      deleteTopics: admin('deleteTopics') as LogAdmin['deleteTopics'],
      describeTopics: async (names) => new Map((await this.call('admin.describeTopics', -1, [names])) as [string, TopicDescription][]),
      listTopics: admin('listTopics') as LogAdmin['listTopics'],
      listOffsets: admin('listOffsets') as LogAdmin['listOffsets'],
      committedOffsets: admin('committedOffsets') as LogAdmin['committedOffsets'],
    };
  }

  call(op: string, h: number, args: unknown[], transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.closed) return Promise.reject(closed());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.port.postMessage({ id, op, h, args }, transfer);
    });
  }

  post(op: string, h: number, args: unknown[]): void {
    if (this.closed) throw closed();
    this.port.postMessage({ op, h, args });
  }

  handle(): number {
    return this.nextHandle++;
  }

  private async runCallback(m: CallbackCall): Promise<void> {
    let error: unknown;
    try {
      await this.members.get(m.h)?.callback(m);
    } catch (err) {
      error = err;
    }
    this.port.postMessage(error === undefined ? { cbReply: m.cid } : { cbReply: m.cid, error: toWire(error) });
  }

  createProducer(options: ProducerOptions = {}): LogProducer {
    const h = this.handle();
    this.post('producer.create', h, [options]);
    return {
      send: async (records: readonly ProducerRecord[]) => {
        const packed = packRecords(records);
        return (await this.call('producer.send', h, [packed], [packed.buffer])) as RecordMetadata[];
      },
      close: async () => {
        await this.call('producer.close', h, []);
      },
    };
  }

  createReader(options: ReaderOptions = {}): LogReader {
    return new RemoteReader(this, this.handle(), options);
  }

  async joinGroup(options: GroupOptions): Promise<GroupMember> {
    if (options.assignor !== undefined) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'a remote log cannot take a custom assignor (a function cannot cross threads); the owner thread can');
    }
    const { onRevoke, onAssign, onWarning: _onWarning, assignor: _assignor, ...rest } = options;
    const h = this.handle();
    const member = new RemoteMember(this, h, options);
    this.members.set(h, member);
    try {
      const joined = (await this.call('group.join', h, [{ ...rest, hasRevoke: onRevoke !== undefined, hasAssign: onAssign !== undefined }])) as {
        memberId: string;
        generation: number;
        assignment: TopicPartition[];
      };
      member.joined(joined.memberId, joined.generation, joined.assignment);
    } catch (err) {
      this.members.delete(h);
      throw err;
    }
    return member;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.call('close', -1, []);
    } finally {
      this.closed = true;
      this.port.close();
    }
  }
}

class RemoteReader implements LogReader {
  private readonly positions = new Map<string, number>();
  private readonly log: RemoteLog;
  private readonly h: number;

  constructor(log: RemoteLog, h: number, options: ReaderOptions) {
    this.log = log;
    this.h = h;
    log.post('reader.create', h, [options]);
  }

  assign(partitions: readonly TopicPartitionOffset[]): void {
    this.positions.clear();
    for (const tp of partitions) this.positions.set(tpKey(tp), tp.offset);
    this.log.post('reader.assign', this.h, [partitions.map((tp) => ({ topic: tp.topic, partition: tp.partition, offset: tp.offset }))]);
  }

  async poll(maxWaitMs: number): Promise<ConsumedRecord[]> {
    const reply = (await this.log.call('reader.poll', this.h, [maxWaitMs])) as { records: PackedRecords | null; positions: [string, number][] };
    for (const [key, position] of reply.positions) this.positions.set(key, position);
    return reply.records === null ? [] : unpackRecords(reply.records);
  }

  position(tp: TopicPartition): number {
    const p = this.positions.get(tpKey(tp));
    if (p === undefined) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `position: ${tp.topic}-${tp.partition} is not assigned`);
    return p;
  }

  async close(): Promise<void> {
    await this.log.call('reader.close', this.h, []);
  }
}

class RemoteMember implements GroupMember {
  memberId = '';
  generation = 0;
  private assigned: TopicPartition[] = [];
  private assignedKeys = new Set<string>();
  private caughtUpKeys = new Set<string>();
  private positions = new Map<string, number>();
  private openTxn: RemoteTransaction | null = null;
  private readonly log: RemoteLog;
  private readonly h: number;
  private readonly options: GroupOptions;

  constructor(log: RemoteLog, h: number, options: GroupOptions) {
    this.log = log;
    this.h = h;
    this.options = options;
  }

  joined(memberId: string, generation: number, assignment: TopicPartition[]): void {
    this.memberId = memberId;
    this.generation = generation;
    this.setAssignment(assignment);
  }

  private setAssignment(assignment: readonly TopicPartition[]): void {
    this.assigned = assignment.map((tp) => ({ topic: tp.topic, partition: tp.partition }));
    this.assignedKeys = new Set(this.assigned.map(tpKey));
    for (const key of this.caughtUpKeys) if (!this.assignedKeys.has(key)) this.caughtUpKeys.delete(key);
    for (const key of this.positions.keys()) if (!this.assignedKeys.has(key)) this.positions.delete(key);
  }

  /** A rebalance callback from the owner (it runs inside the owner's poll, as on the log itself). */
  async callback(m: CallbackCall): Promise<void> {
    if (m.cb === 'revoke') {
      try {
        await this.options.onRevoke?.(m.partitions);
      } finally {
        this.setAssignment([]);
      }
    } else {
      this.generation = m.generation;
      this.setAssignment(m.partitions);
      await this.options.onAssign?.(m.partitions);
    }
  }

  assignment(): TopicPartition[] {
    return this.assigned.map((tp) => ({ topic: tp.topic, partition: tp.partition }));
  }

  async poll(maxWaitMs: number): Promise<PollResult> {
    const reply = (await this.log.call('member.poll', this.h, [maxWaitMs])) as PollReply;
    this.generation = reply.generation;
    this.setAssignment(reply.assignment);
    this.caughtUpKeys = new Set(reply.caughtUp);
    this.positions = new Map(reply.positions);
    return { records: reply.records === null ? [] : unpackRecords(reply.records) };
  }

  seek(tp: TopicPartition, offset: number): void {
    const key = tpKey(tp);
    if (!this.assignedKeys.has(key)) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `seek: ${tp.topic}-${tp.partition} is not assigned to member ${this.memberId}`);
    if (!Number.isInteger(offset) || offset < 0) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `seek: invalid offset ${offset}`);
    this.caughtUpKeys.delete(key);
    this.positions.set(key, offset);
    this.log.post('member.seek', this.h, [{ topic: tp.topic, partition: tp.partition }, offset]);
  }

  caughtUp(tp: TopicPartition): boolean {
    return this.caughtUpKeys.has(tpKey(tp));
  }

  /** As of the last poll (or seek since). */
  position(tp: TopicPartition): number | undefined {
    return this.positions.get(tpKey(tp));
  }

  pause(partitions: readonly TopicPartition[]): void {
    this.log.post('member.pause', this.h, [partitions.map((tp) => ({ topic: tp.topic, partition: tp.partition }))]);
  }

  resume(partitions: readonly TopicPartition[]): void {
    this.log.post('member.resume', this.h, [partitions.map((tp) => ({ topic: tp.topic, partition: tp.partition }))]);
  }

  async commitOffsets(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    await this.log.call('member.commitOffsets', this.h, [offsets.map(plainOffset)]);
  }

  /** The served log is the embedded one: nothing to settle. */
  settleTransactions(): Promise<void> {
    return Promise.resolve();
  }

  beginTransaction(): Transaction {
    if (!this.options.transactional) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `member ${this.memberId} of group ${this.options.groupId} is not transactional`);
    }
    if (this.openTxn !== null) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `member ${this.memberId} already has an open transaction`);
    const txn = new RemoteTransaction(this.log, this.h, () => {
      if (this.openTxn === txn) this.openTxn = null;
    });
    this.openTxn = txn;
    return txn;
  }

  async close(): Promise<void> {
    try {
      await this.log.call('member.close', this.h, []);
    } finally {
      this.log.members.delete(this.h);
    }
  }
}

class RemoteTransaction extends BufferedTransaction {
  private readonly log: RemoteLog;
  private readonly h: number;
  private readonly onEnded: () => void;

  constructor(log: RemoteLog, h: number, onEnded: () => void) {
    super();
    this.log = log;
    this.h = h;
    this.onEnded = onEnded;
  }

  /** Records are checked by the owner, at commit. */
  protected accept(): void {}

  protected async commitRecords(records: ProducerRecord[], offsets: TopicPartitionOffset[]): Promise<void> {
    const packed = records.length === 0 ? null : packRecords(records);
    await this.log.call('member.commit', this.h, [packed, offsets], packed === null ? [] : [packed.buffer]);
  }

  protected ended(): void {
    this.onEnded();
  }
}

function closed(): StreamsError {
  return new StreamsError(ErrorCodes.CLOSED, 'remote log: the connection to the owner thread is closed');
}
