/**
 * `shopstream replay`: publishes archived events.raw records again, from the lake, into a topic, in
 * event-time order: each record's value as it was received (`payload`, or `payload_bytes`), its
 * original headers (`headers`: merchant, received time, request facts …), its record time (the
 * received time) and its key (the visitor, as the collector keys events.raw). Records that did not
 * normalize (no event time) are ordered by their received time. Ties: received time, then input
 * partition and offset, so a visitor's records keep their original order.
 *
 * The target topic is created when missing (with the source topic's partition count). Records are
 * sent in batches with the log's plain producer: a replay that stops half-way can be run again
 * into a fresh topic (it does not resume).
 */
import { DuckDBInstance } from '@duckdb/node-api';
import type { Header, Log, ProducerRecord } from '@shopstream/streams';
import { listTopicFiles, localCopies } from './files.ts';
import type { LakeStorage } from './storage.ts';

export interface ReplayOptions {
  storage: LakeStorage;
  log: Log;
  /** The archived topic (folder of the lake), e.g. `${prefix}events.raw`. */
  topic: string;
  /** Where to publish. */
  toTopic: string;
  /** First and last day (YYYY-MM-DD, UTC, the lake's `dt`), inclusive. */
  from: string;
  to: string;
  /** Only this merchant. */
  merchant?: string;
  /** Only records below these offsets of their source partition (partition → offset). */
  before?: ReadonlyMap<number, number>;
  /** Publish each record to the partition it had in the source topic (co-partitioned topics), instead of by key. */
  keepPartition?: boolean;
  root?: string;
  /** Records per send. Default 2,000. */
  batchSize?: number;
  cacheDir?: string;
  /** Called after each batch (and once at the start, with 0). */
  onProgress?: (done: number, total: number) => void;
}

export interface ReplayResult {
  events: number;
  files: number;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** The key events.raw has for a record: the canonical visitor id, else the message's anonymousId or `user:` + userId. */
function keyOf(visitorId: string | null, payload: string | null): Buffer | null {
  if (visitorId !== null) return Buffer.from(visitorId);
  if (payload === null) return null;
  try {
    const m = JSON.parse(payload) as Record<string, unknown>;
    const s = (v: unknown) => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined);
    const id = s(m['anonymousId']) ?? (s(m['userId']) !== undefined ? `user:${s(m['userId'])}` : undefined);
    return id === undefined || id.length > 512 ? null : Buffer.from(id);
  } catch {
    return null;
  }
}

function headersOf(json: string): Header[] {
  const o = JSON.parse(json) as Record<string, string>;
  return Object.entries(o).map(([k, v]) => [k, Buffer.from(v, 'utf8')]);
}

export async function replayLake(o: ReplayOptions): Promise<ReplayResult> {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(o.from) || !/^\d{4}-\d{2}-\d{2}$/.test(o.to)) throw new Error('replay: from and to are dates, YYYY-MM-DD');
  const files = (await listTopicFiles(o.storage, o.topic, o.root)).filter((f) => f.dt >= o.from && f.dt <= o.to && (o.merchant === undefined || f.merchant === o.merchant));
  if (files.length === 0) {
    o.onProgress?.(0, 0);
    return { events: 0, files: 0 };
  }
  const existing = await o.log.admin.describeTopics([o.toTopic, o.topic]);
  if (!existing.has(o.toTopic)) await o.log.admin.createTopics([{ name: o.toTopic, partitions: existing.get(o.topic)?.partitions ?? 1 }]);
  const copies = await localCopies(o.storage, files.map((f) => f.name), o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir });
  const db = await DuckDBInstance.create(':memory:', { threads: '2' });
  const c = await db.connect();
  const producer = o.log.createProducer({ clientId: 'shopstream-replay' });
  try {
    const cut = o.before === undefined ? '' : ` WHERE ${[...o.before].map(([p, offset]) => `("partition" = ${Number(p)} AND "offset" < ${Number(offset)})`).join(' OR ') || 'false'}`;
    const source = `(SELECT * FROM read_parquet([${copies.paths.map(sqlString).join(', ')}], hive_partitioning = false)${cut})`;
    const total = Number((await c.runAndReadAll(`SELECT count(*)::BIGINT FROM ${source}`)).getRows()[0]![0]);
    o.onProgress?.(0, total);
    const result = await c.stream(
      `SELECT visitor_id, payload, payload_bytes, headers, epoch_ms(received_at)::BIGINT AS received, "partition" FROM ${source} ` +
        `ORDER BY coalesce(event_time, received_at), received_at, "partition", "offset"`,
    );
    let done = 0;
    let batch: ProducerRecord[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await producer.send(batch);
      done += batch.length;
      batch = [];
      o.onProgress?.(done, total);
    };
    for (;;) {
      const chunk = await result.fetchChunk();
      if (chunk === null || chunk.rowCount === 0) break;
      for (const [visitorId, payload, payloadBytes, headers, received, partition] of chunk.getRows()) {
        const text = typeof payload === 'string' ? payload : null;
        const bytes = payloadBytes !== null && typeof payloadBytes === 'object' && 'bytes' in payloadBytes ? Buffer.from((payloadBytes as { bytes: Uint8Array }).bytes) : null;
        batch.push({
          topic: o.toTopic,
          ...(o.keepPartition === true && { partition: Number(partition) }),
          key: keyOf(typeof visitorId === 'string' ? visitorId : null, text),
          value: text !== null ? Buffer.from(text, 'utf8') : bytes,
          timestamp: Number(received),
          headers: typeof headers === 'string' ? headersOf(headers) : [],
        });
        if (batch.length >= (o.batchSize ?? 2000)) await flush();
      }
    }
    await flush();
    return { events: done, files: files.length };
  } finally {
    await producer.close();
    c.closeSync();
    db.closeSync();
    copies.cleanup();
  }
}

/** A one-line progress bar for a terminal: percent, events, events/s, ETA (redrawn with \r). */
export class ProgressBar {
  private readonly write: (text: string) => void;
  private readonly started = Date.now();
  private last = 0;
  private readonly label: string;

  constructor(label: string, write: (text: string) => void) {
    this.label = label;
    this.write = write;
  }

  update(done: number, total: number, force = false): void {
    const now = Date.now();
    if (!force && now - this.last < 200 && done < total) return;
    this.last = now;
    const elapsed = Math.max(0.001, (now - this.started) / 1000);
    const rate = done / elapsed;
    const pct = total === 0 ? 100 : (done / total) * 100;
    const width = 24;
    const filled = Math.round((pct / 100) * width);
    const eta = rate > 0 && done < total ? `ETA ${formatSeconds((total - done) / rate)}` : done >= total ? `in ${formatSeconds(elapsed)}` : 'ETA …';
    const n = (x: number) => Math.round(x).toLocaleString('en-US');
    this.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct.toFixed(1).padStart(5)}%  ${n(done)}/${n(total)} events  ${n(rate)} ev/s  ${eta}   `);
  }

  finish(): void {
    this.write('\n');
  }
}

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
