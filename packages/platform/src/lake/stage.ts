/**
 * The hand-off from the sink to DuckDB: decoded records as lines of a flat text file that DuckDB
 * reads in bulk with `read_csv` (no quoting, no escapes) and writes to Parquet with one COPY.
 *
 * One line per record, fields separated by U+001F (unit separator), ending in `\n`:
 *
 *   offset ␟ received_at_ms ␟ event_time_ms ␟ merchant ␟ message_id ␟ event ␟ type ␟ visitor_id ␟
 *   reject_code ␟ headers (JSON) ␟ payload_bytes (base64) ␟ payload
 *
 * The payload is last and is the record value's bytes as they are, so nothing is escaped or parsed
 * in JavaScript (the value is ~all of a line). An empty field is NULL. A text field (payload
 * included) that is empty, or holds a byte that would break the line (NUL, `\n`, `\r`, U+001F, or
 * the marker U+0002), is written as U+0002 + the base64 of its UTF-8 bytes, and `lake_text()`
 * decodes it in SQL; a value that is not valid UTF-8 goes, in base64, to `payload_bytes`. The same
 * records always give the same bytes, and DuckDB writes the same Parquet bytes from them.
 *
 * Lines are grouped by hive partition within a batch (in record order inside a group), so that the
 * lines of one lake file are a few contiguous ranges that the sink can write out without copying
 * line by line.
 */
import type { ConsumedRecord } from '@shopstream/streams';
import { isUtf8 } from 'node:buffer';
import { headersJson, hivePartition, validTime, type LakeDecoder } from './decode.ts';

const HOUR = 3_600_000;
const SEP = '\u001f';
const MARK = '\u0002';
/** True when `s` holds a character that cannot stand in a raw field: NUL, the marker, `\n`, `\r`, U+001F. */
function needsEncoding(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 && (c === 0 || c === 2 || c === 10 || c === 13 || c === 31)) return true;
  }
  return false;
}

/** Decoded, staged records of one poll: the sink's per-record facts and their lines. */
export interface StagedBatch {
  count: number;
  /** Partition time of each record (event time, else received time, else record time), epoch ms. */
  time: Float64Array;
  /** Index into `hives` of each record's hive partition. */
  hive: Int32Array;
  /** `merchant=…/dt=…/hour=…` */
  hives: string[];
  /** Byte range of each record's line in `bytes`. */
  start: Int32Array;
  end: Int32Array;
  bytes: Uint8Array;
  /** Length of the longest line. */
  maxLine: number;
}

function text(s: string | null): string {
  if (s === null) return '';
  if (s !== '' && !needsEncoding(s)) return s;
  return MARK + Buffer.from(s, 'utf8').toString('base64');
}

function hasLineBreaker(v: Buffer): boolean {
  return v.indexOf(0x0a) !== -1 || v.indexOf(0x1f) !== -1 || v.indexOf(0x0d) !== -1 || v.indexOf(0) !== -1;
}

/** How a value goes into its line: null; raw; valid UTF-8 that cannot stand raw (MARK + base64 in the payload field); not valid UTF-8 (base64 in payload_bytes). */
const NULL_VALUE = 0;
const RAW = 1;
const TEXT = 2;
const BYTES = 3;

/**
 * Decodes `records` (with the decoder of each one's topic) into a staged batch. Pure: the same
 * records give the same batch.
 */
export function stageRecords(records: readonly ConsumedRecord[], decoderFor: (topic: string) => LakeDecoder, out?: ArrayBuffer): StagedBatch {
  const n = records.length;
  const time = new Float64Array(n);
  const hive = new Int32Array(n);
  const hives: string[] = [];
  const hiveIndex = new Map<string, number>();
  const prefixes: string[] = new Array<string>(n);
  const kinds = new Uint8Array(n);
  const counts: number[] = [];
  let bound = 0;
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const d = decoderFor(r.topic)(r);
    const t = validTime(d.eventTime) ? d.eventTime : validTime(d.receivedAt) ? d.receivedAt : r.timestamp;
    time[i] = t;
    // dt and hour depend only on the UTC hour of t.
    const key = `${Math.floor(t / HOUR)}/${d.merchant ?? ''}`;
    let h = hiveIndex.get(key);
    if (h === undefined) {
      h = hives.length;
      hives.push(hivePartition(d.merchant, t));
      hiveIndex.set(key, h);
      counts.push(0);
    }
    hive[i] = h;
    counts[h]!++;
    const v = r.value;
    let kind: number;
    let payloadBytes = '';
    if (v === null) kind = NULL_VALUE;
    else if (!isUtf8(v)) {
      kind = BYTES;
      payloadBytes = v.toString('base64');
    } else if (v.length === 0 || v[0] === 2 || hasLineBreaker(v)) kind = TEXT;
    else kind = RAW;
    kinds[i] = kind;
    const receivedAt = Math.trunc(validTime(d.receivedAt) ? d.receivedAt : r.timestamp);
    const eventTime = validTime(d.eventTime) ? String(Math.trunc(d.eventTime)) : '';
    const prefix =
      `${r.offset}${SEP}${receivedAt}${SEP}${eventTime}${SEP}${text(d.merchant)}${SEP}${text(d.messageId)}${SEP}${text(d.event)}${SEP}` +
      `${text(d.type)}${SEP}${text(d.visitorId)}${SEP}${text(d.rejectCode)}${SEP}${headersJson(r)}${SEP}${payloadBytes}${SEP}`;
    prefixes[i] = prefix;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; base64 4 per 3 bytes.
    bound += prefix.length * 3 + (kind === RAW ? v!.length : kind === TEXT ? 8 + Math.ceil(v!.length / 3) * 4 : 0) + 1;
  }
  // Group the lines by hive partition, in record order within each group.
  const first = new Int32Array(hives.length);
  for (let h = 1; h < hives.length; h++) first[h] = first[h - 1]! + counts[h - 1]!;
  const order = new Int32Array(n);
  const fill = first.slice();
  for (let i = 0; i < n; i++) order[fill[hive[i]!]!++] = i;
  // A recycled buffer when it is large enough: fresh memory costs a page fault per 4 KiB written.
  const bytes = out !== undefined && out.byteLength >= bound ? Buffer.from(out) : Buffer.allocUnsafeSlow(Math.max(1, bound));
  const start = new Int32Array(n);
  const end = new Int32Array(n);
  let pos = 0;
  let maxLine = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    start[i] = pos;
    pos += bytes.write(prefixes[i]!, pos, 'utf8');
    const v = records[i]!.value;
    const kind = kinds[i];
    if (kind === RAW) pos += v!.copy(bytes, pos);
    else if (kind === TEXT) {
      pos += bytes.write(MARK, pos, 'latin1');
      pos += bytes.write(v!.toString('base64'), pos, 'latin1');
    }
    bytes[pos++] = 0x0a;
    end[i] = pos;
    if (pos - start[i]! > maxLine) maxLine = pos - start[i]!;
  }
  return { count: n, time, hive, hives, start, end, bytes: bytes.subarray(0, pos), maxLine };
}

/** Columns of a staging file, for `read_csv`. */
export const STAGE_COLUMNS =
  `{'o': 'BIGINT', 'r': 'BIGINT', 't': 'BIGINT', 'm': 'VARCHAR', 'mid': 'VARCHAR', 'ev': 'VARCHAR', 'ty': 'VARCHAR', 'vid': 'VARCHAR', ` +
  `'rc': 'VARCHAR', 'h': 'VARCHAR', 'pb': 'VARCHAR', 'p': 'VARCHAR'}`;

/** Decodes a text field of a staging line (see the header). Create once per connection. */
export const LAKE_TEXT_MACRO = `CREATE OR REPLACE TEMP MACRO lake_text(x) AS CASE WHEN starts_with(x, chr(2)) THEN decode(from_base64(x[2:])) ELSE x END`;

const DEFAULT_MAX_LINE = 2_097_152;

/** `read_csv(…)` of a staging file whose longest line is `maxLine` bytes. */
export function readStageSql(path: string, maxLine: number): string {
  const lineSize = maxLine + 16 > DEFAULT_MAX_LINE ? `, max_line_size = ${maxLine + 16}, buffer_size = ${Math.max(16 * 1024 * 1024, 2 * (maxLine + 16))}` : '';
  return (
    `read_csv(${sqlString(path)}, columns = ${STAGE_COLUMNS}, delim = chr(31), quote = '', escape = '', new_line = '\\n', header = false, ` +
    `auto_detect = false, strict_mode = true${lineSize})`
  );
}

/** The lake file's columns (schema version 1) from a staging file, in line order (= offset order). */
export function lakeSelectSql(path: string, maxLine: number, partition: number): string {
  return (
    `SELECT o AS "offset", ${Math.trunc(partition)}::INTEGER AS "partition", epoch_ms(r) AS received_at, lake_text(m) AS merchant, ` +
    `lake_text(mid) AS message_id, lake_text(ev) AS event, lake_text(ty) AS type, lake_text(vid) AS visitor_id, epoch_ms(t) AS event_time, ` +
    `lake_text(p) AS payload, from_base64(pb) AS payload_bytes, h AS headers, lake_text(rc) AS reject_code FROM ${readStageSql(path, maxLine)}`
  );
}

export function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

// ---- recycled buffers -----------------------------------------------------------------------------

/** Size of a recycled batch buffer: a poll of ~1,000–2,000 records of ~1 KB, packed or staged. */
export const BATCH_BYTES = 4 * 1024 * 1024;
/** Size of a recycled part of a lake file's lines. */
export const PART_BYTES = 1024 * 1024;

/**
 * Buffers of one size, used again rather than freed: on a fresh buffer every 4 KiB page written
 * costs a page fault, which on a VM costs more than the copy itself. At most `max` are kept.
 */
export class SlabPool {
  readonly size: number;
  private readonly free: ArrayBuffer[] = [];
  private readonly max: number;

  constructor(size: number, max: number) {
    this.size = size;
    this.max = max;
  }

  take(): ArrayBuffer {
    return this.free.pop() ?? new ArrayBuffer(this.size);
  }

  give(b: ArrayBuffer): void {
    if (b.byteLength === this.size && this.free.length < this.max) this.free.push(b);
  }
}

/** The first part of a file's lines: small, so that many small open files (many merchants) cost little. */
const FIRST_PART_BYTES = 32 * 1024;

/** The lines of one lake file, copied into parts as they come: a small first part, then parts of a slab pool. */
export class LineBuffer {
  private readonly pool: SlabPool;
  private readonly parts: Uint8Array[] = [];
  private used = 0;
  /** Length of the longest line. */
  maxLine = 0;

  constructor(pool: SlabPool) {
    this.pool = pool;
  }

  append(bytes: Uint8Array, start: number, end: number): void {
    while (start < end) {
      let last = this.parts[this.parts.length - 1];
      if (last === undefined || this.used === last.length) {
        last = last === undefined ? new Uint8Array(FIRST_PART_BYTES) : new Uint8Array(this.pool.take());
        this.parts.push(last);
        this.used = 0;
      }
      const n = Math.min(end - start, last.length - this.used);
      last.set(bytes.subarray(start, start + n), this.used);
      this.used += n;
      start += n;
    }
  }

  /** The bytes, in order (views of the parts: valid until release()). */
  chunks(): Uint8Array[] {
    return this.parts.map((p, i) => (i === this.parts.length - 1 ? p.subarray(0, this.used) : p));
  }

  /** Gives the parts back to the pool (the small first part is left to the garbage collector). */
  release(): void {
    for (const p of this.parts) this.pool.give(p.buffer as ArrayBuffer);
    this.parts.length = 0;
    this.used = 0;
  }
}
