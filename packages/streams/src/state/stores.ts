/**
 * Typed state stores. Each store has:
 *  - a byte-level backend holding committed state (LMDB on disk, or memory);
 *  - a write buffer holding this commit interval's changes. Reads see the buffer first, so a
 *    processor reads its own writes. Nothing reaches the backend before the runtime's transaction
 *    has committed (outputs, changelog records and input offsets together): a crash before the
 *    commit leaves the backend at the last committed state, and a crash after it is repaired by
 *    replaying the changelog from the backend's checkpoint. This is the only exactly-once
 *    mechanism for state, and it is the same on both logs.
 *  - a read cache of committed values, decoded (`cacheBytes`, bounded by their stored size, oldest
 *    out first): a value read from the backend is kept, and follows its key's commits, so a hot key
 *    is not read from LMDB and decoded again at every commit interval. It only ever holds what the
 *    backend holds, and it is dropped whenever the backend changes under it (restore, retention,
 *    wipe) or the uncommitted state is discarded (values returned by reads may have been changed in
 *    place by a processor before a failed commit).
 *  - while a commit is in flight, processing goes on (`freeze`): the buffer's entries are marked as
 *    the commit's, and an entry written again keeps the committing value aside, so that reads see
 *    the newest value with one lookup. `applyFrozen` writes the commit's values to the backend once
 *    the transaction has committed; a failed one discards everything uncommitted.
 *
 * Every stored value is `[8-byte timestamp][value bytes]`. Stores with retention (TTL key-value
 * stores, window stores) prefix keys with an 8-byte segment id derived from the record time;
 * expired segments are dropped locally as whole key ranges, and their changelogs use
 * `cleanup.policy=compact,delete` so the log forgets them too.
 */
import { deserializeDetaches, type Serde } from '../serde/index.ts';
import type { Backend } from './backend.ts';
import { StreamsError, ErrorCodes } from '../errors.ts';

export interface StateStore {
  readonly name: string;
  readonly persistent: boolean;
}

/** What a store needs from its task. */
export interface StoreContext {
  /** The task's stream time; -Infinity before the first record. */
  streamTime(): number;
  /** The timestamp of the record being processed (or stream time in a punctuator). */
  recordTime(): number;
  /** Asks for an early commit (the write buffer is large). */
  requestCommit(): void;
}

export interface ChangelogSink {
  send(key: Buffer, value: Buffer | null, timestamp: number): void;
}

/**
 * The read cache's default size per store and task, in stored bytes. The platform's applications have
 * about fifty stores over their tasks (4 partitions): ~25 MiB of stored bytes at most, a few times
 * that decoded.
 */
export const DEFAULT_STORE_CACHE_BYTES = 512 * 1024;

/** When the read cache is full, one read from the backend in this many enters it (see `cacheAdd`). */
const ADMIT_WHEN_FULL = 8;

/** Limits of a store's memory. */
export interface StoreLimits {
  /** Bytes of uncommitted writes (approximate) past which the store asks for an early commit. */
  maxBufferBytes: number;
  /** Stored bytes of committed values kept decoded in the read cache; 0 turns it off. Default 0. */
  cacheBytes?: number | undefined;
}

/** A cached committed value: decoded, with its stored timestamp and size. */
interface Cached<V> {
  value: V | null;
  timestamp: number;
  bytes: number;
}

interface Entry<V> {
  key: Buffer;
  value: V | null;
  timestamp: number;
  /** The stored bytes, encoded once at flush and reused when applied to the backend. */
  encoded?: Buffer | null | undefined;
  /** The commit generation that last wrote the entry. */
  gen: number;
  /** Set when the entry belonged to the commit in flight and was written again since: that commit's stored bytes. */
  committing?: Buffer | null | undefined;
}

const TS_BYTES = 8;
const TWO_32 = 2 ** 32;

/**
 * Writes a non-negative safe integer as 8 big-endian bytes (sorts like the number). Times and
 * segment ids are never negative here. Two 32-bit writes: BigInt conversion cost a tenth of the
 * stateful hot path.
 */
function writeU64(b: Buffer, v: number, offset: number): void {
  const x = v < 0 ? 0 : v;
  b.writeUInt32BE(Math.floor(x / TWO_32), offset);
  b.writeUInt32BE(x % TWO_32, offset + 4);
}

function readU64(b: Buffer, offset: number): number {
  return b.readUInt32BE(offset) * TWO_32 + b.readUInt32BE(offset + 4);
}

function encodeValue<V>(serde: Serde<V>, value: V | null, timestamp: number, name: string): Buffer | null {
  if (value === null) return null;
  let bytes: Buffer | null;
  try {
    bytes = serde.serialize(value, name);
  } catch (err) {
    throw new StreamsError(ErrorCodes.SERIALIZATION, `store ${name}: cannot serialise value`, { cause: err });
  }
  if (bytes === null) return null;
  const out = Buffer.allocUnsafe(TS_BYTES + bytes.length);
  out.writeDoubleBE(timestamp, 0);
  bytes.copy(out, TS_BYTES);
  return out;
}

function decodeTimestamp(stored: Buffer): number {
  return stored.readDoubleBE(0);
}

/** The common part: write buffer, commit protocol, restore. */
export abstract class BufferedStore<V> implements StateStore {
  readonly name: string;
  protected readonly backend: Backend;
  protected readonly valueSerde: Serde<V>;
  /** Reads may decode a view of LMDB's reused buffer: the value serde keeps nothing of its input. */
  private readonly transientReads: boolean;
  protected ctx!: StoreContext;
  protected changelog: ChangelogSink | undefined;
  protected buffer = new Map<string, Entry<V>>();
  /** The generation that writes go to now. */
  private gen = 0;
  /** The generation of the commit in flight, if any. */
  private frozenGen: number | undefined;
  /** Entries written in the current generation (what the next commit has to write). */
  private current = 0;
  private bufferBytes = 0;
  private readonly maxBufferBytes: number;
  /** The read cache (see the header): map key → committed value, oldest first. */
  private cache = new Map<string, Cached<V>>();
  private cacheUsed = 0;
  private readonly cacheBytes: number;
  private admitTick = 0;
  /** Called at flush for each buffered entry (used by caching aggregations to forward on flush). */
  private flushListener: ((key: Buffer, value: V | null, timestamp: number) => void) | undefined;

  constructor(name: string, backend: Backend, valueSerde: Serde<V>, limits: StoreLimits) {
    this.name = name;
    this.backend = backend;
    this.valueSerde = valueSerde;
    this.transientReads = deserializeDetaches(valueSerde as Serde<unknown>);
    this.maxBufferBytes = limits.maxBufferBytes;
    this.cacheBytes = limits.cacheBytes ?? 0;
  }

  get persistent(): boolean {
    return this.backend.persistent;
  }

  /** Wires the store into its task. */
  init(ctx: StoreContext, changelog: ChangelogSink | undefined): void {
    this.ctx = ctx;
    this.changelog = changelog;
  }

  /**
   * Kafka Streams' record cache: at each commit, before its transaction, the listener gets the last
   * value of every key written since the previous commit (the key as written, serialised; null for a
   * delete). Records it forwards are part of that commit. One listener per store.
   */
  setFlushListener(listener: (key: Buffer, value: V | null, timestamp: number) => void): void {
    this.flushListener = listener;
  }

  /** The changelog offset the backend reflects. */
  checkpoint(): number | undefined {
    return this.backend.checkpoint();
  }

  /** Applies changelog records read during restore (raw stored bytes). */
  restoreBatch(records: Iterable<readonly [Buffer, Buffer | null]>, checkpoint: number): void {
    this.clearCache();
    this.backend.write(records, checkpoint);
  }

  /** Drops the local state (the checkpoint is missing or unusable): restore starts from the changelog's start. */
  wipe(): void {
    this.clearCache();
    this.backend.clear();
  }

  /**
   * Deletes a key range from the backend locally (retention), and empties the cache. Reads already
   * skip what retention dropped (by stream time), so this only keeps the rule that the cache holds
   * nothing the backend does not.
   */
  protected dropRange(from: Buffer, to: Buffer): void {
    this.clearCache();
    this.backend.deleteRange(from, to);
  }

  private clearCache(): void {
    if (this.cacheUsed === 0 && this.cache.size === 0) return;
    this.cache = new Map();
    this.cacheUsed = 0;
  }

  /** Caches a committed value read from the backend, evicting the oldest entries past the budget. */
  private cacheAdd(s: string, keyBytes: number, value: V | null, timestamp: number, storedBytes: number): void {
    const bytes = keyBytes + storedBytes + 64;
    if (bytes > this.cacheBytes) return;
    // Once the cache is full, one read in ADMIT_WHEN_FULL enters it. Admitting every read would
    // make a working set larger than the cache (keys read in turn, as visitors are) evict each key
    // before its next read: no hits at all, and every decoded value kept just long enough to be
    // promoted to the old generation and collected there, which costs more than no cache. Admitting
    // few keeps most residents until they are read again.
    if (this.cacheUsed + bytes > this.cacheBytes && ++this.admitTick % ADMIT_WHEN_FULL !== 0) return;
    this.cache.set(s, { value, timestamp, bytes });
    this.cacheUsed += bytes;
    this.cacheTrim();
  }

  private cacheTrim(): void {
    if (this.cacheUsed <= this.cacheBytes) return;
    for (const [k, c] of this.cache) {
      this.cache.delete(k);
      this.cacheUsed -= c.bytes;
      if (this.cacheUsed <= this.cacheBytes) break;
    }
  }

  private lastComposite: Buffer | undefined;
  private lastCompositeStr = '';

  /** The buffer's map key of a stored key; a get followed by a put of the same key computes it once. */
  private mapKey(bkey: Buffer): string {
    if (bkey === this.lastComposite) return this.lastCompositeStr;
    this.lastComposite = bkey;
    this.lastCompositeStr = bkey.toString('latin1');
    return this.lastCompositeStr;
  }

  /**
   * Memoises a composite (stored) key built from a serialised key and a number (segment or window
   * start): get-then-put of the same key builds it once. Composite keys are never mutated.
   */
  private memoKey: Buffer | undefined;
  private memoNum = NaN;
  private memoOut: Buffer | undefined;
  protected composite(bkey: Buffer, n: number, build: (bkey: Buffer, n: number) => Buffer): Buffer {
    if (bkey === this.memoKey && n === this.memoNum) return this.memoOut!;
    // `build` is a function made once, not a closure per call: reads are the hot path.
    const out = build(bkey, n);
    this.memoKey = bkey;
    this.memoNum = n;
    this.memoOut = out;
    return out;
  }

  protected bufferGet(bkey: Buffer): Entry<V> | undefined {
    return this.buffer.get(this.mapKey(bkey));
  }

  protected bufferPut(bkey: Buffer, value: V | null, timestamp: number): void {
    const s = this.mapKey(bkey);
    const prev = this.buffer.get(s);
    if (prev === undefined) {
      this.buffer.set(s, { key: bkey, value, timestamp, encoded: undefined, gen: this.gen, committing: undefined });
      this.current++;
      this.bufferBytes += bkey.length * 2 + 64;
      if (this.bufferBytes > this.maxBufferBytes) this.ctx.requestCommit();
    } else {
      if (prev.gen !== this.gen) {
        // The commit in flight holds this entry: keep its value for the backend, take the new one.
        prev.committing = prev.encoded !== undefined ? prev.encoded : encodeValue(this.valueSerde, prev.value, prev.timestamp, this.name);
        prev.gen = this.gen;
        this.current++;
      }
      prev.value = value;
      prev.timestamp = timestamp;
      prev.encoded = undefined;
    }
    this.onBufferPut(s, bkey);
  }

  private lastKey: unknown = undefined;
  private lastKeyBytes: Buffer | undefined;

  /**
   * Serialises a key, remembering the last one: processors read a key and then write it, so the
   * second call is free. Keys are immutable by contract (as in Kafka Streams).
   */
  protected keyBytesWith<K>(serde: Serde<K>, key: K): Buffer {
    if (this.lastKeyBytes !== undefined && key === this.lastKey) return this.lastKeyBytes;
    const b = serializeKey(serde, key, this.name);
    this.lastKey = key;
    this.lastKeyBytes = b;
    return b;
  }

  /** The key as the user wrote it, from the stored key (stores that prefix keys override this). */
  protected userKeyOf(storedKey: Buffer): Buffer {
    return storedKey;
  }

  /** Hook for secondary indexes of the buffer. */
  protected onBufferPut(_s: string, _bkey: Buffer): void {}

  /** Reads a committed value: from the cache, else from the backend (and caches it). */
  protected backendGet(bkey: Buffer): { value: V | null; timestamp: number } | undefined {
    if (this.cacheBytes === 0) {
      const raw = this.backend.get(bkey, this.transientReads);
      return raw === undefined ? undefined : { value: this.decode(raw), timestamp: decodeTimestamp(raw) };
    }
    const s = this.mapKey(bkey);
    const c = this.cache.get(s);
    if (c !== undefined) return c.value === null ? undefined : c;
    const raw = this.backend.get(bkey, this.transientReads);
    // A miss is not cached: most misses are new keys (a message id), answered by the backend's
    // Bloom filter without a lookup, and they would crowd the hot keys out.
    if (raw === undefined) return undefined;
    const value = this.decode(raw);
    const timestamp = decodeTimestamp(raw);
    this.cacheAdd(s, bkey.length, value, timestamp, raw.length);
    return { value, timestamp };
  }

  protected decode(raw: Buffer): V | null {
    try {
      return this.valueSerde.deserialize(raw.subarray(TS_BYTES), this.name);
    } catch (err) {
      throw new StreamsError(ErrorCodes.STATE_STORE, `store ${this.name}: cannot deserialise a stored value`, { cause: err });
    }
  }

  /** Step 1 of a commit: forward cached results (caching stores) and send the changelog records. */
  flush(): void {
    if (this.current === 0) return;
    if (this.flushListener !== undefined) {
      for (const e of this.buffer.values()) if (e.gen === this.gen) this.flushListener(this.userKeyOf(e.key), e.value, e.timestamp);
    }
    if (this.changelog !== undefined) {
      for (const e of this.buffer.values()) {
        if (e.gen !== this.gen) continue;
        e.encoded = encodeValue(this.valueSerde, e.value, e.timestamp, this.name);
        this.changelog.send(e.key, e.encoded, e.timestamp);
      }
    }
  }

  /** Step 2, when the transaction starts committing: what was written so far is the commit's; writes from now on belong to the next. */
  freeze(): void {
    if (this.frozenGen !== undefined) throw new StreamsError(ErrorCodes.STATE_STORE, `store ${this.name}: a commit is already in flight`);
    this.frozenGen = this.gen++;
    this.current = 0;
  }

  /** Step 3, after the transaction committed: apply the commit's values to the backend with the new checkpoint. */
  applyFrozen(checkpoint: number | undefined): void {
    const gen = this.frozenGen;
    const batch: [Buffer, Buffer | null][] = [];
    const caching = this.cacheBytes > 0;
    for (const [s, e] of this.buffer) {
      if (e.gen === gen) {
        const stored = e.encoded !== undefined ? e.encoded : encodeValue(this.valueSerde, e.value, e.timestamp, this.name);
        batch.push([e.key, stored]);
        this.buffer.delete(s);
        this.bufferBytes -= e.key.length * 2 + 64;
        if (caching) this.cacheFollow(s, e, stored);
      } else if (e.committing !== undefined) {
        batch.push([e.key, e.committing]);
        e.committing = undefined;
        // Only the bytes of this commit's value are at hand (the buffer holds a newer one): forget it.
        if (caching) this.cacheDelete(s);
      }
    }
    if (caching) this.cacheTrim();
    if (batch.length > 0 || checkpoint !== undefined) this.backend.write(batch, checkpoint);
    this.frozenGen = undefined;
    this.afterApply();
    this.afterCommit();
  }

  /** A failed or aborted transaction: forget everything uncommitted; the backend still holds the last committed state. */
  discard(): void {
    this.clearBuffer();
  }

  /**
   * A cached key keeps its committed value (a delete as known absent). Keys enter the cache only when
   * read from the backend: keys written once and never read again (a message id) would cost a cache
   * entry each and crowd the hot keys out.
   */
  private cacheFollow(s: string, e: Entry<V>, stored: Buffer | null): void {
    const c = this.cache.get(s);
    if (c === undefined) return;
    const bytes = e.key.length + (stored === null ? 0 : stored.length) + 64;
    this.cacheUsed += bytes - c.bytes;
    c.value = stored === null ? null : e.value;
    c.timestamp = e.timestamp;
    c.bytes = bytes;
  }

  private cacheDelete(s: string): void {
    const c = this.cache.get(s);
    if (c === undefined) return;
    this.cache.delete(s);
    this.cacheUsed -= c.bytes;
  }

  protected clearBuffer(): void {
    // Values read since the last commit may have been changed in place by the processor: the cache
    // cannot be trusted past a discarded commit.
    this.clearCache();
    this.buffer = new Map();
    this.frozenGen = undefined;
    this.current = 0;
    this.bufferBytes = 0;
  }

  /** Hook: the commit's entries have gone to the backend (and left the buffer). */
  protected afterApply(): void {}

  /** Retention work after a commit. */
  protected afterCommit(): void {}

  hasPendingWrites(): boolean {
    return this.current > 0;
  }

  approximateNumEntries(): number {
    return this.backend.approximateCount() + this.buffer.size;
  }

  close(): void {
    this.backend.close();
  }
}

export interface KeyValueStore<K, V> extends StateStore {
  get(key: K): V | undefined;
  getWithTimestamp(key: K): { value: V; timestamp: number } | undefined;
  /** Puts a value; `null` deletes. The timestamp defaults to the current record's. */
  put(key: K, value: V | null, timestamp?: number): void;
  putIfAbsent(key: K, value: V, timestamp?: number): V | undefined;
  delete(key: K): V | undefined;
  /** Entries with from <= key <= to in serialized-key byte order. Not supported on TTL stores. */
  range(from: K | undefined, to: K | undefined): Iterable<[K, V]>;
  all(): Iterable<[K, V]>;
  approximateNumEntries(): number;
  /**
   * Kafka Streams' record cache for the Processor API (its `withCachingEnabled` store forwarding on
   * flush): at each commit, before the commit's transaction, `listener` gets the last value of every
   * key written since the previous commit (null for a delete), so a key written 1,000 times in a
   * commit interval is seen once. Records the listener forwards belong to that commit. One listener
   * per store; call it from the processor's `init`.
   */
  onCommit(listener: (key: K, value: V | null, timestamp: number) => void): void;
}

function serializeKey<K>(serde: Serde<K>, key: K, store: string): Buffer {
  let b: Buffer | null;
  try {
    b = serde.serialize(key, store);
  } catch (err) {
    throw new StreamsError(ErrorCodes.SERIALIZATION, `store ${store}: cannot serialise key`, { cause: err });
  }
  if (b === null) throw new StreamsError(ErrorCodes.STATE_STORE, `store ${store}: null keys cannot be stored`);
  return b;
}

function succ(b: Buffer): Buffer {
  return Buffer.concat([b, Buffer.from([0])]);
}

/** What every key-value store derives from `getWithTimestamp` and `put`. */
abstract class KeyValueBase<K, V> extends BufferedStore<V> implements KeyValueStore<K, V> {
  protected abstract readonly keySerde: Serde<K>;
  abstract getWithTimestamp(key: K): { value: V; timestamp: number } | undefined;
  abstract put(key: K, value: V | null, timestamp?: number): void;
  abstract range(from: K | undefined, to: K | undefined): Iterable<[K, V]>;
  abstract all(): Iterable<[K, V]>;

  get(key: K): V | undefined {
    return this.getWithTimestamp(key)?.value;
  }

  putIfAbsent(key: K, value: V, timestamp?: number): V | undefined {
    const prev = this.get(key);
    if (prev === undefined) this.put(key, value, timestamp);
    return prev;
  }

  delete(key: K): V | undefined {
    const prev = this.get(key);
    if (prev !== undefined) this.put(key, null);
    return prev;
  }

  onCommit(listener: (key: K, value: V | null, timestamp: number) => void): void {
    this.setFlushListener((key, value, timestamp) => listener(this.keySerde.deserialize(key) as K, value, timestamp));
  }
}

/** A key-value store without retention. */
export class PlainKeyValueStore<K, V> extends KeyValueBase<K, V> {
  protected readonly keySerde: Serde<K>;

  private keyBytes(key: K): Buffer {
    return this.keyBytesWith(this.keySerde, key);
  }

  constructor(name: string, backend: Backend, keySerde: Serde<K>, valueSerde: Serde<V>, limits: StoreLimits) {
    super(name, backend, valueSerde, limits);
    this.keySerde = keySerde;
  }

  getWithTimestamp(key: K): { value: V; timestamp: number } | undefined {
    const bkey = this.keyBytes(key);
    const e = this.bufferGet(bkey) ?? this.backendGet(bkey);
    if (e === undefined || e.value === null) return undefined;
    return { value: e.value, timestamp: e.timestamp };
  }

  put(key: K, value: V | null, timestamp?: number): void {
    this.bufferPut(this.keyBytes(key), value, timestamp ?? this.ctx.recordTime());
  }

  *range(from: K | undefined, to: K | undefined): Iterable<[K, V]> {
    const lo = from === undefined ? undefined : serializeKey(this.keySerde, from, this.name);
    const hi = to === undefined ? undefined : succ(serializeKey(this.keySerde, to, this.name));
    // Merge the sorted backend range with the (sorted on demand) buffer entries in range.
    const buffered = [...this.buffer.values()]
      .filter((e) => (lo === undefined || Buffer.compare(e.key, lo) >= 0) && (hi === undefined || Buffer.compare(e.key, hi) < 0))
      .sort((a, b) => Buffer.compare(a.key, b.key));
    let i = 0;
    for (const [k, raw] of this.backend.range(lo, hi)) {
      while (i < buffered.length && Buffer.compare(buffered[i]!.key, k) < 0) {
        const e = buffered[i++]!;
        if (e.value !== null) yield [this.keySerde.deserialize(e.key) as K, e.value];
      }
      if (i < buffered.length && Buffer.compare(buffered[i]!.key, k) === 0) {
        const e = buffered[i++]!;
        if (e.value !== null) yield [this.keySerde.deserialize(e.key) as K, e.value];
        continue;
      }
      const v = this.decode(raw);
      if (v !== null) yield [this.keySerde.deserialize(k) as K, v];
    }
    while (i < buffered.length) {
      const e = buffered[i++]!;
      if (e.value !== null) yield [this.keySerde.deserialize(e.key) as K, e.value];
    }
  }

  all(): Iterable<[K, V]> {
    return this.range(undefined, undefined);
  }
}

/** The stored key of `key` in segment `seg` (the argument order of `composite`'s builder). */
function segKey(key: Buffer, seg: number): Buffer {
  const b = Buffer.allocUnsafe(8 + key.length);
  writeU64(b, seg, 0);
  key.copy(b, 8);
  return b;
}

function segBound(seg: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, seg, 0);
  return b;
}

/**
 * A key-value store whose entries expire `ttlMs` of stream time after their last write. Keys live
 * in time segments (ttl/2 wide) so that expiry drops whole segments; a read looks at the live
 * segments newest first. Used for de-duplication.
 */
export class TtlKeyValueStore<K, V> extends KeyValueBase<K, V> {
  protected readonly keySerde: Serde<K>;

  private keyBytes(key: K): Buffer {
    return this.keyBytesWith(this.keySerde, key);
  }
  readonly ttlMs: number;
  private readonly segmentMs: number;
  private maxSeg = -Infinity;
  private droppedBelow = -Infinity;
  /** Segments that may hold entries (backend or buffer), newest first when read. */
  private segments: number[] | undefined;

  constructor(name: string, backend: Backend, keySerde: Serde<K>, valueSerde: Serde<V>, limits: StoreLimits, ttlMs: number) {
    super(name, backend, valueSerde, limits);
    this.keySerde = keySerde;
    this.ttlMs = ttlMs;
    this.segmentMs = Math.max(1, Math.floor(ttlMs / 2));
  }

  private minLiveSeg(): number {
    return Math.floor((this.ctx.streamTime() - this.ttlMs) / this.segmentMs);
  }

  /** The segments present, found once by skipping through the backend's key space. */
  private liveSegments(): number[] {
    if (this.segments === undefined) {
      const found: number[] = [];
      let from = segBound(0);
      for (;;) {
        let next: number | undefined;
        for (const [k] of this.backend.range(from)) {
          next = readU64(k, 0);
          break;
        }
        if (next === undefined) break;
        found.push(next);
        from = segBound(next + 1);
      }
      this.segments = found.sort((a, b) => b - a);
      if (found.length > 0) this.maxSeg = Math.max(this.maxSeg, found[0]!);
    }
    return this.segments;
  }

  private noteSegment(seg: number): void {
    const segs = this.liveSegments();
    if (!segs.includes(seg)) {
      segs.push(seg);
      segs.sort((a, b) => b - a);
    }
  }

  override restoreBatch(records: Iterable<readonly [Buffer, Buffer | null]>, checkpoint: number): void {
    super.restoreBatch(records, checkpoint);
    this.segments = undefined;
  }

  /** Stored keys are the 8-byte segment, then the key. */
  protected override userKeyOf(storedKey: Buffer): Buffer {
    return storedKey.subarray(8);
  }

  override wipe(): void {
    super.wipe();
    this.segments = undefined;
  }

  getWithTimestamp(key: K): { value: V; timestamp: number } | undefined {
    const bkey = this.keyBytes(key);
    const cutoff = this.ctx.streamTime() - this.ttlMs;
    const low = this.minLiveSeg();
    for (const seg of this.liveSegments()) {
      if (seg < low) break;
      const k = this.composite(bkey, seg, segKey);
      const e = this.bufferGet(k) ?? this.backendGet(k);
      if (e === undefined) continue;
      if (e.value === null || e.timestamp < cutoff) return undefined;
      return { value: e.value, timestamp: e.timestamp };
    }
    return undefined;
  }

  put(key: K, value: V | null, timestamp?: number): void {
    const ts = timestamp ?? this.ctx.recordTime();
    const seg = Math.floor(ts / this.segmentMs);
    if (seg < this.minLiveSeg()) return; // already expired: storing it would be pointless
    if (seg > this.maxSeg) this.maxSeg = seg;
    this.noteSegment(seg);
    const bkey = this.keyBytes(key);
    this.bufferPut(this.composite(bkey, seg, segKey), value, ts);
    if (value === null) {
      // A delete must hide older segments' copies too: tombstone every live segment holding the key.
      for (let s = seg - 1; s >= Math.max(this.minLiveSeg(), seg - 3); s--) {
        const k = segKey(bkey, s);
        if ((this.bufferGet(k) ?? this.backendGet(k)) !== undefined) this.bufferPut(k, null, ts);
      }
    }
  }

  range(): Iterable<[K, V]> {
    throw new StreamsError(ErrorCodes.STATE_STORE, `store ${this.name}: range queries are not supported on TTL stores; use all()`);
  }

  /** Live entries, newest copy of each key (O(n) in memory). */
  *all(): Iterable<[K, V]> {
    const cutoff = this.ctx.streamTime() - this.ttlMs;
    const latest = new Map<string, { key: Buffer; value: V | null; timestamp: number; seg: number }>();
    const consider = (composite: Buffer, value: V | null, timestamp: number) => {
      const seg = readU64(composite, 0);
      const k = composite.subarray(8);
      const s = k.toString('latin1');
      const prev = latest.get(s);
      if (prev === undefined || seg > prev.seg) latest.set(s, { key: k, value, timestamp, seg });
    };
    for (const [k, raw] of this.backend.range(segBound(this.minLiveSeg()))) {
      const b = this.bufferGet(k);
      if (b !== undefined) continue;
      consider(k, this.decode(raw), decodeTimestamp(raw));
    }
    for (const e of this.buffer.values()) consider(e.key, e.value, e.timestamp);
    for (const e of latest.values()) {
      if (e.value !== null && e.timestamp >= cutoff) yield [this.keySerde.deserialize(e.key) as K, e.value];
    }
  }

  protected override afterCommit(): void {
    const below = this.minLiveSeg();
    if (Number.isFinite(below) && below > 0 && below > this.droppedBelow) {
      this.dropRange(segBound(0), segBound(below));
      this.droppedBelow = below;
      if (this.segments !== undefined) this.segments = this.segments.filter((s) => s >= below);
    }
  }
}

export interface WindowStore<K, V> extends StateStore {
  put(key: K, value: V | null, windowStart: number, timestamp?: number): void;
  fetch(key: K, windowStart: number): V | undefined;
  /** Windows of the key with timeFrom <= start <= timeTo, by start. */
  fetchRange(key: K, timeFrom: number, timeTo: number): Array<{ start: number; value: V }>;
  /** All windows with timeFrom <= start <= timeTo (ordered by start on time-first stores). */
  fetchAll(timeFrom: number, timeTo: number): Array<{ key: K; start: number; value: V }>;
  readonly retentionMs: number;
  /** As KeyValueStore.onCommit: the last value of every window written since the previous commit, with its key and start. */
  onCommit(listener: (key: K, start: number, value: V | null, timestamp: number) => void): void;
}

/**
 * Window store. Key layout: `[segment 8][len 4][key][start 8]` (key-first: fast per-key time
 * ranges, for joins) or `[segment 8][start 8][key]` (time-first: fast scans of all windows in a
 * time range, for emitting final results). Segments are `retention/2` wide (at least one minute,
 * like Kafka Streams); expired ones are dropped as whole key ranges.
 */
export class SegmentedWindowStore<K, V> extends BufferedStore<V> implements WindowStore<K, V> {
  private readonly keySerde: Serde<K>;

  private keyBytes(key: K): Buffer {
    return this.keyBytesWith(this.keySerde, key);
  }
  readonly retentionMs: number;
  private readonly segmentMs: number;
  private readonly timeFirst: boolean;
  private droppedBelow = -Infinity;
  /** Buffer index by record key, for per-key range reads (key-first stores). */
  private byKey = new Map<string, Map<string, Buffer>>();

  constructor(
    name: string,
    backend: Backend,
    keySerde: Serde<K>,
    valueSerde: Serde<V>,
    limits: StoreLimits,
    retentionMs: number,
    layout: 'key-first' | 'time-first',
    segmentMs?: number,
  ) {
    super(name, backend, valueSerde, limits);
    this.keySerde = keySerde;
    this.retentionMs = retentionMs;
    this.segmentMs = segmentMs ?? Math.max(60_000, Math.floor(retentionMs / 2));
    this.timeFirst = layout === 'time-first';
  }

  private seg(start: number): number {
    return Math.floor(start / this.segmentMs);
  }

  private readonly encodeNewFn = (bkey: Buffer, start: number): Buffer => this.encodeNew(bkey, start);

  private encode(bkey: Buffer, start: number): Buffer {
    return this.composite(bkey, start, this.encodeNewFn);
  }

  private encodeNew(bkey: Buffer, start: number): Buffer {
    const seg = this.seg(start);
    if (this.timeFirst) {
      const b = Buffer.allocUnsafe(16 + bkey.length);
      writeU64(b, seg, 0);
      writeU64(b, start, 8);
      bkey.copy(b, 16);
      return b;
    }
    const b = Buffer.allocUnsafe(20 + bkey.length);
    writeU64(b, seg, 0);
    b.writeUInt32BE(bkey.length, 8);
    bkey.copy(b, 12);
    writeU64(b, start, 12 + bkey.length);
    return b;
  }

  onCommit(listener: (key: K, start: number, value: V | null, timestamp: number) => void): void {
    this.setFlushListener((composite, value, timestamp) => {
      const { key, start } = this.decodeComposite(composite);
      listener(this.keySerde.deserialize(key, this.name) as K, start, value, timestamp);
    });
  }

  private decodeComposite(c: Buffer): { key: Buffer; start: number } {
    if (this.timeFirst) return { start: readU64(c, 8), key: c.subarray(16) };
    const len = c.readUInt32BE(8);
    return { key: c.subarray(12, 12 + len), start: readU64(c, 12 + len) };
  }

  private minLiveStart(): number {
    return this.ctx.streamTime() - this.retentionMs;
  }

  /** Whether the per-key index of the buffer is maintained: built on the first per-key range read. */
  private indexed = false;

  protected override onBufferPut(s: string, bkey: Buffer): void {
    if (this.indexed) this.index(s, bkey);
  }

  private index(s: string, bkey: Buffer): void {
    const { key } = this.decodeComposite(bkey);
    const ks = key.toString('latin1');
    let m = this.byKey.get(ks);
    if (m === undefined) this.byKey.set(ks, (m = new Map()));
    m.set(s, bkey);
  }

  private bufferForKey(bkey: Buffer): Map<string, Buffer> | undefined {
    if (!this.indexed) {
      this.indexed = true;
      for (const [s, e] of this.buffer) this.index(s, e.key);
    }
    return this.byKey.get(bkey.toString('latin1'));
  }

  protected override clearBuffer(): void {
    super.clearBuffer();
    this.byKey = new Map();
  }

  /** The index still lists the entries the commit took out of the buffer: rebuild it when next needed. */
  protected override afterApply(): void {
    this.indexed = false;
    this.byKey = new Map();
  }

  put(key: K, value: V | null, windowStart: number, timestamp?: number): void {
    if (windowStart < this.minLiveStart()) return; // expired
    const bkey = this.keyBytes(key);
    this.bufferPut(this.encode(bkey, windowStart), value, timestamp ?? this.ctx.recordTime());
  }

  fetch(key: K, windowStart: number): V | undefined {
    if (windowStart < this.minLiveStart()) return undefined;
    const c = this.encode(this.keyBytes(key), windowStart);
    const e = this.bufferGet(c) ?? this.backendGet(c);
    return e === undefined || e.value === null ? undefined : e.value;
  }

  fetchRange(key: K, timeFrom: number, timeTo: number): Array<{ start: number; value: V }> {
    const from = Math.max(0, timeFrom, this.minLiveStart()); // timestamps are never negative
    if (from > timeTo) return [];
    const bkey = this.keyBytes(key);
    const found = new Map<number, V | null>();
    if (this.timeFirst) {
      for (const w of this.scan(from, timeTo)) if (w.key.equals(bkey)) found.set(w.start, w.value);
    } else {
      for (let seg = this.seg(from); seg <= this.seg(timeTo); seg++) {
        const lo = Buffer.allocUnsafe(20 + bkey.length);
        writeU64(lo, seg, 0);
        lo.writeUInt32BE(bkey.length, 8);
        bkey.copy(lo, 12);
        const hi = Buffer.from(lo);
        writeU64(lo, from, 12 + bkey.length);
        writeU64(hi, timeTo + 1, 12 + bkey.length);
        for (const [c, raw] of this.backend.range(lo, hi)) found.set(this.decodeComposite(c).start, this.decode(raw));
      }
      const buffered = this.bufferForKey(bkey);
      if (buffered !== undefined) {
        for (const s of buffered.values()) {
          const e = this.bufferGet(s);
          if (e === undefined) continue;
          const { start } = this.decodeComposite(e.key);
          if (start >= from && start <= timeTo) found.set(start, e.value);
        }
      }
    }
    const out: Array<{ start: number; value: V }> = [];
    for (const [start, value] of found) if (value !== null) out.push({ start, value });
    return out.sort((a, b) => a.start - b.start);
  }

  /** Raw scan of windows with from <= start <= to, buffer merged over backend. */
  private scan(from: number, to: number): Array<{ key: Buffer; start: number; value: V | null; timestamp: number }> {
    const found = new Map<string, { key: Buffer; start: number; value: V | null; timestamp: number }>();
    for (let seg = this.seg(from); seg <= this.seg(to); seg++) {
      let lo: Buffer;
      let hi: Buffer;
      if (this.timeFirst) {
        lo = Buffer.allocUnsafe(16);
        writeU64(lo, seg, 0);
        writeU64(lo, from, 8);
        hi = Buffer.allocUnsafe(16);
        writeU64(hi, seg, 0);
        writeU64(hi, to + 1, 8);
      } else {
        lo = segBound(seg);
        hi = segBound(seg + 1);
      }
      for (const [c, raw] of this.backend.range(lo, hi)) {
        const { key, start } = this.decodeComposite(c);
        if (start < from || start > to) continue;
        found.set(c.toString('latin1'), { key, start, value: this.decode(raw), timestamp: decodeTimestamp(raw) });
      }
    }
    for (const [s, e] of this.buffer) {
      const { key, start } = this.decodeComposite(e.key);
      if (start >= from && start <= to) found.set(s, { key, start, value: e.value, timestamp: e.timestamp });
    }
    return [...found.values()].sort((a, b) => a.start - b.start || Buffer.compare(a.key, b.key));
  }

  fetchAll(timeFrom: number, timeTo: number): Array<{ key: K; start: number; value: V }> {
    const from = Math.max(0, timeFrom, this.minLiveStart()); // timestamps are never negative
    if (from > timeTo) return [];
    const out: Array<{ key: K; start: number; value: V }> = [];
    for (const w of this.scan(from, timeTo)) {
      if (w.value !== null) out.push({ key: this.keySerde.deserialize(w.key) as K, start: w.start, value: w.value });
    }
    return out;
  }

  protected override afterCommit(): void {
    const below = this.seg(this.minLiveStart());
    if (Number.isFinite(below) && below > 0 && below > this.droppedBelow) {
      this.dropRange(segBound(0), segBound(below));
      this.droppedBelow = below;
    }
  }
}
