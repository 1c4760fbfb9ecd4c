/**
 * Writes one lake file: the file's staged lines (stage.ts) go to the writer's scratch text file, and
 * one `COPY (SELECT … FROM read_csv(<scratch>)) TO '<staged path>' (FORMAT PARQUET, KV_METADATA
 * {…})` turns them into the Parquet file: DuckDB splits the lines and decodes the few escaped fields
 * in C++. The lines are in offset order and DuckDB (one thread) keeps their order, so the rows are
 * ordered by offset. One in-memory DuckDB per sink, writing two files at a time (one connection and
 * scratch file each). The same lines give the same bytes.
 *
 * Costs, measured: a COPY has a fixed cost of a few milliseconds (so files of ~2,000 rows pay as much
 * for it as for their rows); DuckDB with one thread costs half the CPU of two threads for such files;
 * and creating a file costs more than writing one (ext4 inode allocation), so a scratch file is
 * rewritten for each lake file (those of crashed writers are deleted by the next writer's open), and DuckDB writes the staged path directly (no temporary
 * file of its own: the staged path is already invisible).
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { pidAlive } from '@shopstream/streams';
import { LAKE_TEXT_MACRO, lakeSelectSql, sqlString } from './stage.ts';

/** Version of the lake file schema (columns in docs/lake.md); in each file's key-value metadata. */
export const LAKE_SCHEMA_VERSION = 1;

/** Lines of one lake file, in offset order. */
export interface StagedLines {
  chunks: readonly Uint8Array[];
  /** Length of the longest line. */
  maxLine: number;
  /** The input partition (a column of every row). */
  partition: number;
}

const SCRATCH_PREFIX = 'shopstream-lake-lines-';

/**
 * Deletes the scratch files in `dir` of writers whose process is gone (a crash), and any older
 * than `olderThanMs` (a live writer opens its file again for each lake file, so losing an idle one
 * costs nothing).
 */
async function removeStaleScratch(dir: string, olderThanMs: number): Promise<void> {
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const name of names) {
    if (!name.startsWith(SCRATCH_PREFIX)) continue;
    const pid = Number(name.slice(SCRATCH_PREFIX.length).split('-')[0]);
    const path = join(dir, name);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) {
      await rm(path, { force: true });
      continue;
    }
    const s = await stat(path).catch(() => undefined);
    if (s !== undefined && now - s.mtimeMs >= olderThanMs) await rm(path, { force: true });
  }
}

export interface ParquetWriterOptions {
  /** Folder of the scratch files. Default: the OS's temporary folder. */
  scratchDir?: string;
  /** Files written at once (each on its own connection, with its own scratch file). Default 2. */
  concurrency?: number;
}

interface Lane {
  c: DuckDBConnection;
  scratchPath: string;
}

export class ParquetWriter {
  private readonly instance: DuckDBInstance;
  private readonly free: Lane[];
  private readonly lanes: Lane[];
  private readonly waiting: ((lane: Lane) => void)[] = [];

  private constructor(instance: DuckDBInstance, lanes: Lane[]) {
    this.instance = instance;
    this.lanes = lanes;
    this.free = [...lanes];
  }

  static async open(options: ParquetWriterOptions = {}): Promise<ParquetWriter> {
    const dir = options.scratchDir ?? tmpdir();
    await removeStaleScratch(dir, 3_600_000);
    // One thread: a COPY of a few thousand rows costs half the CPU on one thread as on two; files are written side by side instead.
    const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
    const lanes: Lane[] = [];
    for (let i = 0; i < Math.max(1, options.concurrency ?? 2); i++) {
      const c = await instance.connect();
      await c.run(LAKE_TEXT_MACRO);
      lanes.push({ c, scratchPath: join(dir, `${SCRATCH_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}.txt`) });
    }
    return new ParquetWriter(instance, lanes);
  }

  private lane(): Promise<Lane> {
    const lane = this.free.pop();
    return lane !== undefined ? Promise.resolve(lane) : new Promise((resolve) => this.waiting.push(resolve));
  }

  private done(lane: Lane): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(lane);
    else this.free.push(lane);
  }

  /** Writes `lines` to a Parquet file at `path` (which must not be visible to readers yet). */
  async write(path: string, lines: StagedLines, metadata: Record<string, string>): Promise<void> {
    const lane = await this.lane();
    try {
      // Opened (and truncated) for each file: no new inode once it exists, and a scratch file deleted meanwhile comes back.
      const fh = await open(lane.scratchPath, 'w');
      try {
        let position = 0;
        for (let i = 0; i < lines.chunks.length; i += 512) {
          const part = lines.chunks.slice(i, i + 512);
          const { bytesWritten } = await fh.writev(part, position);
          if (bytesWritten !== part.reduce((a, b) => a + b.length, 0)) throw new Error(`lake: short write to ${lane.scratchPath}`);
          position += bytesWritten;
        }
      } finally {
        await fh.close();
      }
      const kv = Object.entries({ shopstream_lake_schema: String(LAKE_SCHEMA_VERSION), ...metadata })
        .map(([k, v]) => `${k}: ${sqlString(v)}`)
        .join(', ');
      await lane.c.run(
        `COPY (${lakeSelectSql(lane.scratchPath, lines.maxLine, lines.partition)}) TO ${sqlString(path)} ` +
          `(FORMAT PARQUET, COMPRESSION zstd, USE_TMP_FILE false, KV_METADATA {${kv}})`,
      );
    } finally {
      this.done(lane);
    }
  }

  /** Closes DuckDB and deletes the scratch files (call when no write is running). */
  async close(): Promise<void> {
    for (const lane of this.lanes) lane.c.closeSync();
    this.instance.closeSync();
    for (const lane of this.lanes) await rm(lane.scratchPath, { force: true });
  }
}
