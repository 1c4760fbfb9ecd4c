/**
 * The data-lake sink (docs/lake.md): archives topics (default `events.raw`) to Parquet files in hive
 * partitions, exactly-once, like Confluent's S3/GCS sink connector.
 *
 * Per input partition the sink fills a *segment*: the records from the last cut, spread over one
 * open file per hive partition (merchant, event date, event hour). A cut closes every open file of
 * the segment at once, so cuts are offset boundaries: everything below a cut is in visible files,
 * nothing at or above it is. A cut runs in three steps:
 *
 *   1. commit the group offset of the segment start C with metadata `lake-cut:X` (X = the offset
 *      after the segment's last record): the cut is durable before any file is visible, and a
 *      fenced (zombie) member fails here, before touching the lake;
 *   2. write each file under a temporary name and publish it (atomic rename);
 *   3. commit offset X.
 *
 * File names are `<topic>+<partition>+<offset of the file's first record>.parquet`. After a crash
 * between 1 and 3, the restarted sink starts at C, reads `lake-cut:X`, and cuts at X again: the
 * same records in the same hive partitions give the same names and the same bytes, so the files
 * published before the crash are overwritten by identical ones. Rotation rules (flush size,
 * event-time span) depend only on the records since the last cut, so they cut at the same offsets
 * on replay as well.
 *
 * Speed (docs/lake.md, "How files are written"): records are decoded in worker threads while the
 * log is read (workers.ts), staged as flat lines that DuckDB turns into Parquet in bulk (stage.ts,
 * parquet.ts), and cuts run beside the reading: they are queued and run one at a time in the order
 * they were made, so each cut's three steps still come after the previous cut's (a partition's
 * next cut waits for its previous one). After an error or a revocation, the cuts already made end
 * (or stop before their next file) before the committed offsets are read again, and records polled
 * before are dropped.
 */
import { availableParallelism } from 'node:os';
import type { ConsumedRecord, GroupMember, Log, TopicPartition, TopicPartitionOffset } from '@shopstream/streams';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { lagPosition } from '../lag.ts';
import { decoderSpec, jsonDecoder, rawDecoder, type DecoderSpec, type LakeDecoder } from './decode.ts';
import { ParquetWriter } from './parquet.ts';
import { BATCH_BYTES, LineBuffer, PART_BYTES, SlabPool, stageRecords, type StagedBatch } from './stage.ts';
import type { LakeStorage, StagedObject } from './storage.ts';
import { DecodePool } from './workers.ts';

export { hivePartition, jsonDecoder, rawDecoder, rawDecoderWith, type DecodedLakeRecord, type LakeDecoder } from './decode.ts';

export interface LakeTopic {
  name: string;
  /** `raw`: an events.raw record (normalized to find the event time); `json`: a JSON value with a canonical event in it; or a function. */
  decode?: 'raw' | 'json' | LakeDecoder;
}

export interface LakeSinkOptions {
  log: Log;
  storage: LakeStorage;
  /** Consumer group, e.g. `${prefix}shopstream-lake`. Its committed offsets are the sink's progress. */
  groupId: string;
  /** Input topics. Default `['events.raw']`. A name alone decodes as `raw` when it ends in `events.raw`, else as `json`. */
  topics?: readonly (string | LakeTopic)[];
  /** Folder of the lake inside the storage. Default `lake`. */
  root?: string;
  /** Records per segment (per input partition) before a cut, like `flush.size`. Default 10,000. */
  flushSize?: number;
  /** Event-time span of a segment, like `rotate.interval.ms`: a record this much later than the segment's first cuts first. Default 1 hour. */
  rotateIntervalMs?: number;
  /** Wall-clock age of a segment after which it is cut, so a quiet partition's data becomes visible, like `rotate.schedule.interval.ms`. 0 turns it off. Default 10 minutes. */
  rotateScheduleIntervalMs?: number;
  /** Staged files older than this are deleted at start (left by a crash). Default 1 hour. */
  staleTemporaryMs?: number;
  pollMs?: number;
  /** Max records per poll. */
  maxRecords?: number;
  /**
   * Worker threads that decode records (JSON parse, `normalizeEvent`) beside the thread that reads
   * the log. 0 decodes on the sink's thread (always so for a topic with a custom decoder function).
   * Default: one per core, at most 4, and 0 on one core.
   */
  decodeThreads?: number;
  /** A stable id of this sink instance (static membership on Kafka: a restarted instance takes its partitions back at once). */
  instanceId?: string;
  logger?: Logger;
  /** Where to register the sink's metrics (`shopstream_lake_files_total{topic}`, `shopstream_lake_last_commit_timestamp_seconds`). */
  registry?: Registry;
  /** Test hook: called before each file is published (throwing simulates a crash there). */
  beforePublish?: (name: string) => void | Promise<void>;
}

interface OpenFile {
  name: string;
  firstOffset: number;
  /** The file's lines (stage.ts), in offset order. */
  lines: LineBuffer;
}

interface PartitionState {
  tp: TopicPartition;
  /** Start of the current segment: the committed offset. */
  start: number;
  /** Offset after the last record added. */
  next: number;
  files: Map<string, OpenFile>;
  count: number;
  /** Partition time of the segment's first record. */
  baseTime: number;
  /** Wall-clock time the segment got its first record. */
  openedAt: number;
  /** A cut recorded before a crash, to repeat at this offset. */
  pendingCut: number | undefined;
  /** The partition's last queued cut. */
  lastCut: Promise<void>;
  /** Set when the partition is given up (revoked, reset, aborted): its queued cuts do nothing, a running one stops before its next file. */
  dropped: boolean;
}

/** A segment being cut: from `start` to `end` (the offset after its last record). */
interface CutJob {
  st: PartitionState;
  start: number;
  end: number;
  files: OpenFile[];
}

/** Records polled and being decoded. */
interface InFlight {
  epoch: number;
  records: ConsumedRecord[];
  batch: Promise<StagedBatch>;
  ready: boolean;
}

const CUT_PREFIX = 'lake-cut:';
const HOUR = 3_600_000;
/** Polled batches being decoded at once (at ~1,000 records each). */
const MAX_IN_FLIGHT = 4;
/** Files of a cut written ahead of the one being published (the writer writes two at a time). */
const WRITE_AHEAD = 3;

const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** `<topic>+<partition>+<start offset, 19 digits>.parquet` */
export function lakeFileName(topic: string, partition: number, startOffset: number): string {
  return `${topic}+${partition}+${String(startOffset).padStart(19, '0')}.parquet`;
}

export class LakeSink {
  private readonly o: LakeSinkOptions & { root: string; flushSize: number; rotateIntervalMs: number; rotateScheduleIntervalMs: number; pollMs: number };
  private readonly topics: Map<string, LakeDecoder>;
  private readonly states = new Map<string, PartitionState>();
  private member: GroupMember | undefined;
  private writer: ParquetWriter | undefined;
  private pool: DecodePool | undefined;
  /** Recycled buffers of polled batches (to and from the decoding threads) and of open files' lines. */
  private readonly slabs = new SlabPool(BATCH_BYTES, 12);
  private readonly parts = new SlabPool(PART_BYTES, 64);
  private running = false;
  private loop: Promise<void> | undefined;
  private needsReset = false;
  /** Bumped when the assignment or the positions change: batches polled before are dropped. */
  private epoch = 0;
  private inFlight: InFlight[] = [];
  /** Cuts run one at a time, in the order they are made, beside the reading and decoding. */
  private cuts: Promise<void> = Promise.resolve();
  private cutFailure: unknown;
  private readonly counters = { records: 0, files: 0, cuts: 0 };
  private readonly metrics: { files: Counter<'topic'>; lastCommit: Gauge };

  constructor(options: LakeSinkOptions) {
    this.o = { root: 'lake', flushSize: 10_000, rotateIntervalMs: HOUR, rotateScheduleIntervalMs: 600_000, pollMs: 200, ...options };
    if (!(this.o.flushSize >= 1)) throw new Error('flushSize must be at least 1');
    const registers = options.registry ? [options.registry] : [];
    this.metrics = {
      files: new Counter({ name: 'shopstream_lake_files_total', help: 'Parquet files published to the lake, by input topic', labelNames: ['topic'], registers }),
      lastCommit: new Gauge({ name: 'shopstream_lake_last_commit_timestamp_seconds', help: 'When the lake sink last committed a cut (files published, offset committed)', registers }),
    };
    this.topics = new Map();
    for (const t of options.topics ?? ['events.raw']) {
      const spec: LakeTopic = typeof t === 'string' ? { name: t } : t;
      const d = spec.decode ?? (spec.name.endsWith('events.raw') ? 'raw' : 'json');
      this.topics.set(spec.name, d === 'raw' ? rawDecoder : d === 'json' ? jsonDecoder : d);
    }
  }

  async start(): Promise<void> {
    const storage = this.o.storage;
    if (storage.removeStaleTemporaries) {
      const removed = await storage.removeStaleTemporaries(this.o.staleTemporaryMs ?? HOUR);
      if (removed.length > 0) this.o.logger?.info({ removed: removed.length }, 'lake: removed stale temporary files');
    }
    this.writer = await ParquetWriter.open();
    // A decoder on every core: reading the log, cutting and DuckDB's COPYs take only about half a
    // core, so with one decoder fewer than cores the decoders are the bottleneck and a core idles
    // (BENCHMARKS.md, session 16: on 2 cores, 2 decoders wrote +37% faster than 1).
    const cores = availableParallelism();
    const threads = this.o.decodeThreads ?? (cores < 2 ? 0 : Math.min(4, cores));
    const specs: [string, DecoderSpec][] = [];
    for (const [topic, decoder] of this.topics) {
      const spec = decoderSpec(decoder);
      if (spec !== undefined) specs.push([topic, spec]);
    }
    // Worker threads only when every topic has a built-in decoder (a function cannot be sent to one).
    if (threads > 0 && specs.length === this.topics.size) this.pool = new DecodePool(threads, specs, this.slabs);
    this.member = await this.o.log.joinGroup({
      groupId: this.o.groupId,
      topics: [...this.topics.keys()],
      transactional: false,
      autoOffsetReset: 'earliest',
      clientId: this.o.groupId,
      ...(this.o.maxRecords !== undefined ? { maxRecords: this.o.maxRecords } : {}),
      ...(this.o.instanceId !== undefined ? { instanceId: this.o.instanceId } : {}),
      onAssign: (tps) => this.assign(tps),
      onRevoke: async (tps) => this.revoke(tps),
    });
    await this.assign(this.member.assignment());
    this.running = true;
    this.loop = this.run();
  }

  /** Counters since start: records added to segments (replays count again), files published, cuts. */
  stats(): { records: number; files: number; cuts: number } {
    return { ...this.counters };
  }

  /** The next offset of each owned partition (what has been read, not what is visible). */
  positions(): TopicPartitionOffset[] {
    return [...this.states.values()].map((s) => ({ ...s.tp, offset: s.next }));
  }

  /** Where lag is measured from: `positions()`, past the transaction markers when no polled records wait to be decoded. */
  lagPositions(): TopicPartitionOffset[] {
    const settled = this.inFlight.length === 0;
    return this.positions().map((p) => lagPosition(p, this.member, settled));
  }

  /** Starts the owned partitions again from the committed offsets (and their recorded cuts). */
  private async assign(tps: readonly TopicPartition[]): Promise<void> {
    this.epoch++;
    const mine = tps.filter((tp) => this.topics.has(tp.topic));
    for (const tp of tps) this.drop(keyOf(tp.topic, tp.partition));
    if (mine.length === 0) return;
    const committed = await this.o.log.admin.committedOffsets(this.o.groupId, mine);
    const byKey = new Map(committed.map((c) => [keyOf(c.topic, c.partition), c]));
    const missing = mine.filter((tp) => !byKey.has(keyOf(tp.topic, tp.partition)));
    const earliest = missing.length > 0 ? await this.o.log.admin.listOffsets(missing, 'earliest') : [];
    for (const e of earliest) byKey.set(keyOf(e.topic, e.partition), { topic: e.topic, partition: e.partition, offset: e.offset });
    for (const tp of mine) {
      const c = byKey.get(keyOf(tp.topic, tp.partition));
      const start = c?.offset ?? 0;
      const cut = c?.metadata?.startsWith(CUT_PREFIX) ? Number(c.metadata.slice(CUT_PREFIX.length)) : undefined;
      this.states.set(keyOf(tp.topic, tp.partition), {
        tp: { topic: tp.topic, partition: tp.partition },
        start,
        next: start,
        files: new Map(),
        count: 0,
        baseTime: 0,
        openedAt: 0,
        pendingCut: cut !== undefined && Number.isSafeInteger(cut) && cut > start ? cut : undefined,
        lastCut: Promise.resolve(),
        dropped: false,
      });
      this.member?.seek(tp, start);
    }
  }

  private drop(key: string): void {
    const st = this.states.get(key);
    if (st !== undefined) st.dropped = true;
    this.states.delete(key);
  }

  private dropAll(): void {
    for (const st of this.states.values()) st.dropped = true;
    this.states.clear();
    this.epoch++;
    for (const f of this.inFlight) f.batch.catch(() => undefined);
    this.inFlight = [];
  }

  /** Open segments are dropped, not written: the next owner reads them again from the committed offset. */
  private revoke(tps: readonly TopicPartition[]): void {
    this.epoch++;
    for (const tp of tps) this.drop(keyOf(tp.topic, tp.partition));
  }

  /** Decodes and stages polled records: in a worker thread, or here. */
  private decode(records: ConsumedRecord[]): Promise<StagedBatch> {
    if (this.pool !== undefined) return this.pool.decode(records);
    try {
      const out = this.slabs.take();
      const b = stageRecords(records, (topic) => this.topics.get(topic) ?? jsonDecoder, out);
      if (b.bytes.buffer !== out) this.slabs.give(out);
      return Promise.resolve(b);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private async run(): Promise<void> {
    const member = this.member!;
    let backoff = 0;
    while (this.running) {
      try {
        if (this.needsReset) {
          this.needsReset = false;
          await this.assign(member.assignment());
        }
        if (this.cutFailure !== undefined) throw this.cutFailure;
        // Read on while earlier polls are decoded; wait in poll only when nothing is being decoded.
        const { records } = await member.poll(this.inFlight.length > 0 ? 0 : this.o.pollMs);
        if (records.length > 0) {
          const f: InFlight = { epoch: this.epoch, records, batch: this.decode(records), ready: false };
          f.batch.then(
            () => (f.ready = true),
            () => (f.ready = true),
          );
          this.inFlight.push(f);
        }
        // Add decoded batches in poll order: the ready ones, and the oldest when too many are out or nothing new came.
        while (this.running && this.inFlight.length > 0 && (this.inFlight.length > MAX_IN_FLIGHT || records.length === 0 || this.inFlight[0]!.ready)) {
          const f = this.inFlight.shift()!;
          const batch = await f.batch;
          if (f.epoch === this.epoch) await this.addBatch(f.records, batch);
        }
        await this.rotateBySchedule();
        backoff = 0;
      } catch (err) {
        if (!this.running) break;
        backoff = Math.min(5_000, Math.max(100, backoff * 2));
        this.o.logger?.warn({ err, retryInMs: backoff }, 'lake: failed; going on from the committed offsets');
        this.dropAll();
        // Every cut made so far ends (or stops) before the committed offsets are read again.
        await this.cuts;
        this.cutFailure = undefined;
        this.needsReset = true;
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
  }

  private async addBatch(records: readonly ConsumedRecord[], b: StagedBatch): Promise<void> {
    try {
      await this.addStaged(records, b);
    } finally {
      // The lines are copied into the files' buffers: the batch's buffer can be used again.
      this.slabs.give(b.bytes.buffer as ArrayBuffer);
    }
  }

  /**
   * Adds each record's line to its file. Lines of one hive partition are contiguous in the batch
   * (stage.ts), so they are copied a run at a time: a run ends at a record of another file or at a cut.
   */
  private async addStaged(records: readonly ConsumedRecord[], b: StagedBatch): Promise<void> {
    let runFile: OpenFile | undefined;
    let runStart = 0;
    let runEnd = 0;
    const flush = () => {
      if (runFile !== undefined && runEnd > runStart) runFile.lines.append(b.bytes, runStart, runEnd);
      runFile = undefined;
    };
    try {
      await this.addRecords(records, b, (file, s, e) => {
        if (file === runFile && s === runEnd) runEnd = e;
        else {
          flush();
          runFile = file;
          runStart = s;
          runEnd = e;
        }
      }, flush);
    } finally {
      flush();
    }
  }

  private async addRecords(records: readonly ConsumedRecord[], b: StagedBatch, addLine: (file: OpenFile, start: number, end: number) => void, flush: () => void): Promise<void> {
    const paths: string[] = [];
    const pathTopics: string[] = [];
    // The records of a poll come a partition at a time: look its state up once per run of them (and again after each await).
    let stTopic = '';
    let stPartition = -1;
    let st: PartitionState | undefined;
    for (let i = 0; i < records.length; i++) {
      if (!this.running) break;
      const r = records[i]!;
      if (r.partition !== stPartition || r.topic !== stTopic) {
        stTopic = r.topic;
        stPartition = r.partition;
        st = this.states.get(keyOf(r.topic, r.partition));
      }
      if (st === undefined || r.offset < st.next) continue; // not ours, or read again after a seek
      if (st.count > 0 && st.pendingCut !== undefined && r.offset >= st.pendingCut) {
        flush();
        await this.cut(st);
        stPartition = -1; // a rebalance may have dropped states meanwhile
      }
      const time = b.time[i]!;
      if (st.count > 0 && time - st.baseTime >= this.o.rotateIntervalMs) {
        flush();
        await this.cut(st);
        stPartition = -1; // a rebalance may have dropped states meanwhile
      }
      const h = b.hive[i]!;
      let hive = paths[h];
      if (hive === undefined || pathTopics[h] !== r.topic) {
        hive = `${this.o.root}/${r.topic}/${b.hives[h]!}`;
        paths[h] = hive;
        pathTopics[h] = r.topic;
      }
      let file = st.files.get(hive);
      if (file === undefined) {
        file = { name: `${hive}/${lakeFileName(r.topic, r.partition, r.offset)}`, firstOffset: r.offset, lines: new LineBuffer(this.parts) };
        st.files.set(hive, file);
      }
      const s = b.start[i]!;
      const e = b.end[i]!;
      addLine(file, s, e);
      if (e - s > file.lines.maxLine) file.lines.maxLine = e - s;
      if (st.count === 0) {
        st.baseTime = time;
        st.openedAt = Date.now();
      }
      st.count++;
      st.next = r.offset + 1;
      this.counters.records++;
      if (st.count >= this.o.flushSize || (st.pendingCut !== undefined && st.next >= st.pendingCut)) {
        flush();
        await this.cut(st);
        stPartition = -1; // a rebalance may have dropped states meanwhile
      }
    }
  }

  /** Cuts quiet segments by wall-clock age (never one with a recorded cut still ahead: that one is repeated exactly). */
  private async rotateBySchedule(): Promise<void> {
    if (this.o.rotateScheduleIntervalMs <= 0) return;
    const now = Date.now();
    for (const st of [...this.states.values()]) {
      if (st.count > 0 && st.pendingCut === undefined && now - st.openedAt >= this.o.rotateScheduleIntervalMs) await this.cut(st);
    }
  }

  /**
   * Closes every open file of the segment: the cut is queued (cuts run one at a time, in order) and
   * a new segment starts. Waits first for the partition's previous cut, so that at most one segment
   * per partition waits to be written (and fails here if that cut failed).
   */
  private async cut(st: PartitionState): Promise<void> {
    await st.lastCut;
    const job: CutJob = { st, start: st.start, end: st.next, files: [...st.files.values()] };
    st.start = job.end;
    st.files = new Map();
    st.count = 0;
    st.pendingCut = undefined;
    const done = this.cuts.then(() => this.writeCut(job));
    st.lastCut = done;
    this.cuts = done.catch((err: unknown) => {
      this.cutFailure ??= err;
    });
  }

  /** Record the cut, publish the files, commit the offset after them. */
  private async writeCut(job: CutJob): Promise<void> {
    try {
      await this.writeCutFiles(job);
    } finally {
      // The bytes are written (or the cut is given up): their buffers can be used again.
      for (const file of job.files) file.lines.release();
    }
  }

  private async writeCutFiles(job: CutJob): Promise<void> {
    // After a failed cut nothing more is written: the sink goes on from the committed offsets.
    if (job.st.dropped || this.cutFailure !== undefined) return;
    const member = this.member!;
    const tp = job.st.tp;
    await member.commitOffsets([{ ...tp, offset: job.start, metadata: `${CUT_PREFIX}${job.end}` }]);
    // Files are written side by side (the writer's lanes) and published as they come, in order.
    const written: Promise<StagedObject>[] = [];
    let started = 0;
    const startNext = () => {
      if (started >= job.files.length) return;
      const file = job.files[started++]!;
      const p = this.writeFile(file, tp);
      p.catch(() => undefined);
      written.push(p);
    };
    for (let k = 0; k < WRITE_AHEAD; k++) startNext();
    const publishing: Promise<void>[] = [];
    let consumed = 0;
    try {
      for (const file of job.files) {
        const staged = await written[consumed++]!;
        startNext();
        try {
          // Given up meanwhile: whoever reads the partition next repeats the recorded cut.
          if (job.st.dropped) throw new Error('lake: partition given up during its cut');
          await this.o.beforePublish?.(file.name);
        } catch (err) {
          await staged.discard().catch(() => undefined);
          throw err;
        }
        const p = staged.publish().then(
          () => {
            this.counters.files++;
            this.metrics.files.inc({ topic: tp.topic });
          },
          async (err: unknown) => {
            await staged.discard().catch(() => undefined);
            throw err;
          },
        );
        p.catch(() => undefined);
        publishing.push(p);
      }
      for (const p of publishing) await p;
    } catch (err) {
      // Let everything started end, and drop what was written but not published.
      await Promise.allSettled(publishing);
      for (const p of written.slice(consumed)) await p.then((s) => s.discard()).catch(() => undefined);
      throw err;
    }
    if (job.st.dropped) return;
    await member.commitOffsets([{ ...tp, offset: job.end }]);
    this.counters.cuts++;
    this.metrics.lastCommit.set(Date.now() / 1000);
    this.o.logger?.debug({ topic: tp.topic, partition: tp.partition, from: job.start, to: job.end, files: job.files.length }, 'lake: cut');
  }

  /** Stages a file and writes it (not visible yet). */
  private async writeFile(file: OpenFile, tp: TopicPartition): Promise<StagedObject> {
    const staged = await this.o.storage.stage(file.name);
    try {
      await this.writer!.write(staged.localPath, { chunks: file.lines.chunks(), maxLine: file.lines.maxLine, partition: tp.partition }, {
        shopstream_topic: tp.topic,
        shopstream_partition: String(tp.partition),
        shopstream_start_offset: String(file.firstOffset),
      });
    } catch (err) {
      await staged.discard().catch(() => undefined);
      throw err;
    }
    return staged;
  }

  /** Cuts every open segment (except one that must end at a recorded cut not reached yet), commits, and leaves the group. */
  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    try {
      if (!this.needsReset && this.cutFailure === undefined) {
        for (const st of this.states.values()) if (st.count > 0 && st.pendingCut === undefined) await this.cut(st);
      }
      await this.cuts;
      if (this.cutFailure !== undefined) throw this.cutFailure;
    } catch (err) {
      this.o.logger?.warn({ err }, 'lake: last cut failed; the next start goes on from the committed offsets');
    }
    await this.shutdown();
  }

  /** Stops at once without writing or committing anything more (for tests: a crash, except that the member leaves the group). */
  async abort(): Promise<void> {
    this.running = false;
    this.dropAll();
    await this.loop;
    await this.cuts;
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    this.dropAll();
    await this.member?.close();
    await this.writer?.close();
    await this.pool?.close();
  }
}
