/**
 * One partition of the embedded log on disk: its segment files, the sparse offset index of each
 * segment, appends, read_committed reads, and the retention and compaction of closed segments.
 * The commit protocol (which bytes are committed, and when readers may see them) lives in
 * embedded-log.ts; this file only moves bytes as it is told.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StreamsError, ErrorCodes } from '../../errors.ts';
import type { ConsumedRecord, ProducerRecord } from '../types.ts';
import {
  decodeRecordAt,
  encodeRecord,
  frameCrcOk,
  frameKey,
  frameOffset,
  frameTimestamp,
  frameValueIsNull,
  MAX_RECORD_BYTES,
  RECORD_OVERHEAD,
  RECORD_PREFIX,
  viewOf,
} from './format.ts';

/** One index entry per this many bytes of a segment. */
export const INDEX_INTERVAL = 4096;
/** Reads and scans go through chunks of this size. */
export const CHUNK_BYTES = 1 << 20;
export const SEGMENT_SUFFIX = '.log';

export function segmentFileName(baseOffset: number): string {
  return `${String(baseOffset).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

/** A committed end of a partition: the next offset, and the byte position in the segment that holds it. */
export interface PartitionEnd {
  offset: number;
  segBase: number;
  pos: number;
}

export interface ResolvedTopicConfig {
  segmentBytes: number;
  segmentMs: number;
  retentionMs: number;
  retentionBytes: number;
  deleteRetentionMs: number;
  compact: boolean;
  delete: boolean;
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function corrupt(message: string, cause?: unknown): StreamsError {
  return new StreamsError(ErrorCodes.LOG_CORRUPT, message, cause === undefined ? undefined : { cause });
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

export class Segment {
  readonly baseOffset: number;
  readonly path: string;
  fd = -1;
  readFd = -1;
  /** Bytes written to the file (committed, or being committed by the flush in progress). */
  size: number;
  /** Sparse index: offsets and the file positions of their frames, every ~INDEX_INTERVAL bytes. */
  idxOffsets: number[] = [];
  idxPositions: number[] = [];
  lastIndexedPos = -INDEX_INTERVAL;
  /** Index and stats cover the whole file (closed segments are scanned lazily, on first need). */
  indexed = false;
  maxTimestamp = -Infinity;
  records = 0;
  /** Wall-clock time of creation in this process (segment.ms). */
  createdAt: number;
  /** Set when the file was deleted or replaced (retention, compaction); cursors must look up again. */
  dead = false;

  constructor(dir: string, baseOffset: number, size: number, createdAt: number) {
    this.baseOffset = baseOffset;
    this.path = path.join(dir, segmentFileName(baseOffset));
    this.size = size;
    this.createdAt = createdAt;
  }

  /** The read-write fd, used by appends and by the fsync that follows them. */
  open(): number {
    if (this.fd < 0) this.fd = fs.openSync(this.path, 'r+');
    return this.fd;
  }

  /** A read-only fd, for reads of a closed segment; may be closed at any time. */
  openRead(): number {
    if (this.readFd < 0) this.readFd = fs.openSync(this.path, 'r');
    return this.readFd;
  }

  closeRead(): void {
    if (this.readFd >= 0) {
      closeQuietly(this.readFd);
      this.readFd = -1;
    }
  }

  /** Closes the read-write fd: only when no fsync of it can be pending (at a barrier). */
  closeWriter(): void {
    if (this.fd >= 0) {
      closeQuietly(this.fd);
      this.fd = -1;
    }
  }

  close(): void {
    this.closeWriter();
    this.closeRead();
  }

  note(offset: number, pos: number, timestamp: number): void {
    if (pos - this.lastIndexedPos >= INDEX_INTERVAL) {
      this.idxOffsets.push(offset);
      this.idxPositions.push(pos);
      this.lastIndexedPos = pos;
    }
    if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    this.records++;
  }

  resetIndex(): void {
    this.idxOffsets = [];
    this.idxPositions = [];
    this.lastIndexedPos = -INDEX_INTERVAL;
    this.maxTimestamp = -Infinity;
    this.records = 0;
    this.indexed = false;
  }

  /** File position of the last indexed frame whose offset is <= `offset` (0 when none). */
  lookup(offset: number): number {
    const offs = this.idxOffsets;
    let lo = 0;
    let hi = offs.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (offs[mid]! <= offset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? 0 : this.idxPositions[found]!;
  }
}

/**
 * Reads frames of a segment between two positions in chunks and calls `onFrame` for each complete
 * frame (the buffer is reused between chunks: copy what you keep). Stops early when `onFrame`
 * returns false. Returns the position after the last complete frame visited.
 */
export function scanFrames(
  fd: number,
  from: number,
  to: number,
  onFrame: (buf: Buffer, at: number, size: number, filePos: number) => boolean,
): number {
  let buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(RECORD_OVERHEAD, to - from)));
  let filePos = from;
  while (filePos < to) {
    const want = Math.min(buf.length, to - filePos);
    const got = readFully(fd, buf, want, filePos);
    let p = 0;
    let size = 0;
    while (got - p >= RECORD_PREFIX) {
      size = RECORD_PREFIX + buf.readUInt32LE(p);
      if (size < RECORD_OVERHEAD || size > MAX_RECORD_BYTES) return filePos + p;
      if (p + size > got) break;
      if (!onFrame(buf, p, size, filePos + p)) return filePos + p;
      p += size;
    }
    if (p === 0) {
      // the frame at filePos is not complete in what was read
      if (got === want && size > buf.length && filePos + size <= to) {
        buf = Buffer.allocUnsafe(size);
        continue;
      }
      return filePos;
    }
    filePos += p;
    if (got < want) return filePos; // the file ends here
  }
  return filePos;
}

export function readFully(fd: number, buf: Buffer, len: number, position: number): number {
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, buf, done, len - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function writeFully(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
  }
}

/**
 * The encode buffer of appends, reused: a commit's buffer is written synchronously and never
 * referenced afterwards, and reusing it avoids allocating (and page-faulting) fresh memory for
 * every commit. Commits larger than SCRATCH_MAX get a buffer of their own.
 */
const SCRATCH_MAX = 16 * 1024 * 1024;
let scratch: Buffer = Buffer.allocUnsafeSlow(0);

function scratchBuffer(size: number): Buffer {
  if (size > SCRATCH_MAX) return Buffer.allocUnsafeSlow(size);
  if (scratch.length < size) scratch = Buffer.allocUnsafeSlow(Math.min(SCRATCH_MAX, Math.max(size, scratch.length * 2, 1024 * 1024)));
  return scratch.subarray(0, size);
}

/** What a reader remembers about a partition between polls, so that it neither seeks nor re-reads. */
export interface ReadCursor {
  position: number;
  seg: Segment | null;
  filePos: number;
  chunk: Buffer | null;
  chunkSeg: Segment | null;
  chunkStart: number;
  chunkLen: number;
}

export function newCursor(position: number): ReadCursor {
  return { position, seg: null, filePos: 0, chunk: null, chunkSeg: null, chunkStart: 0, chunkLen: 0 };
}

/** Undo information for an append whose commit failed. */
export interface AppendUndo {
  part: PartitionLog;
  seg: Segment;
  size: number;
  nextOffset: number;
  idxLen: number;
  lastIndexedPos: number;
  maxTimestamp: number;
  records: number;
}

export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  readonly dir: string;
  readonly durable: boolean;
  config: ResolvedTopicConfig;
  segments: Segment[];
  /** Next offset to write (includes records written but not yet durable). */
  nextOffset: number;
  /** read_committed end: records below it are committed and durable. */
  visibleEnd: number;
  visibleSeg: Segment;
  visiblePos: number;
  /** Wake-ups of readers waiting for `visibleEnd` to move. */
  readonly waiters = new Set<() => void>();
  deleted = false;
  /** Records gathered for the flush in progress. */
  pendRecords: ProducerRecord[] = [];
  pendTimestamps: number[] = [];
  pendBytes = 0;
  /** Active segment base at the last compaction (skip when nothing rolled since). */
  compactedAt = -1;
  compactAgain = false;
  private openClosed: Segment | null = null;

  private constructor(topic: string, partition: number, dir: string, durable: boolean, config: ResolvedTopicConfig, segments: Segment[], end: number, endSeg: Segment, endPos: number) {
    this.topic = topic;
    this.partition = partition;
    this.dir = dir;
    this.durable = durable;
    this.config = config;
    this.segments = segments;
    this.nextOffset = end;
    this.visibleEnd = end;
    this.visibleSeg = endSeg;
    this.visiblePos = endPos;
  }

  /** Creates the directory and first segment of a new partition. */
  static create(topic: string, partition: number, dir: string, durable: boolean, config: ResolvedTopicConfig): PartitionLog {
    fs.mkdirSync(dir, { recursive: true });
    const seg = new Segment(dir, 0, 0, Date.now());
    fs.closeSync(fs.openSync(seg.path, 'w'));
    seg.indexed = true;
    if (durable) fsyncDir(dir);
    return new PartitionLog(topic, partition, dir, durable, config, [seg], 0, seg, 0);
  }

  /** Lists the segment base offsets of a partition directory, sorted; removes compaction leftovers. */
  static listSegments(dir: string): number[] {
    const bases: number[] = [];
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return bases;
    }
    for (const name of names) {
      if (name.endsWith(SEGMENT_SUFFIX) && /^\d{20}\.log$/.test(name)) bases.push(Number(name.slice(0, 20)));
      else if (name.endsWith('.cleaned')) fs.rmSync(path.join(dir, name), { force: true });
    }
    return bases.sort((a, b) => a - b);
  }

  /**
   * Opens a partition at its committed end after a restart: deletes segment files beyond the end,
   * truncates the end segment to the end position, and scans the end segment to rebuild its index.
   */
  static open(topic: string, partition: number, dir: string, durable: boolean, config: ResolvedTopicConfig, end: PartitionEnd | null): PartitionLog {
    fs.mkdirSync(dir, { recursive: true });
    let bases = PartitionLog.listSegments(dir);
    let e: PartitionEnd = end ?? { offset: 0, segBase: bases[0] ?? 0, pos: 0 };
    if (!bases.includes(e.segBase)) {
      // The end segment was deleted by retention after the segment that follows it was rolled; the
      // follower starts (empty) at the end offset.
      e = { offset: e.offset, segBase: e.offset, pos: 0 };
    }
    let changed = false;
    for (const b of bases) {
      if (b > e.segBase) {
        fs.rmSync(path.join(dir, segmentFileName(b)), { force: true });
        changed = true;
      }
    }
    bases = bases.filter((b) => b <= e.segBase);
    if (!bases.includes(e.segBase)) {
      fs.closeSync(fs.openSync(path.join(dir, segmentFileName(e.segBase)), 'w'));
      bases.push(e.segBase);
      changed = true;
    }
    const now = Date.now();
    const segments = bases.map((b) => {
      const seg = new Segment(dir, b, 0, now);
      seg.size = fs.statSync(seg.path).size;
      return seg;
    });
    const active = segments[segments.length - 1]!;
    if (active.size < e.pos) throw corrupt(`segment ${active.path} has ${active.size} bytes, its committed end is at ${e.pos}`);
    if (active.size > e.pos) {
      const fd = active.open();
      fs.ftruncateSync(fd, e.pos);
      if (durable) fs.fsyncSync(fd);
      active.size = e.pos;
    }
    if (changed && durable) fsyncDir(dir);
    const part = new PartitionLog(topic, partition, dir, durable, config, segments, e.offset, active, e.pos);
    part.indexSegment(active);
    if (active.records > 0) {
      // sanity: the scan must end where the commit said
      let last = -1;
      scanFrames(active.open(), active.lastIndexedPos, active.size, (buf, at) => {
        last = frameOffset(buf, at);
        return true;
      });
      if (last + 1 !== e.offset) throw corrupt(`segment ${active.path} ends at offset ${last + 1}, its committed end is ${e.offset}`);
    }
    return part;
  }

  /**
   * The fd of a segment for reading. Besides the active segment, at most one closed segment of the
   * partition keeps an open fd (the last one read), so that many small segments cannot exhaust fds.
   */
  private fdOf(seg: Segment): number {
    if (seg === this.active) return seg.open();
    if (seg !== this.openClosed) {
      this.openClosed?.closeRead();
      this.openClosed = seg;
    }
    return seg.openRead();
  }

  /** Closes the read-write fds of closed segments. Only at a barrier (no fsync pending). */
  closeIdleWriters(): void {
    const active = this.active;
    for (const s of this.segments) if (s !== active) s.closeWriter();
  }

  get logStart(): number {
    return this.segments[0]!.baseOffset;
  }

  get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  /** Total bytes of the partition's segments. */
  sizeBytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.size;
    return n;
  }

  /** Builds the sparse index and stats of a segment by scanning it (done once per segment per open). */
  indexSegment(seg: Segment): void {
    if (seg.indexed) return;
    seg.resetIndex();
    const end = scanFrames(this.fdOf(seg), 0, seg.size, (buf, at, _size, filePos) => {
      seg.note(frameOffset(buf, at), filePos, frameTimestamp(buf, at));
      return true;
    });
    if (end !== seg.size) throw corrupt(`segment ${seg.path}: unreadable frame at byte ${end} of ${seg.size}`);
    seg.indexed = true;
  }

  /**
   * Checks the frames appended between two committed ends (recovery of the journal tail): complete,
   * crc-valid, dense offsets from `from.offset`, ending exactly at `to`.
   */
  static verifyAppend(dir: string, from: PartitionEnd, to: PartitionEnd, fds: Map<string, number>): boolean {
    let startPos: number;
    let expect: number;
    if (to.segBase === from.segBase) {
      startPos = from.pos;
      expect = from.offset;
    } else {
      if (to.segBase !== from.offset || to.segBase < from.segBase) return false;
      startPos = 0;
      expect = to.segBase;
    }
    if (to.pos < startPos || to.offset < expect) return false;
    const file = path.join(dir, segmentFileName(to.segBase));
    let fd = fds.get(file);
    if (fd === undefined) {
      try {
        fd = fs.openSync(file, 'r');
      } catch {
        return false;
      }
      fds.set(file, fd);
    }
    if (fs.fstatSync(fd).size < to.pos) return false;
    let ok = true;
    const end = scanFrames(fd, startPos, to.pos, (buf, at, size) => {
      if (!frameCrcOk(buf, at, size) || frameOffset(buf, at) !== expect) {
        ok = false;
        return false;
      }
      expect++;
      return true;
    });
    return ok && end === to.pos && expect === to.offset;
  }

  // ---- appends (called synchronously by the flush) ----

  undoPoint(): AppendUndo {
    const seg = this.active;
    return {
      part: this,
      seg,
      size: seg.size,
      nextOffset: this.nextOffset,
      idxLen: seg.idxOffsets.length,
      lastIndexedPos: seg.lastIndexedPos,
      maxTimestamp: seg.maxTimestamp,
      records: seg.records,
    };
  }

  /** Rolls a new active segment starting at `nextOffset`. */
  roll(now: number): Segment {
    const seg = new Segment(this.dir, this.nextOffset, 0, now);
    seg.fd = fs.openSync(seg.path, 'w+');
    seg.indexed = true;
    if (this.durable) fsyncDir(this.dir);
    this.segments.push(seg);
    return seg;
  }

  shouldRoll(bytes: number, now: number): boolean {
    const a = this.active;
    return a.size > 0 && (a.size + bytes > this.config.segmentBytes || now - a.createdAt >= this.config.segmentMs);
  }

  /**
   * Encodes the pending records into one buffer and writes it with one write at the end of the
   * active segment. Returns the new end. On error, the file is truncated back and the error thrown.
   */
  appendPending(): PartitionEnd {
    const seg = this.active;
    const records = this.pendRecords;
    const timestamps = this.pendTimestamps;
    const buf = scratchBuffer(this.pendBytes);
    const dv = viewOf(buf);
    const base = seg.size;
    let offset = this.nextOffset;
    let pos = 0;
    for (let i = 0; i < records.length; i++) {
      const ts = timestamps[i]!;
      seg.note(offset, base + pos, ts);
      pos = encodeRecord(buf, dv, pos, offset, ts, records[i]!);
      offset++;
    }
    if (pos !== buf.length) throw new Error(`encoded ${pos} bytes, expected ${buf.length}`);
    try {
      writeFully(seg.open(), buf, base);
    } catch (err) {
      try {
        fs.ftruncateSync(seg.fd, base);
      } catch {
        // the flush rolls back in memory; recovery truncates on the next open
      }
      throw err;
    }
    seg.size = base + buf.length;
    this.nextOffset = offset;
    return { offset, segBase: seg.baseOffset, pos: seg.size };
  }

  clearPending(): void {
    this.pendRecords = [];
    this.pendTimestamps = [];
    this.pendBytes = 0;
  }

  undo(u: AppendUndo): void {
    // segments rolled by the failed flush stay (empty); the end goes back
    for (const s of this.segments) {
      if (s.baseOffset > u.seg.baseOffset && s.size > 0) {
        try {
          fs.ftruncateSync(s.open(), 0);
        } catch {
          // recovery deletes segments beyond the committed end
        }
        s.size = 0;
        s.resetIndex();
        s.indexed = true;
      }
    }
    const seg = u.seg;
    if (seg.size !== u.size) {
      try {
        fs.ftruncateSync(seg.open(), u.size);
      } catch {
        // recovery truncates to the committed end
      }
    }
    seg.size = u.size;
    seg.idxOffsets.length = u.idxLen;
    seg.idxPositions.length = u.idxLen;
    seg.lastIndexedPos = u.lastIndexedPos;
    seg.maxTimestamp = u.maxTimestamp;
    seg.records = u.records;
    this.nextOffset = u.nextOffset;
  }

  /** Makes everything up to `end` visible to readers and wakes them. */
  publish(end: PartitionEnd): void {
    if (end.offset < this.visibleEnd) return;
    const seg = this.segments.find((s) => s.baseOffset === end.segBase);
    if (seg === undefined) return;
    this.visibleEnd = end.offset;
    this.visibleSeg = seg;
    this.visiblePos = end.pos;
    this.wake();
  }

  wake(): void {
    if (this.waiters.size === 0) return;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  committedEnd(): PartitionEnd {
    return { offset: this.visibleEnd, segBase: this.visibleSeg.baseOffset, pos: this.visiblePos };
  }

  // ---- reads ----

  private readLimit(seg: Segment): number {
    if (seg === this.visibleSeg) return this.visiblePos;
    return seg.baseOffset < this.visibleSeg.baseOffset ? seg.size : 0;
  }

  private findSegment(offset: number): number {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (segs[mid]!.baseOffset <= offset) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /**
   * Appends up to `max` committed records from the cursor's position to `out`; moves the cursor.
   * Returns how many were appended.
   */
  read(cursor: ReadCursor, max: number, out: ConsumedRecord[], verify: boolean): number {
    const end = this.visibleEnd;
    let position = cursor.position;
    if (position < this.logStart) {
      position = this.logStart;
      cursor.seg = null;
    }
    if (position >= end || max <= 0) {
      cursor.position = position;
      return 0;
    }
    let seg: Segment;
    let segIdx: number;
    let filePos: number;
    if (cursor.seg !== null && !cursor.seg.dead && cursor.position === position) {
      seg = cursor.seg;
      segIdx = this.segments.indexOf(seg);
      filePos = cursor.filePos;
    } else {
      segIdx = this.findSegment(position);
      seg = this.segments[segIdx]!;
      if (position <= seg.baseOffset) {
        filePos = 0;
      } else {
        this.indexSegment(seg);
        filePos = seg.lookup(position);
      }
    }
    const topic = this.topic;
    const partition = this.partition;
    let count = 0;
    let done = false;
    while (!done && count < max) {
      const limit = this.readLimit(seg);
      if (filePos >= limit) {
        if (seg === this.visibleSeg || segIdx + 1 >= this.segments.length) {
          // everything below the committed end was scanned
          if (position < end) position = end;
          break;
        }
        segIdx++;
        seg = this.segments[segIdx]!;
        filePos = 0;
        continue;
      }
      // make sure the chunk holds at least the frame prefix at filePos
      if (limit - filePos < RECORD_PREFIX) throw corrupt(`${topic}-${partition}: partial frame at byte ${filePos} of ${seg.path}`);
      let chunk = cursor.chunk;
      if (chunk === null || cursor.chunkSeg !== seg || filePos < cursor.chunkStart || filePos + RECORD_PREFIX > cursor.chunkStart + cursor.chunkLen) {
        chunk = this.loadChunk(cursor, seg, filePos, limit, CHUNK_BYTES);
      }
      let p = filePos - cursor.chunkStart;
      let cEnd = cursor.chunkLen;
      let size = RECORD_PREFIX + chunk.readUInt32LE(p);
      if (size < RECORD_OVERHEAD || size > MAX_RECORD_BYTES || filePos + size > limit) {
        throw corrupt(`${topic}-${partition}: bad frame at byte ${filePos} of ${seg.path}`);
      }
      if (p + size > cEnd) {
        chunk = this.loadChunk(cursor, seg, filePos, limit, Math.max(CHUNK_BYTES, size));
        p = 0;
        cEnd = cursor.chunkLen;
      }
      // decode the frames of this chunk
      while (count < max) {
        if (cEnd - p < RECORD_PREFIX) break;
        size = RECORD_PREFIX + chunk.readUInt32LE(p);
        if (p + size > cEnd) break;
        const offset = chunk.readDoubleLE(p + 8);
        if (offset >= end) {
          done = true;
          break;
        }
        if (offset >= position) {
          if (verify && !frameCrcOk(chunk, p, size)) throw corrupt(`${topic}-${partition}: checksum mismatch at offset ${offset} in ${seg.path}`);
          let rec: ConsumedRecord;
          try {
            rec = decodeRecordAt(chunk, p, size, topic, partition);
          } catch (err) {
            throw corrupt(`${topic}-${partition}: bad record at offset ${offset} in ${seg.path}`, err);
          }
          out.push(rec);
          count++;
          position = offset + 1;
        }
        p += size;
      }
      filePos = cursor.chunkStart + p;
    }
    cursor.position = position;
    cursor.seg = seg;
    cursor.filePos = filePos;
    return count;
  }

  /**
   * Reads a fresh chunk at `filePos` (never overwrites a chunk that records handed out may view).
   * Reads stop at the committed byte limit, so a chunk never holds uncommitted bytes.
   */
  private loadChunk(cursor: ReadCursor, seg: Segment, filePos: number, limit: number, want: number): Buffer {
    const len = Math.min(want, limit - filePos);
    const chunk = Buffer.allocUnsafe(len);
    const got = readFully(this.fdOf(seg), chunk, len, filePos);
    if (got < len) throw corrupt(`${this.topic}-${this.partition}: ${seg.path} is shorter than its committed end`);
    cursor.chunk = chunk;
    cursor.chunkSeg = seg;
    cursor.chunkStart = filePos;
    cursor.chunkLen = len;
    return chunk;
  }

  // ---- retention and compaction (run at a barrier: nothing is being written) ----

  private dropSegment(seg: Segment): void {
    seg.dead = true;
    seg.close();
    fs.rmSync(seg.path, { force: true });
  }

  /**
   * Deletes whole segments from the start while they are older than retention.ms or the partition
   * is larger than retention.bytes. An expired active segment is rolled first. Returns whether
   * anything was deleted.
   */
  applyRetention(now: number): boolean {
    const cfg = this.config;
    if (!cfg.delete) return false;
    let changed = false;
    if (cfg.retentionMs >= 0) {
      const active = this.active;
      if (active.size > 0 && active.maxTimestamp < now - cfg.retentionMs) {
        // everything is expired: roll so that the active segment can go too
        const next = this.roll(now);
        this.publish({ offset: this.visibleEnd, segBase: next.baseOffset, pos: 0 });
      }
      while (this.segments.length > 1) {
        const seg = this.segments[0]!;
        this.indexSegment(seg);
        if (seg.maxTimestamp >= now - cfg.retentionMs) break;
        this.dropSegment(seg);
        this.segments.shift();
        changed = true;
      }
    }
    if (cfg.retentionBytes >= 0) {
      let total = this.sizeBytes();
      while (this.segments.length > 1) {
        const seg = this.segments[0]!;
        if (total - seg.size < cfg.retentionBytes) break;
        total -= seg.size;
        this.dropSegment(seg);
        this.segments.shift();
        changed = true;
      }
    }
    if (changed) {
      if (this.durable) fsyncDir(this.dir);
      this.wake();
    }
    return changed;
  }

  /** Rolls the active segment when it is older than segment.ms (so that retention can reach it). */
  rollIfOld(now: number): boolean {
    const a = this.active;
    if (a.size > 0 && now - a.createdAt >= this.config.segmentMs) {
      const next = this.roll(now);
      this.publish({ offset: this.visibleEnd, segBase: next.baseOffset, pos: 0 });
      return true;
    }
    return false;
  }

  /**
   * cleanup.policy=compact: rewrites each closed segment keeping, per key, only the latest record of
   * the partition (the active segment counts for "latest" but is not rewritten). A tombstone (null
   * value) that is the latest of its key is removed once its timestamp is older than
   * delete.retention.ms (0: at once). Records with a null key are kept. Empty closed segments are
   * deleted, except the first (it keeps the log start offset). Returns whether anything changed.
   */
  compact(now: number, force: boolean): boolean {
    if (!this.config.compact || this.segments.length < 2) return false;
    const activeBase = this.active.baseOffset;
    if (!force && this.compactedAt === activeBase && !this.compactAgain) return false;
    this.compactedAt = activeBase;
    this.compactAgain = false;
    // 1. latest offset of each key over the whole partition
    const latest = new Map<string, number>();
    for (const seg of this.segments) {
      if (seg.size === 0) continue;
      const limit = seg === this.visibleSeg ? this.visiblePos : seg.size;
      scanFrames(this.fdOf(seg), 0, limit, (buf, at) => {
        const key = frameKey(buf, at);
        if (key !== null) latest.set(key.toString('latin1'), frameOffset(buf, at));
        return true;
      });
    }
    // 2. rewrite closed segments
    let changed = false;
    const horizon = now - this.config.deleteRetentionMs;
    const closed = this.segments.slice(0, -1);
    for (let i = 0; i < closed.length; i++) {
      const seg = closed[i]!;
      if (seg.size === 0) continue;
      const keep: Buffer[] = [];
      let kept = 0;
      let dropped = 0;
      scanFrames(this.fdOf(seg), 0, seg.size, (buf, at, size) => {
        const key = frameKey(buf, at);
        let retain = true;
        if (key !== null) {
          const offset = frameOffset(buf, at);
          if (latest.get(key.toString('latin1')) !== offset) retain = false;
          else if (frameValueIsNull(buf, at)) {
            if (frameTimestamp(buf, at) < horizon) retain = false;
            else this.compactAgain = true;
          }
        }
        if (retain) {
          keep.push(Buffer.from(buf.subarray(at, at + size)));
          kept += size;
        } else {
          dropped++;
        }
        return true;
      });
      if (dropped === 0) continue;
      changed = true;
      const idx = this.segments.indexOf(seg);
      if (kept === 0 && idx > 0) {
        this.dropSegment(seg);
        this.segments.splice(idx, 1);
        continue;
      }
      const tmp = `${seg.path}.cleaned`;
      const fd = fs.openSync(tmp, 'w');
      try {
        writeFully(fd, Buffer.concat(keep, kept), 0);
        if (this.durable) fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      seg.close();
      seg.dead = true;
      fs.renameSync(tmp, seg.path);
      const fresh = new Segment(this.dir, seg.baseOffset, kept, seg.createdAt);
      this.segments[idx] = fresh;
      this.indexSegment(fresh);
    }
    if (changed && this.durable) fsyncDir(this.dir);
    return changed;
  }

  closeFiles(): void {
    for (const s of this.segments) s.close();
  }
}

/**
 * Reads up to `max` committed records from several partitions into `out`. Each partition first
 * gets an equal share (so one busy partition cannot starve the others), then what is left of `max`
 * is filled in order, starting at `start` (callers rotate it from poll to poll).
 */
export function readFair(parts: readonly PartitionLog[], cursors: readonly ReadCursor[], start: number, max: number, out: ConsumedRecord[], verify: boolean): void {
  const n = parts.length;
  if (n === 0) return;
  const share = Math.max(1, Math.ceil(max / n));
  let full = false;
  for (let k = 0; k < n && out.length < max; k++) {
    const i = (start + k) % n;
    const want = Math.min(share, max - out.length);
    if (parts[i]!.read(cursors[i]!, want, out, verify) === want) full = true;
  }
  if (!full) return;
  for (let k = 0; k < n && out.length < max; k++) {
    const i = (start + k) % n;
    parts[i]!.read(cursors[i]!, max - out.length, out, verify);
  }
}
