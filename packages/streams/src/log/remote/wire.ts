/**
 * What crosses a MessagePort between a remote log (client.ts) and the thread that owns the log
 * (server.ts): records packed into one transferable buffer, errors as plain data, and the messages.
 * `packRecords` and `unpackRecords` serve any hand-off of records to a worker thread.
 *
 * Records are packed because a structured clone of a Buffer copies its whole backing ArrayBuffer
 * (often an 8 KiB pool slab, or a whole read buffer); one packed buffer is transferred without a
 * copy, and the receiver's keys, values and header values are views into it.
 *
 * Layout, per record (little endian):
 *   u32 topic index · i32 partition (-1: none) · f64 offset (-1: none) · f64 timestamp (NaN: none) ·
 *   i32 key length (-1: null) · i32 value length (-1: null) · u32 header count ·
 *   per header: u32 name index · u32 value length · value bytes · then the key bytes, the value bytes
 */
import { StreamsError, ErrorCodes, type ErrorSpec } from '../../errors.ts';
import type { ConsumedRecord, Header, ProducerRecord } from '../types.ts';

export interface PackedRecords {
  count: number;
  topics: string[];
  names: string[];
  buffer: ArrayBuffer;
}

const FIXED = 4 + 4 + 8 + 8 + 4 + 4 + 4;

type AnyRecord = ProducerRecord | ConsumedRecord;

/** Packs records into one buffer (topics and header names by index): into `into` when it is large enough. */
export function packRecords(records: readonly AnyRecord[], into?: ArrayBuffer): PackedRecords {
  const topics: string[] = [];
  const topicIndex = new Map<string, number>();
  const names: string[] = [];
  const nameIndex = new Map<string, number>();
  let size = 0;
  for (const r of records) {
    size += FIXED + (r.key === null ? 0 : r.key.length) + (r.value === null ? 0 : r.value.length);
    if (r.headers !== undefined) for (const h of r.headers) size += 8 + h[1].length;
  }
  const buffer = into !== undefined && into.byteLength >= size ? into : new ArrayBuffer(size);
  const dv = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  let pos = 0;
  for (const r of records) {
    let t = topicIndex.get(r.topic);
    if (t === undefined) {
      t = topics.length;
      topics.push(r.topic);
      topicIndex.set(r.topic, t);
    }
    dv.setUint32(pos, t, true);
    dv.setInt32(pos + 4, r.partition ?? -1, true);
    dv.setFloat64(pos + 8, 'offset' in r ? r.offset : -1, true);
    dv.setFloat64(pos + 16, r.timestamp ?? Number.NaN, true);
    dv.setInt32(pos + 24, r.key === null ? -1 : r.key.length, true);
    dv.setInt32(pos + 28, r.value === null ? -1 : r.value.length, true);
    const headers = r.headers ?? [];
    dv.setUint32(pos + 32, headers.length, true);
    pos += FIXED;
    for (const [name, value] of headers) {
      let n = nameIndex.get(name);
      if (n === undefined) {
        n = names.length;
        names.push(name);
        nameIndex.set(name, n);
      }
      dv.setUint32(pos, n, true);
      dv.setUint32(pos + 4, value.length, true);
      bytes.set(value, pos + 8);
      pos += 8 + value.length;
    }
    if (r.key !== null) {
      bytes.set(r.key, pos);
      pos += r.key.length;
    }
    if (r.value !== null) {
      bytes.set(r.value, pos);
      pos += r.value.length;
    }
  }
  return { count: records.length, topics, names, buffer };
}

interface Unpacked {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Header[];
}

function unpack(p: PackedRecords): Unpacked[] {
  const dv = new DataView(p.buffer);
  const out = new Array<Unpacked>(p.count);
  let pos = 0;
  for (let i = 0; i < p.count; i++) {
    const topic = p.topics[dv.getUint32(pos, true)]!;
    const partition = dv.getInt32(pos + 4, true);
    const offset = dv.getFloat64(pos + 8, true);
    const timestamp = dv.getFloat64(pos + 16, true);
    const keyLength = dv.getInt32(pos + 24, true);
    const valueLength = dv.getInt32(pos + 28, true);
    const headerCount = dv.getUint32(pos + 32, true);
    pos += FIXED;
    const headers = new Array<Header>(headerCount);
    for (let h = 0; h < headerCount; h++) {
      const length = dv.getUint32(pos + 4, true);
      headers[h] = [p.names[dv.getUint32(pos, true)]!, Buffer.from(p.buffer, pos + 8, length)];
      pos += 8 + length;
    }
    let key: Buffer | null = null;
    if (keyLength >= 0) {
      key = Buffer.from(p.buffer, pos, keyLength);
      pos += keyLength;
    }
    let value: Buffer | null = null;
    if (valueLength >= 0) {
      value = Buffer.from(p.buffer, pos, valueLength);
      pos += valueLength;
    }
    out[i] = { topic, partition, offset, timestamp, key, value, headers };
  }
  return out;
}

/** Records packed by `packRecords`; keys, values and header values are views into the buffer. */
export function unpackRecords(p: PackedRecords): ConsumedRecord[] {
  return unpack(p);
}

export function unpackProducer(p: PackedRecords): ProducerRecord[] {
  return unpack(p).map((u) => {
    const r: ProducerRecord = { topic: u.topic, key: u.key, value: u.value, headers: u.headers };
    if (u.partition >= 0) r.partition = u.partition;
    if (!Number.isNaN(u.timestamp)) r.timestamp = u.timestamp;
    return r;
  });
}

// ---- errors ---------------------------------------------------------------------------------------

export interface WireError {
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

const specs = new Map<string, ErrorSpec>(Object.values(ErrorCodes).map((s) => [s.code, s]));

export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { message: String(err) };
  const w: WireError = { message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') w.code = code;
  if (err instanceof StreamsError) {
    try {
      w.details = structuredClone(err.details) as Record<string, unknown>;
    } catch {
      // details that cannot cross a thread are left out
    }
  }
  return w;
}

/** The error again, on the other side: a StreamsError (same code, retriable and fatal) when the code is one. */
export function fromWire(w: WireError): Error {
  const spec = w.code === undefined ? undefined : specs.get(w.code);
  if (spec !== undefined) return new StreamsError(spec as ErrorSpec & { code: StreamsError['code'] }, w.message, w.details === undefined ? undefined : { details: w.details });
  const err = new Error(w.message);
  if (w.code !== undefined) (err as Error & { code?: string }).code = w.code;
  return err;
}

// ---- messages ------------------------------------------------------------------------------------

/** A call from the remote log to the owner. `id` is absent for calls that need no answer. */
export interface Call {
  id?: number;
  op: string;
  /** The producer, reader or member the call is about. */
  h?: number;
  args: unknown[];
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

/** A rebalance callback the owner asks the remote member to run (inside its poll, as the log does). */
export interface CallbackCall {
  cb: 'revoke' | 'assign';
  cid: number;
  h: number;
  generation: number;
  partitions: { topic: string; partition: number }[];
}

export type CallbackReply = { cbReply: number; error?: WireError };

/** What a member's poll answers. */
export interface PollReply {
  records: PackedRecords | null;
  generation: number;
  assignment: { topic: string; partition: number }[];
  /** tpKeys of the assigned partitions that were caught up when the poll returned. */
  caughtUp: string[];
  /** [tpKey, position] of the assigned partitions that had one when the poll returned. */
  positions: [string, number][];
}

export function transferOf(p: PackedRecords | null): ArrayBuffer[] {
  return p === null ? [] : [p.buffer];
}
