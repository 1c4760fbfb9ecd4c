/**
 * `shopstream query`: SQL over the lake with DuckDB. The lake's topics are views with hive
 * partitioning (`merchant`, `dt`, `hour` come from the paths, so filters on them skip whole
 * folders): `events` (events.raw), `filtered` (events.filtered) and `rejected` (events.rejected),
 * each defined when the lake holds files of it. Only queries run: a statement that could write
 * (COPY, CREATE, INSERT, ATTACH, …) is refused before it runs, so the command never writes to the lake.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance, StatementType } from '@duckdb/node-api';
import { PlatformError, PlatformErrors } from '../errors.ts';

export type QueryFormat = 'table' | 'csv' | 'json';

export interface LakeQueryOptions {
  /** The folder that holds `lake/` (the sink's storage root). */
  dir: string;
  /** The platform's topic prefix. */
  prefix?: string;
  sql: string;
}

export interface LakeQueryResult {
  columns: string[];
  rows: Array<Array<string | number | boolean | null>>;
  /** The views that were defined (topics with files in the lake). */
  views: string[];
}

const VIEWS: ReadonlyArray<[view: string, topic: string]> = [
  ['events', 'events.raw'],
  ['filtered', 'events.filtered'],
  ['rejected', 'events.rejected'],
];

function hasParquet(dir: string): boolean {
  if (!existsSync(dir)) return false;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) if (entry.isFile() && entry.name.endsWith('.parquet')) return true;
  return false;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

export async function queryLake(o: LakeQueryOptions): Promise<LakeQueryResult> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const views: string[] = [];
    for (const [view, topic] of VIEWS) {
      const folder = join(o.dir, 'lake', `${o.prefix ?? ''}${topic}`);
      if (!hasParquet(folder)) continue;
      await c.run(`CREATE VIEW ${view} AS SELECT * FROM read_parquet(${sqlString(join(folder, '**', '*.parquet'))}, hive_partitioning = true, union_by_name = true)`);
      views.push(view);
    }
    let prepared;
    try {
      prepared = await c.prepare(o.sql);
    } catch (err) {
      throw new PlatformError(PlatformErrors.INVALID_REQUEST, `${(err as Error).message}${views.length === 0 ? '\n(the lake has no files yet: no views are defined)' : `\n(views: ${views.join(', ')})`}`);
    }
    if (prepared.statementType !== StatementType.SELECT && prepared.statementType !== StatementType.EXPLAIN) {
      throw new PlatformError(PlatformErrors.INVALID_REQUEST, 'Only queries (SELECT, WITH …, EXPLAIN) run over the lake; it is never written to.');
    }
    let reader;
    try {
      reader = await prepared.runAndReadAll();
    } catch (err) {
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
    return { columns, rows, views };
  } finally {
    c.closeSync();
    db.closeSync();
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
