/**
 * The two databases of the cube store (store.ts): DuckDB, a local file (the embedded default), and
 * PostgreSQL (the server store). Each adapter only connects, runs statements and transactions, and
 * converts values; the SQL is the store's.
 */
import { DuckDBBlobValue, DuckDBInstance, blobValue, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import pg from 'pg';
import { conflictSet, type SqlDb, type SqlRow, type SqlTx, type SqlValue, type UpsertMode } from './store.ts';

/** Runs one task at a time (a DuckDB connection runs one statement at a time). */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function toDuck(v: SqlValue): DuckDBValue {
  return v instanceof Uint8Array ? blobValue(v) : v;
}

function fromDuck(row: Record<string, unknown>): SqlRow {
  const out: SqlRow = {};
  for (const k in row) {
    const v = row[k];
    if (typeof v === 'bigint') out[k] = Number(v);
    else if (v instanceof DuckDBBlobValue) out[k] = v.bytes;
    else out[k] = v as SqlValue;
  }
  return out;
}

export class DuckDb implements SqlDb {
  readonly dialect = 'duckdb' as const;
  readonly bytesType = 'BLOB';
  private readonly instance: DuckDBInstance;
  private readonly writer: DuckDBConnection;
  private readonly reader: DuckDBConnection;
  private readonly writes = new Serial();
  private readonly reads = new Serial();

  private constructor(instance: DuckDBInstance, writer: DuckDBConnection, reader: DuckDBConnection) {
    this.instance = instance;
    this.writer = writer;
    this.reader = reader;
  }

  /** Opens (or creates) the database file; ':memory:' for a database in memory. */
  static async open(path: string): Promise<DuckDb> {
    // Checkpoints (the WAL folded into the file) are what a commit costs most once the WAL passes
    // the threshold: at DuckDB's 16 MB default, every few commits of a busy writer. 256 MB makes them
    // rare (the writer catches up 1.3x faster); a clean close checkpoints, so a restart replays little.
    const instance = await DuckDBInstance.create(path, { checkpoint_threshold: '256MB' });
    return new DuckDb(instance, await instance.connect(), await instance.connect());
  }

  query(sql: string, params: readonly SqlValue[] = []): Promise<SqlRow[]> {
    return this.reads.run(async () => {
      const reader = await this.reader.runAndReadAll(sql, params.map(toDuck));
      return (reader.getRowObjects() as Record<string, unknown>[]).map(fromDuck);
    });
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    return this.writes.run(async () => {
      const c = this.writer;
      const tx: SqlTx = {
        query: async (sql, params = []) => ((await c.runAndReadAll(sql, params.map(toDuck))).getRowObjects() as Record<string, unknown>[]).map(fromDuck),
        execute: async (sql, params = []) => (await c.run(sql, params.map(toDuck))).rowsChanged,
        upsert: (table, keys, values, rows, mode) => this.stagedUpsert(table, keys, values, rows, mode),
      };
      await c.run('BEGIN TRANSACTION');
      try {
        const out = await fn(tx);
        await c.run('COMMIT');
        return out;
      } catch (err) {
        await c.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async define(statements: readonly string[]): Promise<void> {
    // One process holds a DuckDB file: the writer's queue already serialises.
    await this.transaction(async (tx) => {
      for (const s of statements) await tx.execute(s);
    });
  }

  /**
   * Upserts through DuckDB's appender: the rows go into a temporary staging table (columnar, no
   * parsing or binding per value), then one INSERT … SELECT … ON CONFLICT. Many times faster than
   * multi-row VALUES with parameters. Runs inside the caller's transaction, on the writer connection.
   */
  private async stagedUpsert(table: string, keys: readonly string[], values: readonly string[], rows: readonly SqlValue[][], mode: UpsertMode): Promise<void> {
    const c = this.writer;
    const cols = [...keys, ...values];
    const stage = `stage_${table}`;
    // Every time (cheap): a table created in a transaction that rolled back is gone again.
    const types = rows[0]!.map((v) => (typeof v === 'string' ? 'VARCHAR' : v instanceof Uint8Array ? 'BLOB' : 'BIGINT'));
    await c.run(`CREATE TEMP TABLE IF NOT EXISTS ${stage} (${cols.map((col, i) => `${col} ${types[i]}`).join(', ')})`);
    const appender = await c.createAppender(stage, 'main', 'temp');
    try {
      for (const row of rows) {
        for (const v of row) {
          if (typeof v === 'string') appender.appendVarchar(v);
          else if (typeof v === 'number') appender.appendBigInt(BigInt(v));
          else if (v instanceof Uint8Array) appender.appendBlob(v);
          else appender.appendNull();
        }
        appender.endRow();
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    await c.run(`INSERT INTO ${table} (${cols.join(', ')}) SELECT ${cols.join(', ')} FROM ${stage} ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${conflictSet(table, values, mode)}`);
    await c.run(`DELETE FROM ${stage}`);
  }

  /**
   * Keys go into a temporary table through the appender, and one join returns the rows: DuckDB
   * plans `IN` over hundreds of tuples as a scan per statement, a join as one hash join.
   */
  selectByKeys(table: string, keys: readonly string[], values: readonly SqlValue[][], columns: readonly string[]): Promise<SqlRow[]> {
    return this.writes.run(async () => {
      const c = this.writer;
      const stage = `keys_${table}`;
      const types = values[0]!.map((v) => (typeof v === 'string' ? 'VARCHAR' : 'BIGINT'));
      await c.run(`CREATE TEMP TABLE IF NOT EXISTS ${stage} (${keys.map((k, i) => `${k} ${types[i]}`).join(', ')})`);
      await c.run(`DELETE FROM ${stage}`);
      const appender = await c.createAppender(stage, 'main', 'temp');
      try {
        for (const tuple of values) {
          for (const v of tuple) {
            if (typeof v === 'string') appender.appendVarchar(v);
            else appender.appendBigInt(BigInt(v as number));
          }
          appender.endRow();
        }
        appender.flushSync();
      } finally {
        appender.closeSync();
      }
      const on = keys.map((k) => `t.${k} = k.${k}`).join(' AND ');
      const reader = await c.runAndReadAll(`SELECT ${columns.map((col) => `t.${col}`).join(', ')} FROM ${table} t JOIN ${stage} k ON ${on}`);
      return (reader.getRowObjects() as Record<string, unknown>[]).map(fromDuck);
    });
  }

  async close(): Promise<void> {
    await this.writes.run(() => this.writer.run('CHECKPOINT').catch(() => undefined));
    await this.reads.run(async () => undefined);
    this.writer.closeSync();
    this.reader.closeSync();
    this.instance.closeSync();
  }
}

function fromPg(row: Record<string, unknown>): SqlRow {
  const out: SqlRow = {};
  for (const k in row) {
    const v = row[k];
    out[k] = typeof v === 'bigint' ? Number(v) : v instanceof Buffer ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : (v as SqlValue);
  }
  return out;
}

function toPg(v: SqlValue): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}

/** The advisory lock key of `PostgresDb.define` (any fixed 64-bit number; this one is "shopstrm" in ASCII). */
const DDL_LOCK = '8316019240703652461';

export class PostgresDb implements SqlDb {
  readonly dialect = 'postgres' as const;
  readonly bytesType = 'BYTEA';
  private readonly pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.pool = pool;
  }

  /**
   * Connects to PostgreSQL (a connection string, e.g. postgres://user@127.0.0.1:5432/db) and, when
   * `schema` is given, uses (and creates) that schema, so that deployments or tests can share a database.
   */
  static async open(connectionString: string, schema?: string): Promise<PostgresDb> {
    const options: pg.PoolConfig = { connectionString, max: 4, statement_timeout: 60_000, connectionTimeoutMillis: 10_000 };
    if (schema !== undefined) {
      if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
      options.options = `-c search_path=${schema}`;
    }
    const pool = new pg.Pool(options);
    // An idle connection the server closes (restart, failover, idle timeout) is an 'error' event of
    // the pool: without a listener it would end the process. The next query opens a new connection.
    pool.on('error', () => undefined);
    // BIGINT and NUMERIC sums come back as strings by default: the store converts them.
    const db = new PostgresDb(pool);
    try {
      if (schema !== undefined) await db.define([`CREATE SCHEMA IF NOT EXISTS ${schema}`]);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return db;
  }

  async define(statements: readonly string[]): Promise<void> {
    // A transaction-scoped advisory lock serialises the DDL of every process on this database; it is
    // released at COMMIT or ROLLBACK, so a process that dies holding it does not block the others.
    await this.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [DDL_LOCK]);
      for (const s of statements) await tx.execute(s);
    });
  }

  async query(sql: string, params: readonly SqlValue[] = []): Promise<SqlRow[]> {
    const r = await this.pool.query(sql, params.map(toPg));
    return (r.rows as Record<string, unknown>[]).map(fromPg);
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const tx: SqlTx = {
        query: async (sql, params = []) => ((await client.query(sql, params.map(toPg))).rows as Record<string, unknown>[]).map(fromPg),
        execute: async (sql, params = []) => (await client.query(sql, params.map(toPg))).rowCount ?? 0,
      };
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => (broken = e instanceof Error ? e : new Error(String(e))));
      throw err;
    } finally {
      // A connection that cannot even roll back is dropped, not returned to the pool.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
