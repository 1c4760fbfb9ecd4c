/**
 * Writes one lake file: rows go into a temporary DuckDB table through the appender, then one
 * `COPY (SELECT … ORDER BY offset) TO '<staged path>' (FORMAT PARQUET, KV_METADATA {…})`. One
 * in-memory DuckDB per sink; files are written one at a time. The same rows give the same bytes.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** Version of the lake file schema (columns below); in each file's key-value metadata. */
export const LAKE_SCHEMA_VERSION = 1;

/** One row of a lake file. Times are epoch ms. */
export interface LakeRow {
  offset: number;
  partition: number;
  receivedAt: number;
  merchant: string | null;
  messageId: string | null;
  event: string | null;
  type: string | null;
  visitorId: string | null;
  eventTime: number | null;
  /** The record value as UTF-8 text; null when the value is null or not valid UTF-8. */
  payload: string | null;
  /** The record value's bytes, only when it is not valid UTF-8 (else null). */
  payloadBytes: Uint8Array | null;
  /** The record headers as a JSON object (name → UTF-8 value). */
  headers: string;
  /** Why the record does not normalize (an error code), or null. */
  rejectCode: string | null;
}

const STAGE = 'lake_stage';
const STAGE_COLUMNS = `"offset" BIGINT, "partition" INTEGER, received_at_ms BIGINT, merchant VARCHAR, message_id VARCHAR, event VARCHAR, type VARCHAR,
  visitor_id VARCHAR, event_time_ms BIGINT, payload VARCHAR, payload_bytes BLOB, headers VARCHAR, reject_code VARCHAR`;
const SELECT = `SELECT "offset", "partition", epoch_ms(received_at_ms) AS received_at, merchant, message_id, event, type, visitor_id,
  epoch_ms(event_time_ms) AS event_time, payload, payload_bytes, headers, reject_code FROM ${STAGE} ORDER BY "offset"`;

function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

export class ParquetWriter {
  private readonly instance: DuckDBInstance;
  private readonly c: DuckDBConnection;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(instance: DuckDBInstance, c: DuckDBConnection) {
    this.instance = instance;
    this.c = c;
  }

  static async open(): Promise<ParquetWriter> {
    const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
    const c = await instance.connect();
    await c.run(`CREATE TEMP TABLE ${STAGE} (${STAGE_COLUMNS})`);
    return new ParquetWriter(instance, c);
  }

  /** Writes `rows` to a Parquet file at `path` (which must not be visible to readers yet). */
  write(path: string, rows: readonly LakeRow[], metadata: Record<string, string>): Promise<void> {
    const run = async () => {
      const c = this.c;
      await c.run(`DELETE FROM ${STAGE}`);
      const a = await c.createAppender(STAGE, 'main', 'temp');
      try {
        const str = (v: string | null) => (v === null ? a.appendNull() : a.appendVarchar(v));
        for (const r of rows) {
          a.appendBigInt(BigInt(r.offset));
          a.appendInteger(r.partition);
          a.appendBigInt(BigInt(r.receivedAt));
          str(r.merchant);
          str(r.messageId);
          str(r.event);
          str(r.type);
          str(r.visitorId);
          if (r.eventTime === null) a.appendNull();
          else a.appendBigInt(BigInt(r.eventTime));
          str(r.payload);
          if (r.payloadBytes === null) a.appendNull();
          else a.appendBlob(r.payloadBytes);
          a.appendVarchar(r.headers);
          str(r.rejectCode);
          a.endRow();
        }
        a.flushSync();
      } finally {
        a.closeSync();
      }
      const kv = Object.entries({ shopstream_lake_schema: String(LAKE_SCHEMA_VERSION), ...metadata })
        .map(([k, v]) => `${k}: ${sqlString(v)}`)
        .join(', ');
      await c.run(`COPY (${SELECT}) TO ${sqlString(path)} (FORMAT PARQUET, COMPRESSION zstd, KV_METADATA {${kv}})`);
      await c.run(`DELETE FROM ${STAGE}`);
    };
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    await this.tail;
    this.c.closeSync();
    this.instance.closeSync();
  }
}
