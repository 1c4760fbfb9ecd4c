/**
 * A mergeable distinct-count sketch (HyperLogLog, with an HLL++-style sparse form) for counting
 * unique visitors in the OLAP cubes. See docs/visitors-sketch.md.
 *
 * - Precision p (10..16, default 12): m = 2^p dense registers, standard error 1.04/sqrt(m).
 * - Hash (persisted, never change it): the first two 32-bit words (h1, h2) of
 *   MurmurHash3_x86_128 over the id's UTF-8 bytes with seed 0, as the 64-bit value h1·2^32 + h2.
 * - Sparse form: a sorted list of (25-bit index, rank) entries, estimated by linear counting over
 *   2^25 buckets (exact in practice). It becomes dense once it holds more than 3m/16 entries, the
 *   point where its serialized form would outgrow the dense one (3m/4 bytes).
 * - Dense form: m one-byte registers, estimated with Ertl's improved estimator (no bias tables).
 * - Both forms are a pure function of the set of ids added (and p), so merging is commutative,
 *   associative and gives the same bytes as sketching the union directly.
 * - Merging sketches of different precision folds the finer one down to the lower precision; the
 *   result is the same as if both had been built at that precision.
 */

/** Version of the serialized format (top nibble of the header byte). */
export const HLL_FORMAT_VERSION = 1;
export const HLL_MIN_PRECISION = 10;
export const HLL_MAX_PRECISION = 16;
export const HLL_DEFAULT_PRECISION = 12;
/** Index bits of a sparse entry (HLL++'s p'). */
export const HLL_SPARSE_PRECISION = 25;

const SP = HLL_SPARSE_PRECISION;
const SP_M = 2 ** SP;
const DENSE_FLAG = 0x08;
const ALPHA_INF = 0.5 / Math.LN2;

/** Bytes that are not a serialized sketch this version can read. */
export class HllFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HllFormatError';
  }
}

// ---------------------------------------------------------------------------------------------
// Hash: MurmurHash3_x86_128 (Austin Appleby, public domain) over UTF-8 bytes.

let utf8Buf = new Uint8Array(256);

/** Encodes `s` as UTF-8 into the shared buffer (lone surrogates become U+FFFD, as TextEncoder does). */
function encodeUtf8(s: string): number {
  const len = s.length;
  if (utf8Buf.length < len * 3) utf8Buf = new Uint8Array(Math.max(len * 3, utf8Buf.length * 2));
  const b = utf8Buf;
  let n = 0;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      b[n++] = c;
    } else if (c < 0x800) {
      b[n++] = 0xc0 | (c >> 6);
      b[n++] = 0x80 | (c & 0x3f);
    } else if ((c & 0xf800) === 0xd800) {
      const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c < 0xdc00 && (d & 0xfc00) === 0xdc00) {
        i++;
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        b[n++] = 0xf0 | (c >> 18);
        b[n++] = 0x80 | ((c >> 12) & 0x3f);
        b[n++] = 0x80 | ((c >> 6) & 0x3f);
        b[n++] = 0x80 | (c & 0x3f);
      } else {
        b[n++] = 0xef;
        b[n++] = 0xbf;
        b[n++] = 0xbd;
      }
    } else {
      b[n++] = 0xe0 | (c >> 12);
      b[n++] = 0x80 | ((c >> 6) & 0x3f);
      b[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const mmOut = new Int32Array(4);

/** MurmurHash3_x86_128 of b[0..len) into mmOut (h1..h4 as the reference's out[0..3]). */
function mm3x86128(b: Uint8Array, len: number, seed: number): void {
  let h1 = seed | 0;
  let h2 = h1;
  let h3 = h1;
  let h4 = h1;
  let k1: number;
  let k2: number;
  let k3: number;
  let k4: number;
  const blockEnd = len & ~15;
  let i = 0;
  for (; i < blockEnd; i += 16) {
    k1 = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
    k2 = b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24);
    k3 = b[i + 8]! | (b[i + 9]! << 8) | (b[i + 10]! << 16) | (b[i + 11]! << 24);
    k4 = b[i + 12]! | (b[i + 13]! << 8) | (b[i + 14]! << 16) | (b[i + 15]! << 24);

    k1 = Math.imul(k1, C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2); h1 ^= k1;
    h1 = (h1 << 19) | (h1 >>> 13); h1 = (h1 + h2) | 0; h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(k2, C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3); h2 ^= k2;
    h2 = (h2 << 17) | (h2 >>> 15); h2 = (h2 + h3) | 0; h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(k3, C3); k3 = (k3 << 17) | (k3 >>> 15); k3 = Math.imul(k3, C4); h3 ^= k3;
    h3 = (h3 << 15) | (h3 >>> 17); h3 = (h3 + h4) | 0; h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(k4, C4); k4 = (k4 << 18) | (k4 >>> 14); k4 = Math.imul(k4, C1); h4 ^= k4;
    h4 = (h4 << 13) | (h4 >>> 19); h4 = (h4 + h1) | 0; h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0;
  }
  const rem = len & 15;
  if (rem > 0) {
    k1 = 0; k2 = 0; k3 = 0; k4 = 0;
    // Little-endian words over the tail, zero padded (the reference's fall-through switch).
    for (let j = rem - 1; j >= 0; j--) {
      const v = b[i + j]!;
      const sh = (j & 3) << 3;
      if (j >= 12) k4 ^= v << sh;
      else if (j >= 8) k3 ^= v << sh;
      else if (j >= 4) k2 ^= v << sh;
      else k1 ^= v << sh;
    }
    if (rem > 12) { k4 = Math.imul(k4, C4); k4 = (k4 << 18) | (k4 >>> 14); k4 = Math.imul(k4, C1); h4 ^= k4; }
    if (rem > 8) { k3 = Math.imul(k3, C3); k3 = (k3 << 17) | (k3 >>> 15); k3 = Math.imul(k3, C4); h3 ^= k3; }
    if (rem > 4) { k2 = Math.imul(k2, C2); k2 = (k2 << 16) | (k2 >>> 16); k2 = Math.imul(k2, C3); h2 ^= k2; }
    k1 = Math.imul(k1, C1); k1 = (k1 << 15) | (k1 >>> 17); k1 = Math.imul(k1, C2); h1 ^= k1;
  }
  h1 ^= len; h2 ^= len; h3 ^= len; h4 ^= len;
  h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0;
  h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0;
  h1 = fmix32(h1); h2 = fmix32(h2); h3 = fmix32(h3); h4 = fmix32(h4);
  h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0;
  h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0;
  mmOut[0] = h1; mmOut[1] = h2; mmOut[2] = h3; mmOut[3] = h4;
}

/** MurmurHash3_x86_128 of `bytes`: the reference's out[0..3] as unsigned 32-bit words. */
export function murmur3x86128(bytes: Uint8Array, seed = 0): [number, number, number, number] {
  mm3x86128(bytes, bytes.length, seed);
  return [mmOut[0]! >>> 0, mmOut[1]! >>> 0, mmOut[2]! >>> 0, mmOut[3]! >>> 0];
}

/** The sketch's 64-bit hash of an id (h1·2^32 + h2 of MurmurHash3_x86_128(UTF-8(id), seed 0)). */
export function hash64(id: string): bigint {
  const n = encodeUtf8(id); // may replace utf8Buf: read it after
  mm3x86128(utf8Buf, n, 0);
  return (BigInt(mmOut[0]! >>> 0) << 32n) | BigInt(mmOut[1]! >>> 0);
}

// ---------------------------------------------------------------------------------------------
// Sketch

/** Sparse entries: key = index25 · 64 + rank25 (rank of the 39 bits after the index, 1..40). */
const RANK_BITS = 6;
const RANK_MASK = 63;
const SPARSE_MAX_RANK = 64 - SP + 1;

function checkPrecision(p: number): void {
  if (!Number.isInteger(p) || p < HLL_MIN_PRECISION || p > HLL_MAX_PRECISION) {
    throw new RangeError(`HyperLogLog precision must be an integer in ${HLL_MIN_PRECISION}..${HLL_MAX_PRECISION}, got ${p}`);
  }
}

/** The dense rank at precision p of a sparse key. */
function denseRankOfKey(key: number, p: number): number {
  const w = SP - p;
  const mid = (key >>> RANK_BITS) & ((1 << w) - 1);
  return mid !== 0 ? Math.clz32(mid) - (32 - w) + 1 : w + (key & RANK_MASK);
}

/** Registers folded from precision `from` down to precision `to` (to < from). */
function foldRegisters(regs: Uint8Array, from: number, to: number): Uint8Array {
  const d = from - to;
  const mask = (1 << d) - 1;
  const out = new Uint8Array(1 << to);
  for (let j = 0; j < regs.length; j++) {
    const r = regs[j]!;
    if (r === 0) continue;
    const mid = j & mask;
    const nr = mid !== 0 ? Math.clz32(mid) - (32 - d) + 1 : d + r;
    const idx = j >>> d;
    if (nr > out[idx]!) out[idx] = nr;
  }
  return out;
}

function sigma(x: number): number {
  if (x === 1) return Infinity;
  let y = 1;
  let z = x;
  for (;;) {
    x *= x;
    const prev = z;
    z += x * y;
    y += y;
    if (z === prev) return z;
  }
}

function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  for (;;) {
    x = Math.sqrt(x);
    const prev = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
    if (z === prev) return z / 3;
  }
}

export class HyperLogLog {
  #p: number;
  /** Sorted sparse keys (strictly increasing index); null once dense. */
  #keys: Uint32Array | null;
  #len = 0;
  /** m one-byte registers; null while sparse. */
  #regs: Uint8Array | null = null;

  constructor(precision: number = HLL_DEFAULT_PRECISION) {
    checkPrecision(precision);
    this.#p = precision;
    this.#keys = new Uint32Array(4);
  }

  /** Precision p (m = 2^p registers). Merging with a coarser sketch lowers it. */
  get precision(): number {
    return this.#p;
  }

  get isSparse(): boolean {
    return this.#regs === null;
  }

  /** Sparse entries held before the sketch turns dense: 3m/16. */
  static sparseLimit(precision: number): number {
    return (3 << precision) >>> 4;
  }

  /** Adds an id (hashed with {@link hash64}). */
  add(id: string): this {
    const n = encodeUtf8(id); // may replace utf8Buf: read it after
    mm3x86128(utf8Buf, n, 0);
    return this.addHash(mmOut[0]!, mmOut[1]!);
  }

  /** Adds a pre-computed 64-bit hash given as its high and low 32-bit halves. */
  addHash(hi: number, lo: number): this {
    const regs = this.#regs;
    if (regs !== null) {
      const p = this.#p;
      const rest = (hi << p) >>> 0;
      const r = rest !== 0 ? Math.clz32(rest) + 1 : 32 - p + (lo !== 0 ? Math.clz32(lo) + 1 : 33);
      const idx = hi >>> (32 - p);
      if (r > regs[idx]!) regs[idx] = r;
      return this;
    }
    const rest = (hi << SP) >>> 0;
    const r = rest !== 0 ? Math.clz32(rest) + 1 : 32 - SP + (lo !== 0 ? Math.clz32(lo) + 1 : 33);
    this.#insertSparse(hi >>> (32 - SP), r);
    return this;
  }

  #insertSparse(idx: number, rank: number): void {
    let keys = this.#keys!;
    const len = this.#len;
    const key = idx * 64 + rank;
    // First position whose index is >= idx.
    let lo = 0;
    let hi = len;
    const floor = idx * 64;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < floor) lo = mid + 1;
      else hi = mid;
    }
    if (lo < len && keys[lo]! >>> RANK_BITS === idx) {
      if (key > keys[lo]!) keys[lo] = key;
      return;
    }
    if (len === keys.length) {
      const grown = new Uint32Array(len * 2);
      grown.set(keys);
      keys = this.#keys = grown;
    }
    keys.copyWithin(lo + 1, lo, len);
    keys[lo] = key;
    this.#len = len + 1;
    if (this.#len > HyperLogLog.sparseLimit(this.#p)) this.#toDense();
  }

  #toDense(): void {
    const p = this.#p;
    const regs = new Uint8Array(1 << p);
    const keys = this.#keys!;
    const shift = SP - p + RANK_BITS;
    for (let i = 0; i < this.#len; i++) {
      const key = keys[i]!;
      const idx = key >>> shift;
      const r = denseRankOfKey(key, p);
      if (r > regs[idx]!) regs[idx] = r;
    }
    this.#regs = regs;
    this.#keys = null;
    this.#len = 0;
  }

  /** Lowers the precision to `p` in place (no-op if already there). */
  #foldTo(p: number): void {
    if (p === this.#p) return;
    if (this.#regs !== null) {
      this.#regs = foldRegisters(this.#regs, this.#p, p);
      this.#p = p;
    } else {
      this.#p = p;
      if (this.#len > HyperLogLog.sparseLimit(p)) this.#toDense();
    }
  }

  /**
   * Union in place: afterwards this sketch counts the ids of both. If the precisions differ, the
   * result has the lower one (this sketch is folded down; `other` is never modified).
   */
  merge(other: HyperLogLog): this {
    const p = Math.min(this.#p, other.#p);
    this.#foldTo(p);
    if (other.#regs === null) {
      const oKeys = other.#keys!;
      const oLen = other.#len;
      if (this.#regs !== null) {
        const regs = this.#regs;
        const shift = SP - p + RANK_BITS;
        for (let i = 0; i < oLen; i++) {
          const key = oKeys[i]!;
          const idx = key >>> shift;
          const r = denseRankOfKey(key, p);
          if (r > regs[idx]!) regs[idx] = r;
        }
        return this;
      }
      // Both sparse: merge the two sorted lists, keeping the higher rank on equal indexes.
      const aKeys = this.#keys!;
      const aLen = this.#len;
      const out = new Uint32Array(Math.max(4, aLen + oLen));
      let i = 0;
      let j = 0;
      let n = 0;
      while (i < aLen && j < oLen) {
        const a = aKeys[i]!;
        const b = oKeys[j]!;
        const ai = a >>> RANK_BITS;
        const bi = b >>> RANK_BITS;
        if (ai < bi) { out[n++] = a; i++; }
        else if (bi < ai) { out[n++] = b; j++; }
        else { out[n++] = a > b ? a : b; i++; j++; }
      }
      while (i < aLen) out[n++] = aKeys[i++]!;
      while (j < oLen) out[n++] = oKeys[j++]!;
      this.#keys = out;
      this.#len = n;
      if (n > HyperLogLog.sparseLimit(p)) this.#toDense();
      return this;
    }
    let oRegs = other.#regs;
    if (other.#p > p) oRegs = foldRegisters(oRegs, other.#p, p);
    if (this.#regs === null) this.#toDense();
    const regs = this.#regs!;
    for (let k = 0; k < regs.length; k++) {
      const r = oRegs[k]!;
      if (r > regs[k]!) regs[k] = r;
    }
    return this;
  }

  /** An independent copy. */
  clone(): HyperLogLog {
    const c = new HyperLogLog(this.#p);
    if (this.#regs !== null) {
      c.#regs = this.#regs.slice();
      c.#keys = null;
    } else {
      c.#keys = this.#keys!.slice(0, Math.max(4, this.#len));
      c.#len = this.#len;
    }
    return c;
  }

  /** Estimated number of distinct ids, rounded to an integer. */
  estimate(): number {
    if (this.#regs === null) {
      // Linear counting over the 2^25 sparse buckets.
      return Math.round(-SP_M * Math.log1p(-this.#len / SP_M));
    }
    // Ertl, "New cardinality estimation algorithms for HyperLogLog sketches" (2017), improved estimator.
    const regs = this.#regs;
    const m = regs.length;
    const q = 64 - this.#p;
    const c = new Int32Array(q + 2);
    for (let k = 0; k < m; k++) c[regs[k]!]!++;
    let z = m * tau((m - c[q + 1]!) / m);
    for (let k = q; k >= 1; k--) z = 0.5 * (z + c[k]!);
    z += m * sigma(c[0]! / m);
    return Math.round((ALPHA_INF * m * m) / z);
  }

  /**
   * The sketch as bytes. Header byte: format version (high nibble), dense flag (0x08), p − 10 (low
   * three bits). Sparse body: varint entry count, then each key (index25 · 64 + rank) as the
   * varint difference from the previous key. Dense body: the m registers packed 6 bits each,
   * most significant bit first (3m/4 bytes).
   */
  serialize(): Uint8Array {
    const p = this.#p;
    const header = (HLL_FORMAT_VERSION << 4) | (p - HLL_MIN_PRECISION);
    if (this.#regs !== null) {
      const regs = this.#regs;
      const out = new Uint8Array(1 + ((regs.length * 3) >>> 2));
      out[0] = header | DENSE_FLAG;
      for (let k = 0, o = 1; k < regs.length; k += 4, o += 3) {
        const a = regs[k]!;
        const b = regs[k + 1]!;
        const c = regs[k + 2]!;
        const d = regs[k + 3]!;
        out[o] = (a << 2) | (b >>> 4);
        out[o + 1] = ((b & 15) << 4) | (c >>> 2);
        out[o + 2] = ((c & 3) << 6) | d;
      }
      return out;
    }
    const keys = this.#keys!;
    const len = this.#len;
    const tmp = new Uint8Array(1 + 5 + len * 5);
    tmp[0] = header;
    let o = writeVarint(tmp, 1, len);
    let prev = 0;
    for (let i = 0; i < len; i++) {
      const key = keys[i]!;
      o = writeVarint(tmp, o, key - prev);
      prev = key;
    }
    return tmp.slice(0, o);
  }

  /** Reads {@link serialize}'s bytes; throws {@link HllFormatError} on anything malformed. */
  static deserialize(bytes: Uint8Array): HyperLogLog {
    if (bytes.length < 1) throw new HllFormatError('HyperLogLog: empty input');
    const header = bytes[0]!;
    const version = header >>> 4;
    if (version !== HLL_FORMAT_VERSION) {
      throw new HllFormatError(`HyperLogLog: unsupported format version ${version} (this code reads version ${HLL_FORMAT_VERSION})`);
    }
    const p = (header & 7) + HLL_MIN_PRECISION;
    if (p > HLL_MAX_PRECISION) throw new HllFormatError(`HyperLogLog: invalid precision ${p}`);
    const s = new HyperLogLog(p);
    if ((header & DENSE_FLAG) !== 0) {
      const m = 1 << p;
      const expected = 1 + ((m * 3) >>> 2);
      if (bytes.length !== expected) {
        throw new HllFormatError(`HyperLogLog: dense sketch of precision ${p} must be ${expected} bytes, got ${bytes.length}`);
      }
      const regs = new Uint8Array(m);
      const max = 64 - p + 1;
      let bad = 0;
      for (let k = 0, o = 1; k < m; k += 4, o += 3) {
        const x = bytes[o]!;
        const y = bytes[o + 1]!;
        const z = bytes[o + 2]!;
        const a = x >>> 2;
        const b = ((x & 3) << 4) | (y >>> 4);
        const c = ((y & 15) << 2) | (z >>> 6);
        const d = z & 63;
        regs[k] = a; regs[k + 1] = b; regs[k + 2] = c; regs[k + 3] = d;
        bad |= +(a > max) | +(b > max) | +(c > max) | +(d > max);
      }
      if (bad) throw new HllFormatError(`HyperLogLog: register value above ${max}`);
      s.#regs = regs;
      s.#keys = null;
      return s;
    }
    const pos = { o: 1 };
    const count = readVarint(bytes, pos);
    // Each entry takes at least one byte.
    if (count > bytes.length - pos.o) throw new HllFormatError(`HyperLogLog: ${count} sparse entries cannot fit in ${bytes.length} bytes`);
    const keys = new Uint32Array(Math.max(4, count));
    let key = 0;
    let prevIdx = -1;
    for (let i = 0; i < count; i++) {
      key += readVarint(bytes, pos);
      const idx = Math.floor(key / 64);
      const rank = key % 64;
      if (idx >= SP_M || idx <= prevIdx || rank < 1 || rank > SPARSE_MAX_RANK) {
        throw new HllFormatError(`HyperLogLog: invalid sparse entry ${i}`);
      }
      keys[i] = key;
      prevIdx = idx;
    }
    if (pos.o !== bytes.length) throw new HllFormatError(`HyperLogLog: ${bytes.length - pos.o} trailing bytes`);
    s.#keys = keys;
    s.#len = count;
    if (count > HyperLogLog.sparseLimit(p)) s.#toDense();
    return s;
  }
}

function writeVarint(out: Uint8Array, o: number, v: number): number {
  while (v >= 0x80) {
    out[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[o++] = v;
  return o;
}

/** An unsigned LEB128 value below 2^32 in canonical (shortest) form. */
function readVarint(bytes: Uint8Array, pos: { o: number }): number {
  let v = 0;
  let mul = 1;
  for (let n = 0; n < 5; n++) {
    if (pos.o >= bytes.length) throw new HllFormatError('HyperLogLog: truncated input');
    const b = bytes[pos.o++]!;
    v += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) {
      if (b === 0 && n > 0) throw new HllFormatError('HyperLogLog: non-canonical varint');
      if (v > 0xffffffff) break;
      return v;
    }
    mul *= 128;
  }
  throw new HllFormatError('HyperLogLog: varint too long');
}
