/**
 * The embedded log: Kafka's guarantees (ordered partitions, dense offsets, committed group offsets,
 * atomic commits of outputs and input offsets, read_committed readers) in one process, durable in
 * a local directory, surviving SIGKILL with nothing acknowledged lost and nothing duplicated.
 *
 * Layout of `dir`:
 *   LOCK                                   pid of the owning process (O_EXCL; a dead owner's lock is taken over)
 *   topics/<topic>/topic.json              partition count and config (written last: a topic exists iff it has one)
 *   topics/<topic>/<p>/<base, 20 digits>.log  segment files (record frames: see format.ts)
 *   journal                                one crc-framed entry per commit (journal.ts)
 *   checkpoint.json                        all partition ends and group offsets up to a journal sequence
 *   trash/                                 deleted topics on their way out
 *
 * Commit protocol (the "flush", the only writer):
 *   Every write is a commit request: a plain producer's send, a transaction, or group offsets.
 *   Requests queue in memory; a flush (setImmediate) takes everything queued: the sends of the same
 *   tick, and all that arrived while the previous fsync ran (group commit). It writes them in
 *   rounds; for each round, synchronously in one JS turn, it checks each request (fenced members
 *   and deleted topics are rejected, writing nothing), assigns offsets, encodes the records of each
 *   partition into ONE buffer and writes it with ONE write at the end of the partition's active
 *   segment (rolling a segment at segment.bytes / segment.ms), then appends ONE journal entry with
 *   the new end of every touched partition (offset, segment, byte position) and the group offsets.
 *   A round may hold many requests; each request lies in exactly one round. Then (fsync=true) the
 *   touched segment files and the journal are fdatasync'ed in parallel on the thread pool. Only
 *   when that has completed do the new ends become visible to readers (read_committed) and to
 *   committedOffsets, and the requests resolve. A write error (ENOSPC, EIO) truncates what the
 *   round wrote and rejects its requests with LOG_UNAVAILABLE (retriable).
 *
 * Recovery (open): load checkpoint.json, then the journal entries after it up to the first torn or
 * crc-invalid one. Journal entries after the checkpoint are also checked against the data they
 * commit (every record frame complete, crc-valid, dense offsets, ending at the committed byte), and
 * the first entry that fails ends the journal: that covers a power loss where the journal reached
 * the disk but a segment did not (SIGKILL alone cannot cause it, the page cache survives). Every
 * partition is then truncated to its committed byte position and segment files beyond it are
 * deleted: data written without a complete journal entry (an unacknowledged send, a transaction
 * that was not committed) is discarded. Finally a fresh checkpoint is written and the journal emptied.
 *
 * Deviations from the design brief, and why:
 *  - Pipelined group commit: a flush writes its requests in rounds of ~1000 records, each with its
 *    own journal entry, and the fsync of the first round starts at once (on the thread pool) while
 *    the next rounds are encoded and written. Only one fsync is in flight; rounds written meanwhile
 *    are covered by the next one. Rounds complete (become visible, resolve) strictly in journal
 *    order, so acknowledgements are always a prefix of the journal, and recovery can stop at the
 *    first bad entry without losing an acknowledged commit.
 *  - The encode buffer is one reused scratch buffer (written synchronously, never referenced after
 *    the write): no allocation and no fresh page faults per commit.
 *  - Checkpoints, topic deletion, retention and compaction run at a "barrier": inside a flush, when
 *    no fsync round is in flight, so every journal entry is durable and no write is half done.
 *    Retention checkpoints before it touches segments (so journal entries never describe a segment
 *    that compaction rewrote) and again after.
 *  - The sparse index (offset -> byte position every ~4 KB) of the active segment is rebuilt at open
 *    by scanning it; closed segments are scanned lazily, the first time a read or retention needs
 *    them (so opening a large log does not read it all). Limit: the first read of an old segment
 *    after a restart scans it (~64 MiB at disk speed).
 *  - Group callbacks (onRevoke/onAssign) run inside the member's poll, as the Log interface says;
 *    see groups.ts.
 *  - Compaction: "latest record per key" is taken over the whole partition (the active segment
 *    included, though it is never rewritten). A tombstone is removed once its record timestamp is
 *    older than delete.retention.ms (Kafka's default, 1 day; 0 removes it at once). Compacted
 *    segments are not merged; empty ones are deleted (not the first: it keeps the log start).
 *  - Offsets and timestamps are stored as float64 (exact below 2^53).
 *  - An fsync failure (EIO after writes) cannot be undone safely (the kernel may have dropped the
 *    pages): the log then rejects every write with LOG_UNAVAILABLE until it is reopened. The
 *    requests of that flush were rejected, but recovery may find them committed (their journal
 *    entry and data may be on disk).
 *
 * Limits: one process per directory; transactions and pending sends are buffered in memory until
 * their commit; compaction rewrites a partition's closed segments (synchronously, at a barrier)
 * each time a segment rolls; checkpoints scale with the number of partitions and groups.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StreamsError, ErrorCodes } from '../../errors.ts';
import { NullKeyPartitioner, partitionForKey } from '../partitioner.ts';
import type {
  ConsumedRecord,
  GroupMember,
  GroupOptions,
  Log,
  LogAdmin,
  LogProducer,
  LogReader,
  ProducerOptions,
  ProducerRecord,
  ReaderOptions,
  RecordMetadata,
  TopicConfig,
  TopicDescription,
  TopicPartition,
  TopicPartitionOffset,
  TopicSpec,
} from '../types.ts';
import { tpKey } from '../types.ts';
import { recordSize } from './format.ts';
import { DEFAULT_MAX_RECORDS, GroupCoordinator } from './groups.ts';
import type { CommitRequest, GroupHost } from './groups.ts';
import { Journal, readCheckpoint, writeCheckpoint } from './journal.ts';
import type { CheckpointData, EndTuple, GroupOffsetTuple, JournalEntry } from './journal.ts';
import { acquirePidLock, releasePidLock } from '../../pid-lock.ts';
import { fsyncDir, newCursor, PartitionLog, readFair } from './partition.ts';
import type { AppendUndo, PartitionEnd, ReadCursor, ResolvedTopicConfig } from './partition.ts';

export interface EmbeddedLogOptions {
  dir: string;
  /** fdatasync segment files and the journal before a commit resolves. Default true. */
  fsync?: boolean;
  /** Partition count for a TopicSpec without one. Default 1. */
  defaultPartitions?: number;
  /** Default segment.bytes of topics that do not set it. Default 64 MiB. */
  segmentBytes?: number;
  /** How often retention and compaction run. Default 60 s; 0 disables the timer. */
  retentionCheckIntervalMs?: number;
  /** Check each record's crc32 when reading. Default true. */
  verifyChecksums?: boolean;
}

export interface EmbeddedLog extends Log {
  readonly kind: 'embedded';
  readonly dir: string;
  /** Runs retention (time, size) and compaction now, as the timer does. */
  runRetention(): Promise<void>;
  /** Writes a checkpoint and empties the journal now. */
  checkpoint(): Promise<void>;
}

const MiB = 1024 * 1024;
const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_SEGMENT_BYTES = 64 * MiB;
const DEFAULT_RETENTION_CHECK_MS = 60_000;
/** A checkpoint is due when the journal or the data committed since the last one exceeds these. */
const CHECKPOINT_JOURNAL_BYTES = 4 * MiB;
const CHECKPOINT_DATA_BYTES = 256 * MiB;
/** A flush writes its requests in rounds of about this many records (see flush). */
const ROUND_RECORDS = 1000;
const TRASH_DIR = 'trash';
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

interface TopicState {
  name: string;
  dir: string;
  config: TopicConfig;
  partitions: PartitionLog[];
}

interface QueuedCommit extends CommitRequest {
  timestamp: number;
  offsetsOut: number[] | null;
  resolve: (m: RecordMetadata[]) => void;
  reject: (err: unknown) => void;
}

interface Barrier {
  run: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Requests written together under one journal entry. */
interface Round {
  commits: QueuedCommit[];
  parts: PartitionLog[];
  ends: PartitionEnd[];
  groups: GroupOffsetTuple[];
  /** Segment files written. */
  fds: number[];
}

function closedError(): StreamsError {
  return new StreamsError(ErrorCodes.CLOSED, 'the embedded log is closed');
}

function unavailable(err: unknown): StreamsError {
  if (err instanceof StreamsError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `embedded log write failed${code === undefined ? '' : ` (${code})`}: ${(err as Error).message}`, {
    cause: err,
  });
}

function invalid(message: string): StreamsError {
  return new StreamsError(ErrorCodes.INVALID_ARGUMENT, message);
}

function unknownTopic(topic: string): StreamsError {
  return new StreamsError(ErrorCodes.UNKNOWN_TOPIC, `unknown topic ${JSON.stringify(topic)}`, { details: { topic } });
}

function configNumber(config: TopicConfig, key: string, fallback: number): number {
  const raw = config[key];
  if (raw === undefined) return fallback;
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isFinite(n) || !Number.isInteger(n) || n < -1) throw invalid(`topic config ${key}=${String(raw)} is not a valid number`);
  return n;
}

function resolveConfig(config: TopicConfig, defaultSegmentBytes: number): ResolvedTopicConfig {
  const policy = String(config['cleanup.policy'] ?? 'delete');
  const parts = policy.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((s) => s !== 'delete' && s !== 'compact')) throw invalid(`topic config cleanup.policy=${policy} is not valid`);
  const segmentBytes = configNumber(config, 'segment.bytes', defaultSegmentBytes);
  if (segmentBytes < 1) throw invalid(`topic config segment.bytes=${segmentBytes} must be positive`);
  const segmentMs = configNumber(config, 'segment.ms', 7 * DAY_MS);
  if (segmentMs < 1) throw invalid(`topic config segment.ms=${segmentMs} must be positive`);
  const deleteRetentionMs = configNumber(config, 'delete.retention.ms', DAY_MS);
  if (deleteRetentionMs < 0) throw invalid(`topic config delete.retention.ms=${deleteRetentionMs} must be >= 0`);
  return {
    segmentBytes,
    segmentMs,
    retentionMs: configNumber(config, 'retention.ms', 7 * DAY_MS),
    retentionBytes: configNumber(config, 'retention.bytes', -1),
    deleteRetentionMs,
    compact: parts.includes('compact'),
    delete: parts.includes('delete'),
  };
}

export async function openEmbeddedLog(options: EmbeddedLogOptions): Promise<EmbeddedLog> {
  return new EmbeddedLogImpl(options);
}

class EmbeddedLogImpl implements EmbeddedLog, GroupHost {
  readonly kind = 'embedded' as const;
  readonly dir: string;
  readonly admin: LogAdmin;
  readonly verifyChecksums: boolean;
  private readonly durable: boolean;
  private readonly defaultPartitions: number;
  private readonly defaultSegmentBytes: number;
  private readonly topicsDir: string;
  private readonly lockFile: string;
  private readonly journal: Journal;
  private readonly topics = new Map<string, TopicState>();
  /** groupId -> tpKey -> committed offset (durable and visible). */
  private readonly groupOffsets = new Map<string, Map<string, TopicPartitionOffset>>();
  private readonly coordinators = new Map<string, GroupCoordinator>();
  private readonly readers = new Set<ReaderImpl>();
  private readonly sleepers = new Set<() => void>();
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closingPromise: Promise<void> | null = null;
  private failed: StreamsError | null = null;
  private seq = 0;
  private queue: QueuedCommit[] = [];
  private barriers: Barrier[] = [];
  /** Rounds written (journal entry appended) and waiting for the next fsync. */
  private unsynced: Round[] = [];
  /** Rounds whose fsync is running. */
  private syncing: Round[] | null = null;
  private flushScheduled = false;
  private checkpointDue = false;
  private dataSinceCheckpoint = 0;
  private readonly timer: NodeJS.Timeout | null;

  constructor(options: EmbeddedLogOptions) {
    this.dir = path.resolve(options.dir);
    this.durable = options.fsync ?? true;
    this.defaultPartitions = options.defaultPartitions ?? 1;
    this.defaultSegmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.verifyChecksums = options.verifyChecksums ?? true;
    this.topicsDir = path.join(this.dir, 'topics');
    fs.mkdirSync(this.topicsDir, { recursive: true });
    this.lockFile = path.join(this.dir, 'LOCK');
    acquirePidLock(this.lockFile, { what: `log directory ${this.dir}` });
    try {
      this.journal = new Journal(this.dir);
      try {
        this.recover();
      } catch (err) {
        for (const t of this.topics.values()) for (const p of t.partitions) p.closeFiles();
        this.journal.close();
        throw err;
      }
    } catch (err) {
      releasePidLock(this.lockFile);
      throw err;
    }
    this.admin = this.makeAdmin();
    const interval = options.retentionCheckIntervalMs ?? DEFAULT_RETENTION_CHECK_MS;
    if (interval > 0) {
      this.timer = setInterval(() => {
        if (this.state !== 'open') return;
        this.barrier(() => this.retentionNow(false)).catch((err: unknown) => {
          if (this.state === 'open') process.emitWarning(`embedded log retention failed: ${(err as Error).message}`);
        });
      }, interval);
      this.timer.unref();
    } else {
      this.timer = null;
    }
  }

  // ---------------------------------------------------------------- recovery

  private recover(): void {
    // leftovers of a topic deletion (renamed away, then removed)
    fs.rmSync(path.join(this.dir, TRASH_DIR), { recursive: true, force: true });
    fs.rmSync(path.join(this.dir, 'checkpoint.json.tmp'), { force: true });
    const checkpoint = readCheckpoint(this.dir);
    // topics
    const metas = new Map<string, { partitions: number; config: TopicConfig; dir: string }>();
    for (const name of fs.readdirSync(this.topicsDir)) {
      const dir = path.join(this.topicsDir, name);
      if (!fs.statSync(dir).isDirectory()) continue;
      let meta: { name: string; partitions: number; config?: TopicConfig };
      try {
        meta = JSON.parse(fs.readFileSync(path.join(dir, 'topic.json'), 'utf8')) as typeof meta;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          // creation did not complete
          fs.rmSync(dir, { recursive: true, force: true });
          continue;
        }
        throw new StreamsError(ErrorCodes.LOG_CORRUPT, `${path.join(dir, 'topic.json')} is unreadable`, { cause: err });
      }
      metas.set(meta.name, { partitions: meta.partitions, config: meta.config ?? {}, dir });
    }
    // committed ends and group offsets from the checkpoint
    const ends = new Map<string, PartitionEnd>();
    const groups = new Map<string, TopicPartitionOffset & { groupId: string }>();
    const known = (topic: string, partition: number): boolean => {
      const m = metas.get(topic);
      return m !== undefined && partition >= 0 && partition < m.partitions;
    };
    const cpSeq = checkpoint?.seq ?? 0;
    if (checkpoint !== null) {
      for (const [topic, partition, offset, segBase, pos] of checkpoint.ends) {
        if (known(topic, partition)) ends.set(tpKey({ topic, partition }), { offset, segBase, pos });
      }
      for (const [groupId, topic, partition, offset, metadata] of checkpoint.groups) {
        if (known(topic, partition)) groups.set(`${groupId}\u0000${tpKey({ topic, partition })}`, withMeta({ groupId, topic, partition, offset }, metadata));
      }
    }
    // journal entries after the checkpoint, each checked against the data it commits
    const entries = this.journal.readEntries();
    let seq = cpSeq;
    const fds = new Map<string, number>();
    try {
      for (const entry of entries) {
        if (entry.s <= cpSeq) continue;
        if (entry.s !== seq + 1) break;
        const next: Array<[string, PartitionEnd]> = [];
        let ok = true;
        for (const [topic, partition, offset, segBase, pos] of entry.p) {
          if (!known(topic, partition)) continue;
          const key = tpKey({ topic, partition });
          const from = ends.get(key) ?? { offset: 0, segBase: 0, pos: 0 };
          const to = { offset, segBase, pos };
          const dir = path.join(metas.get(topic)!.dir, String(partition));
          if (!PartitionLog.verifyAppend(dir, from, to, fds)) {
            ok = false;
            break;
          }
          next.push([key, to]);
        }
        if (!ok) break;
        for (const [key, to] of next) ends.set(key, to);
        for (const [groupId, topic, partition, offset, metadata] of entry.g ?? []) {
          if (known(topic, partition)) groups.set(`${groupId}\u0000${tpKey({ topic, partition })}`, withMeta({ groupId, topic, partition, offset }, metadata));
        }
        seq = entry.s;
      }
    } finally {
      for (const fd of fds.values()) fs.closeSync(fd);
    }
    this.seq = seq;
    // open partitions at their committed ends (truncating what was not committed)
    for (const [name, meta] of metas) {
      const config = resolveConfig(meta.config, this.defaultSegmentBytes);
      const partitions: PartitionLog[] = [];
      for (let p = 0; p < meta.partitions; p++) {
        const end = ends.get(tpKey({ topic: name, partition: p })) ?? null;
        partitions.push(PartitionLog.open(name, p, path.join(meta.dir, String(p)), this.durable, config, end));
      }
      this.topics.set(name, { name, dir: meta.dir, config: meta.config, partitions });
    }
    for (const g of groups.values()) this.setGroupOffset(g.groupId, g);
    this.checkpointNow();
  }

  // ---------------------------------------------------------------- checkpoint

  /** Writes a checkpoint and empties the journal. Only at a barrier (nothing written is unsynced). */
  private checkpointNow(): void {
    const ends: EndTuple[] = [];
    for (const t of this.topics.values()) {
      for (const p of t.partitions) {
        p.closeIdleWriters();
        const e = p.committedEnd();
        ends.push([t.name, p.partition, e.offset, e.segBase, e.pos]);
      }
    }
    const groups: GroupOffsetTuple[] = [];
    for (const [groupId, m] of this.groupOffsets) {
      for (const o of m.values()) groups.push(groupTuple(groupId, o));
    }
    const data: CheckpointData = { version: 1, seq: this.seq, ends, groups };
    writeCheckpoint(this.dir, data, this.durable);
    this.journal.truncate(this.durable);
    this.checkpointDue = false;
    this.dataSinceCheckpoint = 0;
  }

  // ---------------------------------------------------------------- the flush (group commit)

  ensureOpen(): void {
    if (this.state !== 'open') throw closedError();
  }

  submit(req: CommitRequest): Promise<RecordMetadata[]> {
    if (this.state !== 'open') return Promise.reject(closedError());
    return this.enqueue(req);
  }

  private enqueue(req: CommitRequest): Promise<RecordMetadata[]> {
    if (this.failed !== null) return Promise.reject(this.failed);
    return new Promise<RecordMetadata[]>((resolve, reject) => {
      this.queue.push({
        ...req,
        timestamp: Date.now(),
        offsetsOut: req.wantMetadata ? new Array<number>(req.records.length) : null,
        resolve,
        reject,
      });
      this.scheduleFlush();
    });
  }

  /** Runs `fn` synchronously when nothing is being written or synced. */
  private barrier(fn: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.barriers.push({ run: fn, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.barriers.length > 0 || this.checkpointDue) {
      // barriers need a quiet log: hold new writes until every written round is synced
      if (this.syncing !== null || this.unsynced.length > 0) return; // resumed when the sync completes
      this.runBarriers();
    }
    if (this.queue.length === 0) return;
    const queued = this.queue;
    this.queue = [];
    if (this.failed !== null) {
      for (const c of queued) c.reject(this.failed);
      return;
    }
    // Write in rounds of about ROUND_RECORDS records, starting an fsync as soon as one is written:
    // the fsync runs on the thread pool while this thread encodes and writes the next rounds, which
    // the next fsync then covers together.
    let i = 0;
    while (i < queued.length) {
      let j = i;
      let records = 0;
      do {
        records += queued[j]!.records.length;
        j++;
      } while (j < queued.length && records < ROUND_RECORDS);
      const round = this.write(i === 0 && j === queued.length ? queued : queued.slice(i, j));
      i = j;
      if (round === null) continue;
      if (!this.durable || (round.parts.length === 0 && round.groups.length === 0 && this.syncing === null && this.unsynced.length === 0)) {
        // nothing to sync (fsync off, or a request that wrote nothing while all before it is durable)
        this.complete(round);
        continue;
      }
      this.unsynced.push(round);
      this.startSync();
    }
    if (!this.durable && (this.queue.length > 0 || this.barriers.length > 0 || this.checkpointDue)) this.scheduleFlush();
  }

  private runBarriers(): void {
    if (this.checkpointDue && this.failed === null) {
      try {
        this.checkpointNow();
      } catch (err) {
        process.emitWarning(`embedded log checkpoint failed: ${(err as Error).message}`);
      }
    }
    this.checkpointDue = false;
    const barriers = this.barriers;
    this.barriers = [];
    for (const b of barriers) {
      try {
        b.run();
        b.resolve();
      } catch (err) {
        b.reject(err);
      }
    }
  }

  /**
   * Writes the queued requests: checks them, appends each partition's records with one write,
   * then one journal entry. Synchronous. Returns the written round, or null when all were rejected.
   */
  private write(queued: QueuedCommit[]): Round | null {
    // 1. checks, at write time (after every earlier commit)
    const commits: QueuedCommit[] = [];
    for (const c of queued) {
      let err: StreamsError | null = null;
      for (const p of c.parts) {
        if (p.deleted) {
          err = unknownTopic(p.topic);
          break;
        }
      }
      if (err === null && c.offsets !== null) {
        for (const o of c.offsets) {
          if (this.partitionLog(o.topic, o.partition) === undefined) {
            err = unknownTopic(o.topic);
            break;
          }
        }
      }
      if (err === null && c.check !== null) err = c.check();
      if (err !== null) c.reject(err);
      else commits.push(c);
    }
    if (commits.length === 0) return null;
    // 2. gather records per partition, assign offsets
    const parts: PartitionLog[] = [];
    const groups: GroupOffsetTuple[] = [];
    for (const c of commits) {
      const records = c.records;
      const cparts = c.parts;
      const out = c.offsetsOut;
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        const p = cparts[i]!;
        if (p.pendRecords.length === 0) parts.push(p);
        if (out !== null) out[i] = p.nextOffset + p.pendRecords.length;
        p.pendRecords.push(r);
        p.pendTimestamps.push(r.timestamp ?? c.timestamp);
        p.pendBytes += recordSize(r.key, r.value, r.headers);
      }
      if (c.groupId !== null && c.offsets !== null) {
        for (const o of c.offsets) groups.push(groupTuple(c.groupId, o));
      }
    }
    if (parts.length === 0 && groups.length === 0) return { commits, parts, ends: [], groups, fds: [] };
    // 3. data, then one journal entry
    const undos: AppendUndo[] = [];
    const ends: PartitionEnd[] = [];
    const fds: number[] = [];
    let bytes = 0;
    const now = Date.now();
    try {
      for (const p of parts) {
        undos.push(p.undoPoint());
        if (p.shouldRoll(p.pendBytes, now)) p.roll(now);
        bytes += p.pendBytes;
        ends.push(p.appendPending());
        fds.push(p.active.fd);
      }
      const entry: JournalEntry = { s: this.seq + 1, p: ends.map((e, i) => [parts[i]!.topic, parts[i]!.partition, e.offset, e.segBase, e.pos]) };
      if (groups.length > 0) entry.g = groups;
      this.journal.append(entry);
      this.seq++;
    } catch (err) {
      for (let i = undos.length - 1; i >= 0; i--) undos[i]!.part.undo(undos[i]!);
      for (const p of parts) p.clearPending();
      const e = unavailable(err);
      for (const c of commits) c.reject(e);
      if (this.queue.length > 0 || this.barriers.length > 0) this.scheduleFlush();
      return null;
    }
    for (const p of parts) p.clearPending();
    this.dataSinceCheckpoint += bytes;
    if (this.journal.size >= CHECKPOINT_JOURNAL_BYTES || this.dataSinceCheckpoint >= CHECKPOINT_DATA_BYTES) this.checkpointDue = true;
    return { commits, parts, ends, groups, fds };
  }

  /**
   * Starts one fsync of everything written and not yet synced, unless one is running (then it
   * starts when that completes). Rounds complete in write order, so acknowledgements are always a
   * prefix of the journal.
   */
  private startSync(): void {
    if (this.syncing !== null || this.unsynced.length === 0) return;
    const rounds = this.unsynced;
    this.unsynced = [];
    this.syncing = rounds;
    const fds = new Set<number>();
    for (const r of rounds) for (const fd of r.fds) fds.add(fd);
    let pending = fds.size + 1;
    let failure: NodeJS.ErrnoException | null = null;
    const done = (err: NodeJS.ErrnoException | null): void => {
      if (err !== null && failure === null) failure = err;
      if (--pending > 0) return;
      this.syncing = null;
      if (failure !== null) {
        this.failed = new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `embedded log ${this.dir}: fsync failed (${failure.code ?? 'error'}); reopen the log`, {
          cause: failure,
        });
        for (const r of [...rounds, ...this.unsynced]) for (const c of r.commits) c.reject(this.failed);
        this.unsynced = [];
      } else {
        for (const r of rounds) this.complete(r);
        this.startSync();
      }
      if (this.queue.length > 0 || this.barriers.length > 0 || this.checkpointDue) this.scheduleFlush();
    };
    for (const fd of fds) fs.fdatasync(fd, done);
    fs.fdatasync(this.journal.fd, done);
  }

  /** The round is durable: make it visible and resolve its requests. */
  private complete(round: Round): void {
    for (let i = 0; i < round.parts.length; i++) round.parts[i]!.publish(round.ends[i]!);
    for (const [groupId, topic, partition, offset, metadata] of round.groups) this.setGroupOffset(groupId, withMeta({ topic, partition, offset }, metadata));
    for (const c of round.commits) {
      const out = c.offsetsOut;
      if (out === null) {
        c.resolve([]);
        continue;
      }
      const meta = new Array<RecordMetadata>(out.length);
      for (let i = 0; i < out.length; i++) {
        const p = c.parts[i]!;
        meta[i] = { topic: p.topic, partition: p.partition, offset: out[i]! };
      }
      c.resolve(meta);
    }
  }

  private setGroupOffset(groupId: string, o: TopicPartitionOffset): void {
    let m = this.groupOffsets.get(groupId);
    if (m === undefined) {
      m = new Map();
      this.groupOffsets.set(groupId, m);
    }
    m.set(tpKey(o), withMeta({ topic: o.topic, partition: o.partition, offset: o.offset }, o.metadata));
  }

  // ---------------------------------------------------------------- GroupHost

  partitionCount(topic: string): number | undefined {
    return this.topics.get(topic)?.partitions.length;
  }

  partitionLog(topic: string, partition: number): PartitionLog | undefined {
    return this.topics.get(topic)?.partitions[partition];
  }

  committedOffset(groupId: string, tp: TopicPartition): number | undefined {
    return this.groupOffsets.get(groupId)?.get(tpKey(tp))?.offset;
  }

  prepareRecord(record: ProducerRecord, partitioner: NullKeyPartitioner): PartitionLog {
    const t = this.topics.get(record.topic);
    if (t === undefined) throw unknownTopic(record.topic);
    const n = t.partitions.length;
    const { key, value } = record;
    if (key !== null && !(key instanceof Uint8Array)) throw invalid(`record key must be a Buffer or null (topic ${record.topic})`);
    if (value !== null && !(value instanceof Uint8Array)) throw invalid(`record value must be a Buffer or null (topic ${record.topic})`);
    if (record.timestamp !== undefined && !Number.isFinite(record.timestamp)) throw invalid(`record timestamp ${record.timestamp} is not a number`);
    let p = record.partition;
    if (p === undefined) {
      p = key !== null ? partitionForKey(key, n) : partitioner.partition(record.topic, n);
    } else if (!Number.isInteger(p) || p < 0 || p >= n) {
      throw invalid(`partition ${p} of topic ${record.topic} does not exist (${n} partitions)`);
    }
    return t.partitions[p]!;
  }

  validateOffsets(offsets: readonly TopicPartitionOffset[]): void {
    for (const o of offsets) {
      if (this.partitionLog(o.topic, o.partition) === undefined) throw unknownTopic(o.topic);
      if (!Number.isInteger(o.offset) || o.offset < 0) throw invalid(`offset ${o.offset} for ${o.topic}-${o.partition} is not valid`);
    }
  }

  waitForRecords(parts: readonly PartitionLog[], ms: number, setWake: (wake: (() => void) | null) => void): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        for (const p of parts) p.waiters.delete(finish);
        this.sleepers.delete(finish);
        setWake(null);
        resolve();
      };
      const timer = setTimeout(finish, ms);
      for (const p of parts) p.waiters.add(finish);
      this.sleepers.add(finish);
      setWake(finish);
    });
  }

  // ---------------------------------------------------------------- retention

  runRetention(): Promise<void> {
    if (this.state !== 'open') return Promise.reject(closedError());
    return this.barrier(() => this.retentionNow(true));
  }

  checkpoint(): Promise<void> {
    if (this.state !== 'open') return Promise.reject(closedError());
    return this.barrier(() => {
      if (this.failed === null) this.checkpointNow();
    });
  }

  private retentionNow(force: boolean): void {
    if (this.failed !== null) return;
    // journal entries must never describe a segment that compaction rewrites: start from a checkpoint
    if (this.journal.size > 0) this.checkpointNow();
    const now = Date.now();
    let changed = false;
    for (const t of this.topics.values()) {
      for (const p of t.partitions) {
        if (p.compact(now, force)) changed = true;
        if (p.applyRetention(now)) changed = true;
        if (p.rollIfOld(now)) changed = true;
      }
    }
    if (changed) this.checkpointNow();
  }

  // ---------------------------------------------------------------- admin

  private makeAdmin(): LogAdmin {
    return {
      createTopics: async (specs) => this.createTopics(specs),
      deleteTopics: async (names) => this.deleteTopics(names),
      describeTopics: async (names) => {
        this.ensureOpen();
        const out = new Map<string, TopicDescription>();
        for (const name of names) {
          const t = this.topics.get(name);
          if (t !== undefined) out.set(name, { name, partitions: t.partitions.length, config: { ...t.config } });
        }
        return out;
      },
      listTopics: async () => {
        this.ensureOpen();
        return [...this.topics.keys()].sort();
      },
      listOffsets: async (partitions, which) => {
        this.ensureOpen();
        return partitions.map((tp) => {
          const p = this.partitionLog(tp.topic, tp.partition);
          if (p === undefined) throw unknownTopic(tp.topic);
          return { topic: tp.topic, partition: tp.partition, offset: which === 'earliest' ? p.logStart : p.visibleEnd };
        });
      },
      committedOffsets: async (groupId, partitions) => {
        this.ensureOpen();
        const m = this.groupOffsets.get(groupId);
        const out: TopicPartitionOffset[] = [];
        if (m === undefined) return out;
        for (const tp of partitions) {
          const o = m.get(tpKey(tp));
          if (o !== undefined) out.push(withMeta({ topic: o.topic, partition: o.partition, offset: o.offset }, o.metadata));
        }
        return out;
      },
    };
  }

  private createTopics(specs: readonly TopicSpec[]): void {
    this.ensureOpen();
    const created: string[] = [];
    for (const spec of specs) {
      const name = spec.name;
      if (typeof name !== 'string' || !TOPIC_NAME.test(name) || name === '.' || name === '..') {
        throw invalid(`topic name ${JSON.stringify(name)} is not valid (1-249 of [a-zA-Z0-9._-])`);
      }
      const partitions = (spec.partitions as number | undefined) ?? this.defaultPartitions;
      if (!Number.isInteger(partitions) || partitions < 1) throw invalid(`topic ${name}: partition count ${partitions} is not valid`);
      const config: TopicConfig = { ...(spec.config ?? {}) };
      const resolved = resolveConfig(config, this.defaultSegmentBytes);
      const existing = this.topics.get(name);
      if (existing !== undefined) {
        if (existing.partitions.length !== partitions) {
          throw new StreamsError(ErrorCodes.TOPIC_CONFLICT, `topic ${name} exists with ${existing.partitions.length} partitions, not ${partitions}`, {
            details: { topic: name, partitions: existing.partitions.length, requested: partitions },
          });
        }
        continue;
      }
      const dir = path.join(this.topicsDir, name);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      const logs: PartitionLog[] = [];
      try {
        for (let p = 0; p < partitions; p++) logs.push(PartitionLog.create(name, p, path.join(dir, String(p)), this.durable, resolved));
        // topic.json last: the topic exists once it is in place
        const file = path.join(dir, 'topic.json');
        fs.writeFileSync(`${file}.tmp`, JSON.stringify({ name, partitions, config }));
        if (this.durable) {
          const fd = fs.openSync(`${file}.tmp`, 'r+');
          fs.fsyncSync(fd);
          fs.closeSync(fd);
        }
        fs.renameSync(`${file}.tmp`, file);
        if (this.durable) {
          fsyncDir(dir);
          fsyncDir(this.topicsDir);
        }
      } catch (err) {
        for (const l of logs) l.closeFiles();
        throw unavailable(err);
      }
      this.topics.set(name, { name, dir, config, partitions: logs });
      created.push(name);
    }
    if (created.length > 0) this.topicsChanged(created);
  }

  private async deleteTopics(names: readonly string[]): Promise<void> {
    this.ensureOpen();
    const removed: string[] = [];
    await this.barrier(() => {
      // rename away (atomic: the topic is gone for a restart), checkpoint (so that no journal entry
      // naming it can replay onto a recreated topic of the same name), then remove the files
      const trashDir = path.join(this.dir, TRASH_DIR);
      const trash: string[] = [];
      for (const name of names) {
        const t = this.topics.get(name);
        if (t === undefined) continue;
        fs.mkdirSync(trashDir, { recursive: true });
        const to = path.join(trashDir, `${name}-${Date.now()}-${trash.length}`);
        fs.renameSync(t.dir, to);
        trash.push(to);
        this.topics.delete(name);
        for (const p of t.partitions) {
          p.deleted = true;
          p.closeFiles();
          p.wake();
        }
        for (const m of this.groupOffsets.values()) {
          for (const [k, o] of m) if (o.topic === name) m.delete(k);
        }
        removed.push(name);
      }
      if (removed.length === 0) return;
      if (this.durable) fsyncDir(this.topicsDir);
      if (this.failed === null) this.checkpointNow();
      for (const d of trash) fs.rmSync(d, { recursive: true, force: true });
    });
    if (removed.length > 0) this.topicsChanged(removed);
  }

  private topicsChanged(names: string[]): void {
    for (const c of this.coordinators.values()) if (c.subscribesTo(names)) c.requestRebalance();
  }

  // ---------------------------------------------------------------- clients

  createProducer(options?: ProducerOptions): LogProducer {
    this.ensureOpen();
    return new ProducerImpl(this, options ?? {});
  }

  createReader(options?: ReaderOptions): LogReader {
    this.ensureOpen();
    const r = new ReaderImpl(this, options ?? {}, () => this.readers.delete(r));
    this.readers.add(r);
    return r;
  }

  async joinGroup(options: GroupOptions): Promise<GroupMember> {
    this.ensureOpen();
    if (typeof options.groupId !== 'string' || options.groupId.length === 0) throw invalid('joinGroup: groupId is required');
    if (!Array.isArray(options.topics) || options.topics.length === 0) throw invalid('joinGroup: topics must be a non-empty array');
    let c = this.coordinators.get(options.groupId);
    if (c === undefined) {
      c = new GroupCoordinator(this, options.groupId);
      this.coordinators.set(options.groupId, c);
    }
    return c.join(options);
  }

  // ---------------------------------------------------------------- close

  close(): Promise<void> {
    if (this.closingPromise === null) this.closingPromise = this.doClose();
    return this.closingPromise;
  }

  private async doClose(): Promise<void> {
    this.state = 'closing';
    if (this.timer !== null) clearInterval(this.timer);
    for (const c of this.coordinators.values()) c.shutdown();
    this.coordinators.clear();
    for (const r of [...this.readers]) r.markClosed();
    for (const w of [...this.sleepers]) w();
    // everything queued before close is written and synced
    await this.enqueue({ records: [], parts: [], groupId: null, offsets: null, check: null, wantMetadata: false }).catch(() => undefined);
    await this.barrier(() => {
      try {
        if (this.failed === null) this.checkpointNow();
      } finally {
        for (const t of this.topics.values()) for (const p of t.partitions) p.closeFiles();
        this.journal.close();
        releasePidLock(this.lockFile);
        this.state = 'closed';
      }
    });
  }
}

class ProducerImpl implements LogProducer {
  private readonly log: EmbeddedLogImpl;
  private readonly partitioner = new NullKeyPartitioner();
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;

  constructor(log: EmbeddedLogImpl, _options: ProducerOptions) {
    this.log = log;
  }

  send(records: readonly ProducerRecord[]): Promise<RecordMetadata[]> {
    if (this.closed) return Promise.reject(new StreamsError(ErrorCodes.CLOSED, 'the producer is closed'));
    const n = records.length;
    if (n === 0) return Promise.resolve([]);
    const recs = new Array<ProducerRecord>(n);
    const parts = new Array<PartitionLog>(n);
    try {
      this.log.ensureOpen();
      for (let i = 0; i < n; i++) {
        const r = records[i]!;
        recs[i] = r;
        parts[i] = this.log.prepareRecord(r, this.partitioner);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const p = this.log.submit({ records: recs, parts, groupId: null, offsets: null, check: null, wantMetadata: true });
    this.pending.add(p);
    const forget = (): void => {
      this.pending.delete(p);
    };
    p.then(forget, forget);
    return p;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
  }
}

interface ReaderEntry {
  tp: TopicPartition;
  key: string;
  part: PartitionLog;
  cursor: ReadCursor;
}

class ReaderImpl implements LogReader {
  private readonly log: EmbeddedLogImpl;
  private readonly maxRecords: number;
  private readonly onClose: () => void;
  private entries: ReaderEntry[] = [];
  private byKey = new Map<string, ReaderEntry>();
  private closed = false;
  private wake: (() => void) | null = null;
  private rr = 0;

  constructor(log: EmbeddedLogImpl, options: ReaderOptions, onClose: () => void) {
    this.log = log;
    this.maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    this.onClose = onClose;
  }

  private ensureUsable(): void {
    if (this.closed) throw new StreamsError(ErrorCodes.CLOSED, 'the reader is closed');
    this.log.ensureOpen();
  }

  assign(partitions: readonly TopicPartitionOffset[]): void {
    this.ensureUsable();
    const entries: ReaderEntry[] = [];
    const byKey = new Map<string, ReaderEntry>();
    for (const tpo of partitions) {
      const part = this.log.partitionLog(tpo.topic, tpo.partition);
      if (part === undefined) throw unknownTopic(tpo.topic);
      if (!Number.isInteger(tpo.offset)) throw invalid(`assign: offset ${tpo.offset} is not an integer`);
      const tp = { topic: tpo.topic, partition: tpo.partition };
      const e: ReaderEntry = { tp, key: tpKey(tp), part, cursor: newCursor(Math.max(tpo.offset, part.logStart)) };
      entries.push(e);
      byKey.set(e.key, e);
    }
    this.entries = entries;
    this.byKey = byKey;
    if (this.wake !== null) this.wake();
  }

  async poll(maxWaitMs: number): Promise<ConsumedRecord[]> {
    this.ensureUsable();
    const deadline = Date.now() + Math.max(0, maxWaitMs);
    while (true) {
      const out: ConsumedRecord[] = [];
      const entries = this.entries;
      const n = entries.length;
      if (n > 0) {
        const live = entries.filter((e) => !e.part.deleted);
        readFair(
          live.map((e) => e.part),
          live.map((e) => e.cursor),
          this.rr++ % n,
          this.maxRecords,
          out,
          this.log.verifyChecksums,
        );
      }
      if (out.length > 0) return out;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return out;
      await this.log.waitForRecords(
        entries.map((e) => e.part),
        remaining,
        (w) => {
          this.wake = w;
        },
      );
      this.ensureUsable();
    }
  }

  position(tp: TopicPartition): number {
    const e = this.byKey.get(tpKey(tp));
    if (e === undefined) throw invalid(`position: ${tp.topic}-${tp.partition} is not assigned`);
    return Math.max(e.cursor.position, e.part.logStart);
  }

  markClosed(): void {
    this.closed = true;
    if (this.wake !== null) this.wake();
  }

  async close(): Promise<void> {
    this.markClosed();
    this.onClose();
  }
}

/** Adds commit metadata to an offset when there is some (kept out of the object otherwise). */
function withMeta<T extends object>(o: T, metadata: string | undefined): T & { metadata?: string } {
  return metadata === undefined ? o : { ...o, metadata };
}

function groupTuple(groupId: string, o: TopicPartitionOffset): GroupOffsetTuple {
  return o.metadata === undefined ? [groupId, o.topic, o.partition, o.offset] : [groupId, o.topic, o.partition, o.offset, o.metadata];
}
