/**
 * The cube store: one implementation over SQL, two databases. DuckDB (a local file, the embedded
 * default) and PostgreSQL (the server store, for several instances) differ only in their adapter
 * (`SqlDb`): how to connect, run a statement and a transaction, and the name of the bytes type. The
 * tables, the exactly-once commit and every query are the same SQL.
 *
 * Exactly-once: the input offsets live in the store (`cube_offsets`), and a commit writes a batch's
 * deltas and moves its offsets in one database transaction. The offset update is conditional on the
 * offset the batch started from, so a writer that lost its partitions (a zombie after a rebalance)
 * cannot apply a batch twice: its transaction fails with SHOP_ERR_CUBES_FENCED and rolls back.
 */
import { PlatformError, PlatformErrors } from '../errors.ts';
import { FUNNEL_STEPS, parseKey, rowKey, type CubeBatch, type Dims, type Grain, type SessionState } from './model.ts';

export type SqlValue = string | number | Uint8Array | null;
export type SqlRow = Record<string, SqlValue>;

/** What a database must do for the store. Statements use $1, $2, … placeholders. */
export interface SqlDb {
  readonly dialect: 'duckdb' | 'postgres';
  /** The column type for bytes. */
  readonly bytesType: string;
  query(sql: string, params?: readonly SqlValue[]): Promise<SqlRow[]>;
  /** Runs `fn` in a transaction (one connection); commits if it resolves, rolls back if it throws. */
  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
  /**
   * Runs `CREATE … IF NOT EXISTS` statements in one transaction, one process at a time: PostgreSQL's
   * IF NOT EXISTS is not safe against another session creating the same object at the same moment
   * (it fails on a unique index of the catalogue), which processes starting together do.
   */
  define(statements: readonly string[]): Promise<void>;
  /**
   * Rows of `table` whose `keys` columns equal one of `values` (a faster way than `IN (tuples…)`,
   * when the database has one; see `selectByKeys`).
   */
  selectByKeys?(table: string, keys: readonly string[], values: readonly SqlValue[][], columns: readonly string[]): Promise<SqlRow[]>;
  close(): Promise<void>;
}

/** Rows of `table` whose key columns equal one of the tuples: the database's own way, else `IN (tuples…)` by chunks. */
async function selectByKeys(db: SqlDb, table: string, keys: readonly string[], values: readonly SqlValue[][], columns: readonly string[]): Promise<SqlRow[]> {
  if (values.length === 0) return [];
  if (db.selectByKeys !== undefined) return db.selectByKeys(table, keys, values, columns);
  const out: SqlRow[] = [];
  for (let i = 0; i < values.length; i += ROWS_PER_STATEMENT) {
    const params: SqlValue[] = [];
    const tuples = values.slice(i, i + ROWS_PER_STATEMENT).map((tuple) => {
      const base = params.length;
      params.push(...tuple);
      return `(${tuple.map((_, j) => `$${base + j + 1}`).join(', ')})`;
    });
    out.push(...(await db.query(`SELECT ${columns.join(', ')} FROM ${table} WHERE (${keys.join(', ')}) IN (${tuples.join(', ')})`, params)));
  }
  return out;
}

export interface SqlTx {
  query(sql: string, params?: readonly SqlValue[]): Promise<SqlRow[]>;
  /** Rows changed by the statement. */
  execute(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** A faster way to upsert many rows than multi-row VALUES, when the database has one (see `upsert`). */
  upsert?(table: string, keys: readonly string[], values: readonly string[], rows: readonly SqlValue[][], mode: UpsertMode): Promise<void>;
}

export type UpsertMode = 'add' | 'replace';

/** The SET clause of an upsert: measures added to the stored row, or replacing it. */
export function conflictSet(table: string, values: readonly string[], mode: UpsertMode): string {
  return values.map((v) => (mode === 'add' ? `${v} = ${table}.${v} + EXCLUDED.${v}` : `${v} = EXCLUDED.${v}`)).join(', ');
}

/** The dimension columns a query may group or filter by, and their column names. */
export const DIMENSIONS = {
  device_type: 'device',
  country: 'country',
  traffic_source: 'source',
  channel: 'channel',
  event_type: 'event_type',
  currency: 'currency',
} as const;
export type Dimension = keyof typeof DIMENSIONS;
/** Dimensions of the visitors sketches (no event type or currency: a visitor is counted once per bucket). */
export const VISITOR_DIMENSIONS: readonly Dimension[] = ['device_type', 'country', 'traffic_source', 'channel'];
export const FUNNEL_DIMENSIONS: readonly Dimension[] = ['device_type', 'country', 'traffic_source', 'channel'];

export interface SliceQuery {
  merchant: string;
  grain: Grain;
  /** Inclusive lower and exclusive upper bound, in buckets of the grain. */
  from: number;
  to: number;
  /**
   * Local buckets: row bucket b (in grain units) goes to floor((b + offset) / size). Several
   * segments when a daylight-saving change falls in the range; each has its own offset.
   */
  segments: ReadonlyArray<{ from: number; to: number; offset: number }>;
  size: number;
  groupBy: readonly Dimension[];
  filters: ReadonlyArray<{ dimension: Dimension; value: string }>;
  /** The merchant's currency, for events that carry none. */
  currency: string;
}

export interface EventSliceRow {
  /** Local bucket index: floor((row bucket + offset) / size). */
  bucket: number;
  /** The UTC offset of the segment the row comes from, in grain units. */
  offset: number;
  group: Record<string, string>;
  events: number;
  sessions: number;
  orders: number;
  items: number;
  revenue: number;
  botEvents: number;
}

export interface VisitorSliceRow {
  bucket: number;
  offset: number;
  group: Record<string, string>;
  sketch: Uint8Array;
}

export interface ProductRow {
  productId: string;
  currency: string;
  views: number;
  adds: number;
  purchases: number;
  revenue: number;
}

export interface FunnelRow {
  group: Record<string, string>;
  sessions: number;
  steps: number[];
}

export interface Retention {
  /** Minute buckets older than this are deleted (ms). */
  minuteMs: number;
  /** Quarter-hour buckets (hour and day queries, products, funnel) older than this are deleted (ms). */
  quarterMs: number;
  /** Funnel state of sessions idle for longer than this is deleted (ms). */
  sessionMs: number;
}

export interface InputPosition {
  topic: string;
  partition: number;
  offset: number;
}

const EVENT_MEASURES = ['events', 'sessions', 'orders', 'items', 'revenue', 'bot_events'] as const;
const PRODUCT_MEASURES = ['views', 'adds', 'purchases', 'revenue'] as const;
const FUNNEL_COLUMNS = ['sessions', ...FUNNEL_STEPS.map((s) => `reached_${s}`)] as const;
const ROWS_PER_STATEMENT = 500;

function toNumber(v: SqlValue | bigint | undefined): number {
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') return Number(v);
  return (v as number | null) ?? 0;
}

export class CubeStore {
  readonly db: SqlDb;

  constructor(db: SqlDb) {
    this.db = db;
  }

  async init(): Promise<void> {
    const B = this.db.bytesType;
    const statements: string[] = [];
    for (const g of ['m', 'q'] as const) {
      statements.push(
        `CREATE TABLE IF NOT EXISTS cube_events_${g} (merchant TEXT NOT NULL, bucket BIGINT NOT NULL, event_type TEXT NOT NULL, device TEXT NOT NULL, country TEXT NOT NULL, source TEXT NOT NULL, channel TEXT NOT NULL, currency TEXT NOT NULL, ` +
          `events BIGINT NOT NULL, sessions BIGINT NOT NULL, orders BIGINT NOT NULL, items BIGINT NOT NULL, revenue BIGINT NOT NULL, bot_events BIGINT NOT NULL, ` +
          `PRIMARY KEY (merchant, bucket, event_type, device, country, source, channel, currency))`,
        `CREATE TABLE IF NOT EXISTS cube_visitors_${g} (merchant TEXT NOT NULL, bucket BIGINT NOT NULL, slot INTEGER NOT NULL, device TEXT NOT NULL, country TEXT NOT NULL, source TEXT NOT NULL, channel TEXT NOT NULL, sketch ${B} NOT NULL, ` +
          `PRIMARY KEY (merchant, bucket, slot, device, country, source, channel))`,
      );
    }
    statements.push(
      `CREATE TABLE IF NOT EXISTS cube_products (merchant TEXT NOT NULL, bucket BIGINT NOT NULL, product_id TEXT NOT NULL, currency TEXT NOT NULL, views BIGINT NOT NULL, adds BIGINT NOT NULL, purchases BIGINT NOT NULL, revenue BIGINT NOT NULL, ` +
        `PRIMARY KEY (merchant, bucket, product_id, currency))`,
      `CREATE TABLE IF NOT EXISTS cube_funnel (merchant TEXT NOT NULL, bucket BIGINT NOT NULL, device TEXT NOT NULL, country TEXT NOT NULL, source TEXT NOT NULL, channel TEXT NOT NULL, ` +
        `${FUNNEL_COLUMNS.map((c) => `${c} BIGINT NOT NULL`).join(', ')}, PRIMARY KEY (merchant, bucket, device, country, source, channel))`,
      `CREATE TABLE IF NOT EXISTS cube_sessions (merchant TEXT NOT NULL, visitor TEXT NOT NULL, session_id TEXT NOT NULL, bucket BIGINT NOT NULL, device TEXT NOT NULL, country TEXT NOT NULL, source TEXT NOT NULL, channel TEXT NOT NULL, mask INTEGER NOT NULL, last_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL, ` +
        `PRIMARY KEY (merchant, visitor, session_id))`,
      `CREATE TABLE IF NOT EXISTS cube_offsets (consumer TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (consumer, topic, part))`,
    );
    await this.db.define(statements);
  }

  /**
   * The stored position of each input partition of `consumer`. A partition without one gets a row
   * at offset 0 (the start of the log), so that every commit can check the offset it moves from.
   */
  async positions(consumer: string, tps: ReadonlyArray<{ topic: string; partition: number }>): Promise<InputPosition[]> {
    if (tps.length === 0) return [];
    return this.db.transaction(async (tx) => {
      for (const tp of tps) {
        await tx.execute(`INSERT INTO cube_offsets (consumer, topic, part, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING`, [consumer, tp.topic, tp.partition]);
      }
      const rows = await tx.query(`SELECT topic, part, next_offset FROM cube_offsets WHERE consumer = $1`, [consumer]);
      const wanted = new Set(tps.map((tp) => tp.topic + '\u0000' + tp.partition));
      return rows
        .map((r) => ({ topic: String(r['topic']), partition: toNumber(r['part']), offset: toNumber(r['next_offset']) }))
        .filter((p) => wanted.has(p.topic + '\u0000' + p.partition));
    });
  }

  /** Stored sketches by visitors key (rowKey of grain, merchant, bucket, slot, dims). */
  async loadSketches(keys: readonly string[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const cols = ['merchant', 'bucket', 'slot', 'device', 'country', 'source', 'channel'];
    for (const g of ['m', 'q'] as const) {
      const mine = keys.map(parseKey).filter((k) => k[0] === g).map((k) => k.slice(1) as SqlValue[]);
      for (const r of await selectByKeys(this.db, `cube_visitors_${g}`, cols, mine, [...cols, 'sketch'])) {
        const key = rowKey([g, String(r['merchant']), toNumber(r['bucket']), toNumber(r['slot']), String(r['device']), String(r['country']), String(r['source']), String(r['channel'])]);
        out.set(key, r['sketch'] as Uint8Array);
      }
    }
    return out;
  }

  /** Stored funnel state of sessions, by session key (`sessionKey`: merchant, visitor, session id). */
  async loadSessions(keys: readonly string[]): Promise<Map<string, SessionState>> {
    const out = new Map<string, SessionState>();
    const cols = ['merchant', 'visitor', 'session_id'];
    const rows = await selectByKeys(this.db, 'cube_sessions', cols, keys.map((k) => parseKey(k).map(String)), [...cols, 'bucket', 'device', 'country', 'source', 'channel', 'mask', 'last_ms']);
    for (const r of rows) {
      const s: SessionState = {
        merchant: String(r['merchant']),
        visitor: String(r['visitor']),
        sessionId: String(r['session_id']),
        quarter: toNumber(r['bucket']),
        dims: { device: String(r['device']), country: String(r['country']), source: String(r['source']), channel: String(r['channel']) },
        mask: toNumber(r['mask']),
        lastMs: toNumber(r['last_ms']),
      };
      out.set(rowKey([s.merchant, s.visitor, s.sessionId]), s);
    }
    return out;
  }

  /**
   * Applies a batch and moves its input offsets, atomically. `sketches` are the merged sketches of
   * the visitors rows the batch touched (full values, not deltas).
   */
  async commit(consumer: string, batch: CubeBatch, sketches: ReadonlyMap<string, Uint8Array>): Promise<void> {
    await this.db.transaction(async (tx) => {
      for (const o of batch.offsets.values()) {
        const n = await tx.execute(`UPDATE cube_offsets SET next_offset = $1 WHERE consumer = $2 AND topic = $3 AND part = $4 AND next_offset = $5`, [
          o.to,
          consumer,
          o.topic,
          o.partition,
          o.from,
        ]);
        if (n !== 1) {
          throw new PlatformError(PlatformErrors.CUBES_FENCED, `the cubes' offset of ${o.topic}-${o.partition} is no longer ${o.from}: another writer moved it; this batch is dropped`);
        }
      }
      for (const g of ['m', 'q'] as const) {
        const rows: SqlValue[][] = [];
        for (const [k, m] of batch.events) {
          const p = parseKey(k);
          if (p[0] !== g) continue;
          rows.push([...(p.slice(1) as SqlValue[]), m.events, m.sessions, m.orders, m.items, m.revenue, m.botEvents]);
        }
        await upsert(tx, `cube_events_${g}`, ['merchant', 'bucket', 'event_type', 'device', 'country', 'source', 'channel', 'currency'], [...EVENT_MEASURES], rows, 'add');
        const vrows: SqlValue[][] = [];
        for (const [k, sketch] of sketches) {
          const p = parseKey(k);
          if (p[0] !== g) continue;
          vrows.push([...(p.slice(1) as SqlValue[]), sketch]);
        }
        await upsert(tx, `cube_visitors_${g}`, ['merchant', 'bucket', 'slot', 'device', 'country', 'source', 'channel'], ['sketch'], vrows, 'replace');
      }
      const prows: SqlValue[][] = [];
      for (const [k, m] of batch.products) prows.push([...(parseKey(k) as SqlValue[]), m.views, m.adds, m.purchases, m.revenue]);
      await upsert(tx, 'cube_products', ['merchant', 'bucket', 'product_id', 'currency'], [...PRODUCT_MEASURES], prows, 'add');
      const frows: SqlValue[][] = [];
      for (const [k, m] of batch.funnel) frows.push([...(parseKey(k) as SqlValue[]), m.sessions, ...m.steps]);
      await upsert(tx, 'cube_funnel', ['merchant', 'bucket', 'device', 'country', 'source', 'channel'], [...FUNNEL_COLUMNS], frows, 'add');
      const srows: SqlValue[][] = [];
      const now = Date.now();
      for (const s of batch.sessions.values()) {
        srows.push([s.merchant, s.visitor, s.sessionId, s.quarter, s.dims.device, s.dims.country, s.dims.source, s.dims.channel, s.mask, s.lastMs, now]);
      }
      await upsert(tx, 'cube_sessions', ['merchant', 'visitor', 'session_id'], ['bucket', 'device', 'country', 'source', 'channel', 'mask', 'last_ms', 'updated_ms'], srows, 'replace');
    });
  }

  /** Event measures per local bucket and group. */
  async eventSlice(q: SliceQuery): Promise<EventSliceRow[]> {
    const rows = await this.slice(q, `cube_events_${q.grain}`, EVENT_MEASURES.map((m) => `SUM(${m}) AS ${m}`).join(', '));
    return rows.map((r) => ({
      bucket: toNumber(r['b']),
      offset: toNumber(r['seg_offset']),
      group: groupOf(r, q.groupBy),
      events: toNumber(r['events']),
      sessions: toNumber(r['sessions']),
      orders: toNumber(r['orders']),
      items: toNumber(r['items']),
      revenue: toNumber(r['revenue']),
      botEvents: toNumber(r['bot_events']),
    }));
  }

  /** Visitors sketches per local bucket and group (one row per stored sketch: the caller merges). */
  async visitorSlice(q: SliceQuery): Promise<VisitorSliceRow[]> {
    const rows = await this.slice(q, `cube_visitors_${q.grain}`, 'sketch', false);
    return rows.map((r) => ({ bucket: toNumber(r['b']), offset: toNumber(r['seg_offset']), group: groupOf(r, q.groupBy), sketch: r['sketch'] as Uint8Array }));
  }

  private async slice(q: SliceQuery, table: string, measures: string, aggregate = true): Promise<SqlRow[]> {
    const out: SqlRow[] = [];
    for (const seg of q.segments) {
      const params: SqlValue[] = [q.merchant, seg.from, seg.to, seg.offset, q.size];
      const dimExpr = (d: Dimension) => (d === 'currency' ? `CASE WHEN currency = '' THEN $${params.push(q.currency)} ELSE currency END` : DIMENSIONS[d]);
      const groupCols = q.groupBy.map((d) => `${dimExpr(d)} AS g_${d}`);
      const where = q.filters.map((f) => `${dimExpr(f.dimension)} = $${params.push(f.value)}`);
      const sql =
        `SELECT CAST(FLOOR((bucket + $4) / ($5 * 1.0)) AS BIGINT) AS b${groupCols.map((c) => `, ${c}`).join('')}, ${measures} FROM ${table} ` +
        `WHERE merchant = $1 AND bucket >= $2 AND bucket < $3${where.map((w) => ` AND ${w}`).join('')}` +
        (aggregate ? ` GROUP BY 1${groupCols.map((_, i) => `, ${i + 2}`).join('')}` : '');
      for (const r of await this.db.query(sql, params)) {
        r['seg_offset'] = seg.offset;
        out.push(r);
      }
    }
    return out;
  }

  async topProducts(merchant: string, from: number, to: number, metric: 'views' | 'adds' | 'purchases' | 'revenue', limit: number, currency?: string): Promise<ProductRow[]> {
    const params: SqlValue[] = [merchant, from, to, limit];
    const cur = currency === undefined ? '' : ` AND currency = $${params.push(currency)}`;
    const rows = await this.db.query(
      `SELECT product_id, currency, SUM(views) AS views, SUM(adds) AS adds, SUM(purchases) AS purchases, SUM(revenue) AS revenue FROM cube_products ` +
        `WHERE merchant = $1 AND bucket >= $2 AND bucket < $3${cur} GROUP BY product_id, currency ORDER BY ${metric} DESC, product_id LIMIT $4`,
      params,
    );
    return rows.map((r) => ({
      productId: String(r['product_id']),
      currency: String(r['currency']),
      views: toNumber(r['views']),
      adds: toNumber(r['adds']),
      purchases: toNumber(r['purchases']),
      revenue: toNumber(r['revenue']),
    }));
  }

  async funnel(merchant: string, from: number, to: number, groupBy: readonly Dimension[], filters: ReadonlyArray<{ dimension: Dimension; value: string }>): Promise<FunnelRow[]> {
    const params: SqlValue[] = [merchant, from, to];
    const groupCols = groupBy.map((d) => `${DIMENSIONS[d]} AS g_${d}`);
    const where = filters.map((f) => ` AND ${DIMENSIONS[f.dimension]} = $${params.push(f.value)}`).join('');
    const sums = FUNNEL_COLUMNS.map((c) => `SUM(${c}) AS ${c}`).join(', ');
    const sql =
      `SELECT ${[...groupCols, sums].join(', ')} FROM cube_funnel WHERE merchant = $1 AND bucket >= $2 AND bucket < $3${where}` +
      (groupCols.length > 0 ? ` GROUP BY ${groupCols.map((_, i) => i + 1).join(', ')}` : '');
    const rows = await this.db.query(sql, params);
    return rows
      .map((r) => ({ group: groupOf(r, groupBy), sessions: toNumber(r['sessions']), steps: FUNNEL_STEPS.map((s) => toNumber(r[`reached_${s}`])) }))
      .filter((r) => groupBy.length === 0 || r.sessions > 0 || r.steps.some((n) => n > 0));
  }

  /** Deletes what is older than the retention. On the writer's connection, between commits (no write conflicts with them). */
  async prune(retention: Retention, now = Date.now()): Promise<void> {
    const minute = Math.floor((now - retention.minuteMs) / 60_000);
    const quarter = Math.floor((now - retention.quarterMs) / 900_000);
    await this.db.transaction(async (tx) => {
      await tx.execute(`DELETE FROM cube_events_m WHERE bucket < $1`, [minute]);
      await tx.execute(`DELETE FROM cube_visitors_m WHERE bucket < $1`, [minute]);
      for (const t of ['cube_events_q', 'cube_visitors_q', 'cube_products', 'cube_funnel']) await tx.execute(`DELETE FROM ${t} WHERE bucket < $1`, [quarter]);
      // Sessions by when they were last written (wall clock), not by event time: imports of old events keep their state.
      await tx.execute(`DELETE FROM cube_sessions WHERE updated_ms < $1`, [now - retention.sessionMs]);
    });
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

function groupOf(r: SqlRow, groupBy: readonly Dimension[]): Record<string, string> {
  const g: Record<string, string> = {};
  for (const d of groupBy) g[d] = String(r[`g_${d}`] ?? '');
  return g;
}

/**
 * Multi-row INSERT … ON CONFLICT: measures are added to the stored row ('add') or replace it
 * ('replace'). Rows of one call have distinct keys.
 */
async function upsert(tx: SqlTx, table: string, keys: string[], values: string[], rows: SqlValue[][], mode: UpsertMode): Promise<void> {
  if (rows.length === 0) return;
  // One order of rows for every writer: concurrent upserts of the same rows (several PostgreSQL
  // writers on hot buckets) then take their row locks in the same order and cannot deadlock.
  const n = keys.length;
  rows.sort((a, b) => {
    for (let i = 0; i < n; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (x !== y) return x! < y! ? -1 : 1;
    }
    return 0;
  });
  if (tx.upsert !== undefined) return tx.upsert(table, keys, values, rows, mode);
  const cols = [...keys, ...values];
  const set = conflictSet(table, values, mode);
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
    const params: SqlValue[] = [];
    const tuples = chunk.map((row) => {
      const base = params.length;
      params.push(...row);
      return `(${row.map((_, j) => `$${base + j + 1}`).join(', ')})`;
    });
    await tx.execute(`INSERT INTO ${table} (${cols.join(', ')}) VALUES ${tuples.join(', ')} ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${set}`, params);
  }
}

export type { Dims };
