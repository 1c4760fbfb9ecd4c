/**
 * Which hive partitions a query can need, read from its syntax tree (DuckDB's `json_serialize_sql`),
 * so that `shopstream query` over S3 downloads only those files.
 *
 * Sound, not clever: a reference to a view is narrowed only when it is the whole FROM of a SELECT
 * (`FROM events [alias]`), and then only by top-level AND-ed conditions of that SELECT's WHERE on
 * `merchant` (`=`, `IN`) and `dt` (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`) against constants. Any
 * other reference (a join, a subquery in FROM, a statement that does not serialize) needs every file
 * of its view. A query needs the union over its references.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import type { LakeFile } from './files.ts';

export interface PartitionFilter {
  /** Merchant ids, or null for any. */
  merchants: Set<string> | null;
  /** Inclusive bounds on `dt` (YYYY-MM-DD), or null. */
  dtMin: string | null;
  dtMax: string | null;
}

/** Per view: the filters of its references (a file is needed when one of them matches), or `all`. */
export type ViewNeeds = Map<string, PartitionFilter[] | 'all'>;

type Node = Record<string, unknown>;

const isNode = (v: unknown): v is Node => v !== null && typeof v === 'object' && !Array.isArray(v);

function constantOf(n: unknown): string | number | null | undefined {
  if (!isNode(n)) return undefined;
  if (n['class'] === 'CAST') return constantOf(n['child']);
  if (n['class'] !== 'CONSTANT') return undefined;
  const v = n['value'] as Node | undefined;
  if (!isNode(v) || v['is_null'] === true) return null;
  const x = v['value'];
  return typeof x === 'string' || typeof x === 'number' ? x : undefined;
}

function columnOf(n: unknown, qualifiers: ReadonlySet<string>): 'merchant' | 'dt' | undefined {
  if (!isNode(n) || n['class'] !== 'COLUMN_REF') return undefined;
  const names = (n['column_names'] as unknown[]).map((x) => String(x).toLowerCase());
  const col = names.at(-1);
  if (col !== 'merchant' && col !== 'dt') return undefined;
  if (names.length === 1) return col;
  if (names.length === 2 && qualifiers.has(names[0]!)) return col;
  return undefined;
}

const dateOf = (v: string | number | null | undefined) => (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v) ? v.slice(0, 10) : undefined);

const FLIP: Record<string, string> = {
  COMPARE_EQUAL: 'COMPARE_EQUAL',
  COMPARE_GREATERTHAN: 'COMPARE_LESSTHAN',
  COMPARE_GREATERTHANOREQUALTO: 'COMPARE_LESSTHANOREQUALTO',
  COMPARE_LESSTHAN: 'COMPARE_GREATERTHAN',
  COMPARE_LESSTHANOREQUALTO: 'COMPARE_GREATERTHANOREQUALTO',
};

function conjuncts(n: unknown): Node[] {
  if (!isNode(n)) return [];
  if (n['type'] === 'CONJUNCTION_AND') return (n['children'] as unknown[]).flatMap(conjuncts);
  return [n];
}

function filterOf(where: unknown, qualifiers: ReadonlySet<string>): PartitionFilter {
  const f: PartitionFilter = { merchants: null, dtMin: null, dtMax: null };
  const merchants = (values: string[]) => {
    const next = new Set(values);
    f.merchants = f.merchants === null ? next : new Set([...f.merchants].filter((m) => next.has(m)));
  };
  const lower = (d: string) => (f.dtMin = f.dtMin === null || d > f.dtMin ? d : f.dtMin);
  const upper = (d: string) => (f.dtMax = f.dtMax === null || d < f.dtMax ? d : f.dtMax);
  for (const c of conjuncts(where)) {
    if (c['class'] === 'COMPARISON' && FLIP[String(c['type'])] !== undefined) {
      let col = columnOf(c['left'], qualifiers);
      let value = constantOf(c['right']);
      let op = String(c['type']);
      if (col === undefined) {
        col = columnOf(c['right'], qualifiers);
        value = constantOf(c['left']);
        op = FLIP[op]!;
      }
      if (col === undefined || value === undefined) continue;
      if (col === 'merchant') {
        if (op === 'COMPARE_EQUAL' && typeof value === 'string') merchants([value]);
        continue;
      }
      const d = dateOf(value);
      if (d === undefined) continue;
      // Bounds are kept inclusive on the date (a superset is always safe).
      if (op === 'COMPARE_EQUAL' || op === 'COMPARE_GREATERTHAN' || op === 'COMPARE_GREATERTHANOREQUALTO') lower(d);
      if (op === 'COMPARE_EQUAL' || op === 'COMPARE_LESSTHAN' || op === 'COMPARE_LESSTHANOREQUALTO') upper(d);
    } else if (c['type'] === 'COMPARE_IN') {
      const [first, ...rest] = c['children'] as unknown[];
      const col = columnOf(first, qualifiers);
      const values = rest.map(constantOf);
      if (col === 'merchant' && values.every((v): v is string => typeof v === 'string')) merchants(values);
      if (col === 'dt') {
        const dates = values.map(dateOf);
        if (dates.every((d): d is string => d !== undefined) && dates.length > 0) {
          lower(dates.reduce((a, b) => (a < b ? a : b)));
          upper(dates.reduce((a, b) => (a > b ? a : b)));
        }
      }
    } else if (c['type'] === 'COMPARE_BETWEEN') {
      if (columnOf(c['input'], qualifiers) !== 'dt') continue;
      const lo = dateOf(constantOf(c['lower']));
      const hi = dateOf(constantOf(c['upper']));
      if (lo !== undefined) lower(lo);
      if (hi !== undefined) upper(hi);
    }
  }
  return f;
}

/** The hive partitions that `sql` can read from each of `views` (lower-case names). */
export async function viewNeeds(c: DuckDBConnection, sql: string, views: readonly string[]): Promise<ViewNeeds> {
  const out: ViewNeeds = new Map();
  const all = () => {
    for (const v of views) out.set(v, 'all');
    return out;
  };
  let tree: unknown;
  try {
    const r = await c.runAndReadAll(`SELECT json_serialize_sql(${`'${sql.replaceAll("'", "''")}'`}) AS j`);
    tree = JSON.parse(String(r.getRowObjectsJson()[0]?.['j']));
  } catch {
    return all();
  }
  if (!isNode(tree) || tree['error'] === true) return all();
  const viewSet = new Set(views);
  const viewName = (t: Node) => {
    const name = String(t['table_name']).toLowerCase();
    const schema = String(t['schema_name'] ?? '').toLowerCase();
    return t['type'] === 'BASE_TABLE' && (schema === '' || schema === 'main') && viewSet.has(name) ? name : undefined;
  };
  const handled = new Set<Node>();
  const add = (view: string, f: PartitionFilter | 'all') => {
    const cur = out.get(view);
    if (cur === 'all') return;
    if (f === 'all') out.set(view, 'all');
    else out.set(view, [...(cur ?? []), f]);
  };
  const walk = (n: unknown, visit: (n: Node) => void) => {
    if (Array.isArray(n)) for (const x of n) walk(x, visit);
    else if (isNode(n)) {
      visit(n);
      for (const v of Object.values(n)) walk(v, visit);
    }
  };
  walk(tree, (n) => {
    if (n['type'] !== 'SELECT_NODE' || !isNode(n['from_table'])) return;
    const from = n['from_table'];
    const view = viewName(from);
    if (view === undefined) return;
    handled.add(from);
    const qualifiers = new Set([view, String(from['alias'] ?? '').toLowerCase()].filter((x) => x !== ''));
    add(view, filterOf(n['where_clause'], qualifiers));
  });
  walk(tree, (n) => {
    const view = n['type'] === 'BASE_TABLE' ? viewName(n) : undefined;
    if (view !== undefined && !handled.has(n)) add(view, 'all');
  });
  return out;
}

/** True when the file can hold rows that one of the filters lets through. */
export function fileNeeded(f: LakeFile, needs: PartitionFilter[] | 'all' | undefined): boolean {
  if (needs === undefined) return false;
  if (needs === 'all') return true;
  const encoded = f.hive.slice('merchant='.length, f.hive.indexOf('/'));
  return needs.some(
    (n) => (n.merchants === null || n.merchants.has(f.merchant) || n.merchants.has(encoded)) && (n.dtMin === null || f.dt >= n.dtMin) && (n.dtMax === null || f.dt <= n.dtMax),
  );
}
