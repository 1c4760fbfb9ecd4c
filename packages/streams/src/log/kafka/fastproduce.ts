/**
 * The hot path of transactional sends: record batches (magic v2) encoded in one buffer per
 * partition, sent with a Produce request (v9+, flexible) written here, through the producer
 * client's own connections. @platformatic/kafka's send builds a DynamicBuffer per record and copies
 * each batch several times; this path is ~3x cheaper per record, which the EOS loop needs.
 * Producer id, epoch and transactional id come from the client (which still runs InitProducerId,
 * AddPartitionsToTxn, AddOffsetsToTxn and EndTxn); sequence numbers are kept by the caller.
 */
import { Writer, crc32c, createAPI, produceV9, produceV10, produceV11, type API } from '@platformatic/kafka';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ProducerRecord } from '../types.ts';
import { clientApi, type RequestClient } from './util.ts';

const MAGIC = 2;
const TRANSACTIONAL = 1 << 4;
/** Bytes of a batch from the start up to the first record. */
const BATCH_OVERHEAD = 61;
/** Offset of the CRC-covered part (attributes onwards). */
const CRC_START = 21;

function uvarintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeUvarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Zig-zag (signed) varint of a safe integer. */
function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

type Crc32c = (data: Uint8Array) => number;

/** CRC-32C: @node-rs/crc32 (which the client depends on) called directly, else the client's (which copies its input). */
const crc: Crc32c = (() => {
  try {
    const require = createRequire(fileURLToPath(import.meta.resolve('@platformatic/kafka')));
    return (require('@node-rs/crc32') as { crc32c: Crc32c }).crc32c;
  } catch {
    return (data: Uint8Array) => crc32c(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
})();

/**
 * Encodes one record batch (magic 2, uncompressed) of `records[i]` for i in `indexes`, with
 * timestamps defaulting to `now`.
 */
export function encodeBatch(
  records: readonly ProducerRecord[],
  indexes: readonly number[],
  now: number,
  producerId: bigint,
  producerEpoch: number,
  baseSequence: number,
  transactional: boolean,
): Buffer {
  const n = indexes.length;
  const first = records[indexes[0]!]!;
  const base = Math.trunc(first.timestamp ?? now);
  let max = base;
  const bodySizes = new Array<number>(n);
  let total = BATCH_OVERHEAD;
  for (let i = 0; i < n; i++) {
    const r = records[indexes[i]!]!;
    const ts = r.timestamp === undefined ? now : Math.trunc(r.timestamp);
    if (ts > max) max = ts;
    let size = 1 + uvarintSize(zigzag(ts - base)) + uvarintSize(zigzag(i));
    size += r.key === null ? 1 : uvarintSize(zigzag(r.key.length)) + r.key.length;
    size += r.value === null ? 1 : uvarintSize(zigzag(r.value.length)) + r.value.length;
    const h = r.headers;
    const hn = h ? h.length : 0;
    size += uvarintSize(zigzag(hn));
    for (let j = 0; j < hn; j++) {
      const [k, v] = h![j]!;
      const kl = Buffer.byteLength(k, 'utf8');
      size += uvarintSize(zigzag(kl)) + kl + uvarintSize(zigzag(v.length)) + v.length;
    }
    bodySizes[i] = size;
    total += uvarintSize(zigzag(size)) + size;
  }
  const buf = Buffer.allocUnsafe(total);
  buf.writeInt32BE(0, 0); // base offset
  buf.writeInt32BE(0, 4);
  buf.writeInt32BE(total - 12, 8); // batch length
  buf.writeInt32BE(-1, 12); // partition leader epoch
  buf.writeInt8(MAGIC, 16);
  // CRC at 17, written last
  buf.writeInt16BE(transactional ? TRANSACTIONAL : 0, 21);
  buf.writeInt32BE(n - 1, 23); // last offset delta
  buf.writeBigInt64BE(BigInt(base), 27);
  buf.writeBigInt64BE(BigInt(max), 35);
  buf.writeBigInt64BE(producerId, 43);
  buf.writeInt16BE(producerEpoch, 51);
  buf.writeInt32BE(baseSequence, 53);
  buf.writeInt32BE(n, 57);
  let pos = BATCH_OVERHEAD;
  for (let i = 0; i < n; i++) {
    const r = records[indexes[i]!]!;
    const ts = r.timestamp === undefined ? now : Math.trunc(r.timestamp);
    pos = writeUvarint(buf, pos, zigzag(bodySizes[i]!));
    buf[pos++] = 0; // record attributes
    pos = writeUvarint(buf, pos, zigzag(ts - base));
    pos = writeUvarint(buf, pos, zigzag(i));
    const key = r.key;
    if (key === null) buf[pos++] = 1; // zigzag(-1)
    else {
      pos = writeUvarint(buf, pos, zigzag(key.length));
      buf.set(key, pos);
      pos += key.length;
    }
    const value = r.value;
    if (value === null) buf[pos++] = 1;
    else {
      pos = writeUvarint(buf, pos, zigzag(value.length));
      buf.set(value, pos);
      pos += value.length;
    }
    const h = r.headers;
    const hn = h ? h.length : 0;
    pos = writeUvarint(buf, pos, zigzag(hn));
    for (let j = 0; j < hn; j++) {
      const [k, v] = h![j]!;
      pos = writeUvarint(buf, pos, zigzag(Buffer.byteLength(k, 'utf8')));
      pos += buf.write(k, pos, 'utf8');
      pos = writeUvarint(buf, pos, zigzag(v.length));
      buf.set(v, pos);
      pos += v.length;
    }
  }
  buf.writeUInt32BE(crc(buf.subarray(CRC_START)) >>> 0, 17);
  return buf;
}

function compactString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(uvarintSize(bytes.length + 1) + bytes.length);
  const pos = writeUvarint(out, 0, bytes.length + 1);
  bytes.copy(out, pos);
  return out;
}

function uvarintBuffer(n: number): Buffer {
  const out = Buffer.allocUnsafe(uvarintSize(n));
  writeUvarint(out, 0, n);
  return out;
}

const TAG0 = Buffer.from([0]);

export type PartitionBatches = Map<string, Map<number, Buffer>>;

/** Produce request v9..v11 (flexible): the batches are appended without copying. */
function createProduceRequest(transactionalId: string | null, acks: number, timeoutMs: number, topics: PartitionBatches): Writer {
  const w = Writer.create();
  w.append(transactionalId === null ? Buffer.from([0]) : compactString(transactionalId));
  const fixed = Buffer.allocUnsafe(6);
  fixed.writeInt16BE(acks, 0);
  fixed.writeInt32BE(timeoutMs, 2);
  w.append(fixed);
  w.append(uvarintBuffer(topics.size + 1));
  for (const [topic, partitions] of topics) {
    w.append(compactString(topic));
    w.append(uvarintBuffer(partitions.size + 1));
    for (const [partition, batch] of partitions) {
      const index = Buffer.allocUnsafe(4);
      index.writeInt32BE(partition, 0);
      w.append(index);
      w.append(uvarintBuffer(batch.length + 1));
      w.append(batch);
      w.append(TAG0);
    }
    w.append(TAG0);
  }
  w.append(TAG0);
  return w;
}

type ProduceResponse = produceV11.ProduceResponse;
type FastProduceApi = API<[string | null, number, number, PartitionBatches], ProduceResponse>;

const parsers: Record<number, typeof produceV11.parseResponse> = {
  9: produceV9.parseResponse as typeof produceV11.parseResponse,
  10: produceV10.parseResponse as typeof produceV11.parseResponse,
  11: produceV11.parseResponse,
};

const apiCache = new WeakMap<object, FastProduceApi | null>();

/** The fast Produce API for the version the broker negotiated with `client`, or null when it is older than v9. */
export async function fastProduceApi(client: object): Promise<FastProduceApi | null> {
  if (apiCache.has(client)) return apiCache.get(client)!;
  const negotiated = await clientApi(client as RequestClient, 'Produce');
  const version = Math.min(negotiated.version, 11);
  const parser = parsers[version];
  const api = parser ? (createAPI(0, version, createProduceRequest as never, parser) as unknown as FastProduceApi) : null;
  apiCache.set(client, api);
  return api;
}
