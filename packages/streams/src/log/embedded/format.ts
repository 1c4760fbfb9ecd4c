/**
 * Byte formats of the embedded log: the record frame of segment files and the frame of journal
 * entries. Pure functions over Buffers; no I/O here.
 *
 * Record frame (little-endian), one record after another in a segment file:
 *
 *   0   u32  body length (bytes after the first 8)
 *   4   u32  crc32 (zlib) of the body
 *   8   f64  offset            (a double: exact up to 2^53)
 *   16  f64  timestamp (ms)
 *   24  i32  key length (-1 = null), then the key bytes
 *   ..  i32  value length (-1 = null), then the value bytes
 *   ..  u32  header count, then per header: u16 name length, name (utf8), i32 value length, value
 *
 * Journal entry frame: u32 body length, u32 crc32 of the body, body = UTF-8 JSON.
 */
import { crc32 } from 'node:zlib';
import type { ConsumedRecord, Header, ProducerRecord } from '../types.ts';

export const RECORD_PREFIX = 8;
/** Frame bytes of a record with null key, null value and no headers. */
export const RECORD_OVERHEAD = RECORD_PREFIX + 8 + 8 + 4 + 4 + 4;
export const EMPTY_HEADERS: readonly Header[] = Object.freeze([]) as readonly Header[];
/** A record frame larger than this is treated as corruption. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export function recordSize(key: Uint8Array | null, value: Uint8Array | null, headers: readonly Header[] | undefined): number {
  let size = RECORD_OVERHEAD + (key === null ? 0 : key.length) + (value === null ? 0 : value.length);
  if (headers !== undefined) {
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i]!;
      size += 2 + Buffer.byteLength(h[0], 'utf8') + 4 + h[1].length;
    }
  }
  return size;
}

/** A DataView over the whole of `buf` (encodeRecord writes its numbers through it: faster than Buffer's methods). */
export function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Encodes one record at `pos` of `buf` (`dv` = viewOf(buf); the buffer must have room: see
 * recordSize). Returns the end position.
 */
export function encodeRecord(buf: Buffer, dv: DataView, pos: number, offset: number, timestamp: number, r: ProducerRecord): number {
  const start = pos;
  pos += RECORD_PREFIX;
  dv.setFloat64(pos, offset, true);
  dv.setFloat64(pos + 8, timestamp, true);
  pos += 16;
  const key = r.key;
  if (key === null) {
    dv.setInt32(pos, -1, true);
    pos += 4;
  } else {
    dv.setInt32(pos, key.length, true);
    buf.set(key, pos + 4);
    pos += 4 + key.length;
  }
  const value = r.value;
  if (value === null) {
    dv.setInt32(pos, -1, true);
    pos += 4;
  } else {
    dv.setInt32(pos, value.length, true);
    buf.set(value, pos + 4);
    pos += 4 + value.length;
  }
  const headers = r.headers;
  if (headers === undefined || headers.length === 0) {
    dv.setUint32(pos, 0, true);
    pos += 4;
  } else {
    dv.setUint32(pos, headers.length, true);
    pos += 4;
    for (let i = 0; i < headers.length; i++) {
      const [name, hv] = headers[i]!;
      const n = buf.write(name, pos + 2, 'utf8');
      dv.setUint16(pos, n, true);
      pos += 2 + n;
      dv.setInt32(pos, hv.length, true);
      buf.set(hv, pos + 4);
      pos += 4 + hv.length;
    }
  }
  dv.setUint32(start, pos - start - RECORD_PREFIX, true);
  dv.setUint32(start + 4, crc32(buf.subarray(start + RECORD_PREFIX, pos)), true);
  return pos;
}

/**
 * Total frame size of the record starting at `pos`, or -1 when fewer than RECORD_PREFIX bytes are
 * available (the frame may still be larger than what is available).
 */
export function frameSize(buf: Buffer, pos: number, end: number): number {
  if (end - pos < RECORD_PREFIX) return -1;
  return RECORD_PREFIX + buf.readUInt32LE(pos);
}

export function frameOffset(buf: Buffer, pos: number): number {
  return buf.readDoubleLE(pos + 8);
}

export function frameTimestamp(buf: Buffer, pos: number): number {
  return buf.readDoubleLE(pos + 16);
}

export function frameCrcOk(buf: Buffer, pos: number, size: number): boolean {
  return crc32(buf.subarray(pos + RECORD_PREFIX, pos + size)) === buf.readUInt32LE(pos + 4);
}

/**
 * Decodes the complete frame of `size` bytes at `pos` into a ConsumedRecord. Key, value and header
 * values are views into `buf` (no copy), so `buf` must never be overwritten afterwards. Throws
 * RangeError when the inner lengths do not add up to the frame size.
 */
export function decodeRecordAt(buf: Buffer, pos: number, size: number, topic: string, partition: number): ConsumedRecord {
  const end = pos + size;
  const offset = buf.readDoubleLE(pos + 8);
  const timestamp = buf.readDoubleLE(pos + 16);
  let p = pos + 24;
  const keyLen = buf.readInt32LE(p);
  p += 4;
  let key: Buffer | null = null;
  if (keyLen >= 0) {
    key = buf.subarray(p, p + keyLen);
    p += keyLen;
  }
  const valueLen = buf.readInt32LE(p);
  p += 4;
  let value: Buffer | null = null;
  if (valueLen >= 0) {
    value = buf.subarray(p, p + valueLen);
    p += valueLen;
  }
  const count = buf.readUInt32LE(p);
  p += 4;
  let headers: readonly Header[] = EMPTY_HEADERS;
  if (count > 0) {
    const hs: Header[] = [];
    for (let i = 0; i < count; i++) {
      const nLen = buf.readUInt16LE(p);
      const name = buf.toString('utf8', p + 2, p + 2 + nLen);
      p += 2 + nLen;
      const vLen = buf.readInt32LE(p);
      hs.push([name, buf.subarray(p + 4, p + 4 + vLen)]);
      p += 4 + vLen;
    }
    headers = hs;
  }
  if (p !== end || keyLen < -1 || valueLen < -1) throw new RangeError(`record frame at ${pos}: fields end at ${p}, frame at ${end}`);
  return { topic, partition, offset, timestamp, key, value, headers };
}

/** The key of the frame at `pos` (a view), for compaction. */
export function frameKey(buf: Buffer, pos: number): Buffer | null {
  const len = buf.readInt32LE(pos + 24);
  return len < 0 ? null : buf.subarray(pos + 28, pos + 28 + len);
}

/** True when the frame at `pos` has a null value (a tombstone). */
export function frameValueIsNull(buf: Buffer, pos: number): boolean {
  const keyLen = buf.readInt32LE(pos + 24);
  return buf.readInt32LE(pos + 28 + (keyLen < 0 ? 0 : keyLen)) < 0;
}

// ---- journal entries ----

export const JOURNAL_PREFIX = 8;

export function encodeJournalEntry(body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const buf = Buffer.allocUnsafe(JOURNAL_PREFIX + json.length);
  buf.writeUInt32LE(json.length, 0);
  buf.writeUInt32LE(crc32(json), 4);
  json.copy(buf, JOURNAL_PREFIX);
  return buf;
}

/**
 * Decodes the journal entries of `buf` in order, stopping at the first incomplete or corrupt one.
 * Returns the bodies and the byte length of the valid prefix.
 */
export function decodeJournal(buf: Buffer): { entries: unknown[]; validBytes: number } {
  const entries: unknown[] = [];
  let pos = 0;
  while (buf.length - pos >= JOURNAL_PREFIX) {
    const len = buf.readUInt32LE(pos);
    const end = pos + JOURNAL_PREFIX + len;
    if (end > buf.length) break;
    const body = buf.subarray(pos + JOURNAL_PREFIX, end);
    if (crc32(body) !== buf.readUInt32LE(pos + 4)) break;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      break;
    }
    entries.push(parsed);
    pos = end;
  }
  return { entries, validBytes: pos };
}
