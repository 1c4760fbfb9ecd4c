/**
 * `shopstream lake compact`: merges the small files of closed hour partitions into one file per
 * (topic, input partition, hive partition). Protocol (docs/lake.md, "Compaction"):
 *
 *   1. For each group (folder × input partition) of a closed hour, the visible files (files.ts:
 *      those no compacted file supersedes) are read and written, ordered by offset, to ONE new file
 *      `<topic>+<partition>+<first offset>-<last offset>.parquet`, staged and published atomically
 *      like the sink's files. From that instant readers skip the inputs: the new file supersedes
 *      them (its range covers their start offsets).
 *   2. Then the inputs (and any file superseded earlier) are deleted.
 *
 * A crash before 1 completes leaves the inputs as they were (and a temporary file or an unfinished
 * upload that the stale-temporaries cleanup removes); a crash between 1 and 2, or during 2, leaves
 * superseded files that readers skip and the next run deletes. So at every instant a reader that
 * applies the rule reads each record once, and after the next run the folder holds one file.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import type { Logger } from 'pino';
import { compactedFileName, localCopies, parseLakeFile, splitSuperseded, type LakeFile } from './files.ts';
import { LAKE_SCHEMA_VERSION } from './parquet.ts';
import type { LakeStorage } from './storage.ts';

const HOUR = 3_600_000;

export interface CompactOptions {
  storage: LakeStorage;
  /** Folder of the lake inside the storage. Default `lake`. */
  root?: string;
  /** Only these topics (folder names under the root). Default: every topic in the lake. */
  topics?: readonly string[];
  /** An hour partition is closed when its end is at least this many hours ago. Default 2. */
  olderThanHours?: number;
  /** Now, epoch ms (tests). */
  now?: number;
  /** Where downloaded inputs go for remote storage. Default: the OS's temporary folder. */
  cacheDir?: string;
  logger?: Logger;
  /** Test hooks: throwing from one simulates a crash at that point. */
  afterPublish?: (name: string) => void | Promise<void>;
  beforeDelete?: (name: string) => void | Promise<void>;
}

export interface CompactResult {
  /** Groups (folder × input partition) of closed hours looked at. */
  groups: number;
  /** Files written. */
  written: string[];
  /** Files merged into them. */
  merged: number;
  /** Files deleted (merged inputs and files superseded before). */
  deleted: number;
  rows: number;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

export async function compactLake(o: CompactOptions): Promise<CompactResult> {
  const root = o.root ?? 'lake';
  const now = o.now ?? Date.now();
  const closedBefore = now - (o.olderThanHours ?? 2) * HOUR;
  const topics = o.topics === undefined ? undefined : new Set(o.topics);
  const groups = new Map<string, string[]>();
  for (const name of await o.storage.list(`${root}/`)) {
    const f = parseLakeFile(name);
    if (f === undefined || (topics !== undefined && !topics.has(f.topic))) continue;
    if (Date.parse(`${f.dt}T${String(f.hour).padStart(2, '0')}:00:00Z`) + HOUR > closedBefore) continue;
    const k = `${name.slice(0, name.lastIndexOf('/'))}\u0000${f.partition}`;
    groups.set(k, [...(groups.get(k) ?? []), name]);
  }
  const result: CompactResult = { groups: groups.size, written: [], merged: 0, deleted: 0, rows: 0 };
  if (groups.size === 0) return result;
  const db = await DuckDBInstance.create(':memory:', { threads: '2' });
  const c = await db.connect();
  try {
    for (const names of groups.values()) {
      const { visible, superseded } = splitSuperseded(names);
      const files = visible.map((n) => parseLakeFile(n)!);
      let remove: LakeFile[] = superseded;
      if (files.length >= 2) {
        const merged = await merge(c, o, files);
        result.written.push(merged.name);
        result.merged += files.length;
        result.rows += merged.rows;
        await o.afterPublish?.(merged.name);
        remove = [...files, ...superseded];
      }
      for (const f of remove) {
        await o.beforeDelete?.(f.name);
        await o.storage.delete(f.name);
        result.deleted++;
      }
    }
  } finally {
    c.closeSync();
    db.closeSync();
  }
  o.logger?.info({ groups: result.groups, written: result.written.length, merged: result.merged, deleted: result.deleted }, 'lake: compacted');
  return result;
}

/** Writes the rows of `files` (one folder and input partition) to one compacted file, published atomically. */
async function merge(c: Awaited<ReturnType<DuckDBInstance['connect']>>, o: CompactOptions, files: readonly LakeFile[]): Promise<{ name: string; rows: number }> {
  const copies = await localCopies(o.storage, files.map((f) => f.name), o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir });
  try {
    const source = `read_parquet([${copies.paths.map(sqlString).join(', ')}], hive_partitioning = false)`;
    const stats = (await c.runAndReadAll(`SELECT count(*)::BIGINT AS n, count(DISTINCT "offset")::BIGINT AS d, min("offset")::BIGINT AS lo, max("offset")::BIGINT AS hi FROM ${source}`)).getRows()[0]!.map(Number) as [number, number, number, number];
    const [n, distinct, lo, hi] = stats;
    const start = Math.min(...files.map((f) => f.start));
    if (n !== distinct || lo !== start) {
      throw new Error(`lake compaction: ${files[0]!.name} and ${files.length - 1} more hold ${n} rows, ${distinct} distinct offsets, first ${lo} (expected ${start}); left as it is`);
    }
    const first = files[0]!;
    const folder = first.name.slice(0, first.name.lastIndexOf('/'));
    const name = `${folder}/${compactedFileName(first.topic, first.partition, lo, hi)}`;
    const kv = Object.entries({
      shopstream_lake_schema: String(LAKE_SCHEMA_VERSION),
      shopstream_topic: first.topic,
      shopstream_partition: String(first.partition),
      shopstream_start_offset: String(lo),
      shopstream_end_offset: String(hi),
      shopstream_compacted_from: String(files.length),
    })
      .map(([k, v]) => `${k}: ${sqlString(v)}`)
      .join(', ');
    const staged = await o.storage.stage(name);
    try {
      await c.run(`COPY (SELECT * FROM ${source} ORDER BY "offset") TO ${sqlString(staged.localPath)} (FORMAT PARQUET, COMPRESSION zstd, KV_METADATA {${kv}})`);
      await staged.publish();
    } catch (err) {
      await staged.discard().catch(() => undefined);
      throw err;
    }
    return { name, rows: n };
  } finally {
    copies.cleanup();
  }
}
