/**
 * Byte-level, ordered key-value backends under the typed stores. A backend holds only committed
 * state plus the changelog offset it reflects (the checkpoint); uncommitted writes live in the
 * typed store's write buffer until the runtime's transaction has committed (see stores.ts).
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { BloomFilter } from './bloom.ts';

export type Batch = Iterable<readonly [key: Buffer, value: Buffer | null]>;

export interface Backend {
  readonly persistent: boolean;
  /**
   * The committed value of `key`. With `transient`, the bytes may be a view of a buffer that the
   * backend's next read overwrites (no copy): for a caller that decodes them at once.
   */
  get(key: Buffer, transient?: boolean): Buffer | undefined;
  /** Ordered entries with from <= key < to (bounds optional). */
  range(from?: Buffer, to?: Buffer): Iterable<[Buffer, Buffer]>;
  /** Applies puts (and deletes for null) and the new checkpoint in one atomic step. */
  write(batch: Batch, checkpoint?: number): void;
  /** Deletes keys in [from, to) locally: retention, never changelogged. */
  deleteRange(from: Buffer, to: Buffer): void;
  /** The changelog offset up to which this backend's content is known to be complete. */
  checkpoint(): number | undefined;
  approximateCount(): number;
  /** Removes everything (used when the checkpoint cannot be trusted). */
  clear(): void;
  close(): void;
}

/** A sorted in-memory backend: for the test driver and for `inMemory` stores (restored from the changelog on start). */
export class MemoryBackend implements Backend {
  readonly persistent = false;
  private keys: Buffer[] = [];
  private readonly values = new Map<string, Buffer>();
  private cp: number | undefined;

  get(key: Buffer): Buffer | undefined {
    return this.values.get(key.toString('latin1'));
  }

  *range(from?: Buffer, to?: Buffer): Iterable<[Buffer, Buffer]> {
    let i = from === undefined ? 0 : this.lowerBound(from);
    // Snapshot the slice so that writes during iteration do not break it.
    const keys = this.keys;
    for (; i < keys.length; i++) {
      const k = keys[i]!;
      if (to !== undefined && Buffer.compare(k, to) >= 0) return;
      const v = this.values.get(k.toString('latin1'));
      if (v !== undefined) yield [k, v];
    }
  }

  write(batch: Batch, checkpoint?: number): void {
    for (const [k, v] of batch) {
      const s = k.toString('latin1');
      if (v === null) {
        if (this.values.delete(s)) {
          const i = this.lowerBound(k);
          this.keys = this.keys.slice(0, i).concat(this.keys.slice(i + 1));
        }
      } else {
        if (!this.values.has(s)) {
          const i = this.lowerBound(k);
          this.keys = this.keys.slice(0, i).concat([Buffer.from(k)], this.keys.slice(i));
        }
        this.values.set(s, Buffer.from(v));
      }
    }
    if (checkpoint !== undefined) this.cp = checkpoint;
  }

  deleteRange(from: Buffer, to: Buffer): void {
    const batch: [Buffer, null][] = [];
    for (const [k] of this.range(from, to)) batch.push([k, null]);
    this.write(batch);
  }

  checkpoint(): number | undefined {
    return this.cp;
  }

  approximateCount(): number {
    return this.values.size;
  }

  clear(): void {
    this.keys = [];
    this.values.clear();
    this.cp = undefined;
  }

  close(): void {}

  private lowerBound(key: Buffer): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(this.keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * One LMDB environment per task directory; each store is a named database in it. LMDB keeps data
 * on disk (memory-mapped), so state is not bound by the heap. Commits are atomic; `noSync` trades
 * durability against an OS crash (the changelog restores it) for speed, while a killed process
 * loses nothing that was committed.
 */
export class LmdbEnvironment {
  private readonly root: RootDatabase;
  private readonly checkpoints: Database<number, string>;

  constructor(path: string) {
    // useWritemap: writes go straight to the map (a third faster here); nothing in JS can write stray pointers into it.
    this.root = open({ path, maxDbs: 256, noSync: true, compression: false, useWritemap: true });
    this.checkpoints = this.root.openDB<number, string>({ name: '__checkpoints' });
  }

  backend(name: string): LmdbBackend {
    const db = this.root.openDB<Buffer, Buffer>({ name, keyEncoding: 'binary', encoding: 'binary' });
    return new LmdbBackend(this.root, db, this.checkpoints, name);
  }

  close(): void {
    this.root.close();
  }
}

export class LmdbBackend implements Backend {
  readonly persistent = true;
  private readonly root: RootDatabase;
  private readonly db: Database<Buffer, Buffer>;
  private readonly checkpoints: Database<number, string>;
  private readonly name: string;

  constructor(root: RootDatabase, db: Database<Buffer, Buffer>, checkpoints: Database<number, string>, name: string) {
    this.root = root;
    this.db = db;
    this.checkpoints = checkpoints;
    this.name = name;
  }

  /**
   * The keys this database holds, as a Bloom filter: most reads of a stream processor's stores
   * miss (a new message id, a new window), and the filter answers those without an LMDB lookup.
   * Built from the keys on the first read, kept up by `write`, rebuilt when it is full.
   */
  private filter: BloomFilter | undefined;

  private keyFilter(): BloomFilter {
    if (this.filter === undefined) {
      const f = new BloomFilter(2 * this.approximateCount());
      for (const key of this.db.getKeys()) f.add(key);
      this.filter = f;
    }
    return this.filter;
  }

  get(key: Buffer, transient = false): Buffer | undefined {
    if (!this.keyFilter().mightContain(key)) return undefined;
    if (!transient) return this.db.getBinary(key) ?? undefined;
    const b = this.db.getBinaryFast(key);
    // LMDB's reused buffer carries a `length` of its own over a larger array: a plain view has the
    // right length for every Buffer function (isUtf8 reads the whole array).
    return b === undefined ? undefined : Buffer.from(b.buffer, b.byteOffset, b.length);
  }

  *range(from?: Buffer, to?: Buffer): Iterable<[Buffer, Buffer]> {
    const opts: { start?: Buffer; end?: Buffer } = {};
    if (from !== undefined) opts.start = from;
    if (to !== undefined) opts.end = to;
    for (const { key, value } of this.db.getRange(opts)) yield [key, value];
  }

  write(batch: Batch, checkpoint?: number): void {
    // Keys join the filter before LMDB has them: a write that then fails leaves only false positives.
    const filter = this.filter;
    this.root.transactionSync(() => {
      for (const [k, v] of batch) {
        if (v === null) this.db.removeSync(k);
        else {
          filter?.add(k);
          this.db.putSync(k, v);
        }
      }
      if (checkpoint !== undefined) this.checkpoints.putSync(this.name, checkpoint);
    });
    if (filter?.full === true) this.filter = undefined; // rebuilt, larger and without deleted keys, on the next read
  }

  deleteRange(from: Buffer, to: Buffer): void {
    this.root.transactionSync(() => {
      for (const key of this.db.getKeys({ start: from, end: to })) this.db.removeSync(key);
    });
  }

  checkpoint(): number | undefined {
    return this.checkpoints.get(this.name);
  }

  approximateCount(): number {
    return (this.db.getStats() as { entryCount: number }).entryCount;
  }

  clear(): void {
    this.db.clearSync();
    this.checkpoints.removeSync(this.name);
    this.filter = undefined;
  }

  close(): void {}
}
