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
 */
import type { ConsumedRecord, GroupMember, Log, TopicPartition, TopicPartitionOffset } from '@shopstream/streams';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { normalizeEvent } from '../contract/normalize.ts';
import { RawHeaders, readRawRecord } from '../contract/raw.ts';
import { ParquetWriter, type LakeRow } from './parquet.ts';
import type { LakeStorage } from './storage.ts';

/** What the sink needs from a record besides its bytes. */
export interface DecodedLakeRecord {
  merchant: string | null;
  /** When the platform received the record, epoch ms. */
  receivedAt: number;
  /** Event time, epoch ms, or null when unknown (the record then goes under its received time). */
  eventTime: number | null;
  messageId: string | null;
  event: string | null;
  type: string | null;
  visitorId: string | null;
  rejectCode: string | null;
}

export type LakeDecoder = (record: ConsumedRecord) => DecodedLakeRecord;

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
  rows: LakeRow[];
}

interface PartitionState {
  tp: TopicPartition;
  decode: LakeDecoder;
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
}

const CUT_PREFIX = 'lake-cut:';
const HOUR = 3_600_000;
const UNKNOWN_MERCHANT = '_unknown';
const MAX_DATE_MS = 8.64e15;
const utf8 = new TextDecoder('utf-8', { fatal: true });

const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * Reads an events.raw record: its canonical event gives the event time; one that does not
 * normalize keeps only what the headers say. `limits` are the platform's (collector.maxPastMs …),
 * so that the lake and the pipeline agree on what normalizes.
 */
export function rawDecoderWith(limits: { maxFutureMs?: number; maxPastMs?: number }): LakeDecoder {
  return (record) => decodeRaw(record, limits);
}

export const rawDecoder: LakeDecoder = (record) => decodeRaw(record, {});

function decodeRaw(record: ConsumedRecord, limits: { maxFutureMs?: number; maxPastMs?: number }): DecodedLakeRecord {
  const decoded = readRawRecord(record, limits);
  const receivedAt = Number.isFinite(decoded.ctx.receivedAt) ? decoded.ctx.receivedAt : record.timestamp;
  const merchant = decoded.ctx.merchantId === '' ? null : decoded.ctx.merchantId;
  let result;
  try {
    result = normalizeEvent(decoded.message, { ...decoded.ctx, receivedAt }, decoded.typeHint);
  } catch {
    result = { ok: false as const, reason: { code: 'SHOP_ERR_INTERNAL' } };
  }
  if (!result.ok) {
    return { merchant, receivedAt, eventTime: null, messageId: null, event: null, type: null, visitorId: null, rejectCode: String(result.reason.code) };
  }
  const e = result.event;
  return { merchant: e.merchantId, receivedAt, eventTime: e.timestamp, messageId: e.messageId, event: e.event, type: e.type, visitorId: e.visitorId, rejectCode: null };
}

/** Reads a JSON record holding a canonical event (`{ event: {...} }`, as events.filtered) or being one. */
export const jsonDecoder: LakeDecoder = (record) => {
  let merchant: string | null = null;
  let receivedAt = record.timestamp;
  for (const [name, value] of record.headers) {
    if (name === RawHeaders.merchant) merchant = value.toString('utf8');
    else if (name === RawHeaders.receivedAt && Number.isFinite(Number(value.toString('utf8')))) receivedAt = Number(value.toString('utf8'));
  }
  let e: Record<string, unknown> | undefined;
  try {
    const v = record.value === null ? undefined : (JSON.parse(record.value.toString('utf8')) as unknown);
    if (v !== null && typeof v === 'object') {
      const inner = (v as Record<string, unknown>)['event'];
      e = inner !== null && typeof inner === 'object' ? (inner as Record<string, unknown>) : (v as Record<string, unknown>);
    }
  } catch {
    e = undefined;
  }
  const s = (k: string) => (e !== undefined && typeof e[k] === 'string' ? (e[k] as string) : null);
  const n = (k: string) => (e !== undefined && typeof e[k] === 'number' && Number.isFinite(e[k]) ? (e[k] as number) : null);
  return {
    merchant: s('merchantId') ?? merchant,
    receivedAt: n('receivedAt') ?? receivedAt,
    eventTime: n('timestamp'),
    messageId: s('messageId'),
    event: s('event'),
    type: s('type'),
    visitorId: s('visitorId'),
    rejectCode: e === undefined ? 'SHOP_ERR_NOT_JSON' : null,
  };
};

function validTime(t: number | null): t is number {
  return t !== null && Number.isFinite(t) && Math.abs(t) <= MAX_DATE_MS;
}

/** `merchant=<id>/dt=YYYY-MM-DD/hour=HH` of a partition time (UTC). */
export function hivePartition(merchant: string | null, time: number): string {
  const iso = new Date(time).toISOString();
  return `merchant=${encodeURIComponent(merchant === null || merchant === '' ? UNKNOWN_MERCHANT : merchant)}/dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
}

/** `<topic>+<partition>+<start offset, 19 digits>.parquet` */
export function lakeFileName(topic: string, partition: number, startOffset: number): string {
  return `${topic}+${partition}+${String(startOffset).padStart(19, '0')}.parquet`;
}

function headersJson(record: ConsumedRecord): string {
  const o: Record<string, string> = {};
  for (const [name, value] of record.headers) o[name] = value.toString('utf8');
  return JSON.stringify(o);
}

export class LakeSink {
  private readonly o: LakeSinkOptions & { root: string; flushSize: number; rotateIntervalMs: number; rotateScheduleIntervalMs: number; pollMs: number };
  private readonly topics: Map<string, LakeDecoder>;
  private readonly states = new Map<string, PartitionState>();
  private member: GroupMember | undefined;
  private writer: ParquetWriter | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private needsReset = false;
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

  /** Starts the owned partitions again from the committed offsets (and their recorded cuts). */
  private async assign(tps: readonly TopicPartition[]): Promise<void> {
    const mine = tps.filter((tp) => this.topics.has(tp.topic));
    for (const tp of tps) this.states.delete(keyOf(tp.topic, tp.partition));
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
        decode: this.topics.get(tp.topic)!,
        start,
        next: start,
        files: new Map(),
        count: 0,
        baseTime: 0,
        openedAt: 0,
        pendingCut: cut !== undefined && Number.isSafeInteger(cut) && cut > start ? cut : undefined,
      });
      this.member?.seek(tp, start);
    }
  }

  /** Open segments are dropped, not written: the next owner reads them again from the committed offset. */
  private revoke(tps: readonly TopicPartition[]): void {
    for (const tp of tps) this.states.delete(keyOf(tp.topic, tp.partition));
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
        const { records } = await member.poll(this.o.pollMs);
        for (const r of records) {
          if (!this.running) break;
          await this.add(r);
        }
        await this.rotateBySchedule();
        backoff = 0;
      } catch (err) {
        if (!this.running) break;
        backoff = Math.min(5_000, Math.max(100, backoff * 2));
        this.o.logger?.warn({ err, retryInMs: backoff }, 'lake: failed; going on from the committed offsets');
        this.states.clear();
        this.needsReset = true;
        await new Promise((r) => setTimeout(r, backoff));
      }
    }
  }

  private async add(r: ConsumedRecord): Promise<void> {
    const st = this.states.get(keyOf(r.topic, r.partition));
    if (st === undefined || r.offset < st.next) return; // not ours, or read again after a seek
    if (st.count > 0 && st.pendingCut !== undefined && r.offset >= st.pendingCut) await this.cut(st);
    const d = st.decode(r);
    const time = validTime(d.eventTime) ? d.eventTime : validTime(d.receivedAt) ? d.receivedAt : r.timestamp;
    if (st.count > 0 && time - st.baseTime >= this.o.rotateIntervalMs) await this.cut(st);
    const hive = `${this.o.root}/${r.topic}/${hivePartition(d.merchant, time)}`;
    let file = st.files.get(hive);
    if (file === undefined) {
      file = { name: `${hive}/${lakeFileName(r.topic, r.partition, r.offset)}`, rows: [] };
      st.files.set(hive, file);
    }
    let payload: string | null = null;
    let payloadBytes: Uint8Array | null = null;
    if (r.value !== null) {
      try {
        payload = utf8.decode(r.value);
      } catch {
        payloadBytes = r.value;
      }
    }
    file.rows.push({
      offset: r.offset,
      partition: r.partition,
      receivedAt: Math.trunc(validTime(d.receivedAt) ? d.receivedAt : r.timestamp),
      merchant: d.merchant,
      messageId: d.messageId,
      event: d.event,
      type: d.type,
      visitorId: d.visitorId,
      eventTime: validTime(d.eventTime) ? Math.trunc(d.eventTime) : null,
      payload,
      payloadBytes,
      headers: headersJson(r),
      rejectCode: d.rejectCode,
    });
    if (st.count === 0) {
      st.baseTime = time;
      st.openedAt = Date.now();
    }
    st.count++;
    st.next = r.offset + 1;
    this.counters.records++;
    if (st.count >= this.o.flushSize || (st.pendingCut !== undefined && st.next >= st.pendingCut)) await this.cut(st);
  }

  /** Cuts quiet segments by wall-clock age (never one with a recorded cut still ahead: that one is repeated exactly). */
  private async rotateBySchedule(): Promise<void> {
    if (this.o.rotateScheduleIntervalMs <= 0) return;
    const now = Date.now();
    for (const st of [...this.states.values()]) {
      if (st.count > 0 && st.pendingCut === undefined && now - st.openedAt >= this.o.rotateScheduleIntervalMs) await this.cut(st);
    }
  }

  /** Closes every open file of the segment: record the cut, publish the files, commit the offset after them. */
  private async cut(st: PartitionState): Promise<void> {
    const member = this.member!;
    const end = st.next;
    const tp = st.tp;
    await member.commitOffsets([{ ...tp, offset: st.start, metadata: `${CUT_PREFIX}${end}` }]);
    for (const file of st.files.values()) {
      const staged = await this.o.storage.stage(file.name);
      try {
        await this.writer!.write(staged.localPath, file.rows, {
          shopstream_topic: tp.topic,
          shopstream_partition: String(tp.partition),
          shopstream_start_offset: String(file.rows[0]!.offset),
        });
        await this.o.beforePublish?.(file.name);
        await staged.publish();
      } catch (err) {
        await staged.discard().catch(() => undefined);
        throw err;
      }
      this.counters.files++;
      this.metrics.files.inc({ topic: tp.topic });
    }
    await member.commitOffsets([{ ...tp, offset: end }]);
    this.counters.cuts++;
    this.metrics.lastCommit.set(Date.now() / 1000);
    this.o.logger?.debug({ topic: tp.topic, partition: tp.partition, from: st.start, to: end, files: st.files.size }, 'lake: cut');
    st.start = end;
    st.files = new Map();
    st.count = 0;
    st.pendingCut = undefined;
  }

  /** Cuts every open segment (except one that must end at a recorded cut not reached yet), commits, and leaves the group. */
  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    try {
      if (!this.needsReset) {
        for (const st of this.states.values()) if (st.count > 0 && st.pendingCut === undefined) await this.cut(st);
      }
    } catch (err) {
      this.o.logger?.warn({ err }, 'lake: last cut failed; the next start goes on from the committed offsets');
    }
    await this.member?.close();
    await this.writer?.close();
  }

  /** Stops at once without writing or committing anything (for tests: a crash, except that the member leaves the group). */
  async abort(): Promise<void> {
    this.running = false;
    this.states.clear();
    await this.loop;
    await this.member?.close();
    await this.writer?.close();
  }
}
