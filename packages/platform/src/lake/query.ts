/**
 * `shopstream query`: SQL over the lake with DuckDB. The lake's topics are views with hive
 * partitioning (`merchant`, `dt`, `hour` come from the paths, so filters on them skip whole
 * folders): `events` (events.raw), `filtered` (events.filtered) and `rejected` (events.rejected),
 * each defined when the lake holds files of it. Only queries run: a statement that could write
 * (COPY, CREATE, INSERT, ATTACH, …) is refused before it runs, so the command never writes to the lake.
 *
 * Views list their files explicitly (not a glob): the visible files, without those superseded by
 * a compacted file (files.ts), so a query during compaction neither counts a record twice nor misses
 * one. Local storage: the files are read in place. S3: DuckDB's httpfs extension is not bundled with
 * `@duckdb/node-api` (it downloads it on first use, which needs the internet), so the files the
 * query can need (pruned by its conditions on `merchant` and `dt`, prune.ts) are downloaded into a
 * temporary folder first and read there.
 */
import { DuckDBInstance, StatementType, type DuckDBConnection } from '@duckdb/node-api';
import { PlatformError, PlatformErrors } from '../errors.ts';
import { isMissingObject, listTopicFiles, localCopies, type LakeFile, type LocalCopies } from './files.ts';
import { fileNeeded, viewNeeds } from './prune.ts';
import { LocalStorage, type LakeStorage } from './storage.ts';

export type QueryFormat = 'table' | 'csv' | 'json';

export interface LakeQueryOptions {
  /** The folder that holds `lake/` (the sink's storage root), for a local lake. */
  dir?: string;
  /** The lake's storage (local or S3); takes precedence over `dir`. */
  storage?: LakeStorage;
  /** The platform's topic prefix. */
  prefix?: string;
  sql: string;
  /** Remote storage: where the downloaded files go (a temporary folder inside it, removed after the query). Default: the OS's. */
  cacheDir?: string;
}

export interface LakeQueryResult {
  columns: string[];
  rows: Array<Array<string | number | boolean | null>>;
  /** The views that were defined (topics with files in the lake). */
  views: string[];
  /** Per view: files in the lake (visible ones), and files given to DuckDB (downloaded, for remote storage). */
  files: Record<string, { lake: number; read: number }>;
}

const VIEWS: ReadonlyArray<[view: string, topic: string]> = [
  ['events', 'events.raw'],
  ['filtered', 'events.filtered'],
  ['rejected', 'events.rejected'],
];

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

async function defineView(c: DuckDBConnection, view: string, paths: readonly string[]): Promise<void> {
  await c.run(`CREATE OR REPLACE VIEW ${view} AS SELECT * FROM read_parquet([${paths.map(sqlString).join(', ')}], hive_partitioning = true, union_by_name = true)`);
}

export async function queryLake(o: LakeQueryOptions): Promise<LakeQueryResult> {
  const storage = o.storage ?? new LocalStorage(o.dir ?? '.');
  for (let attempt = 1; ; attempt++) {
    try {
      return await queryOnce(o, storage);
    } catch (err) {
      // A file listed and then deleted (by compaction) before it was read: list again.
      if (attempt >= 3 || !isMissingObject(err)) throw err;
    }
  }
}

async function queryOnce(o: LakeQueryOptions, storage: LakeStorage): Promise<LakeQueryResult> {
  const remote = !(storage instanceof LocalStorage);
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const copies: LocalCopies[] = [];
  try {
    const lake = new Map<string, LakeFile[]>();
    for (const [view, topic] of VIEWS) {
      const files = await listTopicFiles(storage, `${o.prefix ?? ''}${topic}`);
      if (files.length > 0) lake.set(view, files);
    }
    const views = [...lake.keys()];
    const read: Record<string, { lake: number; read: number }> = {};
    const local = new Map<string, string>();
    const fetch = async (names: readonly string[]) => {
      const missing = names.filter((n) => !local.has(n));
      if (missing.length > 0) {
        const copy = await localCopies(storage, missing, o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir });
        copies.push(copy);
        missing.forEach((n, i) => local.set(n, copy.paths[i]!));
      }
      return names.map((n) => local.get(n)!);
    };
    // Remote: first one file per view, enough to bind and check the statement before downloading more.
    for (const [view, files] of lake) {
      const first = remote ? [files[0]!.name] : files.map((f) => f.name);
      await defineView(c, view, await fetch(first));
      read[view] = { lake: files.length, read: first.length };
    }
    let prepared;
    try {
      prepared = await c.prepare(o.sql);
    } catch (err) {
      if (isMissingObject(err)) throw err;
      throw new PlatformError(PlatformErrors.INVALID_REQUEST, `${(err as Error).message}${views.length === 0 ? '\n(the lake has no files yet: no views are defined)' : `\n(views: ${views.join(', ')})`}`);
    }
    if (prepared.statementType !== StatementType.SELECT && prepared.statementType !== StatementType.EXPLAIN) {
      throw new PlatformError(PlatformErrors.INVALID_REQUEST, 'Only queries (SELECT, WITH …, EXPLAIN) run over the lake; it is never written to.');
    }
    if (remote && views.length > 0) {
      const needs = await viewNeeds(c, o.sql, views);
      for (const [view, files] of lake) {
        const needed = files.filter((f) => fileNeeded(f, needs.get(view)));
        // A view that no file matches still reads one (its rows fail the query's own filter).
        const names = needed.length > 0 ? needed.map((f) => f.name) : [files[0]!.name];
        await defineView(c, view, await fetch(names));
        read[view] = { lake: files.length, read: names.length };
      }
      prepared = await c.prepare(o.sql);
    }
    let reader;
    try {
      reader = await prepared.runAndReadAll();
    } catch (err) {
      if (isMissingObject(err)) throw err;
      throw new PlatformError(PlatformErrors.INVALID_REQUEST, (err as Error).message);
    }
    const columns = reader.columnNames();
    // JSON-ready values; integers stay numbers while they are exact.
    const json = reader.getRowsJson() as Array<Array<unknown>>;
    const types = reader.columnTypes().map((t) => t.toString());
    const rows = json.map((row) =>
      row.map((v, i): string | number | boolean | null => {
        if (v === null || v === undefined) return null;
        if (typeof v === 'string' && /^(BIGINT|HUGEINT|UBIGINT|INTEGER|SMALLINT|TINYINT)$/.test(types[i]!) && Number.isSafeInteger(Number(v))) return Number(v);
        return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v);
      }),
    );
    return { columns, rows, views, files: read };
  } finally {
    c.closeSync();
    db.closeSync();
    for (const x of copies) x.cleanup();
  }
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The result as an aligned text table, CSV (RFC 4180) or JSON (an array of objects). */
export function formatResult(r: LakeQueryResult, format: QueryFormat): string {
  if (format === 'json') return JSON.stringify(r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i] ?? null]))), null, 2);
  if (format === 'csv') {
    const esc = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
    return [r.columns.map(esc).join(','), ...r.rows.map((row) => row.map((v) => esc(cell(v))).join(','))].join('\n');
  }
  const text = [r.columns, ...r.rows.map((row) => row.map(cell))];
  const widths = r.columns.map((_, i) => Math.min(60, Math.max(...text.map((row) => (row[i] ?? '').length))));
  const line = (row: string[]) => row.map((v, i) => (v.length > widths[i]! ? `${v.slice(0, widths[i]! - 1)}…` : v.padEnd(widths[i]!))).join(' │ ').trimEnd();
  return [line(text[0]!), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...text.slice(1).map(line), `(${r.rows.length} row${r.rows.length === 1 ? '' : 's'})`].join('\n');
}
