/**
 * The hot path of reads: Fetch (v13..v17, topic ids) with the request built by @platformatic/kafka
 * and the response parsed here, straight from one Buffer into ConsumedRecords (keys and values are
 * views of the response, not copies). The client's own parser reads every byte through a
 * multi-chunk DynamicBuffer and builds an intermediate object per record, which costs about half of
 * a consume-transform-produce loop. No fetch session (session id 0, epoch -1): requests list every
 * partition, which for the partitions of one member is a few bytes.
 */
import {
  compressionsAlgorithmsByBitmask,
  createAPI,
  fetchV13,
  fetchV14,
  fetchV15,
  fetchV16,
  fetchV17,
  type API,
  type Reader,
} from '@platformatic/kafka';
import type { ConsumedRecord, Header } from '../types.ts';
import { clientApi, type RequestClient } from './util.ts';

export interface FetchedPartition {
  topicId: string;
  partition: number;
  errorCode: number;
  highWatermark: number;
  lastStableOffset: number;
  logStartOffset: number;
  aborted: Array<{ producerId: bigint; firstOffset: number }> | null;
  /** The partition's record batches (a view of the response), or null. */
  records: Buffer | null;
  /** `records` views a reused buffer: decoding must copy keys, values and headers out (see parseResponse). */
  shared: boolean;
}

export interface FetchedResponse {
  errorCode: number;
  partitions: FetchedPartition[];
  /** The reused buffer the response was assembled in, if any: give it back with releaseResponse once decoded. */
  scratch?: Buffer | undefined;
}

// ---- reused memory for responses that arrive in several socket chunks ---------------------------
//
// A fetch response of a few MB arrives in many socket chunks. Joining them into one fresh Buffer
// cost more than everything else the client does per record: a fresh allocation that large is
// fresh pages, and touching them (page faults) made the copy run at ~0.2-0.5 GB/s. So they are
// joined into a buffer that is reused from response to response, and the records decoded from it
// get their bytes copied into small slabs (heap memory that malloc recycles, ~10x cheaper).

const scratchPool: Buffer[] = [];
const SCRATCH_POOL = 2;
const MAX_POOLED_SCRATCH = 64 * 1024 * 1024;

function takeScratch(n: number): Buffer {
  for (let i = 0; i < scratchPool.length; i++) {
    if (scratchPool[i]!.length >= n) return scratchPool.splice(i, 1)[0]!;
  }
  scratchPool.pop(); // too small for this response: replaced
  return Buffer.allocUnsafeSlow(Math.max(n, 1024 * 1024));
}

/** Gives a response's reused buffer back, after its records were decoded (their bytes were copied out). */
export function releaseResponse(r: FetchedResponse): void {
  const b = r.scratch;
  if (b === undefined) return;
  r.scratch = undefined;
  if (scratchPool.length < SCRATCH_POOL && b.length <= MAX_POOLED_SCRATCH) scratchPool.push(b);
}

const SLAB_BYTES = 64 * 1024;
let slab: Buffer = Buffer.alloc(0);
let slabPos = 0;

/** A copy of `src[start, end)` in slab memory. */
function copyOut(src: Buffer, start: number, end: number): Buffer {
  const n = end - start;
  if (n > SLAB_BYTES / 4) {
    const b = Buffer.allocUnsafeSlow(n);
    src.copy(b, 0, start, end);
    return b;
  }
  if (slabPos + n > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabPos = 0;
  }
  src.copy(slab, slabPos, start, end);
  const out = slab.subarray(slabPos, slabPos + n);
  slabPos += n;
  return out;
}

// ---- a cursor over one Buffer ------------------------------------------------------------------

let buf: Buffer = Buffer.alloc(0);
let pos = 0;

function i16(): number {
  const v = buf.readInt16BE(pos);
  pos += 2;
  return v;
}
function i32(): number {
  const v = buf.readInt32BE(pos);
  pos += 4;
  return v;
}
/** int64 as a number (offsets and timestamps stay below 2^53). */
function i64(): number {
  const hi = buf.readInt32BE(pos);
  const lo = buf.readUInt32BE(pos + 4);
  pos += 8;
  return hi * 4294967296 + lo;
}
function uvarint(): number {
  let b = buf[pos++]!;
  if (b < 0x80) return b;
  let result = b & 0x7f;
  let mul = 128;
  do {
    b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    mul *= 128;
  } while (b >= 0x80);
  return result;
}
/** Zig-zag varint / varlong as a number. */
function varint(): number {
  const z = uvarint();
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}
function skipTaggedFields(): void {
  const n = uvarint();
  for (let i = 0; i < n; i++) {
    uvarint();
    pos += uvarint();
  }
}
function uuid(): string {
  const hex = buf.toString('hex', pos, pos + 16);
  pos += 16;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function parseResponse(_correlationId: number, _apiKey: number, _apiVersion: number, reader: Reader): FetchedResponse {
  const dyn = reader.buffer as unknown as { buffers?: Buffer[]; length: number; buffer: Buffer };
  const chunks = dyn.buffers;
  let scratch: Buffer | undefined;
  if (chunks === undefined || chunks.length <= 1) {
    buf = dyn.buffer; // one socket chunk: records are views of it
  } else {
    scratch = takeScratch(dyn.length);
    let at = 0;
    for (const c of chunks) {
      c.copy(scratch, at);
      at += c.length;
    }
    buf = scratch;
  }
  pos = reader.position;
  i32(); // throttle
  const errorCode = i16();
  i32(); // session id
  const partitions: FetchedPartition[] = [];
  const topics = uvarint() - 1;
  for (let t = 0; t < topics; t++) {
    const topicId = uuid();
    const count = uvarint() - 1;
    for (let p = 0; p < count; p++) {
      const partition = i32();
      const pErr = i16();
      const highWatermark = i64();
      const lastStableOffset = i64();
      const logStartOffset = i64();
      const abortedCount = uvarint() - 1;
      let aborted: FetchedPartition['aborted'] = null;
      if (abortedCount > 0) {
        aborted = [];
        for (let a = 0; a < abortedCount; a++) {
          const producerId = buf.readBigInt64BE(pos);
          pos += 8;
          const firstOffset = i64();
          skipTaggedFields();
          aborted.push({ producerId, firstOffset });
        }
      }
      i32(); // preferred read replica
      const size = uvarint();
      let records: Buffer | null = null;
      if (size > 1) {
        records = buf.subarray(pos, pos + size - 1);
        pos += size - 1;
      }
      skipTaggedFields();
      partitions.push({ topicId, partition, errorCode: pErr, highWatermark, lastStableOffset, logStartOffset, aborted, records, shared: scratch !== undefined });
    }
    skipTaggedFields();
  }
  skipTaggedFields();
  buf = EMPTY;
  return { errorCode, partitions, scratch };
}

const EMPTY: Buffer = Buffer.alloc(0);
const EMPTY_HEADERS: Header[] = [];
const IS_TRANSACTIONAL = 1 << 4;
const IS_CONTROL = 1 << 5;
const LOG_APPEND_TIME = 1 << 3;
const COMPRESSION = 0b111;

/**
 * Appends the data records at or after `fromOffset` of a partition's record batches to `out`,
 * skipping control batches and, for read_committed, aborted transactions (Java's algorithm: a
 * producer listed in `aborted` is skipped from its first offset until its abort marker, which may
 * come in a later response). Truncated trailing batches are ignored. Returns the next offset to fetch.
 * With `copy`, keys, values and header values are copies, not views of `data` (which will be reused).
 */
export function decodeRecords(
  topic: string,
  partition: number,
  data: Buffer | null,
  aborted: FetchedPartition['aborted'],
  fromOffset: number,
  out: ConsumedRecord[],
  copy = false,
): number {
  if (!data) return fromOffset;
  let next = fromOffset;
  const pending = aborted && aborted.length > 0 ? [...aborted].sort((a, b) => a.firstOffset - b.firstOffset) : null;
  let pendingIdx = 0;
  let abortedProducers: Set<bigint> | null = null;
  let at = 0;
  const end = data.length;
  while (at + 61 <= end) {
    const batchLength = data.readInt32BE(at + 8);
    const batchEnd = at + 12 + batchLength;
    if (batchEnd > end) break; // truncated by the fetch size
    const baseOffset = data.readInt32BE(at) * 4294967296 + data.readUInt32BE(at + 4);
    const magic = data.readInt8(at + 16);
    const attributes = data.readInt16BE(at + 21);
    const lastOffset = baseOffset + data.readInt32BE(at + 23);
    const batchStart = at;
    at = batchEnd;
    if (lastOffset < fromOffset) continue;
    if (lastOffset + 1 > next) next = lastOffset + 1;
    if (magic !== 2) continue; // message formats v0/v1 are not produced by Kafka 3+
    const producerId = data.readBigInt64BE(batchStart + 43);
    if (pending) {
      while (pendingIdx < pending.length && pending[pendingIdx]!.firstOffset <= lastOffset) {
        (abortedProducers ??= new Set()).add(pending[pendingIdx]!.producerId);
        pendingIdx++;
      }
    }
    if (attributes & IS_CONTROL) {
      if (abortedProducers && batchEnd - batchStart > 61) {
        // Control record key: version int16, type int16 (0 = abort).
        buf = data;
        pos = batchStart + 61;
        varint(); // length
        pos += 1; // attributes
        varint(); // timestamp delta
        varint(); // offset delta
        const keyLength = varint();
        if (keyLength >= 4 && data.readInt16BE(pos + 2) === 0) abortedProducers.delete(producerId);
        buf = EMPTY;
      }
      continue;
    }
    if (abortedProducers && attributes & IS_TRANSACTIONAL && abortedProducers.has(producerId)) continue;
    const baseTimestamp = data.readInt32BE(batchStart + 27) * 4294967296 + data.readUInt32BE(batchStart + 31);
    const maxTimestamp = data.readInt32BE(batchStart + 35) * 4294967296 + data.readUInt32BE(batchStart + 39);
    const count = data.readInt32BE(batchStart + 57);
    let recordsBuf = data;
    let recordsAt = batchStart + 61;
    let copyRecords = copy;
    const codec = attributes & COMPRESSION;
    if (codec !== 0) {
      const algorithm = compressionsAlgorithmsByBitmask[codec];
      if (!algorithm) throw new Error(`unsupported compression ${codec} in ${topic}-${partition}`);
      recordsBuf = algorithm.decompressSync(data.subarray(batchStart + 61, batchEnd));
      recordsAt = 0;
      copyRecords = false; // a fresh buffer of its own
    }
    readBatchRecords(topic, partition, recordsBuf, recordsAt, count, baseOffset, (attributes & LOG_APPEND_TIME) !== 0 ? -1 : baseTimestamp, maxTimestamp, fromOffset, out, copyRecords);
  }
  return next;
}

function readBatchRecords(
  topic: string,
  partition: number,
  data: Buffer,
  start: number,
  count: number,
  baseOffset: number,
  baseTimestamp: number,
  maxTimestamp: number,
  fromOffset: number,
  out: ConsumedRecord[],
  copy: boolean,
): void {
  buf = data;
  pos = start;
  for (let i = 0; i < count; i++) {
    const length = varint();
    const recordEnd = pos + length;
    pos += 1; // attributes
    const timestampDelta = varint();
    const offset = baseOffset + varint();
    if (offset < fromOffset) {
      pos = recordEnd;
      continue;
    }
    const keyLength = varint();
    let key: Buffer | null = null;
    if (keyLength >= 0) {
      key = copy ? copyOut(data, pos, pos + keyLength) : data.subarray(pos, pos + keyLength);
      pos += keyLength;
    }
    const valueLength = varint();
    let value: Buffer | null = null;
    if (valueLength >= 0) {
      value = copy ? copyOut(data, pos, pos + valueLength) : data.subarray(pos, pos + valueLength);
      pos += valueLength;
    }
    const headerCount = varint();
    let headers: Header[] = EMPTY_HEADERS;
    if (headerCount > 0) {
      headers = new Array(headerCount);
      for (let h = 0; h < headerCount; h++) {
        const kl = varint();
        const name = data.toString('utf8', pos, pos + kl);
        pos += kl;
        const vl = varint();
        let v: Buffer = EMPTY;
        if (vl >= 0) {
          v = copy ? copyOut(data, pos, pos + vl) : data.subarray(pos, pos + vl);
          pos += vl;
        }
        headers[h] = [name, v];
      }
    }
    pos = recordEnd;
    out.push({ topic, partition, offset, key, value, timestamp: baseTimestamp < 0 ? maxTimestamp : baseTimestamp + timestampDelta, headers });
  }
  buf = EMPTY;
}

// ---- the API -----------------------------------------------------------------------------------

const builders: Record<number, (...args: never[]) => unknown> = {
  13: fetchV13.createRequest as never,
  14: fetchV14.createRequest as never,
  15: fetchV15.createRequest as never,
  16: fetchV16.createRequest as never,
  17: fetchV17.createRequest as never,
};

export interface FetchTopic {
  topicId: string;
  partitions: Array<{ partition: number; fetchOffset: bigint; partitionMaxBytes: number; currentLeaderEpoch: number; lastFetchedEpoch: number }>;
}

export type FastFetchApi = API<[number, number, number, number, number, number, FetchTopic[], never[], string], FetchedResponse>;

const apiCache = new WeakMap<object, FastFetchApi | null>();

/** The fast Fetch API for the version the broker negotiated with `client`, or null below v13. */
export async function fastFetchApi(client: object): Promise<FastFetchApi | null> {
  if (apiCache.has(client)) return apiCache.get(client)!;
  const negotiated = await clientApi(client as RequestClient, 'Fetch');
  const version = Math.min(negotiated.version, 17);
  const builder = builders[version];
  const api = builder ? (createAPI(1, version, builder as never, parseResponse as never) as unknown as FastFetchApi) : null;
  apiCache.set(client, api);
  return api;
}
