/**
 * Where the data lake's files live. An object is written in two steps: `stage(name)` gives a local
 * file to write (DuckDB writes Parquet there), and `publish()` makes it visible under its final name
 * atomically: a reader sees either no object or the whole object, never a partial one. Publishing
 * a name that exists replaces it (the sink only ever does that with identical content).
 *
 * Local file system (`LocalStorage`): the staged file is `<final name>.tmp-<random>` in the final
 * folder; publish fsyncs it, renames it to the final name and fsyncs the folder. Temporary names do
 * not end in `.parquet`, so a `**\/*.parquet` glob never sees them.
 *
 * S3 (`S3Storage`, s3.ts): `stage` returns a file in a local scratch folder, `publish` uploads it
 * with one PutObject, or with a multipart upload whose completion makes the object visible (S3
 * objects are never visible half-written); `discard` deletes the scratch file; `list`, `read` and
 * `delete` map to ListObjectsV2, GetObject and DeleteObject.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

/** An object being written, not visible yet. */
export interface StagedObject {
  /** The final name (`/`-separated, relative to the storage root). */
  readonly name: string;
  /** A local file to write the content to (it does not exist yet). */
  readonly localPath: string;
  /** Makes the written content visible under `name`, atomically (replacing an object of that name). */
  publish(): Promise<void>;
  /** Drops the staged content (nothing becomes visible). */
  discard(): Promise<void>;
}

export interface LakeStorage {
  /** A human-readable location of `name`, for logs and for DuckDB readers (a path or a URL). */
  locate(name: string): string;
  stage(name: string): Promise<StagedObject>;
  /** Visible objects whose name starts with `prefix`, sorted. Temporary objects are not listed. */
  list(prefix: string): Promise<string[]>;
  read(name: string): Promise<Buffer>;
  /** Deletes an object; no error when it does not exist. */
  delete(name: string): Promise<void>;
  /**
   * Deletes what crashed writers left behind (temporary files, unfinished multipart uploads) when
   * older than `olderThanMs` (a live writer's is younger). Returns what was removed.
   */
  removeStaleTemporaries?(olderThanMs: number, now?: number): Promise<string[]>;
}

const TMP = '.tmp-';

/** True for the name of a temporary (staged, unpublished) local file. */
export function isTemporaryName(name: string): boolean {
  return name.slice(name.lastIndexOf('/') + 1).includes(TMP);
}

export function checkName(name: string): void {
  if (name === '' || name.startsWith('/') || name.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`invalid lake object name: ${JSON.stringify(name)}`);
  }
}

async function fsyncPath(path: string): Promise<void> {
  const h = await open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export interface LocalStorageOptions {
  /** fsync files and folders when publishing. Default true (tests may turn it off for speed). */
  fsync?: boolean;
}

/** The lake on a local (or mounted) file system, under `root`. */
export class LocalStorage implements LakeStorage {
  readonly root: string;
  private readonly fsync: boolean;

  constructor(root: string, options: LocalStorageOptions = {}) {
    this.root = root;
    this.fsync = options.fsync ?? true;
  }

  locate(name: string): string {
    checkName(name);
    return join(this.root, ...name.split('/'));
  }

  async stage(name: string): Promise<StagedObject> {
    const finalPath = this.locate(name);
    const dir = dirname(finalPath);
    const created = await mkdir(dir, { recursive: true });
    if (created !== undefined && this.fsync) {
      // New folders must survive a crash too: fsync each new one's parent, deepest first.
      for (let d = dir; d.length >= created.length && d !== dirname(d); d = dirname(d)) await fsyncPath(dirname(d));
    }
    const localPath = `${finalPath}${TMP}${randomBytes(6).toString('hex')}`;
    const fsync = this.fsync;
    return {
      name,
      localPath,
      async publish() {
        if (fsync) await fsyncPath(localPath);
        await rename(localPath, finalPath);
        if (fsync) await fsyncPath(dir);
      },
      async discard() {
        await rm(localPath, { force: true });
      },
    };
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for (const f of await this.walk()) if (!isTemporaryName(f) && f.startsWith(prefix)) out.push(f);
    return out.sort();
  }

  read(name: string): Promise<Buffer> {
    return readFile(this.locate(name));
  }

  async delete(name: string): Promise<void> {
    await rm(this.locate(name), { force: true });
  }

  /**
   * Deletes temporary files left by a crash, when older than `olderThanMs` (a live writer's staged
   * file is younger: several sinks may share a folder). Returns the names deleted.
   */
  async removeStaleTemporaries(olderThanMs: number, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const f of await this.walk()) {
      if (!isTemporaryName(f)) continue;
      const path = join(this.root, ...f.split('/'));
      const s = await stat(path).catch(() => undefined);
      if (s === undefined || now - s.mtimeMs < olderThanMs) continue;
      await rm(path, { force: true });
      removed.push(f);
    }
    return removed;
  }

  /** Every file under the root, as `/`-separated names. */
  private async walk(): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(this.root, { recursive: true, withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries.filter((e) => e.isFile()).map((e) => relative(this.root, join(e.parentPath, e.name)).split(sep).join('/'));
  }
}
