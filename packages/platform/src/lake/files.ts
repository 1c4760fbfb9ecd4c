/**
 * The lake's file names, and which files a reader must read (docs/lake.md, "Compaction").
 *
 *   <root>/<topic>/merchant=<id>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<start, 19 digits>.parquet                  (the sink)
 *   <root>/<topic>/merchant=<id>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition>+<start, 19 digits>-<end, 19 digits>.parquet (compaction)
 *
 * A compacted file holds every record of its input partition in its folder with an offset in
 * [start, end]. It *supersedes* every other file of the same folder and input partition whose
 * records all lie in that range: a sink file whose start is in [start, end], a compacted file whose
 * range is inside it. Readers skip superseded files (`visibleLakeFiles`), so that while compaction
 * runs (merged file written, inputs not yet deleted), or after it crashed between the two, no record
 * is read twice and none is missed.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { LocalStorage, type LakeStorage } from './storage.ts';

export interface LakeFile {
  /** The full object name. */
  name: string;
  topic: string;
  /** `merchant=…/dt=…/hour=…`. */
  hive: string;
  /** The merchant id (decoded). */
  merchant: string;
  /** YYYY-MM-DD. */
  dt: string;
  /** 0–23. */
  hour: number;
  partition: number;
  /** Offset of the file's first record. */
  start: number;
  /** Compacted files: offset of the last record covered. Undefined for the sink's files. */
  end: number | undefined;
}

const FILE = /^(.+)\/merchant=([^/]+)\/dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/([^/+]+)\+(\d+)\+(\d{19})(?:-(\d{19}))?\.parquet$/;

/** The parts of a lake file name, or undefined for a name the lake does not write. */
export function parseLakeFile(name: string): LakeFile | undefined {
  const m = FILE.exec(name);
  if (m === null) return undefined;
  const folderTopic = m[1]!.slice(m[1]!.lastIndexOf('/') + 1);
  if (folderTopic !== m[5]) return undefined;
  let merchant: string;
  try {
    merchant = decodeURIComponent(m[2]!);
  } catch {
    merchant = m[2]!;
  }
  return {
    name,
    topic: m[5]!,
    hive: `merchant=${m[2]}/dt=${m[3]}/hour=${m[4]}`,
    merchant,
    dt: m[3]!,
    hour: Number(m[4]),
    partition: Number(m[6]),
    start: Number(m[7]),
    end: m[8] === undefined ? undefined : Number(m[8]),
  };
}

/** `<topic>+<partition>+<start>-<end>.parquet`: a name the sink never writes. */
export function compactedFileName(topic: string, partition: number, start: number, end: number): string {
  return `${topic}+${partition}+${String(start).padStart(19, '0')}-${String(end).padStart(19, '0')}.parquet`;
}

const groupKey = (f: LakeFile) => `${f.name.slice(0, f.name.lastIndexOf('/'))}\u0000${f.partition}`;

/** True when `f` is superseded by the compacted file `c` (same folder and partition). */
export function supersedes(c: LakeFile, f: LakeFile): boolean {
  if (c.end === undefined || c.name === f.name) return false;
  if (f.end === undefined) return c.start <= f.start && f.start <= c.end;
  return c.start <= f.start && f.end <= c.end;
}

/**
 * Splits lake file names into the ones to read and the superseded ones (see the module comment).
 * Names that are not lake files are kept as they are.
 */
export function splitSuperseded(names: readonly string[]): { visible: string[]; superseded: LakeFile[] } {
  const groups = new Map<string, LakeFile[]>();
  const visible: string[] = [];
  for (const name of names) {
    const f = parseLakeFile(name);
    if (f === undefined) {
      visible.push(name);
      continue;
    }
    const k = groupKey(f);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, [f]);
    else g.push(f);
  }
  const superseded: LakeFile[] = [];
  for (const files of groups.values()) {
    const compacted = files.filter((f) => f.end !== undefined);
    for (const f of files) {
      if (compacted.some((c) => supersedes(c, f))) superseded.push(f);
      else visible.push(f.name);
    }
  }
  return { visible: visible.sort(), superseded };
}

/** The files a reader must read: every lake file but the superseded ones. */
export function visibleLakeFiles(names: readonly string[]): string[] {
  return splitSuperseded(names).visible;
}

/** Lists the visible files of a topic in the lake. */
export async function listTopicFiles(storage: LakeStorage, topic: string, root = 'lake'): Promise<LakeFile[]> {
  const names = visibleLakeFiles((await storage.list(`${root}/${topic}/`)).filter((n) => n.endsWith('.parquet')));
  return names.map((n) => parseLakeFile(n)).filter((f): f is LakeFile => f !== undefined);
}

/** Local paths of lake objects: in place for local storage, else downloaded into a temporary folder. */
export interface LocalCopies {
  paths: string[];
  /** Removes the downloaded copies (nothing for local storage). */
  cleanup(): void;
}

/**
 * Makes `names` readable by DuckDB as local files. Local storage: the files themselves. Other
 * storage (S3): each object is downloaded (`concurrency` at once) into a fresh temporary folder
 * under `cacheDir`, keeping its name (so hive partitioning still reads `merchant`, `dt`, `hour`).
 */
export async function localCopies(storage: LakeStorage, names: readonly string[], o: { cacheDir?: string; concurrency?: number } = {}): Promise<LocalCopies> {
  if (storage instanceof LocalStorage) return { paths: names.map((n) => storage.locate(n)), cleanup: () => {} };
  const base = o.cacheDir ?? tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'shopstream-lake-cache-'));
  const paths = names.map((n) => join(dir, ...n.split('/')));
  try {
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < names.length; i = next++) {
        const bytes = await storage.read(names[i]!);
        mkdirSync(dirname(paths[i]!), { recursive: true });
        await writeFile(paths[i]!, bytes);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 8, names.length) }, worker));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { paths, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** True for errors that mean an object disappeared between a listing and a read (compaction deleted it). */
export function isMissingObject(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string } | null;
  if (e === null || typeof e !== 'object') return false;
  return e.name === 'NoSuchKey' || e.code === 'ENOENT' || /No files found|No such file|does not exist|NoSuchKey/i.test(String(e.message));
}

/**
 * A DuckDB query that reads a topic's files directly (another engine, no `shopstream query`) and
 * still skips superseded files, from their names: `SELECT * FROM (<this>)`. `glob` is the topic's
 * folder glob, e.g. `lake/events.raw/**\/*.parquet` (or an s3:// URL with httpfs). Other engines can
 * apply the same rule on their file-name column (Athena `"$path"`, BigQuery `_FILE_NAME`).
 */
export function lakeReaderSql(glob: string): string {
  const g = `'${glob.replaceAll("'", "''")}'`;
  return `WITH f AS (
  SELECT file, regexp_extract(file, '^(.*)/[^/]+$', 1) AS folder,
         regexp_extract(file, '\\+(\\d+)\\+(\\d{19})(?:-(\\d{19}))?\\.parquet$', ['p', 's', 'e']) AS x
  FROM glob(${g})),
g AS (SELECT file, folder, x.p::INTEGER AS p, x.s::BIGINT AS s, nullif(x.e, '')::BIGINT AS e FROM f),
superseded AS (
  SELECT a.file FROM g a JOIN g c
    ON c.folder = a.folder AND c.p = a.p AND c.e IS NOT NULL AND c.file <> a.file AND c.s <= a.s AND coalesce(a.e, a.s) <= c.e)
SELECT * EXCLUDE (filename) FROM read_parquet(${g}, hive_partitioning = true, filename = true)
WHERE filename NOT IN (SELECT file FROM superseded)`;
}
